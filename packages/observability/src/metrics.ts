import { AggregatorRegistry, Registry, collectDefaultMetrics, Counter, Gauge, Histogram } from 'prom-client';
import type CircuitBreaker from 'opossum';

export { AggregatorRegistry, Registry, Counter, Gauge, Histogram };

/** A registry per process (not prom-client's global one, so in-process tests can run several services). */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Exposes an opossum breaker's state and outcomes to Prometheus. (opossum-prometheus on the registry is
 * built for prom-client 12; this is the small part of it we need, for prom-client 15.)
 */
export function instrumentBreaker(registry: Registry, breaker: CircuitBreaker, name: string): void {
  const outcomes = new Counter({
    name: 'circuit_breaker_events_total',
    help: 'Calls through a circuit breaker by outcome',
    labelNames: ['breaker', 'outcome'] as const,
    registers: [registry],
  });
  const state = new Gauge({
    name: 'circuit_breaker_open',
    help: '1 while the breaker is open (calls are failing fast), 0 otherwise',
    labelNames: ['breaker'] as const,
    registers: [registry],
  });
  // Known outcomes start at 0, so that rates and alerts over them have series before the first of each.
  for (const outcome of ['success', 'failure', 'timeout', 'reject'])
    outcomes.inc({ breaker: name, outcome }, 0);
  breaker.on('success', () => outcomes.inc({ breaker: name, outcome: 'success' }));
  breaker.on('failure', () => outcomes.inc({ breaker: name, outcome: 'failure' }));
  breaker.on('timeout', () => outcomes.inc({ breaker: name, outcome: 'timeout' }));
  breaker.on('reject', () => outcomes.inc({ breaker: name, outcome: 'reject' }));
  state.set({ breaker: name }, 0);
  breaker.on('open', () => state.set({ breaker: name }, 1));
  breaker.on('close', () => state.set({ breaker: name }, 0));
}
