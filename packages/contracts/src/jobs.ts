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
  /**
   * Fan an outbox event out to its audience (EVENT_CATALOGUE): every alarm event, whatever its kind
   * (created, updated, cleared, acknowledged), and whoever may see it (tenant members and share holders of
   * any tenant). The name is the one the platform's Laravel job had, kept so that dashboards and queue
   * tooling keep their labels.
   */
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

/** A job as BullMQ's `add`/`addBulk` take it, typed by the catalogue. */
export interface CatalogueJob<N extends JobName> {
  name: N;
  data: JobData<N>;
  opts: JobsOptions & { jobId: string };
}

/** The broadcast job of an outbox event: what the ingest, its relay and the tests enqueue. */
export function broadcastJob(eventId: string): CatalogueJob<'BroadcastAlarmToTenant'> {
  const { options } = JOB_CATALOGUE.BroadcastAlarmToTenant;
  return {
    name: 'BroadcastAlarmToTenant',
    data: { eventId },
    opts: { ...options, jobId: broadcastJobId(eventId) },
  };
}

/**
 * A job's payload checked against its catalogue entry: the worker's trust boundary (a job can come from
 * an older or newer version, or be written by hand). `unknown` for a name the catalogue does not have.
 */
export function parseJob(
  name: string,
  data: unknown,
): { ok: true; name: JobName; data: JobData<JobName> } | { ok: false; reason: string } {
  if (!Object.hasOwn(JOB_CATALOGUE, name)) return { ok: false, reason: `unknown job name ${name}` };
  const parsed = JOB_CATALOGUE[name as JobName].schema.safeParse(data);
  return parsed.success
    ? { ok: true, name: name as JobName, data: parsed.data }
    : { ok: false, reason: `invalid ${name} payload: ${parsed.error.message}` };
}
