import type { ErrorRequestHandler, Response } from 'express';
import type { ErrorBody, ErrorCode } from '@alarmcast/contracts';
import type { Logger } from '@alarmcast/observability';

/** An error with its HTTP status and stable code; the error handler below is the one place that renders it. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string): void {
  const body: ErrorBody = { error: { code, message } };
  res.status(status).json(body);
}

/** body-parser reports its failures as errors with a `type`; these are the client's fault. */
const BODY_PARSER_ERRORS: Record<string, [number, ErrorCode, string]> = {
  'entity.parse.failed': [400, 'invalid_json', 'the body is not valid JSON'],
  'entity.too.large': [413, 'payload_too_large', 'the body is too large'],
  'parameters.too.many': [413, 'payload_too_large', 'the body has too many parameters'],
  'encoding.unsupported': [415, 'unsupported_media_type', 'unsupported content encoding'],
  'charset.unsupported': [415, 'unsupported_media_type', 'unsupported charset'],
  'request.aborted': [400, 'validation_failed', 'the request was aborted'],
  'request.size.invalid': [400, 'validation_failed', 'the body does not match its Content-Length'],
};

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof HttpError) {
      sendError(res, err.status, err.code, err.message);
      return;
    }
    const type = typeof err === 'object' && err !== null && 'type' in err ? String(err.type) : '';
    const known = BODY_PARSER_ERRORS[type];
    if (known) {
      sendError(res, known[0], known[1], known[2]);
      return;
    }
    log.error({ err }, 'unhandled error in an HTTP handler');
    sendError(res, 500, 'internal_error', 'internal error');
  };
}
