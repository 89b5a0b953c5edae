import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import pg from 'pg';
import { DeviceStatusEventData, WIRE_EVENTS, deviceChannel, tenantChannel } from '@alarmcast/contracts';
import { StateChannelFlusher, StateChannelWriter, createRedis, type Redis } from '@alarmcast/redis';
import { testEnv } from '@alarmcast/testing';
import type { EdgeServer } from '../src/server.js';
import { createEdgeWorld, numsub, pusherClient, type EdgeWorld, type Pusher } from './helpers.js';

/**
 * `private-device.{id}` end to end with real pusher-js clients: who may subscribe (the alarm visibility rule
 * over random tenant/share graphs), the snapshot every (re)subscribe starts with, live updates after it,
 * conflation as two edges' sockets see it, per-edge pub/sub subscriptions, and revocation.
 */

interface Seen {
  event: string;
  data: { device?: Record<string, unknown>; changed?: string[]; snapshot?: true };
}

describe('private-device channels', () => {
  let world: EdgeWorld;
  let edges: [EdgeServer, EdgeServer];
  let writerRedis: Redis;
  let writer: StateChannelWriter;
  let flusher: StateChannelFlusher;
  let sql: pg.Client;
  let version = 1;

  beforeAll(async () => {
    world = await createEdgeWorld();
    const limitsOff = {
      RATE_LIMIT_CHANNEL_AUTH_PER_USER: '0',
      RATE_LIMIT_CHANNEL_AUTH_PER_IP: '0',
      RATE_LIMIT_AUTH_FAILURES_PER_IP: '0',
    };
    edges = await Promise.all([world.startSharedEdge(limitsOff), world.startSharedEdge(limitsOff)]);
    writerRedis = createRedis(testEnv().redisUrl, { name: 'test-writer' });
    writer = new StateChannelWriter(writerRedis, world.keys, { node: 'test-ingest' });
    // As every ingest process runs one: publishes conflated updates at their window's end.
    flusher = new StateChannelFlusher(writer, { intervalMs: 50, onError: () => undefined });
    flusher.start();
    sql = new pg.Client({ connectionString: world.config().databaseUrl });
    await sql.connect();
    await vi.waitFor(() => expect(edges.every((e) => e.listeningForAccessChanges)).toBe(true));
  });
  afterEach(() => world.closeTracked());
  afterAll(async () => {
    await sql?.end();
    await flusher?.stop();
    writerRedis?.disconnect();
    await world.teardown();
  });

  async function makeDevice(tenantId: number, serial = `SN${Math.random().toString(36).slice(2, 10)}`) {
    return world.prisma.cpeDevice.create({
      data: { tenantId, oui: '00D09E', productClass: 'IGD', serialNumber: serial, name: `cpe ${serial}` },
    });
  }
  async function makeTenant(name: string) {
    return world.prisma.tenant.create({
      data: { name, slug: `${name}-${Math.random().toString(36).slice(2, 8)}` },
    });
  }
  async function makeUser(tenantId: number | null, active = true) {
    return world.prisma.user.create({
      data: { tenantId, name: 'u', email: `u-${Math.random().toString(36).slice(2)}@example.test`, active },
    });
  }
  /** What an ingest does after an inform: the device's state to its channel. */
  const writeState = (
    deviceId: number,
    state: Record<string, unknown>,
    changed: string[],
    minIntervalMs = 0,
  ) =>
    writer.write([
      {
        channel: deviceChannel(deviceId),
        event: WIRE_EVENTS.deviceStatusChanged,
        root: 'device',
        version: String(version++),
        state: JSON.stringify({ id: deviceId, ...state }),
        changed,
        minIntervalMs,
      },
    ]);

  function client(edge: EdgeServer, jwt: string): Pusher {
    return world.track(pusherClient(edge, world.config().app.key, jwt), (p) => p.disconnect());
  }
  function watch(pusher: Pusher, channelName: string) {
    const seen: Seen[] = [];
    const state = { subscribed: 0, error: null as unknown };
    const channel = pusher.subscribe(channelName);
    channel.bind('pusher:subscription_succeeded', () => (state.subscribed += 1));
    channel.bind('pusher:subscription_error', (e: unknown) => (state.error = e));
    channel.bind_global((event: string, data: Seen['data']) => {
      if (!event.startsWith('pusher')) seen.push({ event, data });
    });
    return { seen, state };
  }

  it('authorizes a device channel exactly for active users who may see the device, over random graphs', async () => {
    const auth = async (userId: number, channelName: string) => {
      const res = await fetch(`${edges[0].url}/broadcasting/auth`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await world.jwt(userId)}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: `socket_id=1234.5678&channel_name=${channelName}`,
      });
      return res.status;
    };
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          tenants: fc.integer({ min: 1, max: 3 }),
          users: fc.array(fc.record({ tenant: fc.integer({ min: -1, max: 2 }), active: fc.boolean() }), {
            minLength: 1,
            maxLength: 5,
          }),
          devices: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 4 }),
          shares: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 5 }),
        }),
        async (g) => {
          const tenants = [];
          for (let t = 0; t < g.tenants; t++) tenants.push(await makeTenant(`t${t}`));
          const users = [];
          for (const u of g.users) {
            // -1: a platform user without a tenant
            const tenant = u.tenant < 0 ? null : tenants[u.tenant % tenants.length]!.id;
            users.push(await makeUser(tenant, u.active));
          }
          const devices = [];
          for (const d of g.devices) devices.push(await makeDevice(tenants[d % tenants.length]!.id));
          const shared = new Set<string>();
          for (const [ui, di] of g.shares) {
            const user = users[ui % users.length]!;
            const device = devices[di % devices.length]!;
            if (shared.has(`${user.id}:${device.id}`)) continue;
            shared.add(`${user.id}:${device.id}`);
            await world.prisma.userDevice.create({ data: { userId: user.id, deviceId: device.id } });
          }
          for (const user of users) {
            for (const device of devices) {
              const may =
                user.active && (user.tenantId === device.tenantId || shared.has(`${user.id}:${device.id}`));
              expect(
                await auth(user.id, deviceChannel(device.id)),
                `user ${user.id} device ${device.id}`,
              ).toBe(may ? 200 : 403);
              checked += 1;
            }
          }
        },
      ),
      { numRuns: 8 },
    );
    expect(checked).toBeGreaterThan(8);
    // A device that does not exist is refused like one of another tenant.
    const [tenant] = [await makeTenant('x')];
    expect(await auth((await makeUser(tenant.id)).id, deviceChannel(2_000_000_000))).toBe(403);
  }, 120_000);

  it('starts every subscribe and resubscribe with the current state as a snapshot, then live updates', async () => {
    const tenant = await makeTenant('snap');
    const device = await makeDevice(tenant.id);
    const user = await makeUser(tenant.id);
    await writeState(device.id, { online: true, software_version: 'v1' }, ['online']);
    await writeState(device.id, { online: true, software_version: 'v2' }, ['software_version']);

    const pusher = client(edges[0], await world.jwt(user.id));
    const w = watch(pusher, deviceChannel(device.id));
    await vi.waitFor(() => expect(w.seen).toHaveLength(1), { timeout: 10_000 });
    const snapshot = DeviceStatusEventData.omit({ device: true })
      .extend({ device: DeviceStatusEventData.shape.device.partial() })
      .parse(w.seen[0]!.data);
    expect(w.seen[0]!.event).toBe(WIRE_EVENTS.deviceStatusChanged);
    expect(snapshot).toEqual({
      device: { id: device.id, online: true, software_version: 'v2' },
      changed: [],
      snapshot: true,
    });

    await writeState(device.id, { online: false, software_version: 'v2' }, ['online']);
    await vi.waitFor(() => expect(w.seen).toHaveLength(2));
    expect(w.seen[1]!.data).toEqual({
      device: { id: device.id, online: false, software_version: 'v2' },
      changed: ['online'],
    });

    // A reconnect (pusher-js subscribes again) starts with the state as it is now.
    pusher.disconnect();
    await writeState(device.id, { online: true, software_version: 'v3' }, ['online', 'software_version']);
    pusher.connect();
    await vi.waitFor(() => expect(w.seen).toHaveLength(3), { timeout: 10_000 });
    expect(w.seen[2]!.data).toEqual({
      device: { id: device.id, online: true, software_version: 'v3' },
      changed: [],
      snapshot: true,
    });
    // Unsubscribe and subscribe again on the same socket: a snapshot again.
    pusher.unsubscribe(deviceChannel(device.id));
    const again = watch(pusher, deviceChannel(device.id));
    await vi.waitFor(() => expect(again.seen).toHaveLength(1), { timeout: 10_000 });
    expect(again.seen[0]!.data.snapshot).toBe(true);
    // A device never written has no snapshot: only the subscription.
    const silent = await makeDevice(tenant.id);
    const s = watch(pusher, deviceChannel(silent.id));
    await vi.waitFor(() => expect(s.state.subscribed).toBe(1));
    await new Promise((r) => setTimeout(r, 200));
    expect(s.seen).toHaveLength(0);
  }, 60_000);

  it('two edges: each subscribes while one of its sockets holds the channel; conflated updates reach both once', async () => {
    const tenant = await makeTenant('two');
    const device = await makeDevice(tenant.id);
    const user = await makeUser(tenant.id);
    const jwt = await world.jwt(user.id);
    const channel = deviceChannel(device.id);
    expect(await numsub(world, channel)).toBe(0);
    const a = client(edges[0], jwt);
    const b = client(edges[1], jwt);
    const b2 = client(edges[1], jwt);
    const wa = watch(a, channel);
    const wb = watch(b, channel);
    const wb2 = watch(b2, channel);
    await vi.waitFor(() => expect([wa, wb, wb2].every((w) => w.state.subscribed === 1)).toBe(true), {
      timeout: 10_000,
    });
    // One Redis subscription per edge, whatever its number of sockets.
    expect(await numsub(world, channel)).toBe(2);

    // Eight changes within 400 ms: one event now, one at the window's end with the union and latest state.
    for (let i = 0; i < 8; i++) {
      await writeState(device.id, { online: true, n: i }, i % 2 ? ['parameters'] : ['software_version'], 400);
    }
    await vi.waitFor(() => expect([wa, wb, wb2].every((w) => w.seen.length === 2)).toBe(true), {
      timeout: 5000,
    });
    await new Promise((r) => setTimeout(r, 600));
    for (const w of [wa, wb, wb2]) {
      expect(w.seen).toHaveLength(2);
      expect(w.seen[0]!.data).toEqual({
        device: { id: device.id, online: true, n: 0 },
        changed: ['software_version'],
      });
      expect(w.seen[1]!.data.device).toEqual({ id: device.id, online: true, n: 7 });
      expect(w.seen[1]!.data.changed?.sort()).toEqual(['parameters', 'software_version']);
    }
    b.unsubscribe(channel);
    await new Promise((r) => setTimeout(r, 100));
    expect(await numsub(world, channel)).toBe(2);
    b2.disconnect();
    await vi.waitFor(async () => expect(await numsub(world, channel)).toBe(1));
    a.unsubscribe(channel);
    await vi.waitFor(async () => expect(await numsub(world, channel)).toBe(0));
  }, 60_000);

  it('ends a device subscription when its share is removed, its user moved, or the device moved away', async () => {
    const home = await makeTenant('home');
    const away = await makeTenant('away');
    const shared = await makeDevice(home.id);
    const own = await makeDevice(home.id);
    const moving = await makeDevice(home.id);
    const guest = await makeUser(away.id); // sees `shared` through its share only
    const member = await makeUser(home.id);
    const mover = await makeUser(home.id);
    await world.prisma.userDevice.create({ data: { userId: guest.id, deviceId: shared.id } });

    const g = watch(client(edges[0], await world.jwt(guest.id)), deviceChannel(shared.id));
    const m = watch(client(edges[1], await world.jwt(member.id)), deviceChannel(moving.id));
    const mv = watch(client(edges[0], await world.jwt(mover.id)), deviceChannel(own.id));
    await vi.waitFor(() => expect([g, m, mv].every((w) => w.state.subscribed === 1)).toBe(true), {
      timeout: 10_000,
    });

    // Each change made directly in SQL, as the platform's own application would.
    await sql.query('DELETE FROM user_devices WHERE user_id = $1 AND device_id = $2', [guest.id, shared.id]);
    await sql.query('UPDATE cpe_devices SET tenant_id = $1 WHERE id = $2', [away.id, moving.id]);
    await sql.query('UPDATE users SET tenant_id = $1 WHERE id = $2', [away.id, mover.id]);
    await vi.waitFor(() => expect([g, m, mv].every((w) => w.state.error !== null)).toBe(true), {
      timeout: 5000,
    });
    for (const w of [g, m, mv]) expect(w.state.error).toMatchObject({ status: 403 });

    // Nothing more reaches them.
    for (const d of [shared, moving, own]) await writeState(d.id, { online: true }, ['online']);
    await new Promise((r) => setTimeout(r, 300));
    for (const w of [g, m, mv]) expect(w.seen).toHaveLength(0);
    // The device's status row followed it to its new tenant.
    const { rows } = await sql.query('SELECT tenant_id FROM device_status WHERE device_id = $1', [moving.id]);
    expect(rows[0].tenant_id).toBe(away.id);
  }, 60_000);

  it('sends the tenant summary snapshot on private-tenant.{id}', async () => {
    const tenant = await makeTenant('sum');
    const user = await makeUser(tenant.id);
    await writer.write([
      {
        channel: tenantChannel(tenant.id),
        event: WIRE_EVENTS.tenantDeviceSummary,
        root: 'summary',
        version: String(Date.now()),
        state: JSON.stringify({ tenant_id: tenant.id, online: 2, offline: 1, total: 3 }),
        changed: ['online'],
        minIntervalMs: 5000,
      },
    ]);
    const w = watch(client(edges[1], await world.jwt(user.id)), tenantChannel(tenant.id));
    await vi.waitFor(() => expect(w.seen).toHaveLength(1), { timeout: 10_000 });
    expect(w.seen[0]).toEqual({
      event: WIRE_EVENTS.tenantDeviceSummary,
      data: {
        summary: { tenant_id: tenant.id, online: 2, offline: 1, total: 3 },
        changed: [],
        snapshot: true,
      },
    });
  }, 30_000);
});
