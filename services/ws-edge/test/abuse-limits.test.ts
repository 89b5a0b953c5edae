import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { userChannel } from '@alarmcast/contracts';
import { PUSHER_CODES } from '../src/close-codes.js';
import type { EdgeServer } from '../src/server.js';
import {
  createEdgeWorld,
  provisionTenant,
  publish,
  pusherClient,
  connectedSocketId,
  type EdgeWorld,
  type Pusher,
} from './helpers.js';

/**
 * "Abuse is bounded" on the edge: channel-auth rate limits shared by two edges through Redis (a 10x abusive
 * user limited, a polite one beside it not), failed authentications per IP, connection caps per IP and per
 * user (close 4004), sockets that never subscribe, and slow upgrade requests. TRUST_PROXY=loopback lets the
 * test's clients on 127.0.0.1 say which IP they are.
 */
const AUTH_PER_USER = 5;

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

interface RawSocket {
  ws: WebSocket;
  frames: { event: string; data?: string }[];
  closed: Promise<number>;
}

/** A bare socket from a chosen client IP (X-Forwarded-For, trusted from loopback). */
async function rawSocket(edge: EdgeServer, key: string, ip: string): Promise<RawSocket> {
  const ws = new WebSocket(`${edge.url.replace(/^http/, 'ws')}/app/${key}?protocol=7`, {
    headers: { 'x-forwarded-for': ip },
  });
  const frames: RawSocket['frames'] = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d)) as RawSocket['frames'][number]));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await vi.waitFor(() => expect(frames.length).toBeGreaterThan(0), { timeout: 5000, interval: 10 });
  return { ws, frames, closed };
}

