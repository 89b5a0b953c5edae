import { commonEnv, parseEnv, portVar } from '@alarmcast/service';
import { z } from 'zod';

/** Every environment variable recipient-resolver reads, with its default. Parsed once at boot. */
export const ResolverEnv = z.object({
  ...commonEnv,
  /** jobs one worker process runs at once (they mostly wait on Postgres and Redis) */
  RESOLVER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(32),
  /** each user's event log (the resume window) keeps at least this many newest events... */
  USER_LOG_MIN_EVENTS: z.coerce.number().int().min(10).default(1000),
  /** ...or at least the events of this many last seconds, whichever holds more... */
  USER_LOG_MIN_AGE_S: z.coerce.number().int().min(0).default(600),
  /** ...but never more than this many (one flooded user must not take Redis' memory) */
  USER_LOG_MAX_EVENTS: z.coerce.number().int().min(10).default(10_000),
  /** a log nobody writes to expires after this long */
  USER_LOG_IDLE_TTL_S: z.coerce.number().int().min(60).default(86_400),
  /**
   * an event's data is stored once and kept this long; a user's log entry only references it, and a replay
   * reaching an entry whose data has expired gets resume_failed (event_expired). Raised to
   * USER_LOG_MIN_AGE_S if below it, so the time floor of the logs always holds.
   */
  EVENT_DATA_TTL_S: z.coerce.number().int().min(60).default(86_400),
  /**
   * how long "event E was delivered to user U" is remembered, so that a retried or re-enqueued job
   * delivers to nobody twice; must exceed the longest retry schedule (~7 min) and stall recovery (30 s)
   */
  DELIVERED_TTL_S: z.coerce.number().int().min(60).default(900),
  /**
   * an event for at least this many users is published as one batch message per 500 users on the fan-out
   * channel every edge reads, instead of one message per user on the user's channel (which reaches only
   * the edges holding that user): fewer messages for big tenants, less traffic per edge for small ones
   */
  RESOLVER_BATCH_MIN_RECIPIENTS: z.coerce.number().int().min(1).default(10),
  /** port of /healthz, /readyz and /metrics (0: any free port) */
  RESOLVER_METRICS_PORT: portVar(9102),
  DB_POOL_MAX: z.coerce.number().int().positive().default(10),
});
export type ResolverConfig = z.infer<typeof ResolverEnv>;

export function parseResolverConfig(env: NodeJS.ProcessEnv): ResolverConfig {
  return parseEnv('recipient-resolver', ResolverEnv, env);
}
