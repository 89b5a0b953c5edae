import { z } from 'zod';
import type { JobsOptions } from './bullmq-options.js';

/** The BullMQ queue that carries broadcast jobs. */
export const BROADCAST_QUEUE = 'broadcast';

const decimalId = z.string().regex(/^[1-9]\d{0,18}$/, 'must be a decimal bigint');

/**
 * The most outbox events one `BroadcastEvents` job carries. A queued job costs BullMQ a few Redis script
 * calls and round trips whatever it does (measured here: 10,000 no-op jobs took 1.7 s to run and 0.6 s to
 * add on a loaded 2-core machine), which a storm of 10,000 alarms cannot afford per event; 100 per job
 * keeps a retried job's repeat small.
 */
export const BROADCAST_EVENTS_MAX = 100;

const retried = {
  attempts: 12,
  // 100 ms doubling: retries span ~7 minutes, long enough to ride out a Postgres or Redis restart.
  backoff: { type: 'exponential', delay: 100 },
  // Completed jobs are kept for an hour so that re-adding the same jobId (the relay re-enqueueing an
  // event whose enqueue was not recorded) is a no-op instead of a second broadcast.
  removeOnComplete: { age: 3600, count: 200_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const satisfies JobsOptions;

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
    options: retried,
  },
  /**
   * The same for several outbox events of one commit or relay round (the batch endpoint's, a storm's):
   * each event is broadcast as by its own BroadcastAlarmToTenant job, concurrently, so the queue pays once
   * for up to BROADCAST_EVENTS_MAX events.
   */
  BroadcastEvents: {
    schema: z.object({ eventIds: z.array(decimalId).min(2).max(BROADCAST_EVENTS_MAX) }).strict(),
    options: retried,
  },
} as const satisfies Record<string, { schema: z.ZodType; options: JobsOptions }>;

export type JobName = keyof typeof JOB_CATALOGUE;
export type JobData<N extends JobName> = z.infer<(typeof JOB_CATALOGUE)[N]['schema']>;

/** BullMQ deduplicates by jobId: one job per outbox event, whoever enqueues it. */
export const broadcastJobId = (eventId: string): string => `evt-${eventId}`;

/**
 * A BroadcastEvents job's id: its first and last event and how many (ids ascend, so the same set always
 * gets the same id and enqueueing it twice is a no-op).
 */
export const broadcastEventsJobId = (eventIds: readonly string[]): string =>
  `evts-${eventIds[0]}-${eventIds.at(-1)}-${eventIds.length}`;

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
 * The jobs that broadcast these outbox events: one BroadcastAlarmToTenant for a single event, else
 * BroadcastEvents of up to BROADCAST_EVENTS_MAX each (in ascending id order). What the ingest and its relay
 * enqueue.
 */
export function broadcastJobs(eventIds: readonly string[]): CatalogueJob<JobName>[] {
  const sorted = [...eventIds].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
  const jobs: CatalogueJob<JobName>[] = [];
  for (let i = 0; i < sorted.length; i += BROADCAST_EVENTS_MAX) {
    const chunk = sorted.slice(i, i + BROADCAST_EVENTS_MAX);
    jobs.push(
      chunk.length === 1
        ? broadcastJob(chunk[0]!)
        : {
            name: 'BroadcastEvents',
            data: { eventIds: chunk },
            opts: { ...JOB_CATALOGUE.BroadcastEvents.options, jobId: broadcastEventsJobId(chunk) },
          },
    );
  }
  return jobs;
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
