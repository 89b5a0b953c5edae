import { createMetricsRegistry, Counter, Gauge, Histogram, type Registry } from '@alarmcast/observability';

/** Where the queue gauges come from: the broadcast queue itself, read at scrape time. */
export interface QueueGaugeSources {
  /** jobs per BullMQ state (waiting, active, delayed, prioritized, failed, ...) */
  counts: () => Promise<Record<string, number>>;
  /** seconds the oldest waiting job has waited, 0 when none is waiting */
  oldestWaitingAgeS: () => Promise<number>;
}

/** The BullMQ states reported, so that the `state` label is bounded whatever BullMQ adds. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/** The resolver's metrics, one registry per process. */
export function createResolverMetrics(queue?: QueueGaugeSources): {
  registry: Registry;
  jobsDone: Counter<'outcome'>;
  deliveries: Counter;
  earlierDelivered: Counter;
  eventsSkipped: Counter;
  recipients: Histogram;
  jobSeconds: Histogram;
  outcomes: Counter<'outcome'>;
  queueWaitSeconds: Histogram;
} {
  const registry = createMetricsRegistry('recipient-resolver');
  if (queue) {
    // Every resolver reports the same queue: aggregate with max, not sum. A scrape while Redis is away
    // keeps the last values rather than failing the whole scrape.
    new Gauge({
      name: 'resolver_queue_jobs',
      help: 'Broadcast queue jobs by BullMQ state (the same queue seen from every resolver)',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        const counts = await queue.counts().catch(() => null);
        if (!counts) return;
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      },
    });
    new Gauge({
      name: 'resolver_queue_oldest_waiting_age_seconds',
      help: 'How long the oldest waiting broadcast job has waited (0 when none waits)',
      registers: [registry],
      async collect() {
        const age = await queue.oldestWaitingAgeS().catch(() => null);
        if (age !== null) this.set(age);
      },
    });
  }
  const jobsDone = new Counter({
    name: 'resolver_jobs_total',
    help: 'Broadcast job attempts by outcome: completed, retry (failed, will run again), failed (no attempts left)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // Known outcomes start at 0, so that failure rates and alerts have series before the first failure.
  for (const outcome of ['completed', 'retry', 'failed']) jobsDone.inc({ outcome }, 0);
  return {
    registry,
    jobsDone,
    deliveries: new Counter({
      name: 'resolver_deliveries_total',
      help: 'Events appended and published to a user',
      registers: [registry],
    }),
    earlierDelivered: new Counter({
      name: 'resolver_earlier_events_delivered_total',
      help: "Events delivered by a later event's job, ahead of it, because their own job had not yet",
      registers: [registry],
    }),
    eventsSkipped: new Counter({
      name: 'resolver_events_skipped_total',
      help: 'Events of a BroadcastEvents job that cannot be broadcast (gone, unknown kind), skipped so the others go',
      registers: [registry],
    }),
    recipients: new Histogram({
      name: 'resolver_recipients',
      help: 'Recipients per broadcast',
      buckets: [1, 5, 10, 20, 50, 100, 500, 1000, 5000, 10000, 50000],
      registers: [registry],
    }),
    outcomes: new Counter({
      name: 'resolver_preference_outcomes_total',
      help: 'Recipients of broadcast events by what their preferences decided (deliver, deliver_silent, suppress)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    jobSeconds: new Histogram({
      name: 'resolver_job_seconds',
      help: 'Time to run one broadcast job (one event, or up to 100 for BroadcastEvents)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    queueWaitSeconds: new Histogram({
      name: 'resolver_queue_wait_seconds',
      help: 'Time a broadcast job waited in the queue, from being added to a worker starting it',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
export type ResolverMetrics = ReturnType<typeof createResolverMetrics>;
