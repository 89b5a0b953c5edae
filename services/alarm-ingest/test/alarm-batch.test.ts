import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { Queue } from 'bullmq';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import {
  ALARM_BATCH_MAX_ITEMS,
  BROADCAST_QUEUE,
  BROADCAST_EVENTS_MAX,
  broadcastJobs,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';
import { statementsDuring } from './statements-during.js';

const graph = {
  tenants: [
    {
      ref: 'a',
      name: 'Tenant A',
      slug: 'tenant-a',
      devices: [
        { ref: 'da1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A1' },
        { ref: 'da2', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A2' },
      ],
      collectorTokens: [{ ref: 'ta', name: 'collector of A' }],
    },
    {
      ref: 'b',
      name: 'Tenant B',
      slug: 'tenant-b',
      devices: [{ ref: 'db1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'B1' }],
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

interface World {
  url: string;
  prisma: PrismaClient;
  world: ProvisionResult;
  ingest: IngestServer;
  drop: () => Promise<void>;
}

/** An item's answer, loosely typed for assertions (contracts' AlarmBatchItemResult is the exact one). */
interface Result {
  index: number;
  status: number;
  id?: string;
  alarm?: Record<string, unknown>;
  outcome?: string;
  error?: { code: string; message: string; details?: unknown };
}

describe('POST /v1/alarms/batch', () => {
  const prefix = uniqueRedisPrefix();
  let batchSide: World;
  let singleSide: World;
  let redis: Redis;
  let queue: Queue;

  /** A database provisioned with `graph` and an ingest on it; two of them get the same ids. */
  async function makeWorld(redisPrefix: string, over: Record<string, string> = {}): Promise<World> {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    const prisma = createPrismaClient(db.url);
    const world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    const ingest = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: redisPrefix,
        LOG_LEVEL: 'silent',
        ...over,
      }),
    );
    return { url: db.url, prisma, world, ingest, drop: db.drop };
  }

  beforeAll(async () => {
    [batchSide, singleSide] = await Promise.all([makeWorld(prefix), makeWorld(uniqueRedisPrefix())]);
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
    queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: new RedisKeys(prefix).bullPrefix });
  });
  afterAll(async () => {
    for (const side of [batchSide, singleSide]) {
      await side?.ingest.close();
      await side?.prisma.$disconnect();
      await side?.drop();
    }
    await queue?.close();
    redis?.disconnect();
  });

  const ids = () => batchSide.world;
  const token = (side: World, kind: 'tenant' | 'platform') =>
    kind === 'tenant' ? side.world.collectorTokens.ta!.token : side.world.collectorTokens.platform!.token;

  const postTo = (
    server: IngestServer,
    path: string,
    body: unknown,
    bearer: string | null,
    headers: Record<string, string> = {},
  ) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const batch = (body: unknown, kind: 'tenant' | 'platform' = 'platform', headers = {}) =>
    postTo(batchSide.ingest, '/v1/alarms/batch', body, token(batchSide, kind), headers);
  const results = async (res: Response): Promise<Result[]> => {
    expect(res.status).toBe(200);
    return ((await res.json()) as { results: Result[] }).results;
  };

  /** An item's answer without what differs between two databases or two moments (ids, times). */
  const comparable = (r: Omit<Result, 'index'> & { index?: number }) => {
    const { id: _id, index: _index, alarm: a, ...rest } = r;
    if (!a) return rest;
    const { id: _aid, raised_at: _r, changed_at: _c, cleared_at: cleared, ...fields } = a;
    return { ...rest, alarm: { ...fields, cleared: cleared !== null } };
  };

  it('answers every item as POST /v1/alarms answers it alone, applying items in order (property)', async () => {
    const w = ids();
    const target = fc.oneof(
      fc.constantFrom(w.devices.da1!.id, w.devices.da2!.id, w.devices.db1!.id, 999_999).map((deviceId) => ({
        deviceId,
      })),
      fc.constantFrom(w.tenants.a!.id, w.tenants.b!.id, 999_999).map((tenantId) => ({ tenantId })),
    );
    const item = fc.oneof(
      {
        weight: 9,
        arbitrary: fc
          .record({
            target,
            alarmIdentifier: fc.constantFrom('x', 'y', 'z'),
            perceivedSeverity: fc.constantFrom('Major', 'Minor', 'Cleared'),
            additionalText: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
          })
          .map(({ target, ...rest }) => alarm({ ...target, ...rest })),
      },
      // invalid items: the single endpoint's 422 validation_failed, details and all
      {
        weight: 1,
        arbitrary: fc.constantFrom<unknown>(
          alarm({ deviceId: 1, perceivedSeverity: 'Catastrophic' }),
          alarm(),
          alarm({ deviceId: 1, colour: 'red' }),
          [alarm({ deviceId: 1 })],
        ),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(item, { minLength: 1, maxLength: 25 }),
        fc.constantFrom('tenant' as const, 'platform' as const),
        async (items, kind) => {
          const got = await results(await batch({ alarms: items }, kind));
          const want: Omit<Result, 'index'>[] = [];
          for (const it of items) {
            const res = await postTo(singleSide.ingest, '/v1/alarms', it, token(singleSide, kind));
            const body = (await res.json()) as Record<string, unknown>;
            want.push({ status: res.status, ...body } as Omit<Result, 'index'>);
          }
          expect(got.map((r) => r.index)).toEqual(items.map((_, i) => i));
          expect(got.map(comparable)).toEqual(want.map(comparable));
        },
      ),
      { numRuns: 40, seed: 0x0ba7c4 },
    );
    // Both databases went through the same reports, so they hold the same alarms.
    const state = (p: PrismaClient) =>
      p.alarm
        .findMany({
          orderBy: [{ tenantId: 'asc' }, { deviceId: 'asc' }, { alarmIdentifier: 'asc' }, { id: 'asc' }],
        })
        .then((rows) =>
          rows.map((r) => [
            r.tenantId,
            r.deviceId,
            r.alarmIdentifier,
            r.perceivedSeverity,
            r.clearedAt === null,
          ]),
        );
    expect(await state(batchSide.prisma)).toEqual(await state(singleSide.prisma));
  }, 120_000);

  it('answers an item that is not an object with 422 validation_failed (alone it would not be valid JSON)', async () => {
    // POST /v1/alarms only parses objects and arrays (400 invalid_json for `42`); in a batch the JSON is
    // valid, so such an item is a schema violation of its own.
    const got = await results(await batch({ alarms: [42, null, 'x'] }));
    expect(
      got.map((r) => [r.status, r.error?.code, (r.error?.details as { field: string }[])[0]!.field]),
    ).toEqual([
      [422, 'validation_failed', '(body)'],
      [422, 'validation_failed', '(body)'],
      [422, 'validation_failed', '(body)'],
    ]);
  });

  it(`writes ${ALARM_BATCH_MAX_ITEMS} reports with one statement and enqueues every event`, async () => {
    const w = ids();
    const items = Array.from({ length: ALARM_BATCH_MAX_ITEMS }, (_, i) =>
      alarm({ deviceId: i % 2 ? w.devices.da1!.id : w.devices.db1!.id, alarmIdentifier: `storm-${i}` }),
    );
    // Warm the token cache, so that the counted request is the batch's own work only.
    await results(await batch({ alarms: [alarm({ tenantId: w.tenants.a!.id, alarmIdentifier: 'warm' })] }));
    // Counts what reaches Postgres (every pool's clients), not a mock: the queries still run.
    const { result: got, statements } = await statementsDuring(async () =>
      results(await batch({ alarms: items })),
    );
    // Background work runs beside requests: the outbox's bookkeeping (enqueued_at marks, the relay's
    // rounds), the presence detector and its stranded-alarm sweep, the idempotency pruner, tenant summaries.
    const background =
      /^(outbox_|detect_offline_devices$|clear_stranded_offline_alarms$|prune_idempotency_keys$|tenant_device_counts$|(BEGIN|COMMIT)$)/;
    expect(statements.filter((s) => !background.test(s))).toEqual(['write_alarm_batch']);
    expect(got).toHaveLength(ALARM_BATCH_MAX_ITEMS);
    expect(new Set(got.map((r) => r.status))).toEqual(new Set([202]));
    const events = await batchSide.prisma.outboxEvent.findMany({
      where: { alarmId: { in: got.map((r) => BigInt(r.id!)) } },
      orderBy: { id: 'asc' },
    });
    expect(events).toHaveLength(ALARM_BATCH_MAX_ITEMS);
    // Event ids ascend in item order.
    const indexOfAlarm = new Map(got.map((r) => [r.id!, r.index]));
    const order = events.map((e) => indexOfAlarm.get(e.alarmId!.toString()));
    expect(order).toEqual([...order].sort((a, b) => a! - b!));
    await vi.waitFor(
      async () => {
        // One BroadcastEvents job per 100 events of the commit (not one job per event).
        const jobs = await Promise.all(
          broadcastJobs(events.map((e) => e.id.toString())).map((j) => queue.getJob(j.opts.jobId)),
        );
        expect(jobs).toHaveLength(ALARM_BATCH_MAX_ITEMS / BROADCAST_EVENTS_MAX);
        expect(jobs.every((j) => j?.name === 'BroadcastEvents')).toBe(true);
      },
      { timeout: 10_000, interval: 200 },
    );
  }, 60_000);

  it('applies a repeated identifier in order within one batch, keeping each device in item order', async () => {
    const w = ids();
    const d = w.devices.da2!.id;
    const items = [
      alarm({ deviceId: d, alarmIdentifier: 'rep-x' }),
      alarm({ deviceId: d, alarmIdentifier: 'rep-x', perceivedSeverity: 'Critical' }),
      alarm({ deviceId: d, alarmIdentifier: 'rep-y' }),
      alarm({ deviceId: d, alarmIdentifier: 'rep-x', perceivedSeverity: 'Cleared' }),
      alarm({ deviceId: d, alarmIdentifier: 'rep-x', perceivedSeverity: 'Cleared' }),
      alarm({ deviceId: d, alarmIdentifier: 'rep-x', perceivedSeverity: 'Minor' }),
      alarm({ tenantId: w.tenants.a!.id, alarmIdentifier: 'rep-t' }),
      alarm({ tenantId: w.tenants.a!.id, alarmIdentifier: 'rep-t', perceivedSeverity: 'Cleared' }),
    ];
    const got = await results(await batch({ alarms: items }, 'tenant'));
    expect(got.map((r) => [r.status, r.outcome ?? r.error?.code])).toEqual([
      [202, 'created'],
      [200, 'updated'],
      [202, 'created'],
      [200, 'cleared'],
      [409, 'alarm_not_active'],
      [202, 'created'],
      [202, 'created'],
      [200, 'cleared'],
    ]);
    expect(got[1]!.alarm!.perceived_severity).toBe('Critical');
    expect(got[1]!.id).toBe(got[0]!.id);
    expect(got[5]!.id).not.toBe(got[0]!.id);
    const rows = await batchSide.prisma.alarm.findMany({ where: { deviceId: d, alarmIdentifier: 'rep-x' } });
    expect(rows.filter((r) => r.clearedAt === null)).toHaveLength(1);
    // The device's events in outbox id order are its items in request order.
    const events = await batchSide.prisma.outboxEvent.findMany({
      where: { deviceId: d, alarmId: { in: [got[0]!.id!, got[2]!.id!, got[5]!.id!].map(BigInt) } },
      orderBy: { id: 'asc' },
    });
    expect(events.map((e) => [e.alarmId!.toString(), e.kind])).toEqual([
      [got[0]!.id, 'alarm.created'],
      [got[0]!.id, 'alarm.updated'],
      [got[2]!.id, 'alarm.created'],
      [got[0]!.id, 'alarm.cleared'],
      [got[5]!.id, 'alarm.created'],
    ]);
  });

  it('takes mixed tenants from a platform token; a scoped token gets, per item, what the single endpoint answers for another tenant', async () => {
    const w = ids();
    const items = [
      alarm({ deviceId: w.devices.da1!.id, alarmIdentifier: 'mix' }),
      alarm({ deviceId: w.devices.db1!.id, alarmIdentifier: 'mix' }),
      alarm({ tenantId: w.tenants.b!.id, alarmIdentifier: 'mix' }),
      alarm({ deviceId: 999_999, alarmIdentifier: 'mix' }),
      alarm({ tenantId: 999_999, alarmIdentifier: 'mix' }),
    ];
    const platform = await results(await batch({ alarms: items }));
    expect(platform.map((r) => [r.status, r.alarm?.tenant_id ?? r.error?.code])).toEqual([
      [202, w.tenants.a!.id],
      [202, w.tenants.b!.id],
      [202, w.tenants.b!.id],
      [422, 'unknown_device'],
      [422, 'unknown_tenant'],
    ]);
    expect(platform[3]!.error).toEqual({
      code: 'unknown_device',
      message: 'no device with id 999999',
      details: { field: 'deviceId' },
    });

    const again = items.map((i) => ({ ...i, alarmIdentifier: 'mix-scoped' }));
    const scoped = await results(await batch({ alarms: again }, 'tenant'));
    expect(scoped.map((r) => [r.status, r.outcome ?? r.error?.code])).toEqual([
      [202, 'created'],
      // another tenant's device answers as a missing one (no enumeration); another tenant's id is 403
      [422, 'unknown_device'],
      [403, 'forbidden'],
      [422, 'unknown_device'],
      [403, 'forbidden'],
    ]);
    expect(await batchSide.prisma.alarm.count({ where: { alarmIdentifier: 'mix-scoped' } })).toBe(1);
  });

  it('replays a batch answer byte for byte under its Idempotency-Key, and refuses the key for another body', async () => {
    const w = ids();
    const body = {
      alarms: [
        alarm({ deviceId: w.devices.da1!.id, alarmIdentifier: 'idem-1' }),
        alarm({ deviceId: 999_999, alarmIdentifier: 'idem-2' }),
        alarm({ deviceId: w.devices.da1!.id, alarmIdentifier: 'idem-1', perceivedSeverity: 'Cleared' }),
      ],
    };
    const headers = { 'idempotency-key': 'batch-key-1' };
    const first = await batch(body, 'platform', headers);
    const firstText = await first.text();
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotency-replayed')).toBeNull();
    const eventsAfterFirst = await batchSide.prisma.outboxEvent.count();
    // Same body, keys in another order and ids as strings: the same request.
    const reordered = {
      alarms: body.alarms.map((a) =>
        Object.fromEntries(
          Object.entries(a)
            .reverse()
            .map(([k, v]) => [k, k === 'deviceId' ? String(v) : v]),
        ),
      ),
    };
    const replay = await batch(reordered, 'platform', headers);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotency-replayed')).toBe('true');
    expect(await replay.text()).toBe(firstText);
    expect(await batchSide.prisma.outboxEvent.count()).toBe(eventsAfterFirst);

    const other = await batch({ alarms: [body.alarms[0]] }, 'platform', headers);
    expect(other.status).toBe(422);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('idempotency_key_reused');

    // A batch that changed nothing stores nothing: a retry runs anew.
    const nothing = { alarms: [alarm({ deviceId: 999_999, alarmIdentifier: 'idem-3' })] };
    const key2 = { 'idempotency-key': 'batch-key-2' };
    expect((await results(await batch(nothing, 'platform', key2)))[0]!.status).toBe(422);
    const retry = await batch(nothing, 'platform', key2);
    expect(retry.headers.get('idempotency-replayed')).toBeNull();
  });

  it('never makes two active alarms from concurrent batches raising and clearing the same identifiers', async () => {
    const w = ids();
    const devices = [w.devices.da1!.id, w.devices.db1!.id];
    // Each batch raises and clears the same 60 alarms in another order (a clear locks its row where the
    // raise's upsert would), so concurrent batches lock rows in different orders: Postgres breaks the
    // deadlocks this causes by rolling a batch back, and the batch runs again.
    const batchOf = (k: number) =>
      Array.from({ length: 60 }, (_, j) => {
        const i = (j * 7 + k * 13) % 60;
        return alarm({
          deviceId: devices[i % 2],
          alarmIdentifier: `race-${i % 30}`,
          perceivedSeverity: (i + k) % 3 === 0 ? 'Cleared' : 'Major',
        });
      });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, k) => batch({ alarms: batchOf(k) })));
    for (const a of answers) for (const r of await results(a)) expect([200, 202, 409]).toContain(r.status);
    const active = await batchSide.prisma.alarm.groupBy({
      by: ['deviceId', 'alarmIdentifier'],
      where: { alarmIdentifier: { startsWith: 'race-' }, clearedAt: null },
      _count: true,
    });
    expect(active.length).toBeGreaterThan(0);
    expect(active.every((g) => g._count === 1)).toBe(true);
  }, 30_000);

  it('is refused as a whole with 503 overloaded once the broadcast backlog is over its limit', async () => {
    // No resolver runs here, so every accepted event's job stays waiting: the backlog admission control sees.
    const server = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: batchSide.url,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: uniqueRedisPrefix(),
        LOG_LEVEL: 'silent',
        ADMISSION_MAX_QUEUE_WAITING: '20',
        ADMISSION_MAX_DB_WAITING: '0',
      }),
    );
    try {
      const w = ids();
      let n = 0;
      const storm = () =>
        postTo(
          server,
          '/v1/alarms/batch',
          {
            alarms: Array.from({ length: 30 }, () =>
              alarm({ deviceId: w.devices.da1!.id, alarmIdentifier: `adm-${n++}` }),
            ),
          },
          token(batchSide, 'platform'),
        );
      expect((await results(await storm())).every((r) => r.status === 202)).toBe(true);
      const before = await batchSide.prisma.alarm.count();
      // The backlog is sampled every 500 ms: poll until the ingest has seen it.
      const refused = await vi.waitFor(
        async () => {
          const res = await storm();
          if (res.status === 200) throw new Error('still accepted');
          return res;
        },
        { timeout: 10_000, interval: 100 },
      );
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('overloaded');
      // The refused batch changed nothing (accepted ones in between did, 30 alarms each).
      expect((await batchSide.prisma.alarm.count()) - before).toBe(n - 60);
    } finally {
      await server.close();
    }
  }, 30_000);

  it.each([
    ['no items', { alarms: [] }, 422, 'validation_failed'],
    [
      'over 1000 items',
      { alarms: Array.from({ length: 1001 }, () => alarm({ deviceId: 1 })) },
      422,
      'validation_failed',
    ],
    ['not an object', [alarm({ deviceId: 1 })], 422, 'validation_failed'],
    ['an unknown member', { alarms: [alarm({ deviceId: 1 })], more: 1 }, 422, 'validation_failed'],
    ['malformed JSON', '{"alarms": [', 400, 'invalid_json'],
    [
      'a body over 1 MiB',
      { alarms: [alarm({ deviceId: 1, additionalText: 'x'.repeat(1 << 20) })] },
      413,
      'payload_too_large',
    ],
  ])('refuses the whole batch for %s, changing nothing', async (_name, body, status, code) => {
    const before = await batchSide.prisma.alarm.count();
    const res = await batch(body);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await batchSide.prisma.alarm.count()).toBe(before);
  });

  it('takes a body over the single limit (16 KiB), and refuses bad credentials, media types and keys', async () => {
    const w = ids();
    const big = {
      alarms: Array.from({ length: 200 }, (_, i) =>
        alarm({ deviceId: w.devices.da1!.id, alarmIdentifier: `big-${i}`, additionalText: 'x'.repeat(200) }),
      ),
    };
    expect(JSON.stringify(big).length).toBeGreaterThan(16 * 1024);
    expect((await results(await batch(big))).every((r) => r.status === 202)).toBe(true);
    const one = { alarms: [alarm({ deviceId: w.devices.da1!.id })] };
    expect((await postTo(batchSide.ingest, '/v1/alarms/batch', one, null)).status).toBe(401);
    expect(
      (
        await postTo(batchSide.ingest, '/v1/alarms/batch', 'x', token(batchSide, 'platform'), {
          'content-type': 'text/plain',
        })
      ).status,
    ).toBe(415);
    const badKey = await batch(one, 'platform', { 'idempotency-key': 'caf\u00e9' });
    expect(badKey.status).toBe(400);
    expect(((await badKey.json()) as { error: { code: string } }).error.code).toBe('invalid_idempotency_key');
  });
});
