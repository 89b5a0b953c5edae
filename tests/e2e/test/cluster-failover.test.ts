import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { RESUME_FAILED_EVENT, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedisClient, shardsFor, type RedisConnection } from '@alarmcast/redis';
import {
  createTestDatabase,
  startRedisTopology,
  testEnv,
  uniqueRedisPrefix,
  type RedisTopology,
} from '@alarmcast/testing';
import { connectUser, startStack, type Stack, type UserClient } from '../src/stack.js';

/** One user per shard: consecutive ids cover all 16, so every master holds some of their logs. */
const USERS = Array.from({ length: 16 }, (_, i) => `u${i}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A Redis Cluster master killed under load. Alarms flow (two collectors posting, pusher-js clients of 16
 * users on every shard subscribed on two edges, two resolvers); the master holding a third of the users'
 * logs and channels is SIGKILLed and its replica takes over. BullMQ's queue is on another master, so jobs
 * for the other shards keep flowing and those for the lost shard are retried as soon as the replica is
 * master: what the edges' sharded subscriptions on the dead master missed in between must be caught up on
 * the open sockets. Required: every acknowledged (202) alarm reaches every recipient, live or (after an
 * `alarmcast:resume_failed` on the channel, for a position the failover made unrecoverable) through
 * GET /v1/alarms; never a silent gap, no duplicate.
 */
describe('Redis Cluster failover under load', () => {
  let topology: RedisTopology;
  let prisma: PrismaClient;
  let dropDb: () => Promise<void>;
  let world: ProvisionResult;
  let stack: Stack;
  let redis: RedisConnection;
  let keys: RedisKeys;
  let victimPort = 0;
  const usersOnVictim: string[] = [];
  const clients: UserClient[] = [];

  beforeAll(async () => {
    topology = await startRedisTopology('cluster', testEnv().redisUrl);
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'A',
            slug: 'a',
            users: USERS.map((r) => ({ ref: r, email: `${r}@a.test`, name: r })),
            devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'PC', serialNumber: 'S1' }],
            collectorTokens: [{ ref: 'c', name: 'c' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    redis = createRedisClient(topology.target, { name: 'e2e-failover' });
    redis.on('error', () => undefined); // one of its nodes is killed here
    // The victim is the master of u0's shard; a prefix whose BullMQ hash tag is on another master keeps
    // the queue running through the failover (losing the queue's master is fault 1 of faults.test.ts).
    const slots = await redis.cluster('SLOTS');
    const masterOf = async (key: string): Promise<number> => {
      const slot = Number(await redis.cluster('KEYSLOT', key));
      return slots.find(([from, to]) => slot >= from && slot <= to)![2]![1];
    };
    const shards = shardsFor(topology.target);
    for (let i = 0; i < 100; i++) {
      keys = new RedisKeys(uniqueRedisPrefix(), { shards });
      victimPort = await masterOf(keys.userLog(world.users.u0!.id));
      if ((await masterOf(keys.bullPrefix)) !== victimPort) break;
    }
    for (const ref of USERS)
      if ((await masterOf(keys.userLog(world.users[ref]!.id))) === victimPort) usersOnVictim.push(ref);
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: topology.env.REDIS_URL,
      redisClusterNodes: topology.env.REDIS_CLUSTER_NODES,
      redisPrefix: keys.prefix,
      edges: 2,
      resolvers: 2,
      // A job added to the queue just before its master died could be lost; here the queue's master
      // survives, but the relay's safety net stays short so that the test would not hide behind 60 s.
      env: { OUTBOX_REDELIVER_AFTER_MS: '3000' },
    });
    for (const [i, ref] of USERS.entries())
      clients.push(await connectUser(stack.edges[i % 2]!, world.users[ref]!.id));
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await stack?.close();
    redis?.disconnect();
    await prisma?.$disconnect();
    await dropDb?.();
    await topology?.stop();
  });

  const raise = async (n: number): Promise<{ status: number; id?: string }> => {
    try {
      const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${world.collectorTokens.c!.token}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          deviceId: world.devices.cpe!.id,
          alarmIdentifier: `failover-${n}`,
          eventType: 'Communications Alarm',
          probableCause: 'Loss of signal',
          specificProblem: `failover ${n}`,
          perceivedSeverity: 'Major',
        }),
      });
      const body = (await res.json()) as { id?: string };
      return { status: res.status, id: body.id };
    } catch {
      return { status: 0 };
    }
  };

  /** Every alarm the user may see, through GET /v1/alarms (what a client reloads after resume_failed). */
  const listAlarmIds = async (userId: number): Promise<Set<string>> => {
    const jwt = await signUserJwt('e2e-jwt-secret', userId);
    const ids = new Set<string>();
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const res = await fetch(`${stack.ingest.url}/v1/alarms?limit=500${q}`, {
        headers: { authorization: `Bearer ${jwt}` },
      });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { alarms: { id: string }[]; next_cursor: string | null };
      for (const a of page.alarms) ids.add(a.id);
      cursor = page.next_cursor;
    } while (cursor);
    return ids;
  };

  const outboxPending = async (): Promise<number> => {
    const [row] = await prisma.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM outbox_events WHERE broadcast_at IS NULL`;
    return Number(row!.n);
  };

  it('loses no acknowledged alarm: each reaches every user live, or after resume_failed through the reload', async () => {
    expect(usersOnVictim.length).toBeGreaterThan(0);
    const results: { status: number; id?: string }[] = [];
    let n = 0;
    let stop = false;
    // Two collectors, each posting one alarm every 40 ms without waiting for answers (~50 alarms/s).
    const pending: Promise<void>[] = [];
    const collectors = [0, 1].map(async () => {
      while (!stop) {
        pending.push(raise(n++).then((r) => void results.push(r)));
        await sleep(40);
      }
    });
    await sleep(2000);
    const killedAt = performance.now();
    const { killed, promoted, takeover } = await topology.cluster!.killMaster(victimPort);
    const failoverS = (performance.now() - killedAt) / 1000;
    await sleep(3000);
    stop = true;
    await Promise.all(collectors);
    await Promise.all(pending);

    const acked = results.filter((r) => r.status === 202).map((r) => r.id!);
    expect(results.filter((r) => r.status !== 202)).toEqual([]);
    await vi.waitFor(async () => expect(await outboxPending()).toBe(0), { timeout: 30_000, interval: 200 });

    const alarmsOf = (c: UserClient) =>
      c.received.filter((e) => e.event === 'App\\Events\\AlarmCreated').map((e) => e.data.alarm.id);
    const failedOf = (c: UserClient) => c.received.filter((e) => e.event === RESUME_FAILED_EVENT).length;
    // Settled: every client has every alarm, or was told its channel cannot be resumed.
    await vi.waitFor(
      () => {
        for (const c of clients) {
          if (failedOf(c) > 0) continue;
          const got = new Set(alarmsOf(c));
          expect(
            acked.filter((id) => !got.has(id)),
            `missing for user ${c.userId}`,
          ).toEqual([]);
        }
      },
      { timeout: 20_000, interval: 100 },
    );
    await sleep(300); // a duplicate would arrive now
    const summary: string[] = [];
    for (const [i, c] of clients.entries()) {
      const ids = alarmsOf(c);
      expect(new Set(ids).size, `duplicates for ${USERS[i]}`).toBe(ids.length);
      const got = new Set(ids);
      const missing = acked.filter((id) => !got.has(id));
      if (missing.length > 0) {
        const listed = await listAlarmIds(c.userId);
        expect(failedOf(c), `${USERS[i]} missed alarms without resume_failed`).toBeGreaterThan(0);
        expect(
          missing.filter((id) => !listed.has(id)),
          `${USERS[i]} lost`,
        ).toEqual([]);
      }
      summary.push(
        `${USERS[i]}${usersOnVictim.includes(USERS[i]!) ? '*' : ''}=${got.size}` +
          (missing.length ? `+${missing.length}reload` : '') +
          (failedOf(c) ? ` failed=${failedOf(c)}` : ''),
      );
    }
    console.log(
      `[cluster failover] master ${killed} killed, replica ${promoted} master after ${failoverS.toFixed(1)}s${takeover ? ' (by TAKEOVER)' : ''}; ` +
        `sent=${results.length} acked=${acked.length} | per user (* = log on the killed master): ${summary.join(' ')}`,
    );
  }, 90_000);
});
