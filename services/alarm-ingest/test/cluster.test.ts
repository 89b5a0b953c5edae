import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue } from 'bullmq';
import { Cluster } from 'ioredis';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { BROADCAST_QUEUE, broadcastJobId, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedisClient, shardsFor, type RedisConnection } from '@alarmcast/redis';
import {
  createTestDatabase,
  startRedisTopology,
  testEnv,
  uniqueRedisPrefix,
  type RedisTopology,
} from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/**
 * The ingest on a real local Redis Cluster (REDIS_CLUSTER_NODES; 3 masters, 3 replicas): a POST's job lands
 * in BullMQ's hash-tagged queue on the cluster, the outbox relay enqueues what the request could not, and
 * re-enqueues a job lost after it was enqueued, the collector rate limits count on the cluster, and the
 * readiness check asks it. (The whole path on a cluster, POST to socket, is tests/e2e pipeline.test.ts.)
 */
describe('alarm-ingest on a real local Redis Cluster', () => {
  let topology: RedisTopology;
  let prisma: PrismaClient;
  let redis: RedisConnection;
  let queue: Queue;
  let world: ProvisionResult;
  let dbUrl: string;
  let dropDb: () => Promise<void>;
  let keys: RedisKeys;
  const servers: IngestServer[] = [];

  const start = async (
    over: Record<string, string> = {},
    options?: Parameters<typeof startIngest>[1],
  ): Promise<IngestServer> => {
    const server = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: dbUrl,
        ...topology.env,
        REDIS_PREFIX: keys.prefix,
        LOG_LEVEL: 'silent',
        OUTBOX_RELAY_INTERVAL_MS: '100',
        OUTBOX_RELAY_GRACE_MS: '300',
        ...over,
      }),
      options,
    );
    servers.push(server);
    return server;
  };

  beforeAll(async () => {
    topology = await startRedisTopology('cluster', testEnv().redisUrl);
    keys = new RedisKeys(uniqueRedisPrefix(), { shards: shardsFor(topology.target) });
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'a',
            name: 'A',
            slug: 'a',
            devices: [{ ref: 'da', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A1' }],
            collectorTokens: [
              { ref: 'ta', name: 'collector of A' },
              { ref: 'tl', name: 'rate-limited collector of A' },
            ],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    redis = createRedisClient(topology.target, { name: 'test' });
    queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await queue?.close();
    redis?.disconnect();
    await prisma?.$disconnect();
    await dropDb?.();
    await topology?.stop();
  });

  const post = (server: IngestServer, identifier: string, token = world.collectorTokens.ta!.token) =>
    fetch(`${server.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({
        deviceId: world.devices.da!.id,
        alarmIdentifier: identifier,
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: 'WAN link down',
        perceivedSeverity: 'Major',
      }),
    });

  const eventOf = async (res: Response) => {
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    return prisma.outboxEvent.findFirstOrThrow({ where: { alarmId: BigInt(id) } });
  };

  it('is ready on the cluster and enqueues a POST’s job in the hash-tagged queue, on one master', async () => {
    expect(redis).toBeInstanceOf(Cluster);
    const ingest = await start();
    expect((await fetch(`${ingest.internalUrl}/readyz`)).status).toBe(200);
    const event = await eventOf(await post(ingest, 'on-cluster'));
    const jobId = broadcastJobId(event.id.toString());
    await vi.waitFor(async () => expect(await queue.getJob(jobId)).toBeDefined(), { timeout: 5000 });
    expect((await queue.getJob(jobId))!.data).toEqual({ eventId: event.id.toString() });
    // Every key of the queue shares BullMQ's hash tag: one slot, so its scripts run on one master.
    const jobKey = queue.toKey(jobId);
    expect(jobKey.startsWith(`${keys.bullPrefix}:`)).toBe(true);
    expect(Number(await redis.cluster('KEYSLOT', jobKey))).toBe(
      Number(await redis.cluster('KEYSLOT', queue.toKey('wait'))),
    );
    // `enqueued_at` is recorded after the enqueue (no resolver runs here to broadcast it first), coalesced
    // into one UPDATE per delay: wait for it.
    await vi.waitFor(
      async () =>
        expect(
          (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } })).enqueuedAt,
        ).not.toBeNull(),
      { timeout: 5000 },
    );
  });

  it('relays a committed event whose enqueue failed right after the commit', async () => {
    let failures = 0;
    const flaky = await start(
      {},
      {
        wrapEnqueue: (enqueue) => async (ids) => {
          if (failures === 0) {
            failures++;
            throw new Error('injected: the cluster went away right after the commit');
          }
          await enqueue(ids);
        },
      },
    );
    const event = await eventOf(await post(flaky, 'relayed'));
    await vi.waitFor(
      async () => {
        expect(await queue.getJob(broadcastJobId(event.id.toString()))).toBeDefined();
        expect(
          (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } })).enqueuedAt,
        ).not.toBeNull();
      },
      { timeout: 5000, interval: 100 },
    );
    expect(failures).toBe(1);
  });

  it('enqueues again a job lost after it was enqueued (a master that died before replicating it)', async () => {
    let lost = 0;
    const forgetful = await start(
      { OUTBOX_REDELIVER_AFTER_MS: '2000' },
      {
        wrapEnqueue: (enqueue) => async (ids) => {
          if (lost++ === 0) return; // "succeeds", but the job never reached the cluster
          await enqueue(ids);
        },
      },
    );
    const event = await eventOf(await post(forgetful, 'lost-job'));
    const jobId = broadcastJobId(event.id.toString());
    await vi.waitFor(async () =>
      expect(
        (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } })).enqueuedAt,
      ).not.toBeNull(),
    );
    expect(await queue.getJob(jobId)).toBeUndefined();
    // No resolver here: broadcast_at stays null and the relay puts the job back on the cluster.
    await vi.waitFor(async () => expect(await queue.getJob(jobId)).toBeDefined(), {
      timeout: 8000,
      interval: 100,
    });
  });

  it('counts the collector rate limit on the cluster: 429 past it', async () => {
    const limited = await start({ RATE_LIMIT_ALARMS_PER_TOKEN: '3', RATE_LIMIT_WINDOW_S: '60' });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++)
      statuses.push((await post(limited, `limited-${i}`, world.collectorTokens.tl!.token)).status);
    // The limit fails open when the store answers slower than 250 ms (a loaded machine): a 4th may pass,
    // but the counting store is the cluster and the limit holds.
    expect(statuses.slice(0, 3)).toEqual([202, 202, 202]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(4);
    // The counters are on the cluster (shared by every ingest process), not in some other Redis.
    const counters: string[] = [];
    for (const node of (redis as Cluster).nodes('master'))
      counters.push(...(await node.keys(`${keys.prefix}:rl:*`)));
    expect(counters.length).toBeGreaterThan(0);
  });
});
