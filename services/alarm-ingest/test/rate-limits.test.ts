import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createRedis } from '@alarmcast/redis';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/**
 * "Abuse is bounded": limits shared by two ingest processes through Redis, a 10x abusive client limited
 * while a well-behaved one on the same service is not, per token, per IP (TRUST_PROXY set so clients can be
 * told apart on 127.0.0.1), per user, on failed authentications, and failing open without Redis.
 */
const JWT_SECRET = 'rate-limit-test-jwt-secret-0123456789abcdef';
const TOKEN_LIMIT = 20;
const IP_LIMIT = 40;

const graph = {
  tenants: [
    {
      ref: 'a',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [
        { ref: 'u1', email: 'u1@a.example', name: 'U1' },
        { ref: 'u2', email: 'u2@a.example', name: 'U2' },
      ],
      devices: [{ ref: 'da', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A1' }],
      collectorTokens: ['abuser', 'polite', 'n1', 'n2', 'n3', 'n4', 'other'].map((ref) => ({
        ref,
        name: ref,
      })),
    },
  ],
};

const alarm = (deviceId: number) => ({
  deviceId,
  alarmIdentifier: `id-${randomUUID()}`,
  eventType: 'Communications Alarm',
  probableCause: 'Loss of signal',
  specificProblem: 'WAN link down',
  perceivedSeverity: 'Minor',
});

/** Starts `fn` `ratePerS` times a second for `durationMs`, and collects every result. */
async function paced<T>(ratePerS: number, durationMs: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const started = Date.now();
  const runs: Promise<T>[] = [];
  for (let i = 0; ; i++) {
    const at = started + (i * 1000) / ratePerS;
    if (at - started >= durationMs) break;
    const delay = at - Date.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    runs.push(fn(i));
  }
  return Promise.all(runs);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
}

describe('rate limits', () => {
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingests: IngestServer[] = [];
  let dbUrl: string;
  let dropDb: () => Promise<void>;
  const prefix = uniqueRedisPrefix();

  const config = (over: Record<string, string> = {}) =>
    parseIngestConfig({
      INGEST_PORT: '0',
      INGEST_INTERNAL_PORT: '0',
      DATABASE_URL: dbUrl,
      REDIS_URL: testEnv().redisUrl,
      REDIS_PREFIX: prefix,
      LOG_LEVEL: 'silent',
      JWT_SECRET,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_ALARMS_PER_TOKEN: String(TOKEN_LIMIT),
      RATE_LIMIT_ALARMS_PER_IP: String(IP_LIMIT),
      RATE_LIMIT_USER_API_PER_USER: '5',
      RATE_LIMIT_AUTH_FAILURES_PER_IP: '10',
      ...over,
    });

  const post = async (token: string, ip: string, server = ingests[0]!): Promise<Answer> => {
    const res = await fetch(`${server.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        'x-forwarded-for': ip,
      },
      body: JSON.stringify(alarm(world.devices.da!.id)),
    });
    const body = (await res.json()) as { error?: { code: string } };
    return { status: res.status, code: body.error?.code, retryAfter: res.headers.get('retry-after') };
  };
  const token = (ref: string) => world.collectorTokens[ref]!.token;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    ingests = [await startIngest(config()), await startIngest(config())];
  });
  afterAll(async () => {
    for (const i of ingests) await i.close();
    await prisma.$disconnect();
    await dropDb();
  });

  it('limits a client sending 10x its token limit across two processes, and not a polite one beside it', async () => {
    const started = Date.now();
    const [abusive, polite] = await Promise.all([
      // 10x the limit, spread over both processes: only the shared count in Redis stops it.
      paced(TOKEN_LIMIT * 10, 2000, (i) => post(token('abuser'), '10.0.0.1', ingests[i % 2])),
      paced(TOKEN_LIMIT / 2, 2000, (i) => post(token('polite'), '10.0.0.2', ingests[i % 2])),
    ]);
    expect(polite.map((a) => a.status)).toEqual(polite.map(() => 202));
    const accepted = abusive.filter((a) => a.status === 202).length;
    const refused = abusive.filter((a) => a.status === 429);
    expect(accepted + refused.length).toBe(abusive.length);
    // The run touches at most this many one-second windows (2 s, more on a loaded machine); counted per
    // process instead of shared, twice as many would pass.
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    expect(accepted).toBeGreaterThanOrEqual(TOKEN_LIMIT);
    expect(accepted).toBeLessThanOrEqual(windows * TOKEN_LIMIT);
    expect(refused.length).toBeGreaterThan(abusive.length / 2);
    for (const r of refused) {
      expect(r.code).toBe('rate_limited');
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    const metrics = await (await fetch(`${ingests[0]!.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rate_limited_total\{limit="alarms-token"[^}]*\} [1-9]/m);
  });

  it('limits one IP that spreads over several tokens, each under its own limit', async () => {
    const tokens = ['n1', 'n2', 'n3', 'n4'].map(token);
    // 4 tokens at 15/s each: 60/s from one IP, over its 40 while no token is over 20.
    const started = Date.now();
    const answers = await paced(60, 2000, (i) => post(tokens[i % 4]!, '10.0.0.3'));
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.status === 202).length).toBeLessThanOrEqual(windows * IP_LIMIT);
    // Another IP with another token is untouched meanwhile.
    expect((await post(token('other'), '10.0.0.4')).status).toBe(202);
  });

  it('limits failed authentications per IP (429 even with a good token once over), and no other IP', async () => {
    const bad = Array.from({ length: 15 }, () => generateCollectorToken());
    const answers: Answer[] = [];
    for (const t of bad) answers.push(await post(t, '10.0.0.5'));
    expect(answers.slice(0, 10).map((a) => a.status)).toEqual(Array(10).fill(401));
    expect(answers.slice(10).map((a) => a.code)).toEqual(Array(5).fill('rate_limited'));
    // The other process knows from Redis once this IP fails there: one more failure, then 429.
    expect((await post(bad[0]!, '10.0.0.5', ingests[1])).status).toBe(429);
    expect((await post(token('other'), '10.0.0.5')).status).toBe(429);
    expect((await post(token('other'), '10.0.0.6')).status).toBe(202);
  });

  it('remembers an unknown token as unknown for COLLECTOR_TOKEN_NEGATIVE_CACHE_S, without asking Postgres', async () => {
    const ingest = await startIngest(
      config({ COLLECTOR_TOKEN_NEGATIVE_CACHE_S: '2', RATE_LIMIT_AUTH_FAILURES_PER_IP: '0' }),
    );
    try {
      const secret = generateCollectorToken();
      expect((await post(secret, '10.0.1.1', ingest)).status).toBe(401);
      // Created after the failed attempt: still refused from the cache, then accepted once it expires.
      await prisma.collectorToken.create({
        data: { name: 'late', tokenHash: hashCollectorToken(secret), tenantId: world.tenants.a!.id },
      });
      expect((await post(secret, '10.0.1.1', ingest)).status).toBe(401);
      const started = Date.now();
      await vi.waitFor(async () => expect((await post(secret, '10.0.1.1', ingest)).status).toBe(202), {
        timeout: 5000,
        interval: 100,
      });
      expect(Date.now() - started).toBeGreaterThan(1000);
    } finally {
      await ingest.close();
    }
  });

  it('limits the user API per user, not another user', async () => {
    const get = async (ref: string) =>
      (
        await fetch(`${ingests[0]!.url}/v1/alarms?limit=1`, {
          headers: {
            authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[ref]!.id)}`,
            'x-forwarded-for': '10.0.2.1',
          },
        })
      ).status;
    const burst = await Promise.all(Array.from({ length: 20 }, () => get('u1')));
    expect(burst.filter((s) => s === 429).length).toBeGreaterThanOrEqual(10);
    expect(burst.filter((s) => s === 200).length).toBeLessThanOrEqual(10);
    expect(await get('u2')).toBe(200);
  });

  it('fails open while Redis is away: alarms are still accepted, and the let-through is counted', async () => {
    // A private Redis this test can stop and start again on the same port.
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'ac-rl-redis-'));
    const startRedis = () =>
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], {
        stdio: 'ignore',
      });
    let redisProc = startRedis();
    // Resolves once the server answers: ioredis keeps the PING queued while it reconnects.
    const ready = async () => {
      const probe = createRedis(`redis://127.0.0.1:${port}`, { name: 'probe' });
      probe.on('error', () => undefined);
      try {
        await probe.ping();
      } finally {
        probe.disconnect();
      }
    };
    await ready();
    const blind = await startIngest(config({ REDIS_URL: `redis://127.0.0.1:${port}` }));
    try {
      expect((await post(token('other'), '10.0.3.1', blind)).status).toBe(202);
      const exited = new Promise((r) => redisProc.once('exit', r));
      redisProc.kill('SIGKILL');
      await exited;
      for (let i = 0; i < TOKEN_LIMIT + 5; i++) {
        expect((await post(token('other'), '10.0.3.1', blind)).status).toBe(202);
      }
      const metrics = await (await fetch(`${blind.internalUrl}/metrics`)).text();
      expect(metrics).toMatch(/^rate_limit_fail_open_total\{limit="alarms-token"[^}]*\} [1-9]/m);
      // Back, so that the drain on close can hand the committed events to the queue.
      redisProc = startRedis();
      await ready();
    } finally {
      await blind.close();
      redisProc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
