import { createMetricsRegistry, Counter, Histogram, type Registry } from '@alarmcast/observability';

/** The resolver's metrics, one registry per process. */
export function createResolverMetrics(): {
  registry: Registry;
  jobsDone: Counter<'outcome'>;
  deliveries: Counter;
  earlierDelivered: Counter;
  eventsSkipped: Counter;
  recipients: Histogram;
  jobSeconds: Histogram;
  outcomes: Counter<'outcome'>;
} {
  const registry = createMetricsRegistry('recipient-resolver');
  return {
    registry,
    jobsDone: new Counter({
      name: 'resolver_jobs_total',
      help: 'Broadcast jobs by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
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
  };
}
export type ResolverMetrics = ReturnType<typeof createResolverMetrics>;
