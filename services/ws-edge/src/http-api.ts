import { createHash } from 'node:crypto';
import express, { type Request, type Router } from 'express';
import type { z } from 'zod';
import { constantTimeEqual, hmacHex } from '@alarmcast/auth';
import { HTTP_API_LIMITS, ROUTES, expressPath, parseChannel } from '@alarmcast/contracts';
import { ApiError } from '@alarmcast/http';
import type { Logger } from '@alarmcast/observability';
import type { ChannelEvent, ChannelPublisher } from './channel-publisher.js';

export { HTTP_API_LIMITS };

export type HttpApiOutcome = 'published' | 'unauthenticated' | 'invalid' | 'too_large' | 'unavailable';

export interface HttpApiDeps {
  app: { id: string; key: string; secret: string };
  publisher: ChannelPublisher;
  log: Logger;
  onOutcome?: (outcome: HttpApiOutcome, events: number) => void;
  /** channels named in valid requests that no socket can ever hold, so nothing was published for them */
  onSkipped?: (count: number) => void;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * The publishing half of Pusher's HTTP API, for server-side publishers (Laravel's `pusher` / `reverb`
 * broadcasters, any Pusher server SDK): `POST /apps/{appId}/events` and `POST /apps/{appId}/batch_events`,
 * signed as Pusher signs them. Each event is published on Redis, so it reaches the subscribed sockets of every
 * edge node, not only this one's.
 */
export function httpApiRouter(deps: HttpApiDeps): Router {
  const { app, publisher, log } = deps;
  const now = deps.now ?? Date.now;
  const router = express.Router();
  const outcome = (o: HttpApiOutcome, events = 0): void => deps.onOutcome?.(o, events);

  // The signature covers the md5 of the exact bytes sent, so the body is read raw whatever its content type
  // and only parsed once it is authenticated.
  const rawBody = express.raw({ type: () => true, limit: HTTP_API_LIMITS.maxBodyBytes });

  const handle =
    (toEvents: (body: unknown) => ChannelEvent[]) =>
    async (req: Request, res: express.Response): Promise<void> => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      try {
        if (req.params.appId !== app.id) throw new ApiError('not_found', 'no such app');
        const problem = authProblem(req, body);
        if (problem) {
          log.info({ problem }, 'HTTP API request refused');
          throw new ApiError('unauthenticated', problem);
        }
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          throw new ApiError('invalid_json', 'request body is not valid JSON');
        }
        const events = toEvents(json);
        const served = events.filter((e) => parseChannel(e.channel) !== null);
        // A channel no socket can hold (public, presence, other private names) gets nothing published, which
        // is exactly what Pusher does for a channel without subscribers; refusing it would make Laravel
        // fail a broadcast that also names one of our channels.
        if (served.length < events.length) deps.onSkipped?.(events.length - served.length);
        try {
          await publisher.publish(served);
        } catch (err) {
          log.error({ err }, 'could not publish HTTP API events');
          throw new ApiError('service_unavailable', 'could not publish, retry', undefined, 1);
        }
        outcome('published', served.length);
        res.json({});
      } catch (err) {
        if (err instanceof ApiError) {
          outcome(
            err.status === 401
              ? 'unauthenticated'
              : err.status === 413
                ? 'too_large'
                : err.status === 503
                  ? 'unavailable'
                  : 'invalid',
          );
        }
        throw err;
      }
    };

  router.post(
    expressPath(ROUTES.pusherTrigger),
    rawBody,
    handle((json) => {
      const body = parseBody(ROUTES.pusherTrigger.body.schema, json);
      checkDataSize(body.data);
      const channels = body.channels ?? (body.channel === undefined ? [] : [body.channel]);
      return [...new Set(channels)].map((channel) => ({
        channel,
        event: body.name,
        data: body.data,
        excludeSocketId: body.socket_id,
      }));
    }),
  );
  router.post(
    expressPath(ROUTES.pusherBatch),
    rawBody,
    handle((json) => {
      const body = parseBody(ROUTES.pusherBatch.body.schema, json);
      for (const e of body.batch) checkDataSize(e.data);
      return body.batch.map((e) => ({
        channel: e.channel,
        event: e.name,
        data: e.data,
        excludeSocketId: e.socket_id,
      }));
    }),
  );

  /**
   * Pusher's request signature, or why it fails: `auth_signature` is the hex HMAC-SHA256 with the app secret
   * of `METHOD\npath\nquery`, the query being every other parameter, keys lower-cased, sorted by key and
   * joined as `k=v&...` with unencoded values; `body_md5` (hex md5 of the raw body) is required with a body.
   */
  function authProblem(req: Request, body: Buffer): string | null {
    const url = new URL(req.originalUrl, 'http://edge');
    const params = new Map<string, string>();
    for (const [key, value] of url.searchParams) {
      const k = key.toLowerCase();
      // Two values for one key would be signed one way and read another.
      if (params.has(k)) return `duplicate query parameter ${k}`;
      params.set(k, value);
    }
    const signature = params.get('auth_signature');
    params.delete('auth_signature');
    if (signature === undefined) return 'auth_signature is required';
    if (params.get('auth_key') !== app.key) return 'unknown auth_key';
    if (params.get('auth_version') !== '1.0') return 'auth_version must be 1.0';
    const timestamp = Number(params.get('auth_timestamp') ?? Number.NaN);
    if (!Number.isInteger(timestamp)) return 'auth_timestamp is required';
    if (Math.abs(now() / 1000 - timestamp) > HTTP_API_LIMITS.maxClockSkewS) {
      return `auth_timestamp is more than ${HTTP_API_LIMITS.maxClockSkewS} s from the server's clock`;
    }
    if (body.byteLength > 0) {
      const md5 = params.get('body_md5');
      if (md5 === undefined) return 'body_md5 is required with a body';
      if (!constantTimeEqual(md5, createHash('md5').update(body).digest('hex'))) {
        return 'body_md5 does not match the body';
      }
    }
    const query = [...params.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const expected = hmacHex(app.secret, `${req.method}\n${url.pathname}\n${query}`);
    return constantTimeEqual(signature, expected) ? null : 'invalid auth_signature';
  }

  return router;
}

function parseBody<T>(schema: z.ZodType<T>, json: unknown): T {
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // The field and reason are in the message; the status is Pusher's (ERROR_CATALOGUE pusherStatus).
  throw new ApiError(
    'validation_failed',
    `${issue?.path.join('.') || 'body'} ${issue?.message ?? 'is invalid'}`,
    undefined,
    undefined,
    'pusher',
  );
}

function checkDataSize(data: string): void {
  const bytes = Buffer.byteLength(data, 'utf8');
  if (bytes > HTTP_API_LIMITS.maxDataBytes) {
    throw new ApiError(
      'payload_too_large',
      `event data is ${bytes} bytes, over the limit of ${HTTP_API_LIMITS.maxDataBytes}`,
    );
  }
}
