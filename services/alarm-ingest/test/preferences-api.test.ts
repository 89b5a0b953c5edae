import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

const JWT_SECRET = 'preferences-test-jwt-secret-0123456789abcdef';
type Role = 'tenant_admin' | 'operator' | 'platform_admin';
const user = (ref: string, role: Role = 'operator') => ({
  ref,
  email: `${ref}@example.test`,
  name: ref,
  role,
});
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [user('admin-a', 'tenant_admin'), user('alice'), user('bob')],
      devices: [{ ref: 'da', oui: '00D09E', productClass: 'HG8245', serialNumber: 'da' }],
      collectorTokens: [{ ref: 'ta', name: 'collector of A' }],
    },
    { ref: 'B', name: 'Tenant B', slug: 'tenant-b', users: [user('admin-b', 'tenant_admin')] },
  ],
  platformUsers: [user('ops', 'platform_admin')],
};

interface ErrorAnswer {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

describe('preferences API (real Postgres)', () => {
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
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
        RATE_LIMIT_USER_API_PER_USER: '0',
        RATE_LIMIT_USER_API_PER_IP: '0',
      }),
    );
  });
  afterAll(async () => {
    await ingest.close();
    await prisma.$disconnect();
    await dropDb();
  });

  const call = async (
    ref: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(`${ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[ref]!.id)}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: res.status,
      etag: res.headers.get('etag'),
      body: (await res.json()) as Record<string, unknown>,
    };
  };
  const tenantA = () => world.tenants.A!.id;
  const tenantB = () => world.tenants.B!.id;

  it('reads empty preferences at version 0, then writes them with If-Match and versions each write', async () => {
    const empty = await call('alice', 'GET', '/v1/me/preferences');
    expect(empty.status).toBe(200);
    expect(empty.etag).toBe('"0"');
    expect(empty.body).toMatchObject({
      user_id: world.users.alice!.id,
      version: 0,
      preferences: {},
      tenant: null,
    });
    expect(empty.body.effective).toMatchObject({
      minSeverity: { value: null, source: 'system' },
      criticalBypass: true,
    });

    const rules = {
      minSeverity: 'Major',
      mute: { eventTypes: ['Environmental Alarm'], devices: [world.devices.da!.id] },
      quietHours: { timeZone: 'Europe/Paris', windows: [{ days: ['fri'], start: '22:00', end: '07:00' }] },
    };
    const noIfMatch = await call('alice', 'PUT', '/v1/me/preferences', rules);
    expect(noIfMatch.status).toBe(428);
    expect((noIfMatch.body as unknown as ErrorAnswer).error.code).toBe('precondition_required');

    const first = await call('alice', 'PUT', '/v1/me/preferences', rules, { 'if-match': '"0"' });
    expect(first.status).toBe(200);
    expect(first.etag).toBe('"1"');
    expect(first.body).toMatchObject({ version: 1, preferences: rules });
    expect(first.body.effective).toMatchObject({ minSeverity: { value: 'Major', source: 'user' } });

    // A second writer that read version 0 lost the race: 412, nothing changed.
    const lost = await call('alice', 'PUT', '/v1/me/preferences', {}, { 'if-match': '"0"' });
    expect(lost.status).toBe(412);
    expect((lost.body as unknown as ErrorAnswer).error).toMatchObject({ code: 'precondition_failed' });
    expect((await call('alice', 'GET', '/v1/me/preferences')).body).toMatchObject({
      version: 1,
      preferences: rules,
    });

    const forced = await call(
      'alice',
      'PUT',
      '/v1/me/preferences',
      { minSeverity: null },
      { 'if-match': '*' },
    );
    expect(forced).toMatchObject({ status: 200, etag: '"2"', body: { preferences: { minSeverity: null } } });
    const garbage = await call('alice', 'PUT', '/v1/me/preferences', {}, { 'if-match': 'W/"2"' });
    expect(garbage.status).toBe(412);
  });

  it('names the field and the reason of every invalid setting', async () => {
    const cases: [unknown, string][] = [
      [{ minSeverity: 'Cleared' }, 'minSeverity'],
      [
        {
          quietHours: {
            timeZone: 'Mars/Olympus',
            windows: [{ days: ['mon'], start: '22:00', end: '06:00' }],
          },
        },
        'quietHours.timeZone',
      ],
      [
        { quietHours: { timeZone: 'UTC', windows: [{ days: ['mon'], start: '25:00', end: '06:00' }] } },
        'quietHours.windows.0.start',
      ],
      [
        { quietHours: { timeZone: 'UTC', windows: [{ days: ['mon'], start: '06:00', end: '06:00' }] } },
        'quietHours.windows.0.end',
      ],
      [
        { quietHours: { timeZone: 'UTC', windows: [{ days: ['funday'], start: '01:00', end: '06:00' }] } },
        'quietHours.windows.0.days.0',
      ],
      [{ mute: { devices: [0] } }, 'mute.devices.0'],
      [{ mute: { eventTypes: Array.from({ length: 201 }, (_, i) => `t${i}`) } }, 'mute.eventTypes'],
      [{ categories: { alarms: 'yes' } }, 'categories.alarms'],
      [{ colour: 'red' }, '(body)'],
    ];
    for (const [body, field] of cases) {
      const res = await call('bob', 'PUT', '/v1/me/preferences', body, { 'if-match': '*' });
      expect(res.status, JSON.stringify(body)).toBe(422);
      const error = (res.body as unknown as ErrorAnswer).error;
      expect(error.code).toBe('validation_failed');
      expect(
        error.details!.map((d) => d.field),
        JSON.stringify(body),
      ).toContain(field);
    }
    const notJson = await fetch(`${ingest.url}/v1/me/preferences`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users.bob!.id)}`,
        'if-match': '*',
      },
      body: 'x',
    });
    expect(notJson.status).toBe(415);
  });

  it("lets only the tenant's admins (and platform admins) read and write its defaults and locks", async () => {
    const path = `/v1/tenants/${tenantA()}/preferences`;
    expect((await call('alice', 'GET', path)).status).toBe(403);
    expect((await call('admin-b', 'GET', path)).status).toBe(403);
    expect((await call('ops', 'GET', `/v1/tenants/999999/preferences`)).status).toBe(404);
    const read = await call('admin-a', 'GET', path);
    expect(read).toMatchObject({
      status: 200,
      etag: '"0"',
      body: {
        tenant_id: tenantA(),
        version: 0,
        preferences: { defaults: {}, locks: [], criticalBypass: true },
      },
    });
    const doc = { defaults: { minSeverity: 'Minor' }, locks: ['minSeverity'], criticalBypass: true };
    expect((await call('alice', 'PUT', path, doc, { 'if-match': '"0"' })).status).toBe(403);
    const bad = await call('admin-a', 'PUT', path, { locks: ['colour'] }, { 'if-match': '"0"' });
    expect(bad.status).toBe(422);
    expect((bad.body as unknown as ErrorAnswer).error.details![0]!.field).toBe('locks.0');
    const put = await call('admin-a', 'PUT', path, doc, { 'if-match': '"0"' });
    expect(put).toMatchObject({ status: 200, etag: '"1"', body: { version: 1, preferences: doc } });
    expect((await call('ops', 'GET', path)).body).toMatchObject({ version: 1 });

    // A user then sees the lock, cannot set the locked setting, and has the tenant's value in force.
    const mine = await call('bob', 'GET', '/v1/me/preferences');
    expect(mine.body).toMatchObject({
      tenant: doc,
      effective: { minSeverity: { value: 'Minor', source: 'tenant_lock' } },
    });
    const locked = await call(
      'bob',
      'PUT',
      '/v1/me/preferences',
      { minSeverity: 'Critical' },
      { 'if-match': '*' },
    );
    expect(locked.status).toBe(422);
    expect((locked.body as unknown as ErrorAnswer).error).toMatchObject({
      code: 'preference_locked',
      details: [{ field: 'minSeverity', message: 'locked by your tenant' }],
    });
    // Tenant B is untouched.
    expect((await call('admin-b', 'GET', `/v1/tenants/${tenantB()}/preferences`)).body).toMatchObject({
      version: 0,
    });
  });

  it("explains an alarm's audience to its tenant's admins only, and filters the list by what my rules deliver", async () => {
    const post = await fetch(`${ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${world.collectorTokens.ta!.token}`,
      },
      body: JSON.stringify({
        deviceId: world.devices.da!.id,
        alarmIdentifier: 'warn-1',
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: '',
        perceivedSeverity: 'Warning',
      }),
    });
    expect(post.status).toBe(202);
    const { id } = (await post.json()) as { id: string };
    expect((await call('alice', 'GET', `/v1/alarms/${id}/audience`)).status).toBe(403);
    expect((await call('admin-b', 'GET', `/v1/alarms/${id}/audience`)).status).toBe(404);
    expect((await call('admin-a', 'GET', `/v1/alarms/999999/audience`)).status).toBe(404);
    const audience = await call('admin-a', 'GET', `/v1/alarms/${id}/audience`);
    expect(audience.status).toBe(200);
    // Nothing broadcast yet (no resolver here): nobody received it; the tenant's locked minimum (Minor)
    // would suppress a Warning for everyone.
    const rows = audience.body.audience as {
      user_id: number;
      received: boolean;
      last_event: unknown;
      now: unknown;
    }[];
    expect(rows.map((r) => r.user_id).sort()).toEqual(
      [world.users['admin-a']!.id, world.users.alice!.id, world.users.bob!.id].sort(),
    );
    for (const r of rows) {
      expect(r).toMatchObject({ received: false, last_event: null });
      expect(r.now).toEqual({ outcome: 'suppress', rule: 'minSeverity', source: 'tenant_lock' });
    }

    // Preferences never hide alarms from the API; the filter shows what the rules would deliver.
    const all = await call('bob', 'GET', '/v1/alarms');
    expect((all.body.alarms as { id: string }[]).map((a) => a.id)).toContain(id);
    const deliverable = await call('bob', 'GET', '/v1/alarms?deliverable=true');
    expect((deliverable.body.alarms as { id: string }[]).map((a) => a.id)).not.toContain(id);
    const bad = await call('bob', 'GET', '/v1/alarms?deliverable=maybe');
    expect((bad.body as unknown as ErrorAnswer).error.details![0]!.field).toBe('deliverable');
  });
});
