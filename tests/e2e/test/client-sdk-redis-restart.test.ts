import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AlarmcastClient, type AlarmEvent, type ConnectionState, type ResyncEvent } from '@alarmcast/client';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult, PubSubEnvelope } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, compareStreamIds, createRedis, readUserLogAfter, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { APP, JWT_SECRET, startStack, type Pusher, type Stack, raiseAlarm } from '../src/stack.js';
import { startPrivateRedis, type PrivateRedis } from '../src/fault-helpers.js';

/**
 * The SDK when Redis restarts empty while it is away: an alarm delivered into the user's log after the
 * client's last event is lost with Redis, and later alarms recreate the log. The resume must not replay the
 * new log as if it were the old one (the lost alarm would be gone without a word): the edge answers
 * `alarmcast:resume_failed` (`log_recreated`), the SDK reloads through `GET /v1/alarms`, and the lost alarm
 * comes back through the reload while live delivery carries on. Ingest, resolver and edge run in this
 * process on a private redis-server that the test kills and starts again, empty, on the same port.
 *
 * Single Redis only: a Redis Cluster node never comes back empty in its master's place (a master's crash is
 * a failover to its replica, which has what was replicated). The cluster's equivalent, a resume across a
 * master's crash, is fault 1 of faults.test.ts on the cluster (an SDK client away across the failover
 * resumes from its stored position) and cluster-failover.test.ts.
 */
