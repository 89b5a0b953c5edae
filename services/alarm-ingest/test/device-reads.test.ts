import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { DeviceStatusWire, type ProvisionResult } from '@alarmcast/contracts';
import {
  createPgPool,
  createPrismaClient,
  provisionGraph,
  type PgPool,
  type PrismaClient,
} from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

const JWT_SECRET = 'device-reads-test-jwt-secret-0123456789abcdef';

/**
 * A random tenant/share graph (seeded, so a failure replays): 4 tenants of 2-3 users and 3-12 devices, a
 * platform user without a tenant, an inactive user, and shares across tenants; every device online or not
 * at random.
 */
function randomGraph(seed: number) {
  const [shape] = fc.sample(
    fc.record({
      tenants: fc.array(
        fc.record({ users: fc.integer({ min: 2, max: 3 }), devices: fc.integer({ min: 3, max: 12 }) }),
        {
          minLength: 4,
          maxLength: 4,
        },
      ),
      shares: fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 5, maxLength: 15 }),
      online: fc.array(fc.boolean(), { minLength: 48, maxLength: 48 }),
    }),
    { seed, numRuns: 1 },
  );
  const users: string[] = [];
  const devices: string[] = [];
  const tenants = shape!.tenants.map((t, i) => ({
    ref: `t${i}`,
    name: `Tenant ${i}`,
    slug: `t${i}`,
    users: Array.from({ length: t.users }, (_, k) => {
      users.push(`u${i}_${k}`);
      return {
        ref: `u${i}_${k}`,
        email: `u${i}_${k}@example.test`,
        name: `u${i}_${k}`,
        active: !(i === 0 && k === 1),
      };
    }),
    devices: Array.from({ length: t.devices }, (_, k) => {
      devices.push(`d${i}_${k}`);
      return {
        ref: `d${i}_${k}`,
        oui: '00D09E',
        productClass: 'HG8245',
        serialNumber: `S${i}-${k}`,
        ...(k % 2 ? { name: `Device ${i}.${k}` } : {}),
      };
    }),
  }));
  users.push('ops');
  const shares = [
    ...new Map(
      shape!.shares.map(([a, b]) => {
        const share = { user: users[a % users.length]!, device: devices[b % devices.length]! };
        return [`${share.user} ${share.device}`, share] as const;
      }),
    ).values(),
  ];
  return {
    graph: {
      tenants,
      platformUsers: [{ ref: 'ops', email: 'ops@example.test', name: 'ops' }],
      shares,
    },
    online: (i: number) => shape!.online[i % 48]!,
  };
}

