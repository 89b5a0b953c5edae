import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import PusherServer from 'pusher';
import { signChannelAuth, signUserJwt } from '@alarmcast/auth';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import { ACCESS_WATCHER_APPLICATION_NAME } from '../src/access-watcher.js';
import { PUSHER_CODES } from '../src/close-codes.js';
import { REVOCATION_MESSAGES } from '../src/revocation.js';
import type { EdgeServer } from '../src/server.js';
import {
  Pusher,
  RawClient,
  createEdgeWorld,
  errorData,
  ownedSubscription,
  provisionTenant,
  publish,
  type EdgeWorld,
} from './helpers.js';

/**
 * Live revocation with real pusher-js clients on two edges: each trigger is made the way alarmcast makes it
 * (Prisma, what the CLI runs) and the way the platform's own application would (plain SQL on its own
 * connection); the edges only learn of it through the database's NOTIFY. Traffic runs on every channel
 * through every path (the HTTP API, pub/sub envelopes as the resolver publishes them, client events) while
 * the change happens, and the time from the change to the last delivery of what was revoked is measured.
 */

interface Delivery {
  channel: string;
  event: string;
  at: number;
}

/** One pusher-js client and everything it saw, with the time of each. */
interface Probe {
  pusher: Pusher;
  deliveries: Delivery[];
  /** `pusher:subscription_error` per channel, when it came */
  revokedAt: Map<string, { at: number; data: unknown }>;
  /** `pusher:error` frames */
  errors: { code: number | undefined; message: string | undefined }[];
  /** close codes */
  closes: number[];
  /** when the connection left the connected state */
  drops: number[];
  socketIds: string[];
}

const TRAFFIC_EVENTS = ['api-tick', 'live-tick', 'client-tick'];

