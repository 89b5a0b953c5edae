import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signChannelAuth, signUserJwt } from '@alarmcast/auth';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import {
  RawClient,
  connectedSocketId,
  createEdgeWorld,
  errorData,
  metricValue,
  numsub,
  provisionTenant,
  publish,
  pusherClient,
  type EdgeWorld,
} from './helpers.js';

const SOCKET = '1234.5678';
const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('POST /broadcasting/auth', () => {
  let world: EdgeWorld;
  let edge: EdgeServer;
  let ana: number; // tenant A, active
  let ivan: number; // tenant A, inactive
  let bea: number; // tenant B
  let platform: number; // no tenant
  let tenantA: number;
  let tenantB: number;

  const auth = async (
    body: Record<string, string> | string,
    jwt: string | null,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${edge.url}/broadcasting/auth`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(jwt ? { authorization: `Bearer ${jwt}` } : {}),
        ...headers,
      },
      body: typeof body === 'string' ? body : new URLSearchParams(body).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const expectError = (
    res: { status: number; body: Record<string, unknown> },
    status: number,
    code: string,
  ) => {
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
  };

  beforeAll(async () => {
    world = await createEdgeWorld();
    const a = await provisionTenant(world.prisma, 'a', [{ name: 'ana' }, { name: 'ivan', active: false }]);
    const b = await provisionTenant(world.prisma, 'b', [{ name: 'bea' }]);
    [ana, ivan] = a.userIds as [number, number];
    [bea] = b.userIds as [number];
    tenantA = a.tenantId;
    tenantB = b.tenantId;
    platform = (await world.prisma.user.create({ data: { name: 'root', email: 'root@example.test' } })).id;
    edge = await world.startSharedEdge();
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  it('signs socket_id:channel_name:channel_data for a user on their own channel and on their tenant channel, the owner and the JWT expiry in channel_data', async () => {
    const { app } = world.config();
    for (const channel of [userChannel(ana), tenantChannel(tenantA)]) {
      const jwt = await world.jwt(ana, 600);
      const now = Math.floor(Date.now() / 1000);
      const res = await auth({ socket_id: SOCKET, channel_name: channel }, jwt);
      expect(res.status).toBe(200);
      const body = res.body as { auth: string; channel_data: string };
      const data = JSON.parse(body.channel_data) as { user_id: number; exp: number; iat: number };
      expect(data).toEqual({ user_id: ana, exp: expect.any(Number), iat: expect.any(Number) });
      expect(Math.abs(data.exp - (now + 600))).toBeLessThanOrEqual(1);
      expect(Math.abs(data.iat - now)).toBeLessThanOrEqual(1);
      expect(body.auth).toBe(signChannelAuth(app.key, app.secret, SOCKET, channel, body.channel_data));
      expect(body.auth).toMatch(new RegExp(`^${app.key}:[0-9a-f]{64}$`));
    }
  });

  it('accepts JSON bodies too', async () => {
    const body = JSON.stringify({ socket_id: SOCKET, channel_name: userChannel(ana) });
    const res = await auth(body, await world.jwt(ana), { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
  });

  it.each([
    ["another user's channel", () => ana, () => userChannel(bea)],
    ["another tenant's channel", () => ana, () => tenantChannel(tenantB)],
    ['an inactive user, own channel', () => ivan, () => userChannel(ivan)],
    ['an inactive user, own tenant', () => ivan, () => tenantChannel(tenantA)],
    ['a platform user on a tenant channel', () => platform, () => tenantChannel(tenantA)],
    ['a user that does not exist', () => 999_999, () => userChannel(999_999)],
    ['a presence channel', () => ana, () => `presence-tenant.${tenantA}`],
    ['a public channel', () => ana, () => 'alarms'],
    ['an unknown private channel', () => ana, () => 'private-admin'],
  ])('403 for %s', async (_name, user, channel) => {
    expectError(
      await auth({ socket_id: SOCKET, channel_name: channel() }, await world.jwt(user())),
      403,
      'forbidden',
    );
  });

  it('401 without a valid bearer token: missing, garbage, forged, expired, alg none, other scheme', async () => {
    const body = { socket_id: SOCKET, channel_name: userChannel(ana) };
    const now = Math.floor(Date.now() / 1000);
    const tokens = [
      null,
      'not-a-jwt',
      await signUserJwt('someone-elses-secret', ana),
      await signUserJwt(world.config().jwtSecret, ana, -60),
      `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: String(ana), iat: now, exp: now + 3600 })}.`,
    ];
    for (const token of tokens) expectError(await auth(body, token), 401, 'unauthenticated');
    expectError(
      await auth(body, null, { authorization: `Basic ${await world.jwt(ana)}` }),
      401,
      'unauthenticated',
    );
  });

  it('422 for a malformed socket_id or channel_name, 400 for broken JSON, 415 for other media types', async () => {
    const jwt = await world.jwt(ana);
    for (const socketId of ['abc', '1.2.3', '12', '1.2;DROP', '']) {
      expectError(
        await auth({ socket_id: socketId, channel_name: userChannel(ana) }, jwt),
        422,
        'validation_failed',
      );
    }
    expectError(await auth({ socket_id: SOCKET }, jwt), 422, 'validation_failed');
    expectError(
      await auth({ socket_id: SOCKET, channel_name: 'private user/1' }, jwt),
      422,
      'validation_failed',
    );
    expectError(
      await auth('{"socket_id":', jwt, { 'content-type': 'application/json' }),
      400,
      'invalid_json',
    );
    expectError(
      await auth('socket_id=1.2', jwt, { 'content-type': 'text/plain' }),
      415,
      'unsupported_media_type',
    );
  });

  it('answers CORS preflights for the Authorization header', async () => {
    const res = await fetch(`${edge.url}/broadcasting/auth`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://console.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
  });

  it('with CORS_ORIGINS, lets only those origins through', async () => {
    const restricted = await world.startEdge({ CORS_ORIGINS: 'https://console.example' });
    const allowOrigin = async (origin: string) =>
      (
        await fetch(`${restricted.url}/broadcasting/auth`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST' },
        })
      ).headers.get('access-control-allow-origin');
    expect(await allowOrigin('https://console.example')).toBe('https://console.example');
    expect(await allowOrigin('https://evil.example')).toBeNull();
  });

  it("pusher-js reports a 403 as subscription_error and never joins another user's channel", async () => {
    const pusher = world.track(pusherClient(edge, world.config().app.key, await world.jwt(ana)), (p) =>
      p.disconnect(),
    );
    await connectedSocketId(pusher);
    const channel = pusher.subscribe(userChannel(bea));
    const error = await new Promise<unknown>((resolve) => channel.bind('pusher:subscription_error', resolve));
    expect(error).toMatchObject({ type: 'AuthError', status: 403 });
    expect(edge.subscriptions.localChannels()).not.toContain(userChannel(bea));
  });
});

describe('pusher:subscribe signature check', () => {
  let world: EdgeWorld;
  let edge: EdgeServer;
  let ana: number;
  let bea: number;

  beforeAll(async () => {
    world = await createEdgeWorld();
    const { userIds } = await provisionTenant(world.prisma, 'a', [{ name: 'ana' }, { name: 'bea' }]);
    [ana, bea] = userIds as [number, number];
    edge = await world.startSharedEdge();
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  /** A raw client legitimately subscribed to ana's channel, to prove the forbidden channel stays silent. */
  async function anaWithOwnChannel(): Promise<{ client: RawClient; socketId: string }> {
    const client = await RawClient.connect(world, edge);
    const socketId = await client.socketId();
    const { app } = world.config();
    client.send({
      event: 'pusher:subscribe',
      data: {
        channel: userChannel(ana),
        auth: signChannelAuth(app.key, app.secret, socketId, userChannel(ana)),
      },
    });
    await client.next(
      (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === userChannel(ana),
    );
    return { client, socketId };
  }

  /** Publishes on the forbidden channel, then on ana's: Redis keeps their order, so once ana's arrives, any
   *  delivery of the first would have arrived before it. */
  async function expectNothingFrom(client: RawClient, forbidden: string): Promise<void> {
    const from = client.frames.length;
    await publish(world, forbidden, 'App\\Events\\AlarmCreated', '{"secret":true}');
    await publish(world, userChannel(ana), 'marker', '{}');
    await client.next((f) => f.event === 'marker', from);
    expect(client.frames.filter((f) => f.channel === forbidden)).toEqual([]);
    expect(edge.subscriptions.localChannels()).not.toContain(forbidden);
    expect(await numsub(world, forbidden)).toBe(0);
  }

  const errorAfter = (client: RawClient, from: number) =>
    client.next((f) => f.event === 'pusher:error', from).then(errorData);

  it('refuses a forged signature with pusher:error 4009, as Reverb does, and keeps the socket', async () => {
    const { client } = await anaWithOwnChannel();
    const from = client.frames.length;
    client.send({
      event: 'pusher:subscribe',
      data: { channel: userChannel(bea), auth: `${world.config().app.key}:${'0'.repeat(64)}` },
    });
    expect(await errorAfter(client, from)).toEqual({ code: 4009, message: 'Connection is unauthorized' });
    await expectNothingFrom(client, userChannel(bea));
    expect(client.closed).toBeNull();
  });

  it('refuses a signature that is valid for another socket id', async () => {
    const { client, socketId } = await anaWithOwnChannel();
    const { app } = world.config();
    const [high, low] = socketId.split('.') as [string, string];
    const otherSocket = `${high}.${Number(low) + 1}`;
    const from = client.frames.length;
    client.send({
      event: 'pusher:subscribe',
      data: {
        channel: userChannel(bea),
        auth: signChannelAuth(app.key, app.secret, otherSocket, userChannel(bea)),
      },
    });
    expect(await errorAfter(client, from)).toMatchObject({ code: 4009 });
    await expectNothingFrom(client, userChannel(bea));
  });

  it('refuses missing auth, a signature by another secret, public, presence and unknown channels', async () => {
    const { client, socketId } = await anaWithOwnChannel();
    const { app } = world.config();
    const sign = (secret: string, channel: string) => signChannelAuth(app.key, secret, socketId, channel);
    const attempts = [
      { channel: userChannel(bea) },
      { channel: userChannel(bea), auth: sign('another-secret', userChannel(bea)) },
      { channel: 'alarms', auth: '' },
      { channel: `presence-user.${bea}`, auth: sign(app.secret, `presence-user.${bea}`) },
      { channel: 'private-admin', auth: sign(app.secret, 'private-admin') },
    ];
    const reasons = ['bad_signature', 'public', 'presence', 'unknown_channel'];
    const refused = () =>
      Promise.all(
        reasons.map((reason) => metricValue(edge, 'ws_edge_subscriptions_refused_total', { reason })),
      );
    const before = await refused();
    for (const data of attempts) {
      const from = client.frames.length;
      client.send({ event: 'pusher:subscribe', data });
      expect(await errorAfter(client, from)).toMatchObject({ code: 4009 });
      await expectNothingFrom(client, data.channel);
    }
    const after = await refused();
    expect(after.map((n, i) => n - (before[i] ?? 0))).toEqual([2, 1, 1, 1]);
  });
});
