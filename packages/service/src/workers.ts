import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from '@alarmcast/observability';
import { startInternalServer, type HttpTimeouts, type Readiness } from './internal-server.js';
import { drainOnSignals } from './process.js';

/** Which of the service's worker processes this is. */
export interface WorkerSlot {
  /** 1..count; a replacement takes the slot of the worker it replaces (and its `worker` metric label) */
  index: number;
  count: number;
}

/** What a started service gives the skeleton: what the internal server reports, and how to drain it. */
export interface RunningService {
  /** the service's own registry (in a worker, the primary serves it with the label `worker="<index>"`) */
  metrics: Registry;
  readiness: () => Promise<Readiness>;
  /** the service's drain: stop accepting, finish what is in flight, close connections */
  close: () => Promise<void>;
}

interface Log {
  info: (obj: object, msg: string) => void;
  warn: (obj: object, msg: string) => void;
  error: (obj: object, msg: string) => void;
}

export interface RunWorkersOptions {
  /** names the primary's metrics (`service` label) and its log lines */
  service: string;
  /** worker processes; 1 runs the service in this process, with no primary (as before workers existed) */
  count: number;
  log: Log;
  /**
   * The internal server (`/healthz`, `/readyz`, `/metrics`): with more than one worker the primary runs it
   * on this port and the workers run none; with one, the service starts its own as before.
   */
  internal: { host: string; port: number } & HttpTimeouts;
  /**
   * Starts the service: in each worker with its slot, or, with `count` 1, in this process with `undefined`
   * (the service then starts its own internal server).
   */
  start: (worker: WorkerSlot | undefined) => Promise<RunningService>;
  /**
   * How long the primary waits, once signalled, for every worker to finish its own drain before killing
   * the rest (SIGKILL) and exiting 1. @defaultValue 60000 ms
   */
  drainTimeoutMs?: number;
  /**
   * First delay before a worker that died unexpectedly is replaced; doubled (up to 30 s) while replacements
   * keep dying within a minute, so a crash loop does not burn the machine. @defaultValue 1000 ms
   */
  restartDelayMs?: number;
}

/** Messages between the primary and its workers (cluster IPC), tagged so nothing else is mistaken for one. */
type ToWorker =
  | { alarmcast: 'slot'; index: number; count: number }
  | { alarmcast: 'ask'; id: number; what: 'readiness' | 'metrics' };
type FromWorker =
  | { alarmcast: 'hello' }
  | { alarmcast: 'started' }
  | { alarmcast: 'answer'; id: number; value?: unknown; error?: string };

const isMessage = <T extends { alarmcast: string }>(m: unknown): m is T =>
  typeof m === 'object' && m !== null && typeof (m as { alarmcast?: unknown }).alarmcast === 'string';

/** A worker that does not answer within this counts as not ready, and is left out of /metrics. */
const ASK_TIMEOUT_MS = 3000;

/**
 * Runs a service on `count` cores with `node:cluster`: the primary listens on the service's ports and hands
 * each new connection to the next worker (round-robin, cluster's default outside Windows), so sockets and
 * requests spread over the workers while one address serves them all. Each worker is the whole service
 * (its own Redis and Postgres connections, its own sockets); they share nothing but the listening sockets.
 *
 * The primary runs the internal server: `/readyz` asks every worker and is ready only when every slot has
 * a started worker that answers ready (and the primary is not draining); `/metrics` merges every worker's
 * registry with prom-client's AggregatorRegistry, each series labelled `worker="<index>"` (so nothing is
 * summed away: `sum without (worker)` gives the node), plus the primary's `service_workers_running` and
 * `service_worker_replacements_total`.
 *
 * SIGTERM/SIGINT to the primary sends SIGTERM to every worker, each of which runs the service's drain
 * (drainOnSignals); the primary exits once all have exited: 0 if every one drained cleanly, 1 otherwise. A
 * worker that dies on its own after start-up is replaced in its slot; one that dies during the first
 * start-up stops the whole service (exit 1), as a single process failing at boot would.
 */
export async function runWorkers(options: RunWorkersOptions): Promise<void> {
  if (cluster.isWorker) return runWorker(options);
  if (options.count <= 1) {
    const starting = options.start(undefined);
    drainOnSignals(options.log, async () => (await starting).close());
    await starting;
    return;
  }
  return runPrimary(options);
}