describe('revocation while connected', () => {
  let world: EdgeWorld;
  let edges: [EdgeServer, EdgeServer];
  let sql: pg.Client;
  const measured: string[] = [];

  beforeAll(async () => {
    world = await createEdgeWorld();
    edges = await Promise.all([world.startSharedEdge(), world.startSharedEdge()]);
    sql = new pg.Client({ connectionString: world.config().databaseUrl, application_name: 'platform-app' });
    await sql.connect();
    await vi.waitFor(() => expect(edges.every((e) => e.listeningForAccessChanges)).toBe(true));
  });
  afterEach(() => world.closeTracked());
  afterAll(async () => {
    // The measured times, for the record (the README and the closing note quote them).
    console.log(`revocation timings:\n  ${measured.join('\n  ')}`);
    await sql.end();
    await world.teardown();
  });

  function probe(edge: EdgeServer, token: () => string): Probe {
    const { key } = world.config().app;
    const pusher = world.track(
      new Pusher(key, {
        cluster: 'mt1',
        wsHost: '127.0.0.1',
        wsPort: edge.port,
        forceTLS: false,
        enabledTransports: ['ws'],
        disableStats: true,
        channelAuthorization: {
          endpoint: `${edge.url}/broadcasting/auth`,
          transport: 'ajax',
          // Read at each authorization: a reconnect authorizes with the token the application holds then.
          headersProvider: () => ({ Authorization: `Bearer ${token()}` }),
        },
      }),
      (p) => p.disconnect(),
    );
    const p: Probe = {
      pusher,
      deliveries: [],
      revokedAt: new Map(),
      errors: [],
      closes: [],
      drops: [],
      socketIds: [],
    };
    pusher.connection.bind('state_change', (s: { previous: string; current: string }) => {
      if (s.previous === 'connected') p.drops.push(performance.now());
    });
    // pusher-js reports a `pusher:error` frame as a PusherError, and a close as a WebSocketError around one.
    type Reported = { code?: number; message?: string };
    pusher.connection.bind('error', (e: { type?: string; data?: Reported; error?: { data?: Reported } }) => {
      if (e.type === 'PusherError') p.errors.push({ code: e.data?.code, message: e.data?.message });
      else if (e.error?.data?.code !== undefined) p.closes.push(e.error.data.code);
    });
    pusher.connection.bind('connected', () => p.socketIds.push(pusher.connection.socket_id));
    return p;
  }

  async function join(p: Probe, channelName: string): Promise<void> {
    const channel = p.pusher.subscribe(channelName);
    channel.bind_global((event: string, data: unknown) => {
      if (TRAFFIC_EVENTS.includes(event))
        p.deliveries.push({ channel: channelName, event, at: performance.now() });
      if (event === 'pusher:subscription_error')
        p.revokedAt.set(channelName, { at: performance.now(), data });
    });
    await vi.waitFor(
      () => {
        if (!channel.subscribed) throw new Error(`${channelName} not subscribed yet`);
      },
      { timeout: 10_000, interval: 10 },
    );
  }

  /**
   * Every 10 ms, on each channel: an HTTP API event (the official server SDK, to edge A) and a pub/sub
   * envelope (what the resolver publishes); on user channels, a client event from `whisperer` too.
   */
  function traffic(channels: string[], whisperer?: Probe): { stop: () => Promise<void> } {
    const { id, key, secret } = world.config().app;
    const api = new PusherServer({ appId: id, key, secret, host: '127.0.0.1', port: String(edges[0].port) });
    let running = true;
    let n = 0;
    const loop = (async () => {
      while (running) {
        n += 1;
        await Promise.all([
          api.trigger(channels, 'api-tick', { n }).catch(() => undefined),
          ...channels.map((c) => publish(world, c, 'live-tick', JSON.stringify({ n }))),
        ]);
        // Client events stay under the edge's 10 per second per socket.
        for (const c of n % 15 === 0 ? channels : []) {
          const channel = whisperer?.pusher.channel(c);
          if (c.startsWith('private-user.') && channel?.subscribed) channel.trigger('client-tick', { n });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  const last = (p: Probe, channel: string): number =>
    Math.max(-Infinity, ...p.deliveries.filter((d) => d.channel === channel).map((d) => d.at));

  /** Waits until every probe has seen traffic on every channel, so the loop is known to flow. */
  async function flowing(probes: Probe[], channels: string[], since = 0): Promise<void> {
    await vi.waitFor(
      () => {
        for (const p of probes)
          for (const c of channels)
            for (const event of ['api-tick', 'live-tick'])
              if (!p.deliveries.some((d) => d.channel === c && d.event === event && d.at > since))
                throw new Error(`no ${event} on ${c} yet`);
      },
      { timeout: 10_000, interval: 10 },
    );
  }

  type Writer = {
    name: string;
    deactivate: (id: number) => Promise<unknown>;
    move: (id: number, tenant: number) => Promise<unknown>;
  };
  const writers: Writer[] = [
    {
      name: 'alarmcast (Prisma, as the CLI)',
      deactivate: (id) => world.prisma.user.update({ where: { id }, data: { active: false } }),
      move: (id, tenant) => world.prisma.user.update({ where: { id }, data: { tenantId: tenant } }),
    },
    {
      name: "the platform's application (plain SQL)",
      deactivate: (id) => sql.query('UPDATE users SET active = false WHERE id = $1', [id]),
      move: (id, tenant) => sql.query('UPDATE users SET tenant_id = $2 WHERE id = $1', [id, tenant]),
    },
  ];

  describe.each(writers)('changes made by $name', (writer) => {
    it('a deactivated user is closed with 4009 on both edges within 1 s, and gets nothing after', async () => {
      const t = await provisionTenant(world.prisma, 'deact', [{ name: 'ana' }, { name: 'bo' }]);
      const [ana, bo] = t.userIds as [number, number];
      const jwt = await world.jwt(ana);
      const channels = [userChannel(ana), tenantChannel(t.tenantId)];
      const tabs = [probe(edges[0], () => jwt), probe(edges[1], () => jwt)];
      for (const p of tabs) for (const c of channels) await join(p, c);
      // A colleague on the tenant channel keeps receiving: the traffic still flows after the revocation.
      const boJwt = await world.jwt(bo);
      const colleague = probe(edges[1], () => boJwt);
      await join(colleague, tenantChannel(t.tenantId));

      const load = traffic(channels, tabs[0]);
      await flowing([...tabs, colleague], [tenantChannel(t.tenantId)]);
      await flowing(tabs, [userChannel(ana)]);
      await vi.waitFor(() => expect(tabs[1]!.deliveries.some((d) => d.event === 'client-tick')).toBe(true));

      const changedAt = performance.now();
      await writer.deactivate(ana);
      await vi.waitFor(() => expect(tabs.map((p) => p.drops.length)).toEqual([1, 1]), {
        timeout: 2000,
        interval: 5,
      });
      const closedAt = Math.max(...tabs.map((p) => p.drops[0]!));
      await flowing([colleague], [tenantChannel(t.tenantId)], closedAt + 100);
      await load.stop();

      for (const p of tabs) {
        // pusher-js gives up on 4000-4099: no reconnect, no hammering.
        expect(p.pusher.connection.state).toBe('disconnected');
        expect(p.socketIds).toHaveLength(1);
        // the `pusher:error` frame, then the close
        expect(p.errors).toContainEqual({ code: 4009, message: REVOCATION_MESSAGES.accessRevoked });
        expect(p.closes).toEqual([4009]);
        for (const c of channels) expect(last(p, c)).toBeLessThan(p.drops[0]!);
      }
      const lastDelivery = Math.max(...tabs.flatMap((p) => channels.map((c) => last(p, c))));
      expect(closedAt - changedAt).toBeLessThan(1000);
      measured.push(
        `deactivation by ${writer.name}: closed on both edges ${(closedAt - changedAt).toFixed(1)} ms ` +
          `after the change; last delivery ${(lastDelivery - changedAt).toFixed(1)} ms after it`,
      );
    });

    it('a user moved to another tenant loses that tenant channel only, on both edges, and keeps their own', async () => {
      const from = await provisionTenant(world.prisma, 'from', [{ name: 'ana' }]);
      const to = await provisionTenant(world.prisma, 'to', []);
      const [ana] = from.userIds as [number];
      const jwt = await world.jwt(ana);
      const own = userChannel(ana);
      const lost = tenantChannel(from.tenantId);
      const tabs = [probe(edges[0], () => jwt), probe(edges[1], () => jwt)];
      for (const p of tabs) for (const c of [own, lost]) await join(p, c);

      const load = traffic([own, lost], tabs[0]);
      await flowing(tabs, [own, lost]);
      const changedAt = performance.now();
      await writer.move(ana, to.tenantId);
      await vi.waitFor(() => expect(tabs.every((p) => p.revokedAt.has(lost))).toBe(true), {
        timeout: 2000,
        interval: 5,
      });
      const revokedAt = Math.max(...tabs.map((p) => p.revokedAt.get(lost)!.at));
      // Their own channel goes on, through every path.
      await flowing(tabs, [own], revokedAt + 100);
      await vi.waitFor(() =>
        expect(tabs[1]!.deliveries.some((d) => d.event === 'client-tick' && d.at > revokedAt)).toBe(true),
      );
      await load.stop();

      for (const p of tabs) {
        expect(p.revokedAt.get(lost)!.data).toEqual({
          type: 'AuthError',
          error: REVOCATION_MESSAGES.channelRevoked(lost),
          status: 403,
        });
        expect(last(p, lost)).toBeLessThan(p.revokedAt.get(lost)!.at);
        // one `pusher:error` naming the channel; the connection stays
        expect(p.errors).toEqual([{ code: 4009, message: REVOCATION_MESSAGES.channelRevoked(lost) }]);
        expect(p.closes).toEqual([]);
        expect(p.drops).toEqual([]);
        expect(p.pusher.connection.state).toBe('connected');
      }
      const lastDelivery = Math.max(...tabs.map((p) => last(p, lost)));
      expect(revokedAt - changedAt).toBeLessThan(1000);
      measured.push(
        `tenant move by ${writer.name}: tenant channel ended on both edges ${(revokedAt - changedAt).toFixed(1)} ms ` +
          `after the change; its last delivery ${(lastDelivery - changedAt).toFixed(1)} ms after it`,
      );
    });
  });

  it('a removed share ends no subscription: the user still reads their own and their tenant channel', async () => {
    const t = await provisionTenant(world.prisma, 'share', [{ name: 'ana' }]);
    const other = await provisionTenant(world.prisma, 'owner', []);
    const [ana] = t.userIds as [number];
    const device = await world.prisma.cpeDevice.create({
      data: { tenantId: other.tenantId, oui: '00D09E', productClass: 'HG', serialNumber: `S${ana}` },
    });
    await world.prisma.userDevice.create({ data: { userId: ana, deviceId: device.id } });
    const jwt = await world.jwt(ana);
    const channels = [userChannel(ana), tenantChannel(t.tenantId)];
    const tab = probe(edges[0], () => jwt);
    for (const c of channels) await join(tab, c);
    await sql.query('DELETE FROM user_devices WHERE user_id = $1', [ana]);
    // 300 ms of traffic after the change, several times what a re-check takes: it ended nothing of ana's.
    const load = traffic(channels);
    await flowing([tab], channels, performance.now() + 300);
    await load.stop();
    expect(tab.revokedAt.size).toBe(0);
    expect(tab.errors).toEqual([]);
    expect(tab.drops).toEqual([]);
  });

  it('closes a connection with 4203 when its JWT expires; pusher-js reconnects at once with the new token', async () => {
    const t = await provisionTenant(world.prisma, 'exp', [{ name: 'ana' }]);
    const [ana] = t.userIds as [number];
    const { jwtSecret } = world.config();
    let token = await signUserJwt(jwtSecret, ana, 2);
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number })
      .exp;
    const channels = [userChannel(ana), tenantChannel(t.tenantId)];
    const tabs = [probe(edges[0], () => token), probe(edges[1], () => token)];
    for (const p of tabs) for (const c of channels) await join(p, c);
    // The application refreshes its token before the old one expires, as a real one would.
    token = await signUserJwt(jwtSecret, ana, 3600);

    await vi.waitFor(() => expect(tabs.map((p) => p.drops.length)).toEqual([1, 1]), {
      timeout: 5000,
      interval: 5,
    });
    // pusher-js reports the `pusher:error` frame and then the close itself, both with 4203.
    for (const p of tabs)
      expect(new Set(p.errors.map((e) => JSON.stringify(e)))).toEqual(
        new Set([JSON.stringify({ code: 4203, message: REVOCATION_MESSAGES.tokenExpired })]),
      );
    const closedAt = tabs.map((p) => p.drops[0]!);
    const lateMs = Math.max(...closedAt) + performance.timeOrigin - exp * 1000;
    await vi.waitFor(
      () => {
        for (const p of tabs) {
          expect(p.socketIds).toHaveLength(2);
          for (const c of channels) expect(p.pusher.channel(c)?.subscribed).toBe(true);
        }
      },
      { timeout: 5000, interval: 10 },
    );
    const load = traffic(channels);
    await flowing(tabs, channels, Math.max(...closedAt));
    await load.stop();
    // Closed at the expiry (exp has a resolution of one second), not before it.
    expect(lateMs).toBeGreaterThanOrEqual(0);
    expect(lateMs).toBeLessThan(1000);
    measured.push(`JWT expiry: closed with 4203 on both edges ${lateMs.toFixed(1)} ms after exp`);
  });

  it('after an expiry without a fresh token, re-authorization fails with 401 and the client does not hammer', async () => {
    const t = await provisionTenant(world.prisma, 'exp2', [{ name: 'ana' }]);
    const [ana] = t.userIds as [number];
    const token = await signUserJwt(world.config().jwtSecret, ana, 2);
    const tab = probe(edges[0], () => token);
    await join(tab, userChannel(ana));
    const failures: unknown[] = [];
    tab.pusher.channel(userChannel(ana))!.bind('pusher:subscription_error', (e: unknown) => failures.push(e));
    await vi.waitFor(() => expect(tab.drops).toHaveLength(1), { timeout: 5000 });
    await vi.waitFor(() => expect(failures).toEqual([expect.objectContaining({ status: 401 })]), {
      timeout: 5000,
    });
    expect(tab.socketIds).toHaveLength(2);
    expect(tab.drops).toHaveLength(1);
    expect(tab.pusher.connection.state).toBe('connected');
  });

  it('re-checks every local subscription when its LISTEN connection comes back, so a change made while it was down is not missed', async () => {
    const edge = await world.startEdge();
    await vi.waitFor(() => expect(edge.listeningForAccessChanges).toBe(true));
    const t = await provisionTenant(world.prisma, 'lost', [{ name: 'ana' }]);
    const [ana] = t.userIds as [number];
    const jwt = await world.jwt(ana);
    const tab = probe(edge, () => jwt);
    await join(tab, userChannel(ana));
    await join(tab, tenantChannel(t.tenantId));

    // Every listener of this database loses its session, and the change commits before any is back
    // (they reconnect after 250 ms): its NOTIFY reaches nobody.
    const changedAt = performance.now();
    await sql.query('BEGIN');
    const { rows } = await sql.query<{ gone: boolean }>(
      `SELECT pg_terminate_backend(pid, 5000) AS gone FROM pg_stat_activity
        WHERE application_name = $1 AND datname = current_database()`,
      [ACCESS_WATCHER_APPLICATION_NAME],
    );
    await sql.query('UPDATE users SET active = false WHERE id = $1', [ana]);
    await sql.query('COMMIT');
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.every((r) => r.gone)).toBe(true);

    await vi.waitFor(() => expect(tab.drops).toHaveLength(1), { timeout: 5000, interval: 5 });
    expect(tab.closes).toEqual([4009]);
    expect(edge.listeningForAccessChanges).toBe(true);
    measured.push(
      `change while LISTEN was down: closed ${(tab.drops[0]! - changedAt).toFixed(1)} ms after the change`,
    );
  });

  it('an auth answer obtained before a change cannot be used after it', async () => {
    const from = await provisionTenant(world.prisma, 'race', [{ name: 'ana' }]);
    const to = await provisionTenant(world.prisma, 'race-to', []);
    const [ana] = from.userIds as [number];
    const jwt = await world.jwt(ana);
    const lost = tenantChannel(from.tenantId);
    const raw = await RawClient.connect(world, edges[1]);
    const socketId = await raw.socketId();
    const res = await fetch(`${edges[0].url}/broadcasting/auth`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ socket_id: socketId, channel_name: lost }).toString(),
    });
    const answer = (await res.json()) as { auth: string; channel_data: string };
    // A probe on the same edge shows when that edge has processed the change.
    const witness = probe(edges[1], () => jwt);
    await join(witness, lost);
    await world.prisma.user.update({ where: { id: ana }, data: { tenantId: to.tenantId } });
    await vi.waitFor(() => expect(witness.revokedAt.has(lost)).toBe(true), { timeout: 2000 });

    // The signature is good, but the subscribing edge checks this user again: their access just changed.
    raw.send({ event: 'pusher:subscribe', data: { channel: lost, ...answer } });
    await raw.next((f) => f.event === 'pusher:subscription_error' && f.channel === lost);
    const after = raw.frames.length;
    // No node holds the channel any more: nothing can reach the socket.
    await vi.waitFor(async () => expect(await publish(world, lost, 'live-tick', '{}')).toBe(0));
    raw.send({ event: 'pusher:ping', data: {} });
    await raw.next((f) => f.event === 'pusher:pong', after);
    expect(raw.frames.slice(after).filter((f) => f.channel === lost)).toEqual([]);
  });

  it('refuses a tenant subscription without channel_data, a stale auth answer and malformed channel_data', async () => {
    const t = await provisionTenant(world.prisma, 'refuse', [{ name: 'ana' }]);
    const [ana] = t.userIds as [number];
    const raw = await RawClient.connect(world, edges[0]);
    const socketId = await raw.socketId();
    const channel = tenantChannel(t.tenantId);
    const { key, secret } = world.config().app;
    const now = Math.floor(Date.now() / 1000);
    const attempts: [object, string][] = [
      [{ channel, auth: signChannelAuth(key, secret, socketId, channel) }, REVOCATION_MESSAGES.ownerRequired],
      [ownedSubscription(world, socketId, channel, ana, { iat: now - 120 }), REVOCATION_MESSAGES.staleAuth],
      [ownedSubscription(world, socketId, channel, ana, { exp: now - 1 }), REVOCATION_MESSAGES.expiredAuth],
      [
        {
          channel,
          auth: signChannelAuth(key, secret, socketId, channel, '{"user":1}'),
          channel_data: '{"user":1}',
        },
        REVOCATION_MESSAGES.badOwnerData,
      ],
    ];
    for (const [data, message] of attempts) {
      const from = raw.frames.length;
      raw.send({ event: 'pusher:subscribe', data });
      const error = await raw.next((f) => f.event === 'pusher:error', from);
      expect(errorData(error)).toEqual({ code: PUSHER_CODES.unauthorized, message });
    }
    expect(raw.frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded')).toEqual([]);
    expect(raw.closed).toBeNull();
  });
});