describe('abuse limits on the edge', () => {
  let world: EdgeWorld;
  let users: number[];
  const sockets: WebSocket[] = [];
  const pushers: Pusher[] = [];

  beforeAll(async () => {
    world = await createEdgeWorld();
    ({ userIds: users } = await provisionTenant(world.prisma, 'abuse', [
      { name: 'abuser' },
      { name: 'polite' },
      { name: 'tabs' },
    ]));
  });
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    for (const p of pushers.splice(0)) p.disconnect();
    await world.closeTracked();
  });
  afterAll(async () => world.teardown());

  const auth = async (edge: EdgeServer, jwt: string, ip: string, channel: string) => {
    const res = await fetch(`${edge.url}/broadcasting/auth`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${jwt}`,
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': ip,
      },
      body: `socket_id=1234.5678&channel_name=${encodeURIComponent(channel)}`,
    });
    const body = (await res.json()) as { error?: { code: string } };
    return { status: res.status, code: body.error?.code, retryAfter: res.headers.get('retry-after') };
  };

  it('limits a user authorizing 10x their limit across two edges, and not a polite user beside them', async () => {
    const env = {
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_CHANNEL_AUTH_PER_USER: String(AUTH_PER_USER),
    };
    const edges = [await world.startEdge(env), await world.startEdge(env)];
    const [abuserJwt, politeJwt] = [await world.jwt(users[0]!), await world.jwt(users[1]!)];
    const started = Date.now();
    const [abusive, polite] = await Promise.all([
      paced(AUTH_PER_USER * 10, 2000, (i) =>
        auth(edges[i % 2]!, abuserJwt, '10.1.0.1', userChannel(users[0]!)),
      ),
      paced(AUTH_PER_USER / 2, 2000, (i) =>
        auth(edges[i % 2]!, politeJwt, '10.1.0.2', userChannel(users[1]!)),
      ),
    ]);
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    expect(polite.map((a) => a.status)).toEqual(polite.map(() => 200));
    const granted = abusive.filter((a) => a.status === 200).length;
    const refused = abusive.filter((a) => a.status === 429);
    expect(granted + refused.length).toBe(abusive.length);
    expect(granted).toBeGreaterThanOrEqual(AUTH_PER_USER);
    // Counted per edge instead of shared, twice as many would be granted.
    expect(granted).toBeLessThanOrEqual(windows * AUTH_PER_USER);
    for (const r of refused) {
      expect(r.code).toBe('rate_limited');
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    const metrics = await (await fetch(`${edges[0]!.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rate_limited_total\{limit="channel-auth-user"[^}]*\} [1-9]/m);
  });

  it('limits failed channel authentications per IP, and no other IP', async () => {
    const edge = await world.startEdge({ TRUST_PROXY: 'loopback', RATE_LIMIT_AUTH_FAILURES_PER_IP: '5' });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++)
      statuses.push((await auth(edge, 'not-a-jwt', '10.1.1.1', 'private-user.1')).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const good = await world.jwt(users[1]!);
    expect((await auth(edge, good, '10.1.1.1', userChannel(users[1]!))).status).toBe(429);
    expect((await auth(edge, good, '10.1.1.2', userChannel(users[1]!))).status).toBe(200);
  });

  it('lets channel authorization through while Redis is unreachable (fail open), and counts it', async () => {
    const blind = await world.startEdge({ REDIS_URL: 'redis://127.0.0.1:1' });
    const jwt = await world.jwt(users[1]!);
    expect((await auth(blind, jwt, '10.1.2.1', userChannel(users[1]!))).status).toBe(200);
    const metrics = await (await fetch(`${blind.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rate_limit_fail_open_total\{limit="channel-auth-ip"[^}]*\} [1-9]/m);
  });

  it('caps sockets per client IP with close 4004, frees the slot on close, and leaves other IPs alone', async () => {
    const edge = await world.startEdge({ TRUST_PROXY: 'loopback', EDGE_MAX_CONNECTIONS_PER_IP: '3' });
    const key = world.config().app.key;
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await rawSocket(edge, key, '10.1.3.1'));
    sockets.push(...open.map((s) => s.ws));
    const over = await rawSocket(edge, key, '10.1.3.1');
    sockets.push(over.ws);
    expect(await over.closed).toBe(PUSHER_CODES.overConnectionQuota);
    expect(over.frames[0]).toMatchObject({ event: 'pusher:error' });
    expect(JSON.parse(over.frames[0]!.data!)).toMatchObject({ code: 4004 });
    for (const s of open) expect(s.frames[0]).toMatchObject({ event: 'pusher:connection_established' });
    const other = await rawSocket(edge, key, '10.1.3.2');
    sockets.push(other.ws);
    expect(other.frames[0]).toMatchObject({ event: 'pusher:connection_established' });
    open[0]!.ws.close();
    await open[0]!.closed;
    await vi.waitFor(
      async () => {
        const again = await rawSocket(edge, key, '10.1.3.1');
        sockets.push(again.ws);
        expect(again.frames[0]).toMatchObject({ event: 'pusher:connection_established' });
      },
      { timeout: 5000, interval: 50 },
    );
  });

  it('caps sockets per user (pusher-js): the one over the cap is closed with 4004, the others keep receiving', async () => {
    const edge = await world.startEdge({ EDGE_MAX_CONNECTIONS_PER_USER: '2' });
    const user = users[2]!;
    const jwt = await world.jwt(user);
    const key = world.config().app.key;
    const received: unknown[][] = [[], [], []];
    const closes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = pusherClient(edge, key, jwt);
      pushers.push(p);
      p.connection.bind('error', (e: { data?: { code?: number } }) => {
        if (e.data?.code !== undefined) closes.push(e.data.code);
      });
      await connectedSocketId(p);
      const channel = p.subscribe(userChannel(user));
      channel.bind('App\\Events\\Ping', (d: unknown) => received[i]!.push(d));
      if (i < 2) {
        await vi.waitFor(() => expect(channel.subscribed).toBe(true), { timeout: 5000, interval: 20 });
      }
    }
    const third = pushers[2]!;
    await vi.waitFor(() => expect(third.connection.state).not.toBe('connected'), {
      timeout: 5000,
      interval: 20,
    });
    // pusher-js does not reconnect after a 4000-4099 close.
    expect(['disconnected', 'failed', 'unavailable']).toContain(third.connection.state);
    await publish(world, userChannel(user), 'App\\Events\\Ping', '{"n":1}');
    await vi.waitFor(() => expect(received[0]!.length + received[1]!.length).toBe(2), {
      timeout: 5000,
      interval: 20,
    });
    expect(received[2]).toEqual([]);
    const metrics = await (await fetch(`${edge.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^ws_edge_connections_closed_by_limit_total\{reason="per_user"[^}]*\} 1$/m);
  });

  it('closes a socket that subscribes to nothing within EDGE_SUBSCRIBE_TIMEOUT_S with 4202, not one that did', async () => {
    const edge = await world.startEdge({ EDGE_SUBSCRIBE_TIMEOUT_S: '1' });
    const key = world.config().app.key;
    const jwt = await world.jwt(users[1]!);
    const busy = pusherClient(edge, key, jwt);
    pushers.push(busy);
    const channel = busy.subscribe(userChannel(users[1]!));
    await vi.waitFor(() => expect(channel.subscribed).toBe(true), { timeout: 5000, interval: 20 });
    const idle = await rawSocket(edge, key, '127.0.0.1');
    sockets.push(idle.ws);
    const started = Date.now();
    expect(await idle.closed).toBe(PUSHER_CODES.closedAfterInactivity);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(busy.connection.state).toBe('connected');
  });

  it('closes an upgrade whose headers never finish within HTTP_HEADERS_TIMEOUT_MS', async () => {
    const edge = await world.startEdge({ HTTP_HEADERS_TIMEOUT_MS: '500', HTTP_REQUEST_TIMEOUT_MS: '1000' });
    const started = Date.now();
    const socket = connect(edge.port, '127.0.0.1');
    socket.on('error', () => undefined);
    let answer = '';
    socket.on('data', (b: Buffer) => (answer += b.toString()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(
      `GET /app/${world.config().app.key}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n`,
    );
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(4000);
  });
});
