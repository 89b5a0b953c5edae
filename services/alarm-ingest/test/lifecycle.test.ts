import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { toAlarmWire, type AlarmWire, type ProvisionResult } from '@alarmcast/contracts';
import {
  createPgPool,
  createPrismaClient,
  provisionGraph,
  pruneIdempotencyKeys,
  type PgPool,
  type PrismaClient,
} from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

const JWT_SECRET = 'lifecycle-test-jwt-secret-0123456789abcdef';
const user = (ref: string, active = true) => ({ ref, email: `${ref}@example.test`, name: ref, active });
const device = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [user('a1'), user('a-off', false)],
      devices: [{ ...device('da'), name: 'Lobby router' }, device('da2')],
      collectorTokens: [{ ref: 'ta', name: 'collector of A' }],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [user('b1'), user('b2')],
      devices: [device('db')],
      collectorTokens: [{ ref: 'tb', name: 'collector of B' }],
    },
  ],
  platformUsers: [user('ops')],
  collectorTokens: [{ ref: 'platform', name: 'platform collector' }],
  // b1 (tenant B) sees da through a share; ops (no tenant) sees db through one.
  shares: [
    { user: 'b1', device: 'da' },
    { user: 'ops', device: 'db' },
  ],
};

const report = (over: Record<string, unknown> = {}) => ({
  alarmIdentifier: 'wan-down',
  eventType: 'Communications Alarm',
  probableCause: 'Loss of signal',
  specificProblem: 'WAN link down',
  perceivedSeverity: 'Major',
  ...over,
});

