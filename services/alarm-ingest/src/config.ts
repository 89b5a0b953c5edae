import { DEV_JWT_SECRET, productionSecretProblem } from '@alarmcast/auth';
import { commonEnv, parseEnv, portVar } from '@alarmcast/service';
import { parseTrustProxy } from '@alarmcast/http';
import { z } from 'zod';

const positiveMs = z.coerce.number().int().positive();
const limit = z.coerce.number().int().min(0).max(1_000_000);

/** Every environment variable alarm-ingest reads, with its default. Parsed once at boot. */
export const IngestEnv = z.object({
  ...commonEnv,
  /** @defaultValue 3000 */
  INGEST_PORT: portVar(3000),
  /** `/healthz`, `/readyz` and `/metrics`, kept off the public network. @defaultValue 9100 */
  INGEST_INTERNAL_PORT: portVar(9100),
  /** where browsers reach ws-edge, for the operator console served at /console/ */
  CONSOLE_EDGE_URL: z.string().url().default('http://127.0.0.1:6001'),
  /** the Pusher app key the console connects with (ws-edge's PUSHER_APP_KEY) */
  PUSHER_APP_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,100}$/)
    .default('alarmcast-key'),
  /** how often the outbox relay looks for events whose enqueue was not recorded */
  OUTBOX_RELAY_INTERVAL_MS: positiveMs.default(1000),
  /** how old such an event must be before the relay takes it over from the request that wrote it */
  OUTBOX_RELAY_GRACE_MS: positiveMs.default(2000),
  /**
   * an event enqueued this long ago but not yet broadcast is enqueued again (its job was lost with Redis'
   * data); keep it well below the resolver's DELIVERED_TTL_S (900 s) so a re-run repeats nobody
   */
  OUTBOX_REDELIVER_AFTER_MS: positiveMs.default(60_000),
  /**
   * seconds a collector token, once found, is trusted without asking Postgres again: one round trip less
   * per report, but a revoked token keeps working for up to this long (0: look it up on every request)
   */
  COLLECTOR_TOKEN_CACHE_S: z.coerce.number().int().min(0).max(300).default(5),
  /**
   * seconds an unknown collector token is remembered as unknown, so that retrying it costs no Postgres
   * lookup (0: look it up every time). Tokens are random, so only a token that is tried before it is
   * created would be refused for this long.
   */
  COLLECTOR_TOKEN_NEGATIVE_CACHE_S: z.coerce.number().int().min(0).max(300).default(5),
  /** length of the request-rate windows below, in seconds (fixed windows, shared by all processes in Redis) */
  RATE_LIMIT_WINDOW_S: z.coerce.number().int().min(1).max(3600).default(1),
  /** POST /v1/alarms per collector token per window (0: no limit) */
  RATE_LIMIT_ALARMS_PER_TOKEN: limit.default(1000),
  /** POST /v1/alarms per client IP per window (0: no limit) */
  RATE_LIMIT_ALARMS_PER_IP: limit.default(2000),
  /** GET /v1/alarms and POST /v1/alarms/{id}/ack per user per window (0: no limit) */
  RATE_LIMIT_USER_API_PER_USER: limit.default(50),
  /** the same per client IP per window (0: no limit) */
  RATE_LIMIT_USER_API_PER_IP: limit.default(500),
  /**
   * failed authentications (401, and 403 for an unknown or inactive user) per client IP per minute; past it,
   * every request from that IP to an authenticated route gets 429 until the minute ends (0: no limit)
   */
  RATE_LIMIT_AUTH_FAILURES_PER_IP: limit.default(100),
  /**
   * which proxies may tell the client IP (X-Forwarded-For): unset/false/0 none (the TCP peer is the client),
   * a hop count N, or a comma-separated list of proxy addresses / CIDRs / loopback, linklocal, uniquelocal
   */
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      try {
        return parseTrustProxy(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  /**
   * presence (POST /v1/devices/informs): a device is offline once no inform arrived within this many times
   * its periodicInformInterval plus DEVICE_OFFLINE_GRACE_S, from the last inform's arrival; a tenant's
   * `tenants.device_offline_intervals` overrides it
   */
  DEVICE_OFFLINE_INTERVALS: z.coerce.number().int().min(1).max(100).default(2),
  /** the grace in seconds (`tenants.device_offline_grace_s` overrides it) */
  DEVICE_OFFLINE_GRACE_S: z.coerce.number().int().min(0).max(86_400).default(30),
  /**
   * whether a device going offline raises the alarm `alarmcast.device-offline` (cleared by its next inform);
   * `tenants.device_offline_alarm` overrides it per tenant
   */
  DEVICE_OFFLINE_ALARM: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** how often this process's presence detector looks for devices past their deadline */
  PRESENCE_SWEEP_INTERVAL_MS: positiveMs.max(60_000).default(1000),
  /** devices one detector statement takes offline at most (it goes again at once when it took that many) */
  PRESENCE_SWEEP_BATCH: z.coerce.number().int().min(1).max(10_000).default(1000),
  /** at most one DeviceStatusChanged per device per this many ms (conflated: latest state, union of changes) */
  DEVICE_STATUS_MIN_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(1000),
  /** a tenant's TenantDeviceSummary on private-tenant.{id}: at most one per this many ms */
  TENANT_SUMMARY_INTERVAL_MS: positiveMs.min(100).max(3_600_000).default(5000),
  /** whole request headers must arrive within this (slow-client limit; Node's default is 60 s) */
  HTTP_HEADERS_TIMEOUT_MS: positiveMs.default(10_000),
  /** the whole request must arrive within this (Node's default is 300 s) */
  HTTP_REQUEST_TIMEOUT_MS: positiveMs.default(30_000),
  /** seconds a client is told to wait (Retry-After) while Postgres is unreachable */
  RETRY_AFTER_S: z.coerce.number().int().positive().default(5),
  DB_POOL_MAX: z.coerce.number().int().positive().default(10),
  /**
   * admission control (collector writes answer 503 overloaded while any signal is over its limit; 0 turns a
   * signal off): queries waiting for a Postgres connection...
   */
  ADMISSION_MAX_DB_WAITING: z.coerce.number().int().min(0).default(100),
  /**
   * ...the event loop's delay, p99 over the last half second, in ms (off by default: where the ingest
   * shares its cores with other busy processes, as on one small machine, the delay says more about them)...
   */
  ADMISSION_MAX_LOOP_DELAY_MS: z.coerce.number().int().min(0).default(0),
  /** ...broadcast jobs waiting in the queue (the resolvers are behind: more would only be later) */
  ADMISSION_MAX_QUEUE_WAITING: z.coerce.number().int().min(0).default(5000),
  /**
   * HS256 key of the user JWTs accepted by the user endpoints (GET /v1/alarms, POST /v1/alarms/{id}/ack); the
   * same key as ws-edge's. Empty counts as unset. Required (32+ characters, not the default) in production.
   * @defaultValue 'alarmcast-dev-jwt-secret' outside production
   */
  JWT_SECRET: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string().optional(),
  ),
});

/** The environment as parsed, with JWT_SECRET resolved and whether the development default was used. */
const IngestConfigSchema = IngestEnv.superRefine((e, ctx) => {
  if (e.NODE_ENV !== 'production') return;
  const problem = productionSecretProblem(e.JWT_SECRET, DEV_JWT_SECRET, true);
  if (problem) ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: problem });
}).transform((e) => ({
  ...e,
  JWT_SECRET: e.JWT_SECRET ?? DEV_JWT_SECRET,
  jwtSecretDefaulted: e.JWT_SECRET === undefined,
}));
export type IngestConfig = z.infer<typeof IngestConfigSchema>;

export function parseIngestConfig(env: NodeJS.ProcessEnv): IngestConfig {
  return parseEnv('alarm-ingest', IngestConfigSchema, env);
}
