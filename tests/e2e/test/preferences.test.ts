import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { WIRE_EVENTS, type ProvisionResult } from '@alarmcast/contracts';
import {
  createPgPool,
  createPrismaClient,
  provisionGraph,
  type PgPool,
  type PrismaClient,
} from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { JWT_SECRET, connectUser, startStack, type Stack, type UserClient } from '../src/stack.js';

/**
 * Notification preferences end to end: ingest, resolver(s), edge(s), real pusher-js clients. Muted users get
 * nothing, silent ones get `notify:false`, Critical alarms bypass user rules (not a tenant lock), a received
 * alarm's lifecycle reaches its recipients whatever their rules, a rule change applies to the next event,
 * and the audience explains it. Run with one resolver and with two (and batched envelopes): the same
 * expectations hold for both, so the resolvers agree.
 */
const u = (ref: string, role = 'operator') => ({ ref, email: `${ref}@example.test`, name: ref, role });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [u('admin', 'tenant_admin'), u('plain'), u('muted'), u('silent'), u('strict')],
      devices: [
        { ref: 'd1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'd1' },
        { ref: 'd2', oui: '00D09E', productClass: 'HG8245', serialNumber: 'd2' },
      ],
      collectorTokens: [{ ref: 'collector', name: 'collector A' }],
    },
  ],
};
const everyone = ['admin', 'plain', 'muted', 'silent', 'strict'];

interface Delivered {
  event: string;
  alarmId: string;
  severity: string;
  notify: boolean | undefined;
}

