import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AlarmcastClient,
  NO_POSITION,
  type AlarmEvent,
  type ConnectionState,
  type ResyncEvent,
} from '@alarmcast/client';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, shardsFor, createRedisClient, type RedisConnection } from '@alarmcast/redis';
import {
  createTestDatabase,
  redisTopologies,
  startRedisTopology,
  testEnv,
  uniqueRedisPrefix,
  type RedisTopology,
} from '@alarmcast/testing';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { APP, JWT_SECRET, startStack, type Pusher, type Stack, raiseAlarm } from '../src/stack.js';

/**
 * A client that has no position (it has not received an event yet) cannot ask for a replay when it comes
 * back, so an alarm raised while it was away would never reach it, and no server could tell. The SDK
 * knows: resubscribed without a position, it reloads through `GET /v1/alarms` (reason `no_position`).
 */
describe.each(redisTopologies())(
  'client SDK resubscribing without a position on Redis topology %s',
  (topologyName) => {
    let topology: RedisTopology;
    let prisma: PrismaClient;
    let stack: Stack;
    let world: ProvisionResult;
    let dropDb: () => Promise<void>;
    let dbUrl: string;
    let redis: RedisConnection;
    let replacement: EdgeServer | undefined;
    let client: AlarmcastClient | undefined;
    let keys: RedisKeys;

    beforeAll(async () => {
      topology = await startRedisTopology(topologyName, testEnv().redisUrl);
      keys = new RedisKeys(uniqueRedisPrefix(), { shards: shardsFor(topology.target) });
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
      stack = await startStack({
        databaseUrl: db.url,
        redisUrl: topology.env.REDIS_URL,
        redisClusterNodes: topology.env.REDIS_CLUSTER_NODES,
        redisPrefix: keys.prefix,
      });
      redis = createRedisClient(topology.target, { name: 'e2e-no-position' });
    }, 60_000);
    afterAll(async () => {
      client?.close();
      await replacement?.close();
      await stack?.close();
      redis?.disconnect();
      await prisma?.$disconnect();
      await dropDb?.();
      await topology?.stop();
    });

    const raise = (n: number): Promise<string> =>
      raiseAlarm(stack.ingest.url, world.collectorTokens.c!.token, world.devices.cpe!.id, 'quiet', n);

    it('reloads through GET /v1/alarms when it comes back with nothing to resume from', async () => {
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
      client.on('alarm', (e) => events.push(e));
      client.on('state', (s) => states.push(s));
      client.on('resyncRequired', ({ reason }) => required.push(reason));
      client.on('resync', (r) => resyncs.push(r));
      const subscribed = () =>
        (
          (client as unknown as { pusher: Pusher }).pusher.channel(`private-user.${userId}`) as
            { subscribed: boolean } | undefined
        )?.subscribed === true;
      await vi.waitFor(() => expect(states.at(-1) === 'live' && subscribed()).toBe(true), {
        timeout: 10_000,
      });
      expect(client.position).toBeNull();

      // Away before any event; an alarm is raised meanwhile.
      await edge.close();
      await vi.waitFor(() => expect(states.at(-1)).not.toBe('live'));
      const missed = await raise(0);
      await vi.waitFor(async () => expect(await redis.exists(keys.userLog(userId))).toBe(1), {
        timeout: 10_000,
      });
      replacement = await startEdge(
        parseEdgeConfig({
          NODE_ENV: 'test',
          EDGE_PORT: String(port),
          EDGE_INTERNAL_PORT: '0',
          DATABASE_URL: dbUrl,
          ...topology.env,
          REDIS_PREFIX: keys.prefix,
          LOG_LEVEL: 'silent',
          PUSHER_APP_ID: APP.id,
          PUSHER_APP_KEY: APP.key,
          PUSHER_APP_SECRET: APP.secret,
          JWT_SECRET,
        }),
      );
      await vi.waitFor(() => expect(resyncs).toHaveLength(1), { timeout: 15_000, interval: 50 });
      expect(required).toEqual([NO_POSITION]);
      expect(resyncs[0]!.reason).toBe(NO_POSITION);
      expect(resyncs[0]!.alarms.map((a) => a.id)).toEqual([missed]);
      expect(events).toEqual([]);

      // Live again, and from the first event on it has a position to resume from.
      const live = await raise(1);
      await vi.waitFor(() => expect(events.map((e) => e.alarm.id)).toEqual([live]), { timeout: 10_000 });
      expect(client.position).toBe(events[0]!.eventId);
      expect(required).toHaveLength(1);
    }, 60_000);
  },
);