describe('client SDK across a Redis restart that empties the logs', () => {
  let redisSrv: PrivateRedis;
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  let dbUrl: string;
  let replacement: EdgeServer | undefined;
  let client: AlarmcastClient | undefined;
  const keys = new RedisKeys(uniqueRedisPrefix());

  beforeAll(async () => {
    redisSrv = await startPrivateRedis();
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    dbUrl = db.url;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'A',
            slug: 'a',
            users: [{ ref: 'op', email: 'op@a.test', name: 'op' }],
            devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'PC', serialNumber: 'S1' }],
            collectorTokens: [{ ref: 'c', name: 'c' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    stack = await startStack({ databaseUrl: db.url, redisUrl: redisSrv.url, redisPrefix: keys.prefix });
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await replacement?.close();
    await stack?.close();
    await redisSrv?.stop();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const raise = (n: number): Promise<string> =>
    raiseAlarm(stack.ingest.url, world.collectorTokens.c!.token, world.devices.cpe!.id, 'restart', n);

  /**
   * Alarm ids in the user's log on the private Redis, in log order ('0-0' is no entry of any log, so the
   * gap is not null, but every event the log holds is returned).
   */
  const logged = async (redis: Redis, userId: number): Promise<string[]> =>
    (await readUserLogAfter(redis, keys, userId, '0-0')).events.map(
      (e) => (JSON.parse(e.data) as { alarm: { id: string } }).alarm.id,
    );

  const notBroadcast = async (): Promise<number> => {
    const [row] = await prisma.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM outbox_events WHERE broadcast_at IS NULL`;
    return Number(row!.n);
  };

  it('gets resume_failed (log_recreated), reloads through GET /v1/alarms, and keeps receiving live', async () => {
    const edge = stack.edges[0]!;
    const port = edge.port;
    const userId = world.users.op!.id;
    client = new AlarmcastClient({
      key: APP.key,
      wsHost: '127.0.0.1',
      wsPort: port,
      authEndpoint: `${edge.url}/broadcasting/auth`,
      token: await signUserJwt(JWT_SECRET, userId),
      userId,
      minBackoffMs: 100,
      maxBackoffMs: 500,
      apiUrl: stack.ingest.url,
    });
    const events: AlarmEvent[] = [];
    const states: ConnectionState[] = [];
    const required: string[] = [];
    const resyncs: ResyncEvent[] = [];
    /** what the application saw, in order: alarm ids and `resync` */
    const timeline: string[] = [];
    client.on('alarm', (e) => {
      events.push(e);
      timeline.push(e.alarm.id);
    });
    client.on('state', (s) => states.push(s));
    client.on('resyncRequired', ({ reason }) => required.push(reason));
    client.on('resync', (r) => {
      resyncs.push(r);
      timeline.push('resync');
    });
    // 'live' is the socket; the channel's subscription must be in place too, or the first alarm may precede it.
    const subscribed = () =>
      (
        (client as unknown as { pusher: Pusher }).pusher.channel(`private-user.${userId}`) as
          { subscribed: boolean } | undefined
      )?.subscribed === true;
    await vi.waitFor(() => expect(states.at(-1) === 'live' && subscribed()).toBe(true), {
      timeout: 10_000,
    });

    const seen = [await raise(0), await raise(1)];
    await vi.waitFor(() => expect(events.map((e) => e.alarm.id)).toEqual(seen), { timeout: 10_000 });
    const position = client.position;

    // The client goes away; meanwhile an alarm is delivered into its log, and only there.
    await edge.close();
    await vi.waitFor(() => expect(states.at(-1)).not.toBe('live'));
    const lost = await raise(2);
    const redis = createRedis(redisSrv.url, { name: 'e2e-restart' });
    try {
      await vi.waitFor(async () => expect(await logged(redis, userId)).toContain(lost), { timeout: 10_000 });
      await vi.waitFor(async () => expect(await notBroadcast()).toBe(0), { timeout: 10_000 });

      // Redis dies and comes back empty: the log (and the lost alarm in it) is gone.
      await redisSrv.kill();
      await redisSrv.restart();
      // A later alarm recreates the log, with ids after the client's position.
      const after = await raise(3);
      await vi.waitFor(async () => expect(await logged(redis, userId)).toEqual([after]), {
        timeout: 20_000,
        interval: 100,
      });
      const [[firstId]] = (await redis.xrange(keys.userLog(userId), '-', '+')) as [[string, string[]]];
      expect(compareStreamIds(firstId, position!)).toBeGreaterThan(0);

      replacement = await startEdge(
        parseEdgeConfig({
          NODE_ENV: 'test',
          EDGE_PORT: String(port),
          EDGE_INTERNAL_PORT: '0',
          DATABASE_URL: dbUrl,
          REDIS_URL: redisSrv.url,
          REDIS_PREFIX: keys.prefix,
          LOG_LEVEL: 'silent',
          PUSHER_APP_ID: APP.id,
          PUSHER_APP_KEY: APP.key,
          PUSHER_APP_SECRET: APP.secret,
          JWT_SECRET,
        }),
      );
      await vi.waitFor(() => expect(states.at(-1)).toBe('live'), { timeout: 15_000, interval: 50 });

      // Told, not silently replayed; the reload brings the lost alarm back.
      await vi.waitFor(() => expect(resyncs).toHaveLength(1), { timeout: 15_000, interval: 50 });
      expect(required).toEqual(['log_recreated']);
      expect(resyncs[0]!.reason).toBe('log_recreated');
      const reloaded = resyncs[0]!.alarms.map((a) => a.id);
      expect(reloaded).toContain(lost);
      expect([...reloaded].sort()).toEqual([...seen, lost, after].sort());
      // What the new log holds is replayed after the failure, and reaches the application after the
      // reloaded list (the SDK holds it meanwhile); the lost alarm never came live.
      await vi.waitFor(() => expect(events.map((e) => e.alarm.id)).toEqual([...seen, after]));
      expect(timeline).toEqual([...seen, 'resync', after]);

      // Live delivery goes on, from the position of the log the client is now on.
      const live = await raise(4);
      await vi.waitFor(() => expect(events.map((e) => e.alarm.id)).toEqual([...seen, after, live]), {
        timeout: 10_000,
      });
      const newLog = await redis.xrange(keys.userLog(userId), '-', '+');
      expect(client.position).toBe(newLog.at(-1)![0]);
      expect(required).toHaveLength(1);

      // A log whose ids restart lower (Redis restarted on a host whose clock went back) is not taken for
      // repeats, neither by the edge nor by the SDK.
      const channel = `private-user.${userId}`;
      const lower = '1000-0';
      const envelope: PubSubEnvelope = {
        v: 1,
        node: 'e2e',
        type: 'event',
        channel,
        event: 'App\\Events\\AlarmCreated',
        eventId: lower,
        data: JSON.stringify({ alarm: { id: 'clock-back' }, event_id: lower }),
      };
      await redis.publish(keys.pubsubChannel(channel), JSON.stringify(envelope));
      await vi.waitFor(() => expect(events.at(-1)?.eventId).toBe(lower), { timeout: 10_000 });
      expect(client.position).toBe(lower);
    } finally {
      redis.disconnect();
    }
  }, 90_000);
});
