import { DEV_JWT_SECRET, productionSecretProblem } from '@alarmcast/auth';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().positive();

/** Every environment variable alarm-ingest reads, with its default. Parsed once at boot. */
export const IngestEnv = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  /** @defaultValue 3000 */
  INGEST_PORT: port.default(3000),
  /** `/healthz`, `/readyz` and `/metrics`, kept off the public network. @defaultValue 9100 */
  INGEST_INTERNAL_PORT: port.default(9100),
  /** where browsers reach ws-edge, for the operator console served at /console/ */
  CONSOLE_EDGE_URL: z.string().url().default('http://127.0.0.1:6001'),
  /** the Pusher app key the console connects with (ws-edge's PUSHER_APP_KEY) */
  PUSHER_APP_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,100}$/)
    .default('alarmcast-key'),
  DATABASE_URL: z.string().url().default('postgresql://postgres@127.0.0.1:5432/alarmcast'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** prefix of every Redis key, so deployments can share a Redis */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/)
    .default('ac'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  const parsed = IngestConfigSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    const refusing = env.NODE_ENV === 'production' ? ' (refusing to start in production)' : '';
    throw new Error(`alarm-ingest: invalid environment${refusing}: ${problems}`);
  }
  return parsed.data;
}