describe.each([
  { edges: 1, resolvers: 1, batchMin: '100' },
  { edges: 2, resolvers: 2, batchMin: '1' },
])('preferences end to end with $resolvers resolver(s), $edges edge(s), batches from $batchMin', (o) => {
  let prisma: PrismaClient;
  let pool: PgPool;
  let stack: Stack;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  const clients = new Map<string, UserClient>();
  let sentinel = 0;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    pool = createPgPool(db.url, { max: 2 });
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: testEnv().redisUrl,
      redisPrefix: uniqueRedisPrefix(),
      edges: o.edges,
      resolvers: o.resolvers,
      env: { RESOLVER_BATCH_MIN_RECIPIENTS: o.batchMin, RATE_LIMIT_USER_API_PER_USER: '0' },
    });
    await Promise.all(
      everyone.map(async (ref, i) =>
        clients.set(ref, await connectUser(stack.edges[i % o.edges]!, world.users[ref]!.id)),
      ),
    );
  });
  afterAll(async () => {
    for (const c of clients.values()) c.disconnect();
    await stack.close();
    await pool.end();
    await prisma.$disconnect();
    await dropDb();
  });

  const api = async (ref: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[ref]!.id)}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json', 'if-match': '*' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(res.status, `${method} ${path}`).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  };
  const raise = async (
    target: { deviceId: number } | { tenantId: number },
    ident: string,
    severity: string,
  ) => {
    const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.collectorTokens.collector!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        ...target,
        alarmIdentifier: ident,
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: '',
        perceivedSeverity: severity,
      }),
    });
    expect(res.status).toBeLessThan(300);
    return ((await res.json()) as { id: string }).id;
  };
  const got = (ref: string): Delivered[] =>
    clients.get(ref)!.received.map((e) => ({
      event: e.event,
      alarmId: e.data.alarm.id,
      severity: String(e.data.alarm.perceived_severity),
      notify: (e.data as { notify?: boolean }).notify,
    }));
  /**
   * Waits until every event of the alarms so far is broadcast, then sends a tenant-wide Critical alarm that
   * reaches everyone and waits for it: whatever a user was going to get before it, they have by then.
   */
  const settle = async () => {
    await vi.waitFor(
      async () => {
        const { rows } = await pool.query<{ n: string }>(
          'SELECT count(*) n FROM outbox_events WHERE broadcast_at IS NULL',
        );
        expect(Number(rows[0]!.n)).toBe(0);
      },
      { timeout: 10_000, interval: 20 },
    );
    const id = await raise({ tenantId: world.tenants.A!.id }, `sentinel-${++sentinel}`, 'Critical');
    await vi.waitFor(
      () => {
        for (const ref of everyone)
          expect(
            got(ref).map((e) => e.alarmId),
            ref,
          ).toContain(id);
      },
      { timeout: 10_000, interval: 20 },
    );
  };
  const of = (ref: string, alarmId: string) => got(ref).filter((e) => e.alarmId === alarmId);

  it('mutes, silences, bypasses for Critical, keeps lifecycles, applies changes to the next event, explains', async () => {
    const d1 = world.devices.d1!.id;
    await api('muted', 'PUT', '/v1/me/preferences', { mute: { devices: [d1] } });
    await api('silent', 'PUT', '/v1/me/preferences', {
      quietHours: {
        timeZone: 'Pacific/Auckland',
        windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' }],
      },
    });
    await api('strict', 'PUT', '/v1/me/preferences', { minSeverity: 'Critical' });

    // A Major on d1: muted and strict get nothing, silent gets it with notify:false, the others with notify.
    const major = await raise({ deviceId: d1 }, 'major-1', 'Major');
    await settle();
    expect(of('plain', major)).toEqual([
      { event: WIRE_EVENTS.alarmCreated, alarmId: major, severity: 'Major', notify: true },
    ]);
    expect(of('admin', major).map((e) => e.notify)).toEqual([true]);
    expect(of('silent', major).map((e) => e.notify)).toEqual([false]);
    expect(of('muted', major)).toEqual([]);
    expect(of('strict', major)).toEqual([]);

    // A Critical on d1 bypasses their own rules: everyone, with notify (quiet hours too).
    const critical = await raise({ deviceId: d1 }, 'crit-1', 'Critical');
    await settle();
    for (const ref of everyone)
      expect(
        of(ref, critical).map((e) => e.notify),
        ref,
      ).toEqual([true]);

    // Its clear reaches everyone who got it, although Cleared is below strict's minimum and d1 is muted.
    await raise({ deviceId: d1 }, 'crit-1', 'Cleared');
    await settle();
    for (const ref of everyone)
      expect(
        of(ref, critical).map((e) => e.event),
        ref,
      ).toEqual([WIRE_EVENTS.alarmCreated, WIRE_EVENTS.alarmCleared]);
    expect(of('muted', critical).map((e) => e.notify)).toEqual([true, false]);
    expect(of('strict', critical).map((e) => e.notify)).toEqual([true, false]);
    // The Major's lifecycle stays away from those who never got it.
    await raise({ deviceId: d1 }, 'major-1', 'Cleared');
    await settle();
    expect(of('muted', major)).toEqual([]);
    expect(of('plain', major).map((e) => e.event)).toEqual([
      WIRE_EVENTS.alarmCreated,
      WIRE_EVENTS.alarmCleared,
    ]);

    // The audience explains who got the Major and why not.
    const audience = (await api('admin', 'GET', `/v1/alarms/${major}/audience`)).audience as {
      name: string;
      received: boolean;
      last_event: { outcome: string; rule: string; source: string } | null;
    }[];
    const byName = new Map(audience.map((a) => [a.name, a]));
    expect(byName.get('muted')).toMatchObject({
      received: false,
      last_event: { outcome: 'suppress', rule: 'mute.devices', source: 'user' },
    });
    expect(byName.get('strict')).toMatchObject({
      received: false,
      last_event: { outcome: 'suppress', rule: 'minSeverity' },
    });
    expect(byName.get('silent')).toMatchObject({
      received: true,
      last_event: { outcome: 'deliver_silent', rule: 'quietHours' },
    });
    expect(byName.get('plain')).toMatchObject({
      received: true,
      last_event: { outcome: 'deliver', rule: 'default' },
    });

    // A rule change applies to the next event: muted unmutes, the next Major on d1 reaches them.
    await api('muted', 'PUT', '/v1/me/preferences', {});
    const after = await raise({ deviceId: d1 }, 'major-2', 'Major');
    await settle();
    expect(of('muted', after).map((e) => e.notify)).toEqual([true]);

    // A tenant lock is "a tenant rule that says otherwise": a locked device mute holds for Critical too.
    await api('admin', 'PUT', `/v1/tenants/${world.tenants.A!.id}/preferences`, {
      defaults: { mute: { devices: [d1] } },
      locks: ['mute.devices'],
    });
    const locked = await raise({ deviceId: d1 }, 'crit-2', 'Critical');
    await settle();
    for (const ref of everyone) expect(of(ref, locked), ref).toEqual([]);
    // ...while d2 still reaches everyone.
    const other = await raise({ deviceId: world.devices.d2!.id }, 'crit-3', 'Critical');
    await settle();
    for (const ref of everyone) expect(of(ref, other).length, ref).toBe(1);
  }, 120_000);
});
