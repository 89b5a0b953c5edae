import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { RESUME_FAILED_EVENT, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { DEFAULT_RETENTION, RedisKeys, UserLogWriter, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { APP, JWT_SECRET, connectUser, type UserClient } from '../src/stack.js';
import { startPrivateRedis, type PrivateRedis } from '../src/fault-helpers.js';
import { TcpProxy } from '../src/tcp-proxy.js';

/**
 * An edge whose Redis connections drop while its sockets stay open: whatever was published meanwhile
 * reached no socket, and the clients (real pusher-js, never disconnected) would not know. When the edge is
 * back, each user channel resumes from the last event it sent: the missed events are replayed, or, when
 * Redis came back empty, `alarmcast:resume_failed` says so. The edge reaches a private redis-server through
 * a TCP proxy, so the test decides exactly when the edge is cut off; it writes to Redis directly meanwhile.
 */
describe('edge catching up after its Redis connection was lost', () => {
  let redisSrv: PrivateRedis;
  let proxy: TcpProxy;
  let prisma: PrismaClient;
  let dropDb: () => Promise<void>;
  let world: ProvisionResult;
  let edge: EdgeServer;
  let redis: Redis;
  let user: UserClient;
  const keys = new RedisKeys(uniqueRedisPrefix());
  let n = 0;

  beforeAll(async () => {
    redisSrv = await startPrivateRedis();
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: redisSrv.port });
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
            users: [
              { ref: 'op', email: 'op@a.test', name: 'op' },
              { ref: 'quiet', email: 'quiet@a.test', name: 'quiet' },
            ],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    edge = await startEdge(
      parseEdgeConfig({
        NODE_ENV: 'test',
        EDGE_PORT: '0',
        EDGE_INTERNAL_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        REDIS_PREFIX: keys.prefix,
        LOG_LEVEL: 'silent',
        PUSHER_APP_ID: APP.id,
        PUSHER_APP_KEY: APP.key,
        PUSHER_APP_SECRET: APP.secret,
        JWT_SECRET,
      }),
    );
    redis = createRedis(redisSrv.url, { name: 'e2e-reconnect' });
    redis.on('error', () => undefined); // the test restarts this Redis
    user = await connectUser(edge, world.users.op!.id);
  }, 60_000);
  afterAll(async () => {
    user?.disconnect();
    await edge?.close();
    redis?.disconnect();
    await proxy?.down();
    await redisSrv?.stop();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  /** What the resolver does: append to the user's log and publish; returns the alarm id. */
  const deliver = async (userId = world.users.op!.id): Promise<string> => {
    const id = `a${++n}`;
    const writer = new UserLogWriter(redis, keys, {
      retention: DEFAULT_RETENTION,
      deliveredTtlS: 60,
      node: 'test',
    });
    await writer.appendAndPublish(`e${n}`, 'App\\Events\\AlarmCreated', JSON.stringify({ alarm: { id } }), [
      userId,
    ]);
    return id;
  };
  /** What the client saw: alarm ids, and `failed:<reason>` for a resume_failed. */
  const seen = (): string[] =>
    user.received.map((e) =>
      e.event === RESUME_FAILED_EVENT
        ? `failed:${(e.data as unknown as { reason: string }).reason}`
        : e.data.alarm.id,
    );
  const edgeReady = async (): Promise<boolean> => (await fetch(`${edge.url}/readyz`)).status === 200;

  it('replays what was published while the edge was cut off, on sockets that stayed open', async () => {
    const before = await deliver();
    await vi.waitFor(() => expect(seen()).toEqual([before]), { timeout: 10_000 });
    await proxy.down();
    await vi.waitFor(async () => expect(await edgeReady()).toBe(false), { timeout: 10_000 });
    const missed = [await deliver(), await deliver()];
    await proxy.up();
    await vi.waitFor(() => expect(seen()).toEqual([before, ...missed]), { timeout: 15_000, interval: 50 });
    const live = await deliver();
    await vi.waitFor(() => expect(seen()).toEqual([before, ...missed, live]), { timeout: 10_000 });
    expect(user.pusher.connection.state).toBe('connected');
  }, 40_000);

  it('says resume_failed when Redis came back empty, then carries on live', async () => {
    const start = seen().length;
    const last = await deliver();
    await vi.waitFor(() => expect(seen().slice(start)).toEqual([last]), { timeout: 10_000 });
    const lastEventId = user.received.at(-1)!.data.event_id;
    await proxy.down();
    await vi.waitFor(async () => expect(await edgeReady()).toBe(false), { timeout: 10_000 });
    await deliver(); // lost with Redis
    await redisSrv.kill();
    await redisSrv.restart();
    await vi.waitFor(async () => expect(await redis.ping()).toBe('PONG'), { timeout: 10_000 });
    const recreated = await deliver();
    await proxy.up();
    await vi.waitFor(() => expect(seen().slice(start)).toEqual([last, 'failed:log_recreated', recreated]), {
      timeout: 15_000,
      interval: 50,
    });
    const failed = user.received.find((e) => e.event === RESUME_FAILED_EVENT)!;
    expect(failed.data).toEqual({ last_event_id: lastEventId, reason: 'log_recreated' });
    const live = await deliver();
    await vi.waitFor(
      () => expect(seen().slice(start)).toEqual([last, 'failed:log_recreated', recreated, live]),
      {
        timeout: 10_000,
      },
    );
  }, 40_000);

  it('replays what was missed to a socket that had received nothing yet, from where its log stood at subscribe', async () => {
    const quietId = world.users.quiet!.id;
    const old = await deliver(quietId); // in the log before the socket subscribes: not this socket's to see
    const quiet = await connectUser(edge, quietId);
    try {
      // The edge reads the log's position right after SUBSCRIBE; give it that round trip.
      await new Promise((r) => setTimeout(r, 300));
      await proxy.down();
      await vi.waitFor(async () => expect(await edgeReady()).toBe(false), { timeout: 10_000 });
      const missed = await deliver(quietId);
      await proxy.up();
      await vi.waitFor(() => expect(quiet.received.map((e) => e.data.alarm?.id)).toEqual([missed]), {
        timeout: 15_000,
        interval: 50,
      });
      expect(quiet.received.map((e) => e.data.alarm?.id)).not.toContain(old);
      const live = await deliver(quietId);
      await vi.waitFor(() => expect(quiet.received.map((e) => e.data.alarm?.id)).toEqual([missed, live]), {
        timeout: 10_000,
      });
    } finally {
      quiet.disconnect();
    }
  }, 40_000);
});