async function runWorker(options: RunWorkersOptions): Promise<void> {
  const slot = await new Promise<WorkerSlot>((resolve) => {
    const onSlot = (m: unknown): void => {
      if (!isMessage<ToWorker>(m) || m.alarmcast !== 'slot') return;
      process.off('message', onSlot);
      resolve({ index: m.index, count: m.count });
    };
    process.on('message', onSlot);
    // Asked for, not sent at fork: a message that arrives before this listener exists is lost.
    process.send?.({ alarmcast: 'hello' } satisfies FromWorker);
  });
  const starting = options.start(slot);
  // Installed before the service is up, so that a SIGTERM during start-up drains it once started.
  drainOnSignals(options.log, async () => (await starting).close());
  const service = await starting;
  const send = (m: FromWorker): void => {
    if (process.connected) process.send?.(m);
  };
  process.on('message', (m: unknown) => {
    if (!isMessage<ToWorker>(m) || m.alarmcast !== 'ask') return;
    const answer =
      m.what === 'readiness' ? service.readiness() : (service.metrics.getMetricsAsJSON() as Promise<unknown>);
    answer.then(
      (value) => send({ alarmcast: 'answer', id: m.id, value }),
      (err: unknown) => send({ alarmcast: 'answer', id: m.id, error: String(err) }),
    );
  });
  send({ alarmcast: 'started' });
}

interface MetricJson {
  aggregator?: string;
  values: { labels: Record<string, string | number> }[];
}

