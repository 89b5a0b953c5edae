import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { signChannelAuth } from '@alarmcast/auth';
import { userChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import {
  RawClient,
  connectedSocketId,
  createEdgeWorld,
  errorData,
  metricValue,
  provisionTenant,
  publish,
  pusherClient,
  type EdgeWorld,
} from './helpers.js';

describe('Pusher protocol', () => {
  let world: EdgeWorld;
  let edge: EdgeServer;
  let ana: number;

  beforeAll(async () => {
    world = await createEdgeWorld();
    [ana] = (await provisionTenant(world.prisma, 'a', [{ name: 'ana' }])).userIds as [number];
    edge = await world.startSharedEdge();
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  async function subscribe(client: RawClient, channel: string): Promise<void> {
    const { app } = world.config();
    const auth = signChannelAuth(app.key, app.secret, await client.socketId(), channel);
    client.send({ event: 'pusher:subscribe', data: { channel, auth } });
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
  }

  async function pongs(client: RawClient): Promise<void> {
    const from = client.frames.length;
    client.send({ event: 'pusher:ping', data: {} });
    await client.next((f) => f.event === 'pusher:pong', from);
  }

  it('establishes the connection with a Pusher socket id and the activity timeout', async () => {
    const client = await RawClient.connect(world, edge);
    const established = await client.next((f) => f.event === 'pusher:connection_established');
    expect(typeof established.data).toBe('string');
    expect(JSON.parse(established.data as string)).toEqual({
      socket_id: expect.stringMatching(/^\d+\.\d+$/),
      activity_timeout: 30,
    });
    const other = await RawClient.connect(world, edge);
    expect(await other.socketId()).not.toBe(await client.socketId());
  });

  it('answers pusher:ping with pusher:pong, and WebSocket pings with pongs', async () => {
    const client = await RawClient.connect(world, edge);
    await pongs(client);
    const pong = new Promise<string>((resolve) => client.ws.once('pong', (data) => resolve(data.toString())));
    client.ws.ping('hello');
    expect(await pong).toBe('hello');
  });

  it.each([
    ['invalid JSON', (c: RawClient) => c.ws.send('{"event":'), 4200],
    ['a binary frame', (c: RawClient) => c.ws.send(Buffer.from([1, 2, 3])), 4200],
    [
      'an oversized frame',
      (c: RawClient) => c.ws.send(JSON.stringify({ event: 'x', data: 'a'.repeat(10_001) })),
      4200,
    ],
    ['a frame without an event', (c: RawClient) => c.ws.send('{"data":{}}'), 4200],
    ['an unknown pusher event', (c: RawClient) => c.ws.send('{"event":"pusher:bogus","data":{}}'), 4200],
    [
      'a subscribe without a channel',
      (c: RawClient) => c.ws.send('{"event":"pusher:subscribe","data":{}}'),
      4200,
    ],
    [
      'a client event on a channel it has not joined',
      (c: RawClient) => c.ws.send('{"event":"client-typing","channel":"x","data":{}}'),
      4009,
    ],
  ])(
    'answers %s with pusher:error and keeps serving the socket and the others',
    async (_name, sendBad, code) => {
      const bystander = await RawClient.connect(world, edge);
      await subscribe(bystander, userChannel(ana));
      const client = await RawClient.connect(world, edge);
      await subscribe(client, userChannel(ana));
      const from = client.frames.length;
      sendBad(client);
      expect(errorData(await client.next((f) => f.event === 'pusher:error', from))).toMatchObject({ code });
      await pongs(client);
      await publish(world, userChannel(ana), 'after', '{}');
      await client.next((f) => f.event === 'after');
      await bystander.next((f) => f.event === 'after');
      expect(client.closed).toBeNull();
    },
  );

  it('ignores events that are neither pusher: nor client-, as Reverb does', async () => {
    const client = await RawClient.connect(world, edge);
    await client.socketId();
    client.send({ event: 'hello', data: {} });
    await pongs(client);
    expect(client.frames.map((f) => f.event)).toEqual(['pusher:connection_established', 'pusher:pong']);
  });

  it('stops delivering a channel after pusher:unsubscribe', async () => {
    const client = await RawClient.connect(world, edge);
    await subscribe(client, userChannel(ana));
    client.send({ event: 'pusher:unsubscribe', data: { channel: userChannel(ana) } });
    await vi.waitFor(() => expect(edge.subscriptions.localChannels()).toEqual([]));
    await publish(world, userChannel(ana), 'late', '{}');
    await pongs(client);
    expect(client.frames.filter((f) => f.event === 'late')).toEqual([]);
  });

  it.each([
    ['a wrong app key', '/app/nope?protocol=7', 4001],
    ['an unknown path', '/socket?protocol=7', 4005],
    ['an unsupported protocol version', '/app/KEY?protocol=6', 4007],
    ['a malformed protocol version', '/app/KEY?protocol=seven', 4006],
  ])('refuses %s with pusher:error and a close in the no-reconnect range', async (_name, path, code) => {
    const client = await RawClient.connect(world, edge, path.replace('KEY', world.config().app.key));
    expect(errorData(await client.next((f) => f.event === 'pusher:error'))).toMatchObject({ code });
    expect(await client.closedWith()).toMatchObject({ code });
    expect(client.frames.map((f) => f.event)).toEqual(['pusher:error']);
  });

  it('accepts a client that sends no protocol version', async () => {
    const client = await RawClient.connect(world, edge, `/app/${world.config().app.key}`);
    expect(await client.socketId()).toMatch(/^\d+\.\d+$/);
  });

  it('serves /healthz, /readyz and a JSON 404', async () => {
    expect(await (await fetch(`${edge.url}/healthz`)).json()).toEqual({ status: 'ok' });
    await vi.waitFor(async () => expect((await fetch(`${edge.url}/readyz`)).status).toBe(200));
    const missing = await fetch(`${edge.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
  });

  it('serves /metrics on the internal port only, with health and readiness there too', async () => {
    expect(edge.internalUrl).not.toBe(edge.url);
    expect((await fetch(`${edge.url}/metrics`)).status).toBe(404);
    expect(await (await fetch(`${edge.internalUrl}/metrics`)).text()).toMatch(/^ws_edge_connections\{/m);
    expect((await fetch(`${edge.internalUrl}/healthz`)).status).toBe(200);
    await vi.waitFor(async () => expect((await fetch(`${edge.internalUrl}/readyz`)).status).toBe(200));
  });

  it('is not ready while Redis is unreachable, and still closes cleanly', async () => {
    const blind = await world.startEdge({ REDIS_URL: 'redis://127.0.0.1:1' });
    const res = await fetch(`${blind.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      error: { code: 'service_unavailable', details: { redis: false, database: true } },
    });
    expect((await fetch(`${blind.url}/healthz`)).status).toBe(200);
  });
});

describe('server-side liveness and flow control', () => {
  let world: EdgeWorld;
  let ana: number;

  beforeAll(async () => {
    world = await createEdgeWorld();
    [ana] = (await provisionTenant(world.prisma, 'a', [{ name: 'ana' }])).userIds as [number];
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  it('pings a silent client and closes it with 4201 when no pong comes back', async () => {
    const edge = await world.startEdge({ ACTIVITY_TIMEOUT_S: '1' });
    const silent = await RawClient.connect(world, edge);
    const established = await silent.next((f) => f.event === 'pusher:connection_established');
    expect(JSON.parse(established.data as string)).toMatchObject({ activity_timeout: 1 });
    await silent.next((f) => f.event === 'pusher:ping');
    expect(await silent.closedWith()).toMatchObject({ code: 4201 });
  });

  it('keeps a client that answers pings', async () => {
    const edge = await world.startEdge({ ACTIVITY_TIMEOUT_S: '1' });
    const client = await RawClient.connect(world, edge);
    client.ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { event: string }).event === 'pusher:ping') {
        client.send({ event: 'pusher:pong', data: {} });
      }
    });
    // A second ping can only come after the first was answered and the client went quiet again.
    await vi.waitFor(() => expect(client.frames.filter((f) => f.event === 'pusher:ping').length).toBe(2), {
      timeout: 15_000,
      interval: 50,
    });
    expect(client.closed).toBeNull();
  });

  it('closes with 4100 a socket that does not read, so that it backs off and reconnects', async () => {
    const edge = await world.startEdge({}, { maxBufferedBytes: 64 * 1024 });
    const client = await RawClient.connect(world, edge);
    const { app } = world.config();
    const channel = userChannel(ana);
    client.send({
      event: 'pusher:subscribe',
      data: { channel, auth: signChannelAuth(app.key, app.secret, await client.socketId(), channel) },
    });
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded');
    // Stop reading: the kernel's socket buffers fill (~4 MiB here), then the edge's own send buffer grows.
    client.ws.pause();
    const data = JSON.stringify({ padding: 'x'.repeat(8000) });
    await vi.waitFor(
      async () => {
        const pipeline = world.redis.pipeline();
        const envelope = JSON.stringify({ v: 1, node: 'test', type: 'event', channel, event: 'bulk', data });
        for (let i = 0; i < 25; i++) pipeline.publish(world.keys.pubsubChannel(channel), envelope);
        await pipeline.exec();
        expect(
          await metricValue(edge, 'ws_edge_frames_dropped_total', { reason: 'slow_consumer' }),
        ).toBeGreaterThan(0);
      },
      { timeout: 20_000, interval: 0 },
    );
    client.ws.resume();
    expect(await client.closedWith()).toMatchObject({ code: 4100 });
  });

  it('close() tells every client to reconnect now (4200) and stops listening', async () => {
    const edge = await world.startSharedEdge();
    const raw = await RawClient.connect(world, edge);
    await raw.socketId();
    const pusher = world.track(pusherClient(edge, world.config().app.key, await world.jwt(ana)), (p) =>
      p.disconnect(),
    );
    await connectedSocketId(pusher);
    const pusherClose = new Promise<unknown>((resolve) =>
      pusher.connection.bind('error', (err: unknown) => resolve(err)),
    );

    await edge.close();
    expect(await raw.closedWith()).toEqual({ code: 4200, reason: 'Server shutting down, reconnect' });
    expect(await pusherClose).toMatchObject({ type: 'PusherError', data: { code: 4200 } });
    expect(edge.connectionCount).toBe(0);
    await expect(fetch(`${edge.url}/healthz`)).rejects.toThrow();
  });
});
