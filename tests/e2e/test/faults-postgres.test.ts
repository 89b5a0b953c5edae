import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import { AlarmcastClient, type AlarmEvent } from '@alarmcast/client';
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
import { APP, JWT_SECRET } from '../src/stack.js';
import type { SpawnedService } from '../src/spawned-stack.js';
import {
  spawnEdgeProcess,
  spawnIngestProcess,
  spawnResolverProcess,
  stopService,
} from '../src/fault-helpers.js';
import { TcpProxy } from '../src/tcp-proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Postgres away for 10 s under a steady stream of alarms. The services reach Postgres through a TCP proxy
 * that the test takes down (every connection cut, new ones refused: what a restart looks like from the
 * services) and brings back. Collectors retry a 503 with the same Idempotency-Key, as a collector should.
 * Outcome required: every alarm ends acknowledged exactly once and reaches every user exactly once.
 */
describe.each(redisTopologies())(
  'fault: Postgres unreachable for 10 s under load on Redis topology %s',
  (topologyName) => {
    let topology: RedisTopology;
    let proxy: TcpProxy;
    let prisma: PrismaClient;
    let dropDb: () => Promise<void>;
    let world: ProvisionResult;
    const services: SpawnedService[] = [];

    beforeAll(async () => {
      topology = await startRedisTopology(topologyName, testEnv().redisUrl);
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
              users: ['p0', 'p1'].map((r) => ({ ref: r, email: `${r}@a.test`, name: r })),
              devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'PC', serialNumber: 'S1' }],
              collectorTokens: [{ ref: 'c', name: 'c' }],
            },
          ],
        },
        { hashToken: hashCollectorToken, newToken: generateCollectorToken },
      );
      const url = new URL(db.url);
      proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5432) });
      url.port = String(proxy.port);
      const env = {
        databaseUrl: url.toString(),
        redisUrl: topology.env.REDIS_URL,
        redisClusterNodes: topology.env.REDIS_CLUSTER_NODES,
        redisPrefix: uniqueRedisPrefix(),
        // Hundreds of reports retried every 200 ms with one token are over its rate limit (429), which has
        // its own test; this one is about what Postgres being away answers.
        extra: { RATE_LIMIT_ALARMS_PER_TOKEN: '0', RATE_LIMIT_ALARMS_PER_IP: '0' },
      };
      services.push(await spawnEdgeProcess(env, 'edge'));
      services.push(await spawnResolverProcess(env, 'resolver'));
      services.push(await spawnIngestProcess(env));
    }, 60_000);

    afterAll(async () => {
      await proxy?.up().catch(() => undefined);
      await Promise.all(services.map((s) => stopService(s)));
      await proxy?.down();
      await prisma.$disconnect();
      await dropDb();
      await topology?.stop();
    });

    it('acknowledges every alarm once (503 + Retry-After meanwhile) and delivers each to every user once', async () => {
      const [edge, , ingest] = services as [SpawnedService, SpawnedService, SpawnedService];
      const clients = await Promise.all(
        ['p0', 'p1'].map(async (ref) => {
          const userId = world.users[ref]!.id;
          const client = new AlarmcastClient({
            key: APP.key,
            wsHost: '127.0.0.1',
            wsPort: edge.port,
            authEndpoint: `${edge.url}/broadcasting/auth`,
            token: await signUserJwt(JWT_SECRET, userId),
            userId,
            minBackoffMs: 100,
            maxBackoffMs: 500,
          });
          const events: AlarmEvent[] = [];
          const states: string[] = [];
          client.on('alarm', (e) => events.push(e));
          client.on('state', (st) => states.push(st));
          return { ref, client, events, states };
        }),
      );
      // Channel auth needs Postgres too: connect while it is up.
      await vi.waitFor(() => {
        for (const c of clients) expect(c.states.at(-1)).toBe('live');
      });

      let unavailable = 0;
      let withoutRetryAfter = 0;
      const otherFailures = new Map<string, number>();
      const acknowledged = new Map<string, string>(); // alarm identifier -> alarm id
      /** One collector report, retried with its Idempotency-Key until acknowledged. */
      const report = async (n: number): Promise<void> => {
        const key = randomUUID();
        const body = JSON.stringify({
          deviceId: world.devices.cpe!.id,
          alarmIdentifier: `pg-${n}`,
          eventType: 'Communications Alarm',
          probableCause: 'Loss of signal',
          specificProblem: `n ${n}`,
          perceivedSeverity: 'Major',
        });
        for (let attempt = 0; attempt < 200; attempt++) {
          const res = await fetch(`${ingest.url}/v1/alarms`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${world.collectorTokens.c!.token}`,
              'content-type': 'application/json',
              'idempotency-key': key,
            },
            body,
            signal: AbortSignal.timeout(15_000),
          }).catch(() => null);
          if (res && (res.status === 202 || res.status === 200)) {
            acknowledged.set(`pg-${n}`, ((await res.json()) as { id: string }).id);
            return;
          }
          if (res?.status === 503) {
            unavailable++;
            if (!res.headers.get('retry-after')) withoutRetryAfter++;
          } else {
            otherFailures.set(
              String(res?.status ?? 'network'),
              (otherFailures.get(String(res?.status ?? 'network')) ?? 0) + 1,
            );
          }
          await res?.text().catch(() => undefined);
          // A collector would wait Retry-After seconds; the test retries sooner to stay short.
          await sleep(200);
        }
      };

      const reports: Promise<void>[] = [];
      const started = Date.now();
      let n = 0;
      let outageAt = 0;
      let outageMs = 0;
      const outage = (async () => {
        await sleep(2000);
        outageAt = Date.now();
        await proxy.down();
        await sleep(10_000);
        await proxy.up();
        outageMs = Date.now() - outageAt;
      })();
      // 20 alarms/s for 16 s: before, during and after the outage.
      while (Date.now() - started < 16_000) {
        reports.push(report(n++));
        await sleep(50);
      }
      await outage;
      await Promise.all(reports);

      const sent = n;
      await vi.waitFor(
        () => {
          for (const c of clients)
            expect(new Set(c.events.map((e) => e.alarm.id)).size).toBeGreaterThanOrEqual(sent);
        },
        { timeout: 30_000, interval: 200 },
      );
      // Give anything duplicated a moment to show up, then judge.
      await sleep(500);
      const counts = clients.map((c) => {
        const ids = c.events.map((e) => e.alarm.id);
        const unique = new Set(ids);
        const lost = [...acknowledged.values()].filter((id) => !unique.has(id)).length;
        return { ref: c.ref, delivered: unique.size, dup: ids.length - unique.size, lost };
      });
      const pending = await prisma.outboxEvent.count({ where: { broadcastAt: null } });
      const alarmsInDb = await prisma.alarm.count();
      console.log(
        `[fault postgres outage ${(outageMs / 1000).toFixed(1)}s] sent=${sent} acknowledged=${acknowledged.size} ` +
          `503=${unavailable} 503-without-Retry-After=${withoutRetryAfter} other-failures=${JSON.stringify(Object.fromEntries(otherFailures))} ` +
          `alarms-in-db=${alarmsInDb} outbox-not-broadcast=${pending} | ` +
          counts.map((c) => `${c.ref}: delivered=${c.delivered} dup=${c.dup} lost=${c.lost}`).join(' | '),
      );
      expect(acknowledged.size).toBe(sent);
      // While Postgres is away every refusal is a 503 with Retry-After, never a 500.
      expect(Object.fromEntries(otherFailures)).toEqual({});
      expect(unavailable).toBeGreaterThan(0);
      expect(withoutRetryAfter).toBe(0);
      // Retried reports were replayed, never applied twice.
      expect(alarmsInDb).toBe(sent);
      expect(pending).toBe(0);
      for (const c of counts) expect(c).toMatchObject({ delivered: sent, dup: 0, lost: 0 });
      for (const c of clients) c.client.close();
    }, 90_000);
  },
);
