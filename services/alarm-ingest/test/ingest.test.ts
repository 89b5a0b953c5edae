import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue } from 'bullmq';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { BROADCAST_QUEUE, broadcastJobId, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

const graph = {
  tenants: [
    {
      ref: 'a',
      name: 'Tenant A',
      slug: 'tenant-a',
      devices: [{ ref: 'da', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A1' }],
      collectorTokens: [{ ref: 'ta', name: 'collector of A' }],
    },
    {
      ref: 'b',
      name: 'Tenant B',
      slug: 'tenant-b',
      devices: [{ ref: 'db', oui: '00D09E', productClass: 'HG8245', serialNumber: 'B1' }],
    },
  ],
  collectorTokens: [{ ref: 'platform', name: 'platform collector' }],
};

const alarm = (over: Record<string, unknown> = {}) => ({
  alarmIdentifier: 'wan-down',
  eventType: 'Communications Alarm',
  probableCause: 'Loss of signal',
  specificProblem: 'WAN link down',
  perceivedSeverity: 'Major',
  ...over,
});

describe('alarm-ingest', () => {
  let prisma: PrismaClient;
  let redis: Redis;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let queue: Queue;
  let dropDb: () => Promise<void>;
  let dbUrl: string;
  const prefix = uniqueRedisPrefix();
  const closers: (() => Promise<void>)[] = [];

  const config = (over: Record<string, string> = {}) =>
    parseIngestConfig({
      INGEST_PORT: '0',
      INGEST_INTERNAL_PORT: '0',
      DATABASE_URL: dbUrl,
      REDIS_URL: testEnv().redisUrl,
      REDIS_PREFIX: prefix,
      LOG_LEVEL: 'silent',
      OUTBOX_RELAY_INTERVAL_MS: '100',
      OUTBOX_RELAY_GRACE_MS: '300',
      ...over,
    });

  const post = (body: unknown, token: string | null, headers: Record<string, string> = {}, server = ingest) =>
    fetch(`${server.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    ingest = await startIngest(config());
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
    queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: new RedisKeys(prefix).bullPrefix });
  });
  afterAll(async () => {
    for (const c of closers) await c();
    await ingest.close();
    await queue.close();
    redis.disconnect();
    await prisma.$disconnect();
    await dropDb();
  });

  const tokenA = () => world.collectorTokens.ta!.token;
  const platform = () => world.collectorTokens.platform!.token;

  it('commits a device alarm in the device tenant, answers 202 and enqueues its broadcast', async () => {
    const res = await post(
      alarm({ deviceId: world.devices.da!.id, raisedAt: '2026-11-25T10:00:00+01:00' }),
      tokenA(),
    );
    expect(res.status).toBe(202);
    const body = (await res.json()) as { id: string; alarm: Record<string, unknown> };
    expect(body.alarm).toMatchObject({
      id: body.id,
      tenant_id: world.tenants.a!.id,
      device_id: world.devices.da!.id,
      alarm_identifier: 'wan-down',
      perceived_severity: 'Major',
      raised_at: '2026-11-25T09:00:00.000Z',
      cleared_at: null,
    });
    const row = await prisma.alarm.findUniqueOrThrow({ where: { id: BigInt(body.id) } });
    expect(row.tenantId).toBe(world.tenants.a!.id);
    const event = await prisma.outboxEvent.findFirstOrThrow({ where: { alarmId: BigInt(body.id) } });
    expect(event.kind).toBe('alarm.created');
    expect(event.payload).toEqual({ alarm: body.alarm });
    await vi.waitFor(async () => {
      const job = await queue.getJob(broadcastJobId(event.id.toString()));
      expect(job?.data).toEqual({ eventId: event.id.toString() });
      const marked = await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } });
      expect(marked.enqueuedAt).toBeInstanceOf(Date);
    });
  });

  it('accepts a device-less alarm for a tenant, and numeric-string ids', async () => {
    const res = await post(
      alarm({ tenantId: String(world.tenants.a!.id), alarmIdentifier: 'quota' }),
      platform(),
    );
    expect(res.status).toBe(202);
    const body = (await res.json()) as { alarm: { device_id: null; tenant_id: number } };
    expect(body.alarm.device_id).toBeNull();
    expect(body.alarm.tenant_id).toBe(world.tenants.a!.id);
  });

  it.each([
    ['no Authorization header', null, 401, 'unauthenticated'],
    ['an unknown token', 'act_' + 'x'.repeat(43), 401, 'unauthenticated'],
    ['a malformed header value', 'not a token!', 401, 'unauthenticated'],
  ])('refuses %s with 401', async (_name, token, status, code) => {
    const res = await post(alarm({ deviceId: world.devices.da!.id }), token);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it('refuses a revoked token', async () => {
    const secret = generateCollectorToken();
    await prisma.collectorToken.create({
      data: { name: 'old', tokenHash: hashCollectorToken(secret), revokedAt: new Date() },
    });
    const res = await post(alarm({ deviceId: world.devices.da!.id }), secret);
    expect(res.status).toBe(401);
  });

  it('refuses a token revoked after use once the cache window (COLLECTOR_TOKEN_CACHE_S, 5 s) has passed', async () => {
    const secret = generateCollectorToken();
    const row = await prisma.collectorToken.create({
      data: { name: 'soon revoked', tokenHash: hashCollectorToken(secret) },
    });
    const report = () =>
      post(alarm({ deviceId: world.devices.da!.id, alarmIdentifier: randomUUID() }), secret);
    expect((await report()).status).toBe(202);
    await prisma.collectorToken.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
    // Within the window the found token is trusted (documented); after it, Postgres is asked again.
    expect((await report()).status).toBe(202);
    await new Promise((r) => setTimeout(r, 5_200));
    expect((await report()).status).toBe(401);
  }, 20_000);

  it("answers a tenant-scoped token alike for another tenant's device and a missing one, and for another tenant's id and an unknown one", async () => {
    const answer = async (target: Record<string, unknown>, over: Record<string, unknown> = {}) => {
      const res = await post(alarm({ ...target, ...over }), tokenA());
      return [res.status, await res.json()];
    };
    const missingDevice = 2_000_000_000;
    for (const over of [{}, { perceivedSeverity: 'Cleared', alarmIdentifier: randomUUID() }]) {
      const foreign = await answer({ deviceId: world.devices.db!.id }, over);
      const missing = await answer({ deviceId: missingDevice }, over);
      expect(foreign[0]).toBe(422);
      // The same body but for the id the caller sent.
      expect(JSON.stringify(foreign[1]).replace(String(world.devices.db!.id), 'ID')).toBe(
        JSON.stringify(missing[1]).replace(String(missingDevice), 'ID'),
      );
      expect(foreign[1]).toMatchObject({ error: { code: 'unknown_device' } });
    }
    const foreignTenant = await answer({ tenantId: world.tenants.b!.id });
    const unknownTenant = await answer({ tenantId: 2_000_000_000 });
    expect(foreignTenant).toEqual([403, { error: { code: 'forbidden', message: expect.any(String) } }]);
    expect(unknownTenant).toEqual(foreignTenant);
    expect(await prisma.alarm.count({ where: { tenantId: world.tenants.b!.id } })).toBe(0);
  });

  it('tells a clear on an unknown or foreign device (422) from a clear with nothing active (409)', async () => {
    const clear = (over: Record<string, unknown>) =>
      alarm({ perceivedSeverity: 'Cleared', alarmIdentifier: randomUUID(), ...over });
    const unknown = await post(clear({ deviceId: 999_999 }), platform());
    expect([unknown.status, ((await unknown.json()) as { error: { code: string } }).error.code]).toEqual([
      422,
      'unknown_device',
    ]);
    const foreign = await post(clear({ deviceId: world.devices.db!.id }), tokenA());
    expect([foreign.status, ((await foreign.json()) as { error: { code: string } }).error.code]).toEqual([
      422,
      'unknown_device',
    ]);
    const nothing = await post(clear({ deviceId: world.devices.da!.id }), tokenA());
    expect([nothing.status, ((await nothing.json()) as { error: { code: string } }).error.code]).toEqual([
      409,
      'alarm_not_active',
    ]);
  });

  it('answers 422 for an unknown device or tenant', async () => {
    const dev = await post(alarm({ deviceId: 999_999 }), platform());
    expect(dev.status).toBe(422);
    expect(((await dev.json()) as { error: { code: string } }).error.code).toBe('unknown_device');
    const ten = await post(alarm({ tenantId: 999_999 }), platform());
    expect(ten.status).toBe(422);
    expect(((await ten.json()) as { error: { code: string } }).error.code).toBe('unknown_tenant');
  });

  it.each([
    ['a missing field', alarm({ deviceId: 1, probableCause: undefined }), 'probableCause'],
    ['an unknown severity', alarm({ deviceId: 1, perceivedSeverity: 'Catastrophic' }), 'perceivedSeverity'],
    ['both deviceId and tenantId', alarm({ deviceId: 1, tenantId: 1 }), 'tenantId'],
    ['neither deviceId nor tenantId', alarm(), 'deviceId'],
    [
      'a string over its TR-181 limit',
      alarm({ deviceId: 1, additionalText: 'x'.repeat(257) }),
      'additionalText',
    ],
    ['an unknown field', alarm({ deviceId: 1, colour: 'red' }), '(body)'],
    ['a negative id', alarm({ deviceId: -4 }), 'deviceId'],
    ['a bad timestamp', alarm({ deviceId: 1, raisedAt: 'yesterday' }), 'raisedAt'],
    ['a JSON array', [alarm({ deviceId: 1 })], '(body)'],
  ])('answers 422 naming the field for %s', async (_name, body, field) => {
    const res = await post(body, platform());
    expect(res.status).toBe(422);
    const { error } = (await res.json()) as { error: { code: string; details: { field: string }[] } };
    expect(error.code).toBe('validation_failed');
    expect(error.details.map((d) => d.field)).toContain(field);
  });

  it('answers 400 for malformed JSON, 413 over the body limit, 415 for other media types, 404 elsewhere', async () => {
    const bad = await post('{"deviceId": ', platform());
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_json');

    const big = await post(alarm({ deviceId: 1, additionalText: 'x'.repeat(20_000) }), platform());
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');

    const text = await post('hello', platform(), { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');

    const nowhere = await fetch(`${ingest.url}/v1/nothing`, {
      headers: { authorization: `Bearer ${platform()}` },
    });
    expect(nowhere.status).toBe(404);
  });

  it('answers 503 with Retry-After, and no internals, while Postgres is unreachable', async () => {
    // Port 9 (discard) has no Postgres on these machines: connections are refused, as when it is down.
    const down = await startIngest(
      config({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:9/none', RETRY_AFTER_S: '7' }),
    );
    closers.push(down.close);
    for (let i = 0; i < 5; i++) {
      const res = await post(alarm({ deviceId: 1 }), platform(), {}, down);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('7');
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({
        error: { code: 'service_unavailable', message: expect.any(String) },
      });
      expect(text).not.toMatch(/ECONNREFUSED|at .*\.ts/);
    }
    const ready = await fetch(`${down.url}/readyz`);
    expect(ready.status).toBe(503);
  });

  it('still enqueues a committed alarm whose enqueue failed right after the commit (outbox relay)', async () => {
    let failures = 0;
    const flaky = await startIngest(config(), {
      wrapEnqueue: (enqueue) => async (ids) => {
        if (failures === 0) {
          failures++;
          throw new Error('injected: Redis went away right after the commit');
        }
        await enqueue(ids);
      },
    });
    closers.push(flaky.close);
    const res = await post(
      alarm({ deviceId: world.devices.da!.id, alarmIdentifier: 'flaky' }),
      tokenA(),
      {},
      flaky,
    );
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const event = await prisma.outboxEvent.findFirstOrThrow({ where: { alarmId: BigInt(id) } });
    expect(failures).toBe(1);
    await vi.waitFor(
      async () => {
        expect(await queue.getJob(broadcastJobId(event.id.toString()))).toBeDefined();
        expect(
          (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } })).enqueuedAt,
        ).not.toBeNull();
      },
      { timeout: 5000, interval: 100 },
    );
  });

  /** Whether some queued job carries this outbox event, on its own or in a BroadcastEvents job. */
  async function queuedWith(eventId: string): Promise<boolean> {
    if (await queue.getJob(broadcastJobId(eventId))) return true;
    const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized']);
    return jobs.some(
      (j) => j.name === 'BroadcastEvents' && (j.data as { eventIds: string[] }).eventIds.includes(eventId),
    );
  }

  it('enqueues again an event whose job was lost after it was enqueued (Redis restarted empty)', async () => {
    let lost = 0;
    const forgetful = await startIngest(config({ OUTBOX_REDELIVER_AFTER_MS: '500' }), {
      // The first enqueue "succeeds" but the job never reaches Redis: what a Redis restart without
      // persistence does to a job enqueued just before it.
      wrapEnqueue: (enqueue) => async (ids) => {
        if (lost === 0) {
          lost++;
          return;
        }
        await enqueue(ids);
      },
    });
    closers.push(forgetful.close);
    const res = await post(
      alarm({ deviceId: world.devices.da!.id, alarmIdentifier: 'lost-job' }),
      tokenA(),
      {},
      forgetful,
    );
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const event = await prisma.outboxEvent.findFirstOrThrow({ where: { alarmId: BigInt(id) } });
    await vi.waitFor(async () => {
      expect(
        (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: event.id } })).enqueuedAt,
      ).not.toBeNull();
    });
    expect(await queuedWith(event.id.toString())).toBe(false);
    // No resolver runs here, so broadcast_at stays null and the relay puts the job back (alone, or in a
    // BroadcastEvents job with other events of this file that no resolver broadcast either).
    await vi.waitFor(async () => expect(await queuedWith(event.id.toString())).toBe(true), {
      timeout: 5000,
      interval: 100,
    });
    expect(lost).toBe(1);
  });

  it('serves the console with a CSP that allows only itself and the edge, nosniff and no framing', async () => {
    const behindTls = await startIngest(config({ CONSOLE_EDGE_URL: 'https://edge.example.test:6443' }));
    closers.push(behindTls.close);
    for (const path of ['/console/', '/console/config.json']) {
      const res = await fetch(`${behindTls.url}${path}`);
      expect(res.status).toBe(200);
      const csp = res.headers.get('content-security-policy') ?? '';
      const directives = Object.fromEntries(
        csp.split(';').map((d) => {
          const [name, ...values] = d.trim().split(/\s+/);
          return [name, values.join(' ')];
        }),
      );
      expect(directives).toMatchObject({
        'default-src': "'none'",
        'script-src': "'self'",
        'style-src': "'self'",
        'connect-src': "'self' https://edge.example.test:6443 wss://edge.example.test:6443",
        'frame-ancestors': "'none'",
        'object-src': "'none'",
      });
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    }
    // The page loads nothing inline: every script and stylesheet it names is a file of its own.
    const html = await (await fetch(`${behindTls.url}/console/`)).text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect((await fetch(`${behindTls.url}/v1/alarms`)).headers.get('content-security-policy')).toBeNull();
  });

  it('serves health and readiness on both ports, metrics only on the internal port', async () => {
    for (const base of [ingest.url, ingest.internalUrl]) {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ database: true, queue: true });
    }
    expect(ingest.internalUrl).not.toBe(ingest.url);
    const metrics = await (await fetch(`${ingest.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/alarms_accepted_total\{service="alarm-ingest"\} [1-9]/);
    const publicMetrics = await fetch(`${ingest.url}/metrics`);
    expect(publicMetrics.status).toBe(404);
    expect(await publicMetrics.json()).toMatchObject({ error: { code: 'not_found' } });
  });
});
