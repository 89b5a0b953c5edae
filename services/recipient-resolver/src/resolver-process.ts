import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { BROADCAST_QUEUE } from '@alarmcast/contracts';
import { BroadcastMarker, BroadcastPlanLoader, createPgPool } from '@alarmcast/db';
import { createLogger, type Logger, type Registry } from '@alarmcast/observability';
import { RedisKeys, UserLogWriter, createRedisClient, shardsFor } from '@alarmcast/redis';
import { startInternalServer } from '@alarmcast/service';
import { broadcastJob } from './broadcast-job.js';
import type { ResolverConfig } from './config.js';
import { createResolverMetrics, QUEUE_STATES } from './metrics.js';
import { PreferenceCache } from './preference-cache.js';

/**
 * The resolver's process shell: connections, the BullMQ worker running `broadcastJob`, the health and
 * metrics server, and an orderly close. The job logic itself is in broadcast-job.ts.
 */

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

export async function startResolver(
  config: ResolverConfig,
  options: ResolverOptions = {},
): Promise<ResolverProcess> {
  const nodeId = options.nodeId ?? `resolver-${hostname()}-${randomBytes(3).toString('hex')}`;
  const log = (
    options.logger ?? createLogger({ service: 'recipient-resolver', level: config.LOG_LEVEL })
  ).child({ nodeId });
  const keys = new RedisKeys(config.REDIS_PREFIX, {
    shards: shardsFor({ clusterNodes: config.REDIS_CLUSTER_NODES }),
  });
  // The resolver writes only broadcast marks: one lost in a crash makes the outbox relay re-enqueue its
  // event, and the delivery marks in Redis make the re-run serve nobody twice. So it need not wait for the
  // WAL flush of each. Its statements are all lookups by key over tables that grow from empty: no plan of
  // theirs may be a sequential scan (db pool.ts, keyedLookupsOnly).
  const pool = createPgPool(config.DATABASE_URL, {
    max: config.DB_POOL_MAX,
    asyncCommit: true,
    keyedLookupsOnly: true,
  });
  const marker = new BroadcastMarker(pool);
  // Delivery commands wait for Redis to come back rather than fail the job at the first hiccup; the job's
  // own retries cover longer outages.
  // A Redis Cluster when REDIS_CLUSTER_NODES is set: the writer then runs per shard and SPUBLISHes.
  const target = { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES };
  const redis = createRedisClient(target, { name: `${nodeId}:deliver` });
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  const writer = new UserLogWriter(redis, keys, {
    retention: {
      minEvents: config.USER_LOG_MIN_EVENTS,
      minAgeS: config.USER_LOG_MIN_AGE_S,
      maxEvents: config.USER_LOG_MAX_EVENTS,
      idleTtlS: config.USER_LOG_IDLE_TTL_S,
      eventDataTtlS: config.EVENT_DATA_TTL_S,
    },
    deliveredTtlS: config.DELIVERED_TTL_S,
    node: nodeId,
    batchMinRecipients: config.RESOLVER_BATCH_MIN_RECIPIENTS,
  });

  // A Queue handle only for reading the queue's state (metrics, operator view); it adds no jobs.
  const queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  queue.on('error', (err) => log.debug({ err }, 'queue error'));
  const metrics = createResolverMetrics({
    counts: () => queue.getJobCounts(...QUEUE_STATES),
    oldestWaitingAgeS: async () => {
      // BullMQ's wait list takes new jobs at its head: the oldest is the last one.
      const [oldest] = await queue.getJobs(['wait'], -1, -1);
      return oldest ? Math.max(0, (Date.now() - oldest.timestamp) / 1000) : 0;
    },
  });
  // Concurrent jobs share plan queries and broadcast marks (one round trip per batch, under load).
  const runJob = broadcastJob({
    plans: new BroadcastPlanLoader(pool),
    marker,
    writer,
    metrics,
    preferences: new PreferenceCache(pool, log),
    log,
  });

  // BullMQ does not close a connection it is given: close() does.
  const workerRedis = createRedisClient(target, { name: `${nodeId}:worker`, maxRetriesPerRequest: null });
  const worker = new Worker(BROADCAST_QUEUE, runJob, {
    connection: workerRedis,
    prefix: keys.bullPrefix,
    concurrency: config.RESOLVER_CONCURRENCY,
    // A worker killed mid-job leaves its lock to expire; another worker takes the job over after this.
    stalledInterval: 5_000,
    lockDuration: 10_000,
    autorun: true,
  });
  worker.on('completed', () => metrics.jobsDone.inc({ outcome: 'completed' }));
  worker.on('failed', (job, err) => {
    // BullMQ emits `failed` for every failed attempt (attemptsMade already counts it); the job runs again
    // unless that was its last attempt or the error was unrecoverable.
    const final = !job || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    metrics.jobsDone.inc({ outcome: final ? 'failed' : 'retry' });
    // BroadcastAlarmToTenant carries one eventId, BroadcastEvents several: both under the common fields.
    const data = job?.data as { eventId?: unknown; eventIds?: unknown } | undefined;
    log.warn(
      {
        err,
        eventId: data?.eventId,
        eventIds: data?.eventIds,
        jobId: job?.id,
        attemptsMade: job?.attemptsMade,
        final,
      },
      'broadcast job failed',
    );
  });
  worker.on('error', (err) => log.debug({ err }, 'worker error'));
  await worker.waitUntilReady();

  const server = await startInternalServer({
    host: config.HOST,
    port: config.RESOLVER_METRICS_PORT,
    metrics: metrics.registry,
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
      await queue.close();
      redis.disconnect();
      workerRedis.disconnect();
      await pool.end();
    })());

  return { nodeId, worker, metrics: metrics.registry, port, close };
}
