/**
 * The Socket.IO peer's resolver: alarmcast's broadcast job (same queue, same prefix, same recipient query,
 * same Worker options) with delivery swapped for @socket.io/redis-emitter. There is no per-user log, so the
 * outbox event id stands in for the per-user stream id as `event_id`.
 *
 *   node --conditions=source --import tsx tests/bench/src/peer/socketio-resolver.ts
 *   env: REDIS_URL, REDIS_PREFIX, DATABASE_URL, RESOLVER_METRICS_PORT, RESOLVER_CONCURRENCY (32)
 */
import { createServer } from 'node:http';
import { Worker, UnrecoverableError, type Job } from 'bullmq';
import { Emitter } from '@socket.io/redis-emitter';
import { BROADCAST_QUEUE, OUTBOX_KINDS, parseJob } from '@alarmcast/contracts';
import { BroadcastMarker, createPgPool, loadBroadcastPlan } from '@alarmcast/db';
import { RedisKeys, createRedis } from '@alarmcast/redis';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`socketio-resolver: ${name} is required`);
  return value;
};
const redisUrl = env('REDIS_URL');
const keys = new RedisKeys(env('REDIS_PREFIX'));
// The same pool settings as alarmcast's resolver.
const pool = createPgPool(env('DATABASE_URL'), { max: 10, asyncCommit: true, keyedLookupsOnly: true });
const marker = new BroadcastMarker(pool);
const redis = createRedis(redisUrl, { name: `peer-resolver-${process.pid}:emit` });
// The emitter drops publish()'s promise; keeping it lets a job wait for Redis to take the message (as
// alarmcast's resolver waits for its delivery script) and fail into BullMQ's retries instead of an
// unhandled rejection. emit() publishes synchronously, so the promise read right after is this job's own.
let published: Promise<unknown> = Promise.resolve();
const emitter = new Emitter(
  { publish: (channel: string, msg: Buffer) => (published = redis.publish(channel, msg)) },
  { key: `${keys.prefix}:socket.io` },
);

async function broadcastEvent(eventId: string): Promise<number> {
  const plan = await loadBroadcastPlan(pool, eventId);
  if (!plan) throw new UnrecoverableError(`outbox event ${eventId} not found`);
  const event = OUTBOX_KINDS[plan.kind as keyof typeof OUTBOX_KINDS] as string | undefined;
  if (!event) throw new UnrecoverableError(`outbox event ${plan.eventId} has unknown kind ${plan.kind}`);
  // to([]) names no room, which Socket.IO reads as every socket: an event nobody may see must not go out.
  if (plan.recipients.length > 0) {
    const data = { ...(JSON.parse(plan.payloadJson) as object), event_id: plan.eventId };
    // One publish for all recipients: the idiomatic Socket.IO fan-out, and the cheapest the emitter allows.
    emitter.to(plan.recipients.map((id) => `user:${id}`)).emit(event, data);
    const sent = published; // emit() published synchronously: this event's own promise
    await sent;
  }
  await marker.mark(plan.eventId);
  return plan.recipients.length;
}

/** The same jobs as alarmcast's resolver: one event, or a BroadcastEvents job's events at once. */
async function broadcast(job: Job): Promise<{ recipients: number }> {
  const parsed = parseJob(job.name, job.data);
  if (!parsed.ok) throw new UnrecoverableError(parsed.reason);
  const ids = 'eventId' in parsed.data ? [parsed.data.eventId] : parsed.data.eventIds;
  const counts = await Promise.all(ids.map(broadcastEvent));
  return { recipients: counts.reduce((a, b) => a + b, 0) };
}

const worker = new Worker(BROADCAST_QUEUE, broadcast, {
  connection: createRedis(redisUrl, {
    name: `peer-resolver-${process.pid}:worker`,
    maxRetriesPerRequest: null,
  }),
  prefix: keys.bullPrefix,
  concurrency: Number(env('RESOLVER_CONCURRENCY', '32')),
  stalledInterval: 5_000,
  lockDuration: 10_000,
});
worker.on('failed', (job, err) => console.error(`broadcast job ${job?.id} failed: ${err.message}`));
worker.on('error', (err) => console.error(`worker error: ${err.message}`));
await worker.waitUntilReady();

const health = createServer((req, res) => {
  const ok = req.url === '/healthz';
  res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' }).end(ok ? '{"status":"ok"}' : '');
});
await new Promise<void>((resolve, reject) => {
  health.once('error', reject);
  health.listen(Number(env('RESOLVER_METRICS_PORT')), env('HOST', '127.0.0.1'), resolve);
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void worker.close().finally(() => {
      health.close();
      redis.disconnect();
      void pool.end().finally(() => process.exit(0));
    });
  });
}