interface WriteAnswer {
  id: string;
  alarm: AlarmWire;
  outcome: string;
}
interface ErrorAnswer {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

describe('alarm lifecycle, idempotency, acknowledgement and listing', () => {
  let prisma: PrismaClient;
  let pool: PgPool;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let dropDb: () => Promise<void>;
  let nextId = 0;
  /** a fresh alarm identifier per call, so tests do not see each other's alarms */
  const ident = (name: string) => `${name}-${++nextId}`;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    pool = createPgPool(db.url, { max: 2 });
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    ingest = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: uniqueRedisPrefix(),
        LOG_LEVEL: 'silent',
        JWT_SECRET,
        DB_POOL_MAX: '20',
        // These tests page and race far faster than any console; the limits have their own test.
        RATE_LIMIT_USER_API_PER_USER: '0',
        RATE_LIMIT_USER_API_PER_IP: '0',
      }),
    );
  });
  afterAll(async () => {
    await ingest.close();
    await pool.end();
    await prisma.$disconnect();
    await dropDb();
  });

  const token = (ref: 'ta' | 'tb' | 'platform') => world.collectorTokens[ref]!.token;
  const dev = (ref: string) => world.devices[ref]!.id;
  const post = (body: unknown, tok = token('ta'), headers: Record<string, string> = {}) =>
    fetch(`${ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}`, ...headers },
      body: JSON.stringify(body),
    });
  const jwt = (ref: string) => signUserJwt(JWT_SECRET, world.users[ref]!.id);
  const asUser = async (ref: string | null, path: string, method = 'GET', bearer?: string) =>
    fetch(`${ingest.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer ?? (ref ? await jwt(ref) : '')}` },
    });
  const eventsOf = async (alarmId: string) =>
    prisma.outboxEvent.findMany({ where: { alarmId: BigInt(alarmId) }, orderBy: { id: 'asc' } });
  const eventCount = () => prisma.outboxEvent.count();
  /** The wire form of the alarm as stored, built by contracts' toAlarmWire from the Prisma row. */
  const stored = async (id: string) =>
    toAlarmWire(
      await prisma.alarm.findUniqueOrThrow({ where: { id: BigInt(id) }, include: { device: true } }),
    );

  describe('raise, update, clear (TR-181 FaultMgmt)', () => {
    it('creates (202), updates the active alarm (200), clears it (200), each with its outbox event', async () => {
      const id0 = ident('wan');
      const target = { deviceId: dev('da'), alarmIdentifier: id0 };
      const created = await post(report({ ...target, raisedAt: '2026-11-25T10:00:00+01:00' }));
      expect(created.status).toBe(202);
      const c = (await created.json()) as WriteAnswer;
      expect(c.outcome).toBe('created');
      expect(c.alarm).toEqual(await stored(c.id));
      // The wire names the device, so operators need no lookup of their own.
      expect(c.alarm).toMatchObject({ device_name: 'Lobby router', device_serial_number: 'da' });

      const updated = await post(
        report({
          ...target,
          perceivedSeverity: 'Critical',
          additionalText: 'still down',
          managedObjectInstance: 'Device.IP.Interface.1.',
        }),
      );
      expect(updated.status).toBe(200);
      const u = (await updated.json()) as WriteAnswer;
      expect(u).toMatchObject({ id: c.id, outcome: 'updated' });
      expect(u.alarm).toMatchObject({
        perceived_severity: 'Critical',
        additional_text: 'still down',
        managed_object_instance: 'Device.IP.Interface.1.',
        raised_at: '2026-11-25T09:00:00.000Z',
        cleared_at: null,
      });
      expect(u.alarm.changed_at > c.alarm.changed_at).toBe(true);
      expect(u.alarm).toEqual(await stored(c.id));

      const cleared = await post(report({ ...target, perceivedSeverity: 'Cleared' }));
      expect(cleared.status).toBe(200);
      const x = (await cleared.json()) as WriteAnswer;
      expect(x).toMatchObject({ id: c.id, outcome: 'cleared' });
      expect(x.alarm.perceived_severity).toBe('Cleared');
      expect(x.alarm.cleared_at).toBe(x.alarm.changed_at);
      // A clear changes only severity and times: the texts stay those of the last raise.
      expect(x.alarm.additional_text).toBe('still down');
      expect(x.alarm).toEqual(await stored(c.id));

      const events = await eventsOf(c.id);
      expect(events.map((e) => e.kind)).toEqual(['alarm.created', 'alarm.updated', 'alarm.cleared']);
      expect(events.map((e) => e.payload)).toEqual([
        { alarm: c.alarm },
        { alarm: u.alarm },
        { alarm: x.alarm },
      ]);
      expect(events.every((e) => e.deviceId === dev('da') && e.tenantId === world.tenants.A!.id)).toBe(true);

      // Raised again after the clear: a new alarm.
      const again = await post(report(target));
      expect(again.status).toBe(202);
      expect(((await again.json()) as WriteAnswer).id).not.toBe(c.id);
    });

    it('keys device-less alarms by tenant, independently of device alarms with the same identifier', async () => {
      const id0 = ident('quota');
      const onTenant = await post(report({ tenantId: world.tenants.A!.id, alarmIdentifier: id0 }));
      const onDevice = await post(report({ deviceId: dev('da'), alarmIdentifier: id0 }));
      expect([onTenant.status, onDevice.status]).toEqual([202, 202]);
      const t = (await onTenant.json()) as WriteAnswer;
      const again = await post(
        report({ tenantId: world.tenants.A!.id, alarmIdentifier: id0, perceivedSeverity: 'Minor' }),
        token('platform'),
      );
      expect(again.status).toBe(200);
      expect((await again.json()) as WriteAnswer).toMatchObject({ id: t.id, outcome: 'updated' });
      const clear = await post(
        report({ tenantId: world.tenants.A!.id, alarmIdentifier: id0, perceivedSeverity: 'Cleared' }),
      );
      expect(clear.status).toBe(200);
      expect(await prisma.alarm.count({ where: { alarmIdentifier: id0, clearedAt: null } })).toBe(1);
    });

    it('answers 409 alarm_not_active for a Cleared of an unknown or already cleared alarm, and writes nothing', async () => {
      const id0 = ident('ghost');
      const before = await eventCount();
      const unknown = await post(
        report({ deviceId: dev('da'), alarmIdentifier: id0, perceivedSeverity: 'Cleared' }),
      );
      expect(unknown.status).toBe(409);
      expect(((await unknown.json()) as ErrorAnswer).error.code).toBe('alarm_not_active');
      expect(await prisma.alarm.count({ where: { alarmIdentifier: id0 } })).toBe(0);

      await post(report({ deviceId: dev('da'), alarmIdentifier: id0 }));
      expect(
        (await post(report({ deviceId: dev('da'), alarmIdentifier: id0, perceivedSeverity: 'Cleared' })))
          .status,
      ).toBe(200);
      const afterClear = await eventCount();
      expect(afterClear).toBe(before + 2);
      const twice = await post(
        report({ deviceId: dev('da'), alarmIdentifier: id0, perceivedSeverity: 'Cleared' }),
      );
      expect(twice.status).toBe(409);
      expect(((await twice.json()) as ErrorAnswer).error.code).toBe('alarm_not_active');
      // Another device's alarm with that identifier is not this one.
      const elsewhere = await post(
        report({ deviceId: dev('da2'), alarmIdentifier: id0, perceivedSeverity: 'Cleared' }),
      );
      expect(elsewhere.status).toBe(409);
      expect(await eventCount()).toBe(afterClear);
    });

    it('turns 10 concurrent raises of one identifier into exactly one active alarm', async () => {
      for (const target of [{ deviceId: dev('da2') }, { tenantId: world.tenants.A!.id }]) {
        const id0 = ident('storm');
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            post(report({ ...target, alarmIdentifier: id0, additionalText: `report ${i}` })).then(
              async (r) => ({
                status: r.status,
                body: (await r.json()) as WriteAnswer,
              }),
            ),
          ),
        );
        expect(answers.map((a) => a.status).sort()).toEqual([
          200, 200, 200, 200, 200, 200, 200, 200, 200, 202,
        ]);
        expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
        const rows = await prisma.alarm.findMany({ where: { alarmIdentifier: id0 } });
        expect(rows).toHaveLength(1);
        expect(rows[0]!.clearedAt).toBeNull();
        const kinds = (await eventsOf(rows[0]!.id.toString())).map((e) => e.kind).sort();
        expect(kinds).toEqual(['alarm.created', ...Array<string>(9).fill('alarm.updated')]);
      }
    });
  });

  describe('Idempotency-Key', () => {
    it('replays the first answer for the same key and body, and changes nothing', async () => {
      const body = report({ deviceId: dev('da'), alarmIdentifier: ident('idem') });
      const key = `retry-${nextId}`;
      const first = await post(body, token('ta'), { 'idempotency-key': key });
      expect(first.status).toBe(202);
      const firstText = await first.text();
      const events = await eventCount();

      // The same request again, with its keys in another order and the id as a numeric string.
      const reordered = Object.fromEntries(
        Object.entries({ ...body, deviceId: String(dev('da')) }).reverse(),
      );
      for (const again of [body, reordered]) {
        const res = await post(again, token('ta'), { 'idempotency-key': key });
        expect(res.status).toBe(202);
        expect(res.headers.get('idempotency-replayed')).toBe('true');
        expect(await res.text()).toBe(firstText);
      }
      expect(await eventCount()).toBe(events);
      expect(await prisma.alarm.count({ where: { alarmIdentifier: body.alarmIdentifier } })).toBe(1);
      const row = await prisma.idempotencyKey.findUniqueOrThrow({
        where: { tokenId_key: { tokenId: world.collectorTokens.ta!.id, key } },
      });
      expect(row.responseStatus).toBe(202);
      expect(row.responseBody).toEqual(JSON.parse(firstText));
    });

    it('refuses the same key with another body (422 idempotency_key_reused), changing nothing', async () => {
      const body = report({ deviceId: dev('da'), alarmIdentifier: ident('idem') });
      const key = `reuse-${nextId}`;
      expect((await post(body, token('ta'), { 'idempotency-key': key })).status).toBe(202);
      const events = await eventCount();
      const res = await post({ ...body, perceivedSeverity: 'Critical' }, token('ta'), {
        'idempotency-key': key,
      });
      expect(res.status).toBe(422);
      expect(((await res.json()) as ErrorAnswer).error.code).toBe('idempotency_key_reused');
      expect(await eventCount()).toBe(events);
      const alarm = await prisma.alarm.findFirstOrThrow({ where: { alarmIdentifier: body.alarmIdentifier } });
      expect(alarm.perceivedSeverity).toBe('Major');
    });

    it('scopes keys to the collector token', async () => {
      const body = report({ deviceId: dev('da'), alarmIdentifier: ident('idem') });
      const key = `shared-${nextId}`;
      expect((await post(body, token('ta'), { 'idempotency-key': key })).status).toBe(202);
      const other = await post(body, token('platform'), { 'idempotency-key': key });
      expect(other.status).toBe(200);
      expect(other.headers.get('idempotency-replayed')).toBeNull();
      expect(((await other.json()) as WriteAnswer).outcome).toBe('updated');
    });

    it('applies a key once under concurrent retries, and every retry gets the same answer', async () => {
      const body = report({ deviceId: dev('da'), alarmIdentifier: ident('idem') });
      const key = `burst-${nextId}`;
      const events = await eventCount();
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          post(body, token('ta'), { 'idempotency-key': key }).then(async (r) => ({
            status: r.status,
            text: await r.text(),
          })),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array<number>(8).fill(202));
      expect(new Set(answers.map((a) => a.text)).size).toBe(1);
      expect(await eventCount()).toBe(events + 1);
    });

    it('stores no error answer, forgets a key after 24 h, and prunes expired keys', async () => {
      const id0 = ident('idem');
      const key = `late-${nextId}`;
      const clear = report({ deviceId: dev('da'), alarmIdentifier: id0, perceivedSeverity: 'Cleared' });
      expect((await post(clear, token('ta'), { 'idempotency-key': key })).status).toBe(409);
      expect(await prisma.idempotencyKey.count({ where: { key } })).toBe(0);

      const body = report({ deviceId: dev('da'), alarmIdentifier: id0 });
      expect((await post(body, token('ta'), { 'idempotency-key': key })).status).toBe(202);
      await prisma.idempotencyKey.updateMany({
        where: { key },
        data: { createdAt: new Date(Date.now() - 25 * 3600_000) },
      });
      // Past the window the key is new again: this request is applied (an update), and its answer stored.
      const later = await post(body, token('ta'), { 'idempotency-key': key });
      expect(later.status).toBe(200);
      expect(later.headers.get('idempotency-replayed')).toBeNull();
      const row = await prisma.idempotencyKey.findFirstOrThrow({ where: { key } });
      expect(row.responseStatus).toBe(200);
      expect(Date.now() - row.createdAt.getTime()).toBeLessThan(60_000);

      await prisma.idempotencyKey.updateMany({
        where: { key },
        data: { createdAt: new Date(Date.now() - 25 * 3600_000) },
      });
      expect(await pruneIdempotencyKeys(pool, 24 * 3600)).toBeGreaterThanOrEqual(1);
      expect(await prisma.idempotencyKey.count({ where: { key } })).toBe(0);
    });

    it.each([
      ['empty', ''],
      ['longer than 255 characters', 'k'.repeat(256)],
      ['not ASCII', 'clé'],
    ])('answers 400 invalid_idempotency_key for a key that is %s', async (_name, key) => {
      const res = await post(report({ deviceId: dev('da'), alarmIdentifier: ident('idem') }), token('ta'), {
        'idempotency-key': key,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorAnswer).error.code).toBe('invalid_idempotency_key');
    });
  });

  describe('POST /v1/alarms/{id}/ack', () => {
    const raise = async (target: Record<string, unknown>, tok = token('ta')) => {
      const res = await post(report({ ...target, alarmIdentifier: ident('ack') }), tok);
      expect(res.status).toBe(202);
      return ((await res.json()) as WriteAnswer).id;
    };
    const ack = (ref: string | null, id: string, bearer?: string) =>
      asUser(ref, `/v1/alarms/${id}/ack`, 'POST', bearer);

    it('acknowledges an alarm of the user tenant once; a second ack answers the existing one', async () => {
      const id = await raise({ deviceId: dev('da2') });
      const first = await ack('a1', id);
      expect(first.status).toBe(200);
      const a = (await first.json()) as WriteAnswer;
      expect(a).toMatchObject({ id, outcome: 'acknowledged' });
      expect(a.alarm.acknowledged_at).not.toBeNull();
      expect(a.alarm).toEqual(await stored(id));
      const row = await prisma.alarm.findUniqueOrThrow({ where: { id: BigInt(id) } });
      expect(row.acknowledgedBy).toBe(world.users.a1!.id);

      const second = await ack('a1', id);
      expect(second.status).toBe(200);
      expect(await second.json()).toEqual({ ...a, outcome: 'already_acknowledged' });
      const events = await eventsOf(id);
      expect(events.map((e) => e.kind)).toEqual(['alarm.created', 'alarm.acknowledged']);
      expect(events[1]!.payload).toEqual({ alarm: a.alarm });
    });

    it('lets a user of another tenant acknowledge through an explicit device share, and device-less alarms by tenant', async () => {
      const onShared = await raise({ deviceId: dev('da') });
      expect((await ack('b1', onShared)).status).toBe(200);
      const onDb = await raise({ deviceId: dev('db') }, token('tb'));
      expect((await ack('ops', onDb)).status).toBe(200);
      const tenantWide = await raise({ tenantId: world.tenants.A!.id });
      expect((await ack('a1', tenantWide)).status).toBe(200);
    });

    it('answers 404 for alarms the user may not see and for ids that name no alarm', async () => {
      const onDa2 = await raise({ deviceId: dev('da2') });
      const tenantWide = await raise({ tenantId: world.tenants.A!.id });
      const events = await eventCount();
      for (const [ref, id] of [
        ['b1', onDa2], // shares da, not da2
        ['b2', onDa2],
        ['b1', tenantWide], // a device share never reaches device-less alarms
        ['ops', onDa2],
        ['a1', '999999999'],
        ['a1', 'abc'],
        ['a1', '99999999999999999999'],
      ] as const) {
        const res = await ack(ref, id);
        expect(res.status, `${ref} acking ${id}`).toBe(404);
        expect(((await res.json()) as ErrorAnswer).error.code).toBe('not_found');
      }
      expect(await eventCount()).toBe(events);
      expect(
        (await prisma.alarm.findUniqueOrThrow({ where: { id: BigInt(onDa2) } })).acknowledgedAt,
      ).toBeNull();
    });

    it('answers 403 for an inactive user and 401 for a missing, forged, expired or never-expiring JWT', async () => {
      const id = await raise({ deviceId: dev('da') });
      const inactive = await ack('a-off', id);
      expect(inactive.status).toBe(403);
      expect(((await inactive.json()) as ErrorAnswer).error.code).toBe('forbidden');
      const forged = await signUserJwt('another-secret-another-secret-0000', world.users.a1!.id);
      const expired = await signUserJwt(JWT_SECRET, world.users.a1!.id, -60);
      // Correctly signed, but without exp: it would be valid forever.
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: String(world.users.a1!.id) })}`;
      const noExp = `${unsigned}.${createHmac('sha256', JWT_SECRET).update(unsigned).digest('base64url')}`;
      for (const bearer of [forged, expired, noExp, 'not-a-jwt', world.collectorTokens.ta!.token]) {
        const res = await ack(null, id, bearer);
        expect(res.status).toBe(401);
        expect(((await res.json()) as ErrorAnswer).error.code).toBe('unauthenticated');
      }
      const none = await fetch(`${ingest.url}/v1/alarms/${id}/ack`, { method: 'POST' });
      expect(none.status).toBe(401);
      expect((await prisma.alarm.findUniqueOrThrow({ where: { id: BigInt(id) } })).acknowledgedAt).toBeNull();
    });

    it('answers a malformed percent-escape in the alarm id with 400 invalid_path, not 500', async () => {
      for (const path of ['/v1/alarms/%E0%A4%A/ack', '/v1/alarms/%/ack', '/v1/alarms/%zz/ack']) {
        const res = await asUser('a1', path, 'POST');
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({
          error: { code: 'invalid_path', message: expect.any(String) },
        });
      }
    });

    it('writes one event for concurrent acks', async () => {
      const id = await raise({ deviceId: dev('da') });
      const answers = await Promise.all(
        ['a1', 'b1', 'a1', 'b1', 'a1'].map(
          async (ref) => ((await (await ack(ref, id)).json()) as WriteAnswer).outcome,
        ),
      );
      expect(answers.filter((o) => o === 'acknowledged')).toHaveLength(1);
      expect(answers.filter((o) => o === 'already_acknowledged')).toHaveLength(4);
      expect((await eventsOf(id)).map((e) => e.kind)).toEqual(['alarm.created', 'alarm.acknowledged']);
    });
  });

  describe('GET /v1/alarms', () => {
    interface Page {
      alarms: AlarmWire[];
      next_cursor: string | null;
    }
    const list = async (ref: string, query = '') => {
      const res = await asUser(ref, `/v1/alarms${query ? `?${query}` : ''}`);
      return { status: res.status, body: (await res.json()) as Page & ErrorAnswer };
    };
    /** Every page, following next_cursor. */
    const all = async (ref: string, query: string) => {
      const seen: AlarmWire[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const q: string = cursor ? `${query}&cursor=${encodeURIComponent(cursor)}` : query;
        const { status, body } = await list(ref, q);
        expect(status).toBe(200);
        seen.push(...body.alarms);
        cursor = body.next_cursor;
        expect(++pages).toBeLessThan(200);
      } while (cursor);
      return seen;
    };
    /** What `ref` may see, from the database, in the API's order. */
    const expected = async (ref: string, where: Record<string, unknown> = {}) => {
      const u = world.users[ref]!;
      const shares = await prisma.userDevice.findMany({ where: { userId: u.id } });
      const rows = await prisma.alarm.findMany({
        where: {
          ...where,
          OR: [
            ...(u.tenantId === null ? [] : [{ tenantId: u.tenantId }]),
            { deviceId: { in: shares.map((s) => s.deviceId) } },
          ],
        },
        include: { device: true },
      });
      return rows
        .sort((x, y) => Number(x.clearedAt !== null) - Number(y.clearedAt !== null) || Number(y.id - x.id))
        .map(toAlarmWire);
    };

    beforeAll(async () => {
      // A spread of active and cleared alarms of every severity in both tenants, device and device-less.
      const severities = ['Critical', 'Major', 'Minor', 'Warning', 'Indeterminate'];
      const targets: [Record<string, unknown>, 'ta' | 'tb'][] = [
        [{ deviceId: dev('da') }, 'ta'],
        [{ deviceId: dev('da2') }, 'ta'],
        [{ tenantId: world.tenants.A!.id }, 'ta'],
        [{ deviceId: dev('db') }, 'tb'],
        [{ tenantId: world.tenants.B!.id }, 'tb'],
      ];
      for (let i = 0; i < 30; i++) {
        const [target, tok] = targets[i % targets.length]!;
        const id0 = ident('list');
        await post(
          report({ ...target, alarmIdentifier: id0, perceivedSeverity: severities[i % 5] }),
          token(tok),
        );
        if (i % 3 === 0)
          await post(report({ ...target, alarmIdentifier: id0, perceivedSeverity: 'Cleared' }), token(tok));
      }
    });

    it('lists exactly what each user may see, active first then newest, never another tenant', async () => {
      for (const ref of ['a1', 'b1', 'b2', 'ops']) {
        const { status, body } = await list(ref, 'limit=500');
        expect(status).toBe(200);
        expect(body.next_cursor).toBeNull();
        expect(body.alarms, ref).toEqual(await expected(ref));
        expect(body.alarms.length).toBeGreaterThan(0);
      }
      const b2 = (await list('b2', 'limit=500')).body.alarms;
      expect(b2.every((a) => a.tenant_id === world.tenants.B!.id)).toBe(true);
      const ops = (await list('ops', 'limit=500')).body.alarms;
      expect(ops.every((a) => a.device_id === dev('db'))).toBe(true);
      const b1 = (await list('b1', 'limit=500')).body.alarms;
      expect(b1.every((a) => a.tenant_id === world.tenants.B!.id || a.device_id === dev('da'))).toBe(true);
      expect(b1.some((a) => a.device_id === dev('da'))).toBe(true);
    });

    it('filters by state, severity and device', async () => {
      const active = (await list('a1', 'state=active&limit=500')).body.alarms;
      expect(active).toEqual(await expected('a1', { clearedAt: null }));
      const cleared = (await list('a1', 'state=cleared&limit=500')).body.alarms;
      expect(cleared).toEqual(await expected('a1', { clearedAt: { not: null } }));
      expect(cleared.length).toBeGreaterThan(0);
      const severe = (await list('b1', 'severity=Critical,Major&limit=500')).body.alarms;
      expect(severe).toEqual(await expected('b1', { perceivedSeverity: { in: ['Critical', 'Major'] } }));
      expect(severe.length).toBeGreaterThan(0);
      const onDa = (await list('b1', `deviceId=${dev('da')}&state=active&limit=500`)).body.alarms;
      expect(onDa).toEqual(await expected('b1', { deviceId: dev('da'), clearedAt: null }));
      expect(onDa.length).toBeGreaterThan(0);
      // Filtering on a device one may not see yields nothing, not an error.
      expect((await list('b2', `deviceId=${dev('da')}`)).body.alarms).toEqual([]);
    });

    it('pages with next_cursor over every alarm exactly once, across the active/cleared boundary', async () => {
      for (const [ref, query] of [
        ['a1', 'limit=3'],
        ['b1', 'limit=2&state=all'],
        ['b1', 'limit=4&state=cleared'],
        ['a1', 'limit=1&severity=Critical,Minor,Cleared'],
      ] as const) {
        const everything = (await list(ref, `${query.replace(/limit=\d+/, 'limit=500')}`)).body.alarms;
        const paged = await all(ref, query);
        expect(
          paged.map((a) => a.id),
          `${ref} ${query}`,
        ).toEqual(everything.map((a) => a.id));
        expect(new Set(paged.map((a) => a.id)).size).toBe(paged.length);
      }
    });

    it.each([
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['limit=ten', 'limit'],
      ['state=open', 'state'],
      ['severity=Critical,Bad', 'severity.1'],
      ['deviceId=-1', 'deviceId'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${Buffer.from('{"c":2,"i":"1"}').toString('base64url')}`, 'cursor'],
      ['colour=red', '(body)'],
      ['limit=1&limit=2', 'limit'],
    ])('answers 422 validation_failed for %s', async (query, field) => {
      const { status, body } = await list('a1', query);
      expect(status).toBe(422);
      expect(body.error.code).toBe('validation_failed');
      expect(body.error.details!.map((d) => d.field)).toContain(field);
    });

    it('answers 401 without a valid user JWT (a collector token is not one)', async () => {
      expect((await fetch(`${ingest.url}/v1/alarms`)).status).toBe(401);
      expect((await asUser(null, '/v1/alarms', 'GET', world.collectorTokens.ta!.token)).status).toBe(401);
      expect((await list('a-off')).status).toBe(403);
    });
  });
});

