import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { Queue } from 'bullmq';
import {
  BROADCAST_QUEUE,
  userChannel,
  type PubSubEnvelope,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import {
  RedisKeys,
  shardsFor,
  createPubSubTransport,
  createRedisClient,
  type RedisConnection,
} from '@alarmcast/redis';
import {
  createTestDatabase,
  redisTopologies,
  startRedisTopology,
  testEnv,
  uniqueRedisPrefix,
  type RedisTopology,
} from '@alarmcast/testing';
import { connectUser, startStack, type Stack, type UserClient } from '../src/stack.js';

const u = (ref: string, active = true) => ({ ref, email: `${ref}@example.test`, name: ref, active });
const d = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });

/**
 * Two tenants with several users, shares within and across tenants, an inactive user, a platform
 * operator with no shares, and a third tenant that sees nothing of the alarms raised here.
 */
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [u('a1'), u('a2'), u('a3'), u('a-off', false)],
      devices: [d('da1'), d('da2')],
      collectorTokens: [{ ref: 'collector-a', name: 'collector A' }],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [u('b1'), u('b2')],
      devices: [d('db1')],
      collectorTokens: [{ ref: 'collector-b', name: 'collector B' }],
    },
    { ref: 'C', name: 'Tenant C', slug: 'tenant-c', users: [u('c1')], devices: [d('dc1')] },
  ],
  platformUsers: [u('ops')],
  shares: [
    { user: 'b1', device: 'da1' }, // across tenants: b1 sees da1's alarms
    { user: 'a2', device: 'da2' }, // within the tenant: must not double a2's delivery
    { user: 'a-off', device: 'da1' }, // inactive: gets nothing through a share either
  ],
};

/** Each alarm raised, and exactly who must receive it (by ref), written out by hand from the rules. */
const alarms: {
  ref: string;
  collector: string;
  target: { device: string } | { tenant: string };
  to: string[];
}[] = [
  { ref: 'on-da1', collector: 'collector-a', target: { device: 'da1' }, to: ['a1', 'a2', 'a3', 'b1'] },
  { ref: 'on-da2', collector: 'collector-a', target: { device: 'da2' }, to: ['a1', 'a2', 'a3'] },
  { ref: 'on-db1', collector: 'collector-b', target: { device: 'db1' }, to: ['b1', 'b2'] },
  { ref: 'tenant-a-wide', collector: 'collector-a', target: { tenant: 'A' }, to: ['a1', 'a2', 'a3'] },
  { ref: 'tenant-b-wide', collector: 'collector-b', target: { tenant: 'B' }, to: ['b1', 'b2'] },
  { ref: 'on-da1-again', collector: 'collector-a', target: { device: 'da1' }, to: ['a1', 'a2', 'a3', 'b1'] },
];
const everyone = ['a1', 'a2', 'a3', 'a-off', 'b1', 'b2', 'c1', 'ops'];

