import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue, QueueEvents } from 'bullmq';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import {
  BROADCAST_QUEUE,
  JOB_CATALOGUE,
  PubSubEnvelope,
  broadcastJobId,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import {
  RedisKeys,
  USER_SHARDS,
  createPubSubTransport,
  createRedisClient,
  readUserLogAfter,
  type RedisConnection,
} from '@alarmcast/redis';
import {
  createTestDatabase,
  startRedisCluster,
  testEnv,
  uniqueRedisPrefix,
  type LocalRedisCluster,
} from '@alarmcast/testing';
import { parseResolverConfig } from '../src/config.js';
import { startResolver, type ResolverProcess } from '../src/resolver-process.js';

/** The resolver with REDIS_CLUSTER_NODES: BullMQ on the cluster, delivery per shard, SPUBLISH. */
describe('recipient-resolver on a real local Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  let prisma: PrismaClient;
  let redis: RedisConnection;
  let sub: RedisConnection;
  let qe: RedisConnection;
  let queue: Queue;
  let events: QueueEvents;
  let resolver: ResolverProcess;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
  const received: PubSubEnvelope[] = [];
  const users = Array.from({ length: 20 }, (_, i) => ({
    ref: `u${i}`,
    email: `u${i}@example.test`,
    name: `u${i}`,
  }));

  beforeAll(async () => {
    cluster = await startRedisCluster({ timeoutMs: 20_000 });
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      { tenants: [{ ref: 't', name: 'T', slug: 't', users }] },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    const target = { url: 'redis://unused.invalid:1', clusterNodes: cluster.nodes };
    redis = createRedisClient(target, { name: 'test' });
    sub = createRedisClient(target, { name: 'test-sub', shardedSubscribers: true });
    const transport = createPubSubTransport(sub, sub);
    transport.onMessage((_c, m) => received.push(PubSubEnvelope.parse(JSON.parse(m))));
    for (const u of Object.values(world.users))
      await transport.subscribe(keys.pubsubChannel(`private-user.${u.id}`));
    queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    qe = createRedisClient(target, { name: 'qe', maxRetriesPerRequest: null });
    events = new QueueEvents(BROADCAST_QUEUE, { connection: qe, prefix: keys.bullPrefix });
    await events.waitUntilReady();
    resolver = await startResolver(
      parseResolverConfig({
        DATABASE_URL: db.url,
        REDIS_CLUSTER_NODES: cluster.seedList,
        REDIS_PREFIX: keys.prefix,
        LOG_LEVEL: 'silent',
        RESOLVER_METRICS_PORT: '0',
      }),
    );
  });
  afterAll(async () => {
    await resolver?.close();
    await events?.close();
    await queue?.close();
    for (const c of [redis, sub, qe]) c?.disconnect();
    await prisma?.$disconnect();
    await dropDb?.();
    await cluster?.stop();
  });

  it('delivers a tenant alarm to users on many shards once each, logged and SPUBLISHed', async () => {
    const tenantId = world.tenants.t!.id;
    const e = await prisma.outboxEvent.create({
      data: { tenantId, deviceId: null, kind: 'alarm.created', alarmId: 1n, payload: { alarm: { id: '1' } } },
    });
    const eventId = e.id.toString();
    const run = async (): Promise<unknown> => {
      const job = await queue.add(
        'BroadcastAlarmToTenant',
        { eventId },
        { ...JOB_CATALOGUE.BroadcastAlarmToTenant.options, jobId: broadcastJobId(eventId) },
      );
      return job.waitUntilFinished(events, 15_000);
    };
    expect(await run()).toEqual({ recipients: 20, delivered: 20 });
    const ids = Object.values(world.users).map((u) => u.id);
    expect(new Set(ids.map((id) => keys.shardOf(id))).size).toBeGreaterThan(8);
    await vi.waitFor(() => expect(received).toHaveLength(20));
    for (const id of ids) {
      const { events: logged, gap } = await readUserLogAfter(redis, keys, id, '0-0');
      // '0-0' precedes every entry but is none of the log's ids: all entries come, flagged as a gap.
      expect(gap).toBe('log_recreated');
      expect(logged).toHaveLength(1);
      const live = received.find((r) => r.type === 'event' && r.channel === `private-user.${id}`);
      expect(live && live.type === 'event' && live.eventId).toBe(logged[0]!.eventId);
    }
    // A re-run (retry, relay re-enqueue) delivers to nobody again, on every shard.
    await queue.remove(broadcastJobId(eventId));
    expect(await run()).toEqual({ recipients: 20, delivered: 0 });
  });
});
