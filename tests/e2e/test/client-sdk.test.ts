import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AlarmcastClient, type AlarmEvent, type ConnectionState } from '@alarmcast/client';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import {
  createTestDatabase,
  redisTopologies,
  startRedisTopology,
  testEnv,
  uniqueRedisPrefix,
  type RedisTopology,
} from '@alarmcast/testing';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { APP, JWT_SECRET, startStack, type Stack, raiseAlarm } from '../src/stack.js';

/**
 * The client SDK through real disconnects: the edge it is connected to goes away (drained with 4200) and a
 * new one comes up on the same address while alarms keep being raised; the client reconnects, resumes
 * from its last event id and ends with every alarm exactly once, in order.
 */
describe.each(redisTopologies())(
  'client SDK resume across an edge restart on Redis topology %s',
  (topologyName) => {
    let topology: RedisTopology;
    let prisma: PrismaClient;
    let stack: Stack;
    let world: ProvisionResult;
    let dropDb: () => Promise<void>;
    let dbUrl: string;
    const prefix = uniqueRedisPrefix();
    const extraEdges: EdgeServer[] = [];

    beforeAll(async () => {
      topology = await startRedisTopology(topologyName, testEnv().redisUrl);
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
        redisPrefix: prefix,
      });
    });
    afterAll(async () => {
      for (const e of extraEdges) await e.close();
      await stack.close();
      await prisma.$disconnect();
      await dropDb();
      await topology?.stop();
    });

    const raise = (n: number): Promise<string> =>
      raiseAlarm(stack.ingest.url, world.collectorTokens.c!.token, world.devices.cpe!.id, 'sdk', n);

    it('ends with the full ordered sequence, no duplicates', async () => {
      const edge = stack.edges[0]!;
      const port = edge.port;
      const userId = world.users.op!.id;
      const client = new AlarmcastClient({
        key: APP.key,
        wsHost: '127.0.0.1',
        wsPort: port,
        authEndpoint: `${edge.url}/broadcasting/auth`,
        token: await signUserJwt(JWT_SECRET, userId),
        userId,
        minBackoffMs: 100,
        maxBackoffMs: 500,
      });
      const events: AlarmEvent[] = [];
      const states: ConnectionState[] = [];
      client.on('alarm', (e) => events.push(e));
      client.on('state', (s) => states.push(s));
      await vi.waitFor(() => expect(states.at(-1)).toBe('live'), { timeout: 10_000 });

      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await raise(i));
      await vi.waitFor(() => expect(events).toHaveLength(3));

      // The edge goes away; alarms keep coming while the client has no socket.
      await edge.close();
      await vi.waitFor(() => expect(states.at(-1)).not.toBe('live'));
      for (let i = 3; i < 8; i++) ids.push(await raise(i));
      const replacement = await startEdge(
        parseEdgeConfig({
          NODE_ENV: 'test',
          EDGE_PORT: String(port),
          EDGE_INTERNAL_PORT: '0',
          DATABASE_URL: dbUrl,
          ...topology.env,
          REDIS_PREFIX: prefix,
          LOG_LEVEL: 'silent',
          PUSHER_APP_ID: APP.id,
          PUSHER_APP_KEY: APP.key,
          PUSHER_APP_SECRET: APP.secret,
          JWT_SECRET,
        }),
      );
      extraEdges.push(replacement);
      await vi.waitFor(() => expect(states.at(-1)).toBe('live'), { timeout: 15_000, interval: 50 });
      for (let i = 8; i < 10; i++) ids.push(await raise(i));

      await vi.waitFor(() => expect(events.length).toBeGreaterThanOrEqual(10), { timeout: 10_000 });
      expect(events.map((e) => e.alarm.id)).toEqual(ids);
      expect(new Set(events.map((e) => e.eventId)).size).toBe(10);
      expect(client.position).toBe(events.at(-1)!.eventId);
      expect(states).toContain('reconnecting');
      client.close();
    });
  },
);