// On each Redis topology (one Redis, and a local Redis Cluster started once for the file): every broadcast
// here has a few recipients, so the per-user channels carry them; with a batch threshold of 1 the same world
// goes through `user-batch` envelopes, which every edge reads.
describe.each(redisTopologies())('on Redis topology %s', (topologyName) => {
  let topology: RedisTopology;
  beforeAll(async () => {
    topology = await startRedisTopology(topologyName, testEnv().redisUrl);
  });
  afterAll(async () => {
    await topology?.stop();
  });

  describe.each([
    { edges: 1, resolvers: 1, batchMin: '100' },
    { edges: 2, resolvers: 2, batchMin: '100' },
    { edges: 2, resolvers: 2, batchMin: '1' },
  ])(
    'alarm pipeline end to end with $edges edge(s), $resolvers resolver(s), batches from $batchMin recipients',
    ({ edges, resolvers, batchMin }) => {
      let prisma: PrismaClient;
      let redis: RedisConnection;
      let stack: Stack;
      let world: ProvisionResult;
      let dropDb: () => Promise<void>;
      let keys: RedisKeys;
      const clients = new Map<string, UserClient>();

      beforeAll(async () => {
        keys = new RedisKeys(uniqueRedisPrefix(), { shards: shardsFor(topology.target) });
        const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
        dropDb = db.drop;
        prisma = createPrismaClient(db.url);
        world = await provisionGraph(prisma, graph, {
          hashToken: hashCollectorToken,
          newToken: generateCollectorToken,
        });
        redis = createRedisClient(topology.target, { name: 'e2e' });
        stack = await startStack({
          databaseUrl: db.url,
          redisUrl: topology.env.REDIS_URL,
          redisClusterNodes: topology.env.REDIS_CLUSTER_NODES,
          redisPrefix: keys.prefix,
          edges,
          resolvers,
          env: { RESOLVER_BATCH_MIN_RECIPIENTS: batchMin },
        });
        // Users spread over the edges round-robin: no sticky routing, any user on any node.
        const active = everyone.filter((ref) => ref !== 'a-off');
        await Promise.all(
          active.map(async (ref, i) =>
            clients.set(ref, await connectUser(stack.edges[i % edges]!, world.users[ref]!.id)),
          ),
        );
      });
      afterAll(async () => {
        for (const c of clients.values()) c.disconnect();
        await stack.close();
        redis.disconnect();
        await prisma.$disconnect();
        await dropDb();
      });

      it('delivers every alarm to every authorized user exactly once, and nothing to anyone else', async () => {
        const idOf = new Map<string, string>();
        for (const a of alarms) {
          const target =
            'device' in a.target
              ? { deviceId: world.devices[a.target.device]!.id }
              : { tenantId: world.tenants[a.target.tenant]!.id };
          const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${world.collectorTokens[a.collector]!.token}`,
              'content-type': 'application/json',
            },
            body: JSON.stringify({
              ...target,
              alarmIdentifier: a.ref,
              eventType: 'Communications Alarm',
              probableCause: 'Loss of signal',
              specificProblem: `raised as ${a.ref}`,
              perceivedSeverity: 'Critical',
            }),
          });
          expect(res.status).toBe(202);
          idOf.set(a.ref, ((await res.json()) as { id: string }).id);
        }

        const expected = new Map<string, string[]>(everyone.map((ref) => [ref, []]));
        for (const a of alarms) for (const ref of a.to) expected.get(ref)!.push(idOf.get(a.ref)!);

        await vi.waitFor(
          () => {
            for (const [ref, client] of clients)
              expect(client.received.length, ref).toBeGreaterThanOrEqual(expected.get(ref)!.length);
          },
          { timeout: 10_000, interval: 20 },
        );

        // Barrier: a sentinel published after every job finished travels the same Redis connection and edge
        // path as the alarms did, so once each client has its sentinel, nothing stray can still be in flight.
        const queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
        await vi.waitFor(async () => {
          const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed');
          expect(counts).toEqual({ waiting: 0, active: 0, delayed: 0, completed: alarms.length });
        });
        await queue.close();
        const transport = createPubSubTransport(redis, redis);
        for (const [, client] of clients) {
          const sentinel: PubSubEnvelope = {
            v: 1,
            node: 'e2e',
            type: 'event',
            channel: userChannel(client.userId),
            event: 'Sentinel',
            data: '{}',
          };
          await transport.publish(keys.pubsubChannel(userChannel(client.userId)), JSON.stringify(sentinel));
        }
        await vi.waitFor(() => {
          for (const client of clients.values())
            expect(client.received.some((e) => e.event === 'Sentinel')).toBe(true);
        });

        for (const [ref, client] of clients) {
          const alarmsSeen = client.received.filter((e) => e.event === 'App\\Events\\AlarmCreated');
          expect(alarmsSeen.map((e) => e.data.alarm.id).sort(), `alarms received by ${ref}`).toEqual(
            expected.get(ref)!.sort(),
          );
          // Each carries its event id, increasing in the order received.
          const ids = alarmsSeen.map((e) => e.data.event_id);
          expect([...ids].sort(compareStreamIds)).toEqual(ids);
          expect(new Set(ids).size).toBe(ids.length);
          for (const e of alarmsSeen) {
            const tenantOfUser = world.users[ref]!.tenantId;
            // Zero cross-tenant leakage: a foreign tenant's alarm arrives only through an explicit device share.
            if (e.data.alarm.tenant_id !== tenantOfUser) {
              expect(
                graph.shares.some(
                  (s) => s.user === ref && world.devices[s.device]!.id === e.data.alarm.device_id,
                ),
              ).toBe(true);
            }
          }
        }
        // The per-user logs agree, including users with no socket (the inactive one must have nothing).
        for (const ref of everyone) {
          expect(await redis.xlen(keys.userLog(world.users[ref]!.id)), `log of ${ref}`).toBe(
            expected.get(ref)!.length,
          );
        }
        expect(clients.get('c1')!.received.filter((e) => e.event !== 'Sentinel')).toEqual([]);
        expect(clients.get('ops')!.received.filter((e) => e.event !== 'Sentinel')).toEqual([]);
      });
    },
  );
});

function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
