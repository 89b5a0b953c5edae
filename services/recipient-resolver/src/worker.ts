import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker, UnrecoverableError, type Job } from 'bullmq';
import { BROADCAST_QUEUE, JOB_CATALOGUE, OUTBOX_KINDS, type JobName } from '@alarmcast/contracts';
import { BroadcastMarker, createPgPool, loadBroadcastPlan, type BroadcastPlan } from '@alarmcast/db';
import {
  createLogger,
  createMetricsRegistry,
  Counter,
  Histogram,
  type Logger,
  type Registry,
} from '@alarmcast/observability';
import { RedisKeys, UserLogWriter, createRedis } from '@alarmcast/redis';
import { startInternalServer } from '@alarmcast/service';
import type { ResolverConfig } from './config.js';

export interface ResolverOptions {
  logger?: Logger;
  /** process id used in envelopes and logs @defaultValue `resolver-<host>-<random>` */
  nodeId?: string;
}

export interface ResolverProcess {
  nodeId: string;
  worker: Worker;
  metrics: Registry;
  /** port of the health/metrics server */
  port: number;
  /** Finishes running jobs (or lets BullMQ hand them back), then disconnects. */
  close: () => Promise<void>;
}

export interface BroadcastResult {
  recipients: number;
  delivered: number;
}

/** The wire name of an outbox event's kind; undefined for a kind this version does not know. */
function eventName(plan: BroadcastPlan): string | undefined {
  return OUTBOX_KINDS[plan.kind as keyof typeof OUTBOX_KINDS] as string | undefined;
}

