import { errorStatus, type ErrorCode, type ErrorBody } from '@alarmcast/contracts';
import type { ErrorRequestHandler, Response } from 'express';

/**
 * An error meant for the caller: a stable code (its HTTP status comes from contracts' ERROR_CATALOGUE)
 * and a message. Everything else that reaches the error handler is a bug or an outage and answers 500
 * with no internals.
 */
export class ApiError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** seconds, for 503/429 */
    readonly retryAfter?: number,
    /** whose status table applies: ours, or the Pusher HTTP API's (see ERROR_CATALOGUE) */
    api: 'alarmcast' | 'pusher' = 'alarmcast',
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = errorStatus(code, api);
  }
}

export function sendError(res: Response, err: ApiError): void {
  if (err.retryAfter !== undefined) res.setHeader('Retry-After', String(err.retryAfter));
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.details !== undefined) body.error.details = err.details;
  res.status(err.status).json(body);
}

/** body-parser's error types, mapped to our codes (it sets `type` and `status` on its errors). */
function fromBodyParser(err: {
  type?: unknown;
  status?: unknown;
  limit?: unknown;
  expose?: unknown;
}): ApiError | null {
  switch (err.type) {
    case 'entity.too.large':
      return new ApiError(
        'payload_too_large',
        `request body is over the limit of ${String(err.limit)} bytes`,
      );
    case 'entity.parse.failed':
      return new ApiError('invalid_json', 'request body is not valid JSON');
    case 'parameters.too.many':
      return new ApiError('payload_too_large', 'request body has too many parameters');
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return new ApiError('unsupported_media_type', 'unsupported charset or content encoding');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new ApiError('invalid_json', 'request body could not be read');
    default:
      // body-parser's other client errors (e.g. a body that is not what its Content-Encoding says) carry a
      // 4xx status and `expose`, but no type we know.
      return typeof err.status === 'number' && err.status >= 400 && err.status < 500 && err.expose === true
        ? new ApiError('invalid_json', 'request body could not be decoded')
        : null;
  }
}

/**
 * A path segment that is not valid percent-encoding: Express' router (decoding a route parameter) and
 * serve-static (decoding a file path) both fail with a 400 URIError, which would otherwise read as a bug.
 */
function fromBadPath(err: unknown): ApiError | null {
  if (!(err instanceof URIError)) return null;
  const status = (err as { status?: unknown; statusCode?: unknown }).status;
  return status === 400 || status === undefined
    ? new ApiError('invalid_path', 'the request path contains a malformed percent-escape')
    : null;
}

/**
 * The last middleware of every service: maps known errors to their status and code, logs the rest and
 * answers 500 without a stack trace. `classify` lets a service map its own infrastructure errors (e.g. a
 * Postgres outage to 503) before the 500 fallback.
 */
export function jsonErrorHandler(
  log: { error: (obj: object, msg: string) => void },
  classify: (err: unknown) => ApiError | null = () => null,
): ErrorRequestHandler {
  return (err: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const known =
      err instanceof ApiError
        ? err
        : (fromBadPath(err) ?? fromBodyParser(err as Record<string, unknown>) ?? classify(err));
    if (known) {
      sendError(res, known);
      return;
    }
    log.error({ err }, 'unhandled error in request');
    sendError(res, new ApiError('internal_error', 'internal error'));
  };
}

/** 404 for any route not matched, in the same error format. */
export const notFoundHandler = (_req: unknown, res: Response): void =>
  sendError(res, new ApiError('not_found', 'no such route'));
