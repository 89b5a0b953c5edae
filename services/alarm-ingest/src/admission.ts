import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import type { PgPool } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { Counter, Gauge, type Registry } from '@alarmcast/observability';

export interface AdmissionOptions {
  pool: PgPool;
  /** the broadcast queue's waiting jobs; sampled, never on the request path */
  queueWaiting: () => Promise<number>;
  /** refuse while this many queries wait for a Postgres connection (0: never) */
  maxDbWaiting: number;
  /** refuse while the event loop's delay (p99 over the last sample) is above this (0: never) */
  maxLoopDelayMs: number;
  /** refuse while the broadcast queue holds this many waiting jobs (0: never) */
  maxQueueWaiting: number;
  retryAfterS: number;
  metrics: Registry;
  /** @defaultValue 500 ms between samples of the loop delay and the queue */
  sampleMs?: number;
}

export type AdmissionReason = 'db_pool' | 'event_loop' | 'queue_backlog';

/**
 * Admission control for the collector API: when offered more than it can do, the ingest answers 503
 * `overloaded` with Retry-After at once instead of queueing work until every answer is late. Three signals,
 * each a point where latency starts to run away: queries waiting for a Postgres connection (the database is
 * the bottleneck), the event loop's delay (the process's own CPU is), and the broadcast queue's backlog
 * (the resolvers are: accepting more would only make every accepted alarm's delivery later). Nothing is
 * refused after it was committed, so nothing acknowledged is lost; a collector retries with its
 * Idempotency-Key. The loop delay and the queue are sampled on a timer, so a request pays only for reading
 * two numbers.
 */
export function admissionControl(options: AdmissionOptions): {
  middleware: RequestHandler;
  stop: () => void;
} {
  const rejected = new Counter({
    name: 'ingest_admission_rejected_total',
    help: 'Collector requests refused with 503 overloaded, by the signal that refused them',
    labelNames: ['reason'] as const,
    registers: [options.metrics],
  });
  const loopDelay = new Gauge({
    name: 'ingest_event_loop_delay_p99_seconds',
    help: "p99 of the event loop's delay over the last admission sample",
    registers: [options.metrics],
  });
  const queueWaiting = new Gauge({
    name: 'ingest_broadcast_queue_waiting',
    help: 'Broadcast jobs waiting, as last sampled by admission control',
    registers: [options.metrics],
  });

  for (const reason of ['db_pool', 'event_loop', 'queue_backlog'] satisfies AdmissionReason[]) {
    rejected.inc({ reason }, 0);
  }
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let loopDelayMs = 0;
  let waiting = 0;
  let sampling = false;
  const timer = setInterval(() => {
    loopDelayMs = histogram.percentile(99) / 1e6;
    histogram.reset();
    loopDelay.set(loopDelayMs / 1000);
    if (options.maxQueueWaiting > 0 && !sampling) {
      sampling = true;
      options
        .queueWaiting()
        .then(
          (n) => {
            waiting = n;
            queueWaiting.set(n);
          },
          // Redis away: the outbox holds what is accepted, so the queue is no reason to refuse.
          () => (waiting = 0),
        )
        .finally(() => (sampling = false));
    }
  }, options.sampleMs ?? 500);
  timer.unref();

  const reasonNow = (): AdmissionReason | null => {
    if (options.maxDbWaiting > 0 && options.pool.waitingCount >= options.maxDbWaiting) return 'db_pool';
    if (options.maxLoopDelayMs > 0 && loopDelayMs > options.maxLoopDelayMs) return 'event_loop';
    if (options.maxQueueWaiting > 0 && waiting >= options.maxQueueWaiting) return 'queue_backlog';
    return null;
  };

  const middleware: RequestHandler = (_req, _res, next) => {
    const reason = reasonNow();
    if (reason === null) {
      next();
      return;
    }
    rejected.inc({ reason });
    throw new ApiError(
      'overloaded',
      `alarm-ingest is overloaded (${reason}); retry later`,
      undefined,
      options.retryAfterS,
    );
  };
  return {
    middleware,
    stop: () => {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
