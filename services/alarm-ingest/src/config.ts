import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().positive();

/** Every environment variable alarm-ingest reads, with its default. Parsed once at boot. */
export const IngestEnv = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().default('127.0.0.1'),
  /** @defaultValue 3000 */
  INGEST_PORT: port.default(3000),
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
  /** seconds a client is told to wait (Retry-After) while Postgres is unreachable */
  RETRY_AFTER_S: z.coerce.number().int().positive().default(5),
  DB_POOL_MAX: z.coerce.number().int().positive().default(10),
});
export type IngestConfig = z.infer<typeof IngestEnv>;

export function parseIngestConfig(env: NodeJS.ProcessEnv): IngestConfig {
  const parsed = IngestEnv.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`alarm-ingest: invalid environment: ${problems}`);
  }
  return parsed.data;
}