export async function startResolver(
  config: ResolverConfig,
  options: ResolverOptions = {},
): Promise<ResolverProcess> {
  const nodeId = options.nodeId ?? `resolver-${hostname()}-${randomBytes(3).toString('hex')}`;
  const log = (
    options.logger ?? createLogger({ service: 'recipient-resolver', level: config.LOG_LEVEL })
  ).child({ nodeId });
  const keys = new RedisKeys(config.REDIS_PREFIX);
  // The resolver writes only broadcast marks: one lost in a crash makes the outbox relay re-enqueue its
  // event, and the delivery marks in Redis make the re-run serve nobody twice. So it need not wait for the
  // WAL flush of each.
  const pool = createPgPool(config.DATABASE_URL, { max: config.DB_POOL_MAX, asyncCommit: true });
  const marker = new BroadcastMarker(pool);
  // Delivery commands wait for Redis to come back rather than fail the job at the first hiccup; the job's
  // own retries cover longer outages.
  const redis = createRedis(config.REDIS_URL, { name: `${nodeId}:deliver` });
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  const deliverer = new UserLogWriter(redis, keys, {
    retention: {
      minEvents: config.USER_LOG_MIN_EVENTS,
      minAgeS: config.USER_LOG_MIN_AGE_S,
      maxEvents: config.USER_LOG_MAX_EVENTS,
      idleTtlS: config.USER_LOG_IDLE_TTL_S,
    },
    deliveredTtlS: config.DELIVERED_TTL_S,
    node: nodeId,
    batchMinRecipients: config.RESOLVER_BATCH_MIN_RECIPIENTS,
  });

  const metrics = createMetricsRegistry('recipient-resolver');
  const jobsDone = new Counter({
    name: 'resolver_jobs_total',
    help: 'Broadcast jobs by outcome',
    labelNames: ['outcome'] as const,
    registers: [metrics],
  });
  const deliveries = new Counter({
    name: 'resolver_deliveries_total',
    help: 'Events appended and published to a user',
    registers: [metrics],
  });
  const earlierDelivered = new Counter({
    name: 'resolver_earlier_events_delivered_total',
    help: "Events delivered by a later event's job, ahead of it, because their own job had not yet",
    registers: [metrics],
  });
  const fanout = new Histogram({
    name: 'resolver_recipients',
    help: 'Recipients per broadcast',
    buckets: [1, 5, 10, 20, 50, 100, 500, 1000, 5000, 10000, 50000],
    registers: [metrics],
  });
  const duration = new Histogram({
    name: 'resolver_job_seconds',
    help: 'Time to resolve and deliver one broadcast',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [metrics],
  });

  async function process(job: Job): Promise<BroadcastResult> {
    const entry = JOB_CATALOGUE[job.name as JobName] as (typeof JOB_CATALOGUE)[JobName] | undefined;
    if (!entry) throw new UnrecoverableError(`unknown job name ${job.name}`);
    const parsed = entry.schema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${parsed.error.message}`);
    const end = duration.startTimer();
    const { eventId } = parsed.data;
    const plan = await loadBroadcastPlan(pool, eventId);
    // Jobs are enqueued after the commit, so a missing event was pruned or never existed: retrying cannot help.
    if (!plan) throw new UnrecoverableError(`outbox event ${eventId} not found`);
    const event = eventName(plan);
    if (!event) throw new UnrecoverableError(`outbox event ${eventId} has unknown kind ${plan.kind}`);
    // Jobs run concurrently, so the job of a device's earlier event may still be running (or waiting) when
    // this one starts: delivering those first keeps each user's log in commit order per device, so a clear
    // never lands before the raise it clears. Each user gets an event once whoever delivers it, so the
    // earlier event's own job then finds nothing left to do.
    for (const earlierId of plan.pendingBefore) {
      const earlier = await loadBroadcastPlan(pool, earlierId);
      const earlierEvent = earlier && eventName(earlier);
      // An event its own job cannot deliver either must not hold up the ones after it.
      if (earlierEvent && (await deliver(earlier, earlierEvent)) > 0) earlierDelivered.inc();
    }
    const delivered = await deliver(plan, event);
    fanout.observe(plan.recipients.length);
    end();
    return { recipients: plan.recipients.length, delivered };
  }

  /** Delivers to everyone not served yet, then marks the event broadcast; returns how many it served. */
  async function deliver(plan: BroadcastPlan, event: string): Promise<number> {
    const delivered = await deliverer.deliver(plan.eventId, event, plan.payloadJson, plan.recipients);
    await marker.mark(plan.eventId);
    deliveries.inc(delivered);
    return delivered;
  }

  const worker = new Worker(BROADCAST_QUEUE, process, {
    connection: createRedis(config.REDIS_URL, { name: `${nodeId}:worker`, maxRetriesPerRequest: null }),
    prefix: keys.bullPrefix,
    concurrency: config.RESOLVER_CONCURRENCY,
    // A worker killed mid-job leaves its lock to expire; another worker takes the job over after this.
    stalledInterval: 5_000,
    lockDuration: 10_000,
    autorun: true,
  });
  worker.on('completed', () => jobsDone.inc({ outcome: 'completed' }));
  worker.on('failed', (job, err) => {
    jobsDone.inc({ outcome: 'failed' });
    log.warn({ err, jobId: job?.id, attemptsMade: job?.attemptsMade }, 'broadcast job failed');
  });
  worker.on('error', (err) => log.debug({ err }, 'worker error'));
  await worker.waitUntilReady();

  const server = await startInternalServer({
    host: config.HOST,
    port: config.RESOLVER_METRICS_PORT,
    metrics,
    readiness: async () => {
      const ready = worker.isRunning() && redis.status === 'ready';
      return { ready, body: { status: ready ? 'ready' : 'unavailable' } };
    },
  });
  const { port } = server;
  log.info({ port, concurrency: config.RESOLVER_CONCURRENCY }, 'recipient-resolver running');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // worker.close() waits for running jobs to finish; nothing new is taken meanwhile.
      await worker.close();
      await server.close();
      redis.disconnect();
      await pool.end();
    })());

  return { nodeId, worker, metrics, port, close };
}
