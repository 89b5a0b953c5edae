import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue } from 'bullmq';
import { Emitter } from '@socket.io/redis-emitter';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { BROADCAST_QUEUE, OUTBOX_KINDS, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph } from '@alarmcast/db';
import { RedisKeys, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET } from '@alarmcast/e2e/stack';
import { freePort, spawnService, stopService, type SpawnedService } from '@alarmcast/e2e/spawned-stack';
import { connectSocketIoUser } from '../src/peer/socketio-client.js';
import type { BenchSocket, Delivery } from '../src/delivery.js';

const u = (ref: string, active = true) => ({ ref, email: `${ref}@example.test`, name: ref, active });
const d = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });

const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [u('a1'), u('a2'), u('a-off', false)],
      devices: [d('da')],
      collectorTokens: [{ ref: 'collector-a', name: 'collector A' }],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [u('b1'), u('b2')],
      devices: [d('db')],
      collectorTokens: [{ ref: 'collector-b', name: 'collector B' }],
    },
  ],
  shares: [{ user: 'a1', device: 'db' }],
};
const users = ['a1', 'a2', 'b1', 'b2'];
/** Who must receive each alarm, written out by hand from the rules: members, plus a1 through the share. */
const alarms = [
  { ref: 'on-da', collector: 'collector-a', device: 'da', to: ['a1', 'a2'] },
  { ref: 'on-db', collector: 'collector-b', device: 'db', to: ['a1', 'b1', 'b2'] },
];

describe('Socket.IO peer (server + resolver fed by alarm-ingest)', () => {
  const keys = new RedisKeys(uniqueRedisPrefix());
  const services: SpawnedService[] = [];
  const sockets = new Map<string, BenchSocket>();
  const received = new Map<string, Delivery[]>(users.map((ref) => [ref, []]));
  let world: ProvisionResult;
  let redis: Redis;
  let peer: SpawnedService;
  let ingest: SpawnedService;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    const prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    await prisma.$disconnect();
    redis = createRedis(testEnv().redisUrl, { name: 'bench-peer-test' });

    const common = {
      NODE_ENV: 'development',
      DATABASE_URL: db.url,
      REDIS_URL: testEnv().redisUrl,
      REDIS_PREFIX: keys.prefix,
      LOG_LEVEL: 'warn',
      JWT_SECRET,
    };
    const [peerPort, resolverPort, ingestPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const spawned = await Promise.all([
      spawnService(
        'socketio-server',
        'tests/bench/src/peer/socketio-server.ts',
        { ...common, PEER_PORT: String(peerPort) },
        peerPort,
      ),
      spawnService(
        'socketio-resolver',
        'tests/bench/src/peer/socketio-resolver.ts',
        { ...common, RESOLVER_METRICS_PORT: String(resolverPort) },
        resolverPort,
      ),
      spawnService(
        'alarm-ingest',
        'services/alarm-ingest/src/main.ts',
        { ...common, INGEST_PORT: String(ingestPort), PUSHER_APP_KEY: APP.key },
        ingestPort,
      ),
    ]);
    services.push(...spawned);
    [peer, , ingest] = spawned as [SpawnedService, SpawnedService, SpawnedService];

    const connect = connectSocketIoUser(peer.url);
    for (const ref of users) {
      const { id } = world.users[ref]!;
      const jwt = await signUserJwt(JWT_SECRET, id);
      sockets.set(ref, await connect(id, jwt, (e) => received.get(ref)!.push(e)));
    }
  });

  afterAll(async () => {
    for (const s of sockets.values()) s.close();
    await Promise.all(services.map((s) => stopService(s)));
    redis?.disconnect();
    await dropDb?.();
  });

  it('refuses a bad token, an inactive user and an unknown user', async () => {
    const connect = connectSocketIoUser(peer.url);
    const never = () => expect.fail('no event may reach a refused socket');
    await expect(connect(1, 'not-a-jwt', never)).rejects.toThrow('unauthenticated');
    const forged = await signUserJwt('some-other-secret', world.users.a1!.id);
    await expect(connect(world.users.a1!.id, forged, never)).rejects.toThrow('unauthenticated');
    const off = world.users['a-off']!.id;
    await expect(connect(off, await signUserJwt(JWT_SECRET, off), never)).rejects.toThrow('forbidden');
    await expect(connect(999_999, await signUserJwt(JWT_SECRET, 999_999), never)).rejects.toThrow(
      'forbidden',
    );
  });

  it('delivers each alarm to exactly the users who may see it', async () => {
    const idOf = new Map<string, string>();
    for (const a of alarms) {
      const res = await fetch(`${ingest.url}/v1/alarms`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${world.collectorTokens[a.collector]!.token}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          deviceId: world.devices[a.device]!.id,
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

    // Barrier: once both jobs completed, a sentinel published to every room travels behind the alarms
    // through Redis and the adapter, so a socket holding its sentinel holds everything it will ever get.
    const queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    await vi.waitFor(
      async () => {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
        expect(counts).toEqual({ waiting: 0, active: 0, delayed: 0, completed: alarms.length, failed: 0 });
      },
      { timeout: 10_000, interval: 50 },
    );
    await queue.close();
    const rooms = users.map((ref) => `user:${world.users[ref]!.id}`);
    new Emitter(redis, { key: `${keys.prefix}:socket.io` }).to(rooms).emit('sentinel', {});
    await vi.waitFor(() => {
      for (const ref of users)
        expect(
          received.get(ref)!.map((e) => e.event),
          ref,
        ).toContain('sentinel');
    });

    for (const ref of users) {
      const seen = received.get(ref)!.filter((e) => e.event !== 'sentinel');
      const expected = alarms.filter((a) => a.to.includes(ref));
      expect(seen.map((e) => e.data.alarm.alarm_identifier).sort(), `alarms received by ${ref}`).toEqual(
        expected.map((a) => a.ref).sort(),
      );
      for (const e of seen) {
        expect(e.event).toBe(OUTBOX_KINDS['alarm.created']);
        expect(e.data.alarm.id).toBe(idOf.get(e.data.alarm.alarm_identifier));
        expect(e.data.event_id).toMatch(/^[1-9]\d*$/);
        expect(e.at).toBeGreaterThan(0);
      }
    }
  });

  it('exits 0 on SIGTERM', async () => {
    for (const s of services.filter((s) => s.name.startsWith('socketio-')))
      expect(await stopService(s), s.name).toBe(0);
  });
});
