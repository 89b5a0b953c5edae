import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/**
 * Admission control against real Postgres and Redis. No resolver runs here, so every accepted alarm's
 * broadcast job stays waiting: exactly the backlog that must make the ingest refuse more.
 */
describe('admission control', () => {
  let prisma: PrismaClient;
  let dropDb: () => Promise<void>;
  let dbUrl: string;
  let token: string;
  let deviceId: number;
  const servers: IngestServer[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    ({ url: dbUrl, drop: dropDb } = db);
    prisma = createPrismaClient(db.url);
    const world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'a',
            name: 'A',
            slug: 'a',
            devices: [{ ref: 'd', oui: '00D09E', productClass: 'PC', serialNumber: 'S1' }],
            collectorTokens: [{ ref: 't', name: 't' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    token = world.collectorTokens.t!.token;
    deviceId = world.devices.d!.id;
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await prisma.$disconnect();
    await dropDb();
  });

  const start = async (env: Record<string, string>) => {
    const server = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: dbUrl,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: uniqueRedisPrefix(),
        LOG_LEVEL: 'silent',
        ...env,
      }),
    );
    servers.push(server);
    return server;
  };
  const post = (server: IngestServer, n: number) =>
    fetch(`${server.url}/v1/alarms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        deviceId,
        alarmIdentifier: `adm-${n}-${Math.random()}`,
        eventType: 'e',
        probableCause: 'p',
        specificProblem: '',
        perceivedSeverity: 'Minor',
      }),
    });

  it('refuses with 503 overloaded and Retry-After once the broadcast backlog reaches its limit', async () => {
    const server = await start({ ADMISSION_MAX_QUEUE_WAITING: '20', ADMISSION_MAX_DB_WAITING: '0' });
    const statuses: number[] = [];
    const deadline = Date.now() + 15_000;
    let refused: Response | undefined;
    for (let n = 0; !refused && Date.now() < deadline; n++) {
      const res = await post(server, n);
      statuses.push(res.status);
      if (res.status === 503) refused = res;
      else await new Promise((r) => setTimeout(r, 20)); // let the sampler see the backlog
    }
    expect(refused?.headers.get('retry-after')).toBe('1');
    expect(((await refused!.json()) as { error: { code: string } }).error.code).toBe('overloaded');
    // It accepted about the limit first (the backlog is sampled every 500 ms), and nothing it accepted is lost.
    const accepted = statuses.filter((s) => s === 202).length;
    expect(accepted).toBeGreaterThanOrEqual(20);
    expect(await prisma.outboxEvent.count()).toBeGreaterThanOrEqual(accepted);
    const metrics = await (await fetch(`${server.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/ingest_admission_rejected_total\{reason="queue_backlog"[^}]*\} [1-9]/);
  });

  it('refuses what would wait for a Postgres connection, and commits every request it accepted', async () => {
    const server = await start({
      DB_POOL_MAX: '1',
      ADMISSION_MAX_DB_WAITING: '2',
      ADMISSION_MAX_QUEUE_WAITING: '0',
    });
    const before = await prisma.outboxEvent.count();
    const answers = await Promise.all(Array.from({ length: 60 }, (_, n) => post(server, n)));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 202 || s === 503)).toBe(true);
    const overloaded = answers.filter((r) => r.status === 503);
    for (const r of overloaded)
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('overloaded');
    expect((await prisma.outboxEvent.count()) - before).toBe(statuses.filter((s) => s === 202).length);
  });
});
