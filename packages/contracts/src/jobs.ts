import { z } from 'zod';
import type { JobsOptions } from './bullmq-options.js';

/** The BullMQ queue that carries broadcast jobs. */
export const BROADCAST_QUEUE = 'broadcast';

const decimalId = z.string().regex(/^[1-9]\d{0,18}$/, 'must be a decimal bigint');

/**
 * Every job alarmcast enqueues: its payload schema and its retry policy. Producers and workers derive their
 * types from here, and workers safeParse payloads against the same schema.
 */
export const JOB_CATALOGUE = {
  /** Fan an outbox event (an alarm change) out to every user who may see it. */
  BroadcastAlarmToTenant: {
    schema: z.object({ eventId: decimalId }).strict(),
    options: {
      attempts: 12,
      // 100 ms doubling: retries span ~7 minutes, long enough to ride out a Postgres or Redis restart.
      backoff: { type: 'exponential', delay: 100 },
      // Completed jobs are kept for an hour so that re-adding the same jobId (the relay re-enqueueing an
      // event whose enqueue was not recorded) is a no-op instead of a second broadcast.
      removeOnComplete: { age: 3600, count: 200_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  },
} as const satisfies Record<string, { schema: z.ZodType; options: JobsOptions }>;

export type JobName = keyof typeof JOB_CATALOGUE;
export type JobData<N extends JobName> = z.infer<(typeof JOB_CATALOGUE)[N]['schema']>;

/** BullMQ deduplicates by jobId: one job per outbox event, whoever enqueues it. */
export const broadcastJobId = (eventId: string): string => `evt-${eventId}`;
