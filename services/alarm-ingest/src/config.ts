import { DEV_JWT_SECRET, productionSecretProblem } from '@alarmcast/auth';
import { commonEnv, parseEnv, portVar } from '@alarmcast/service';
import { z } from 'zod';

const positiveMs = z.coerce.number().int().positive();

/** Every environment variable alarm-ingest reads, with its default. Parsed once at boot. */
export const IngestEnv = z.object({
  ...commonEnv,
  /** @defaultValue 3000 */
  INGEST_PORT: portVar(3000),
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