async function runPrimary(options: RunWorkersOptions): Promise<void> {
  const { count, log, service } = options;
  const drainTimeoutMs = options.drainTimeoutMs ?? 60_000;
  const baseDelayMs = options.restartDelayMs ?? 1000;

  interface Slot {
    index: number;
    worker?: Worker;
    started: boolean;
    startedAt: number;
    delayMs: number;
    timer?: NodeJS.Timeout;
  }
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    index: i + 1,
    started: false,
    startedAt: 0,
    // halved once: the first replacement waits baseDelayMs even if the worker died young
    delayMs: baseDelayMs / 2,
  }));
  let booted = false;
  let draining = false;
  let failed = false;
  let onBoot: { resolve: () => void; reject: (err: Error) => void } | undefined;
  let onAllExited: (() => void) | undefined;

  const registry = new Registry();
  registry.setDefaultLabels({ service });
  new Gauge({
    name: 'service_workers_running',
    help: 'Worker processes of this service that have started and not exited',
    registers: [registry],
    collect() {
      this.set(slots.filter((s) => s.started).length);
    },
  });
  const replacements = new Counter({
    name: 'service_worker_replacements_total',
    help: 'Workers started in place of one that died unexpectedly',
    registers: [registry],
  });

  // Requests to workers over IPC, answered by id.
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const ask = <T>(worker: Worker, what: 'readiness' | 'metrics'): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`worker did not answer ${what} within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      // A worker that just died can still look connected until cluster sees its exit: without the callback
      // the closed IPC channel is an 'error' event, which would crash the primary.
      worker.send({ alarmcast: 'ask', id, what } satisfies ToWorker, (err: Error | null) => {
        if (err) pending.get(id)?.reject(new Error(`worker is not connected (${err.message})`));
      });
    });

  const readiness = async (): Promise<Readiness> => {
    const workers = await Promise.all(
      slots.map(async (slot) => {
        const pid = slot.worker?.process.pid ?? null;
        if (!slot.worker || !slot.started) return { worker: slot.index, pid, ready: false, body: null };
        try {
          const r = await ask<Readiness>(slot.worker, 'readiness');
          return { worker: slot.index, pid, ready: r.ready, body: r.body };
        } catch (err) {
          return { worker: slot.index, pid, ready: false, body: { error: (err as Error).message } };
        }
      }),
    );
    const ready = !draining && workers.every((w) => w.ready);
    return { ready, body: { status: ready ? 'ready' : 'unavailable', draining, workers } };
  };

  const metrics = {
    contentType: registry.contentType,
    metrics: async (): Promise<string> => {
      const perWorker = await Promise.all(
        slots.map(async (slot): Promise<MetricJson[]> => {
          if (!slot.worker || !slot.started) return [];
          const list = await ask<MetricJson[]>(slot.worker, 'metrics').catch(() => []);
          for (const metric of list) for (const v of metric.values) v.labels.worker = String(slot.index);
          return list;
        }),
      );
      const all = [(await registry.getMetricsAsJSON()) as unknown as MetricJson[], ...perWorker];
      // Every worker's series carries its own `worker` label, so no two are merged: 'first' keeps each as it
      // is (prom-client would otherwise drop `process_start_time_seconds`, whose aggregator is 'omit').
      for (const list of all) for (const metric of list) metric.aggregator = 'first';
      return AggregatorRegistry.aggregate(all).metrics();
    },
  };

  const internal = await startInternalServer({
    host: options.internal.host,
    port: options.internal.port,
    headersTimeoutMs: options.internal.headersTimeoutMs,
    requestTimeoutMs: options.internal.requestTimeoutMs,
    metrics,
    readiness,
  });

  cluster.on('message', (_worker, m: unknown) => {
    if (!isMessage<FromWorker>(m) || m.alarmcast !== 'answer') return;
    const waiting = pending.get(m.id);
    if (!waiting) return;
    pending.delete(m.id);
    if (m.error !== undefined) waiting.reject(new Error(m.error));
    else waiting.resolve(m.value);
  });

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    slot.started = false;
    const worker = cluster.fork();
    slot.worker = worker;
    // IPC errors (a message to a worker that is exiting) are answered where they are sent; this keeps any
    // other from being an unhandled 'error' event that takes every worker down with the primary.
    worker.on('error', (err: Error) =>
      log.warn(
        { worker: slot.index, pid: worker.process.pid, err: err.message },
        `${service} worker IPC error`,
      ),
    );
    worker.on('message', (m: unknown) => {
      if (!isMessage<FromWorker>(m)) return;
      if (m.alarmcast === 'hello') {
        worker.send({ alarmcast: 'slot', index: slot.index, count } satisfies ToWorker);
        return;
      }
      if (m.alarmcast !== 'started') return;
      slot.started = true;
      slot.startedAt = Date.now();
      log.info({ worker: slot.index, pid: worker.process.pid }, `${service} worker started`);
      if (!booted && slots.every((s) => s.started)) {
        booted = true;
        onBoot?.resolve();
      }
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      const lived = slot.started ? Date.now() - slot.startedAt : 0;
      slot.started = false;
      slot.worker = undefined;
      const pid = worker.process.pid;
      if (draining) {
        if (code !== 0) failed = true;
        log.info({ worker: slot.index, pid, code, signal }, `${service} worker exited`);
        if (slots.every((s) => !s.worker)) onAllExited?.();
        return;
      }
      if (!booted) {
        onBoot?.reject(
          new Error(
            `worker ${slot.index} (pid ${pid}) exited during start-up (code ${code}, signal ${signal})`,
          ),
        );
        return;
      }
      // Its sockets and requests died with it; clients reconnect to the other workers (and resume).
      const delayMs = lived > 60_000 ? baseDelayMs : Math.min(slot.delayMs * 2, 30_000);
      slot.delayMs = delayMs;
      log.error(
        { worker: slot.index, pid, code, signal, restartInMs: delayMs },
        `${service} worker died unexpectedly; replacing it`,
      );
      slot.timer = setTimeout(() => {
        replacements.inc();
        fork(slot);
      }, delayMs);
    });
  };

  /** SIGTERM to every worker (each drains itself), then wait for all to exit. */
  const stopWorkers = async (): Promise<void> => {
    draining = true;
    for (const slot of slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    const running = slots.filter((s) => s.worker);
    if (running.length > 0) {
      const allExited = new Promise<void>((resolve) => (onAllExited = resolve));
      for (const slot of running) slot.worker!.process.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        allExited.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        failed = true;
        for (const slot of slots) {
          if (!slot.worker) continue;
          log.error(
            { worker: slot.index, pid: slot.worker.process.pid },
            `${service} worker did not drain in time`,
          );
          slot.worker.process.kill('SIGKILL');
        }
        await allExited;
      }
    }
    await internal.close();
  };

  drainOnSignals(log, async () => {
    await stopWorkers();
    if (failed) throw new Error('a worker did not drain cleanly');
  });

  const boot = new Promise<void>((resolve, reject) => (onBoot = { resolve, reject }));
  for (const slot of slots) fork(slot);
  try {
    await boot;
  } catch (err) {
    log.error({ err: (err as Error).message }, `${service} could not start its workers`);
    await stopWorkers();
    process.exit(1);
  }
  log.info({ workers: count, pid: process.pid, internal: internal.url }, `${service} primary running`);
}