describe('ingest configuration', () => {
  const base = { NODE_ENV: 'production' };
  it('refuses to start in production without a real JWT_SECRET', () => {
    expect(() => parseIngestConfig(base)).toThrow(
      /JWT_SECRET: is required.*refusing|refusing.*JWT_SECRET: is required/,
    );
    expect(() => parseIngestConfig({ ...base, JWT_SECRET: 'alarmcast-dev-jwt-secret' })).toThrow(
      /development default/,
    );
    expect(() => parseIngestConfig({ ...base, JWT_SECRET: 'short' })).toThrow(/at least 32/);
    expect(parseIngestConfig({ ...base, JWT_SECRET: 'x'.repeat(32) }).JWT_SECRET).toBe('x'.repeat(32));
  });
  it('has the documented abuse-limit defaults, and reads TRUST_PROXY as documented', () => {
    const config = parseIngestConfig({});
    expect(config).toMatchObject({
      INGEST_INTERNAL_PORT: 9100,
      COLLECTOR_TOKEN_NEGATIVE_CACHE_S: 5,
      RATE_LIMIT_WINDOW_S: 1,
      RATE_LIMIT_ALARMS_PER_TOKEN: 1000,
      RATE_LIMIT_ALARMS_PER_IP: 2000,
      RATE_LIMIT_USER_API_PER_USER: 50,
      RATE_LIMIT_USER_API_PER_IP: 500,
      RATE_LIMIT_AUTH_FAILURES_PER_IP: 100,
      TRUST_PROXY: false,
      HTTP_HEADERS_TIMEOUT_MS: 10_000,
      HTTP_REQUEST_TIMEOUT_MS: 30_000,
    });
    expect(parseIngestConfig({ TRUST_PROXY: '1' }).TRUST_PROXY).toBe(1);
    expect(parseIngestConfig({ TRUST_PROXY: 'uniquelocal' }).TRUST_PROXY).toEqual(['uniquelocal']);
    expect(() => parseIngestConfig({ TRUST_PROXY: 'true' })).toThrow(/TRUST_PROXY/);
    expect(() => parseIngestConfig({ TRUST_PROXY: '300.1.1.1' })).toThrow(/TRUST_PROXY/);
  });
  it('uses the development default elsewhere, and treats an empty value as unset', () => {
    for (const JWT_SECRET of [undefined, '', '  ']) {
      const config = parseIngestConfig({ JWT_SECRET });
      expect(config.JWT_SECRET).toBe('alarmcast-dev-jwt-secret');
      expect(config.jwtSecretDefaulted).toBe(true);
    }
  });
});
