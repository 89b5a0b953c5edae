import express, { type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import { parseChannel, PUSHER_CHANNEL_NAME, type ParsedChannel } from '@alarmcast/contracts';
import { signChannelAuth, verifyUserJwt } from '@alarmcast/auth';
import { findUserAccess, findVisibleDevices, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import type { EdgeConfig } from './config.js';
import { encodeOwnerData } from './revocation.js';
import { ApiError, type RateLimit } from '@alarmcast/http';

/** Echo's default path, so legacy clients keep their `authEndpoint`. */
export const CHANNEL_AUTH_PATH = '/broadcasting/auth';

const AuthBody = z.object({
  // Pusher's socket id shape; bounded so a huge number cannot reach the HMAC
  socket_id: z.string().regex(/^\d{1,20}\.\d{1,20}$/, 'must look like 1234.5678'),
  channel_name: z.string().regex(PUSHER_CHANNEL_NAME, 'is not a valid Pusher channel name'),
});

export type AuthOutcome = 'granted' | 'unauthenticated' | 'forbidden' | 'invalid';

export interface ChannelAuthDeps {
  config: Pick<EdgeConfig, 'app' | 'jwtSecret' | 'corsOrigins'>;
  pool: PgPool;
  log: Logger;
  onOutcome?: (outcome: AuthOutcome) => void;
  /** request limits (per client IP, per user) and the failed-authentication limit per client IP */
  limits?: { perIp: RateLimit; perUser: RateLimit; failures: RateLimit };
}

/**
 * The rules of who may read a channel. A user's channel is that user's alone; a tenant's channel is for its
 * members; a device's channel is for whoever may see the device (its tenant's members and its share
 * holders, packages/db access.ts' rule: `deviceVisible`, looked up by the caller). An inactive user reads
 * nothing, including their own channel. Applied here at authorization and again by every edge to its open
 * subscriptions whenever the user's access changes (revocation.ts).
 */
export function mayRead(
  userId: number,
  access: { active: boolean; tenantId: number | null } | null,
  channel: ParsedChannel,
  deviceVisible = false,
): boolean {
  if (!access?.active) return false;
  switch (channel.kind) {
    case 'user':
      return channel.userId === userId;
    case 'tenant':
      return access.tenantId === channel.tenantId;
    case 'device':
      return deviceVisible;
  }
}

/**
 * `POST /broadcasting/auth`: for a user allowed to read the channel, answers in the shape pusher-js expects,
 * `{"auth":"key:hexsig","channel_data":"{\"user_id\":..,\"exp\":..,\"iat\":..}"}`, signing
 * `socket_id:channel_name:channel_data` as Pusher does for presence channels. pusher-js returns channel_data
 * in `pusher:subscribe`, which tells the socket's edge whose subscription it is and when the JWT expires.
 * Accepts the form body pusher-js sends and JSON.
 */
export function channelAuthRouter(deps: ChannelAuthDeps): Router {
  const { config, pool, log } = deps;
  const router = express.Router();
  const outcome = (o: AuthOutcome): void => deps.onOutcome?.(o);

  router.use(CHANNEL_AUTH_PATH, cors(config.corsOrigins));
  router.post(
    CHANNEL_AUTH_PATH,
    // Before the body is parsed: a flood from one IP costs one Redis call per request (none once over).
    async (req, _res, next) => {
      const ip = req.ip ?? '';
      await deps.limits?.perIp.consume(ip);
      deps.limits?.failures.check(ip);
      next();
    },
    (req, _res, next) => {
      // Anything but these two would reach the handler with no body and read as a validation failure.
      if (!req.is(['application/x-www-form-urlencoded', 'application/json'])) {
        outcome('invalid');
        throw new ApiError('unsupported_media_type', 'send application/x-www-form-urlencoded or JSON');
      }
      next();
    },
    // The two fields fit in a few hundred bytes.
    express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 }),
    express.json({ limit: '4kb' }),
    async (req, res) => {
      const token = bearerToken(req.headers.authorization);
      const claims = token === null ? null : await verifyUserJwt(config.jwtSecret, token);
      if (!claims) {
        outcome('unauthenticated');
        const limited = await deps.limits?.failures.penalize(req.ip ?? '');
        if (limited) throw limited;
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new ApiError('unauthenticated', 'a valid bearer token is required');
      }
      // Counted on the signed user id before any lookup, so a user over the limit costs no query.
      await deps.limits?.perUser.consume(String(claims.userId));
      const body = AuthBody.safeParse(req.body ?? {});
      if (!body.success) {
        outcome('invalid');
        const issue = body.error.issues[0];
        throw new ApiError('validation_failed', `${issue?.path.join('.') ?? 'body'} ${issue?.message ?? ''}`);
      }
      const { socket_id: socketId, channel_name: channelName } = body.data;
      // Only the channels alarmcast serves can be signed: presence, public and unknown private channels are
      // refused here as they are at the socket.
      const channel = parseChannel(channelName);
      let access: Awaited<ReturnType<typeof findUserAccess>> = null;
      let deviceVisible = false;
      if (channel) {
        try {
          [access, deviceVisible] = await Promise.all([
            findUserAccess(pool, claims.userId),
            channel.kind === 'device'
              ? findVisibleDevices(pool, [{ userId: claims.userId, deviceId: channel.deviceId }]).then(
                  (v) => v.size > 0,
                )
              : false,
          ]);
        } catch (err) {
          log.error({ err }, 'could not load user access');
          throw new ApiError('service_unavailable', 'user directory unavailable, retry');
        }
      }
      if (!channel || !mayRead(claims.userId, access, channel, deviceVisible)) {
        outcome('forbidden');
        log.info({ userId: claims.userId, channel: channelName }, 'channel authorization refused');
        throw new ApiError('forbidden', `not allowed to subscribe to ${channelName}`);
      }
      outcome('granted');
      const channelData = encodeOwnerData(claims.userId, claims.exp, Date.now());
      res.json({
        auth: signChannelAuth(config.app.key, config.app.secret, socketId, channelName, channelData),
        channel_data: channelData,
      });
    },
  );
  return router;
}

function bearerToken(header: string | undefined): string | null {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1] ?? null;
}

/**
 * Browser access to the auth endpoint. Without cookies there are no credentials to allow, so no
 * `Access-Control-Allow-Credentials`; the bearer token travels in a header the preflight lets through.
 */
function cors(origins: '*' | string[]): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origins !== '*') res.vary('Origin');
    const allowed = origin !== undefined && (origins === '*' || origins.includes(origin));
    if (allowed) res.setHeader('Access-Control-Allow-Origin', origins === '*' ? '*' : origin);
    if (req.method !== 'OPTIONS') {
      next();
      return;
    }
    if (allowed) {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      // X-CSRF-TOKEN and X-Socket-ID: what laravel-echo adds to its auth requests
      res.setHeader(
        'Access-Control-Allow-Headers',
        'Authorization, Content-Type, X-CSRF-TOKEN, X-Socket-ID, X-Requested-With',
      );
      res.setHeader('Access-Control-Max-Age', '600');
    }
    res.status(204).end();
  };
}