describe('user device API (GET /v1/devices, /v1/devices/{id}, /v1/devices/summary)', () => {
  let prisma: PrismaClient;
  let pool: PgPool;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let dropDb: () => Promise<void>;
  const { graph, online } = randomGraph(20261202);

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    pool = createPgPool(db.url, { max: 2 });
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    // Presence as informs and the detector would leave it: some devices online with versions, some not.
    for (const [i, d] of Object.values(world.devices).entries()) {
      if (online(i))
        await pool.query(
          `UPDATE device_status SET online = true, last_inform_at = now(), software_version = 'V' || device_id,
                  periodic_inform_interval_s = 300 WHERE device_id = $1`,
          [d.id],
        );
    }
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
    await ingest?.close();
    await pool?.end();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const get = async (user: string, path: string) => {
    const res = await fetch(`${ingest.url}${path}`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[user]!.id)}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** What `user` may see, from the database: their tenant's devices and those shared with them. */
  const visible = async (user: string, filter: { online?: boolean } = {}) => {
    const u = world.users[user]!;
    const shared = (await prisma.userDevice.findMany({ where: { userId: u.id } })).map((s) => s.deviceId);
    const rows = await prisma.cpeDevice.findMany({
      where: {
        OR: [...(u.tenantId === null ? [] : [{ tenantId: u.tenantId }]), { id: { in: shared } }],
        ...(filter.online === undefined ? {} : { status: { online: filter.online } }),
      },
      orderBy: { id: 'asc' },
    });
    return rows.map((d) => d.id);
  };

  /** Every page of the list, following next_cursor. */
  const listAll = async (user: string, query: string) => {
    const ids: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `${query}&cursor=${encodeURIComponent(cursor)}` : query;
      const { status, body } = await get(user, `/v1/devices?${q}`);
      expect(status).toBe(200);
      const devices = body.devices as unknown[];
      for (const d of devices) {
        // Each is the DeviceStatusChanged device object, exactly.
        expect(DeviceStatusWire.safeParse(d).success).toBe(true);
        ids.push((d as { id: number }).id);
      }
      cursor = body.next_cursor as string | null;
      expect(++pages).toBeLessThan(100);
    } while (cursor);
    return ids;
  };

  const activeUsers = () => Object.keys(world.users).filter((u) => u !== 'u0_1');

  it('lists exactly the devices each user may see, by id, page by page, with and without the online filter', async () => {
    for (const user of activeUsers()) {
      expect(await listAll(user, 'limit=3')).toEqual(await visible(user));
      expect(await listAll(user, 'limit=2&online=true')).toEqual(await visible(user, { online: true }));
      expect(await listAll(user, 'online=false')).toEqual(await visible(user, { online: false }));
    }
  });

  it("answers a device's status to whoever may see it and 404 to anyone else, as for a device that does not exist", async () => {
    for (const user of activeUsers()) {
      const allowed = new Set(await visible(user));
      for (const ref of Object.keys(world.devices)) {
        const id = world.devices[ref]!.id;
        const { status, body } = await get(user, `/v1/devices/${id}`);
        if (allowed.has(id)) {
          expect(status).toBe(200);
          const device = DeviceStatusWire.parse(body.device);
          expect(device.id).toBe(id);
          const row = await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: id } });
          expect(device.online).toBe(row.online);
          expect(device.software_version).toBe(row.softwareVersion);
        } else {
          expect({ user, status, body }).toEqual({
            user,
            status: 404,
            body: { error: { code: 'not_found', message: 'no such device' } },
          });
        }
      }
      const missing = await get(user, '/v1/devices/2147483647');
      expect(missing.status).toBe(404);
      expect(missing.body).toEqual({ error: { code: 'not_found', message: 'no such device' } });
    }
  });

  it('answers the tenant summary with the counts of the user tenant, and null for a user without one', async () => {
    for (const user of activeUsers()) {
      const u = world.users[user]!;
      const { status, body } = await get(user, '/v1/devices/summary');
      expect(status).toBe(200);
      if (u.tenantId === null) {
        expect(body).toEqual({ summary: null });
        continue;
      }
      const rows = await prisma.deviceStatus.findMany({ where: { tenantId: u.tenantId } });
      expect(body.summary).toMatchObject({
        tenant_id: u.tenantId,
        online: rows.filter((r) => r.online).length,
        offline: rows.filter((r) => !r.online).length,
        total: rows.length,
      });
    }
  });

  it.each(['limit=0', 'limit=501', 'online=yes', 'cursor=not-a-cursor', 'cursor=eyJpIjowfQ', 'tenant=1'])(
    'answers 422 validation_failed naming the parameter for %s',
    async (query) => {
      const { status, body } = await get('u1_0', `/v1/devices?${query}`);
      expect(status).toBe(422);
      const error = body.error as { code: string; details: { field: string }[] };
      expect(error.code).toBe('validation_failed');
      expect(error.details.map((d) => d.field).join(' ')).toContain(
        query.split('=')[0] === 'tenant' ? '' : query.split('=')[0]!,
      );
    },
  );

  it('refuses a missing JWT (401) and an inactive user (403); a malformed id is 404', async () => {
    expect((await fetch(`${ingest.url}/v1/devices`)).status).toBe(401);
    expect((await get('u0_1', '/v1/devices')).status).toBe(403);
    for (const id of ['0', 'abc', '99999999999', '-1'])
      expect((await get('u1_0', `/v1/devices/${id}`)).status).toBe(404);
  });
});
