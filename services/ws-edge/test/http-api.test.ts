import { createHash, createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import PusherServer from 'pusher';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import {
  RawClient,
  createEdgeWorld,
  metricValue,
  provisionTenant,
  pusherClient,
  type EdgeWorld,
  type Frame,
  type Pusher,
} from './helpers.js';
import { signChannelAuth } from '@alarmcast/auth';

const ALARM_EVENT = 'App\\Events\\AlarmCreated';

/** Pusher's request signing, written out, for requests the SDK would never send (stale, tampered). */
async function signedPost(
  edge: EdgeServer,
  path: string,
  body: string,
  opts: { key: string; secret: string; timestamp?: number; md5?: string | null },
): Promise<Response> {
  const params: Record<string, string> = {
    auth_key: opts.key,
    auth_timestamp: String(opts.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
  };
  const md5 = opts.md5 === undefined ? createHash('md5').update(body).digest('hex') : opts.md5;
  if (md5 !== null) params.body_md5 = md5;
  const query = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const signature = createHmac('sha256', opts.secret).update(`POST\n${path}\n${query}`).digest('hex');
  return fetch(`${edge.url}${path}?${query}&auth_signature=${signature}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
  });
}

describe('Pusher HTTP API (POST /apps/{id}/events, /batch_events)', () => {
  let world: EdgeWorld;
  let ana: number;
  let tenantId: number;
  let app: { id: string; key: string; secret: string };
  /** receives the HTTP requests */
  let edgeA: EdgeServer;
  /** holds the sockets: events cross nodes through Redis */
  let edgeB: EdgeServer;

  const server = (overrides: Partial<PusherServer.Options> = {}): PusherServer =>
    new PusherServer({
      appId: app.id,
      key: app.key,
      secret: app.secret,
      host: '127.0.0.1',
      port: String(edgeA.port),
      useTLS: false,
      ...overrides,
    });

  async function rawSubscriber(channel: string): Promise<{ client: RawClient; socketId: string }> {
    const client = await RawClient.connect(world, edgeB);
    const socketId = await client.socketId();
    client.send({
      event: 'pusher:subscribe',
      data: { channel, auth: signChannelAuth(app.key, app.secret, socketId, channel) },
    });
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return { client, socketId };
  }

  async function pusherJsSubscriber(channel: string): Promise<{ pusher: Pusher; received: unknown[] }> {
    const pusher = world.track(pusherClient(edgeB, app.key, await world.jwt(ana)), (p) => p.disconnect());
    const ch = pusher.subscribe(channel);
    await new Promise<void>((resolve, reject) => {
      ch.bind('pusher:subscription_succeeded', () => resolve());
      ch.bind('pusher:subscription_error', (err: unknown) => reject(new Error(JSON.stringify(err))));
    });
    const received: unknown[] = [];
    ch.bind(ALARM_EVENT, (data: unknown) => received.push(data));
    return { pusher, received };
  }

  beforeAll(async () => {
    world = await createEdgeWorld();
    app = world.config().app;
    const tenant = await provisionTenant(world.prisma, 'h', [{ name: 'ana' }]);
    [ana] = tenant.userIds as [number];
    tenantId = tenant.tenantId;
    [edgeA, edgeB] = await Promise.all([world.startSharedEdge(), world.startSharedEdge()]);
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  it('trigger() from the official SDK reaches a pusher-js client on another edge node, data unchanged', async () => {
    const { received } = await pusherJsSubscriber(userChannel(ana));
    const data = { alarm: { id: '1', additional_text: 'ünïcødé "q"' } };
    const res = await server().trigger(userChannel(ana), ALARM_EVENT, data);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    await vi.waitFor(() => expect(received).toEqual([data]));
  });

  it('trigger() to several channels publishes on the ones sockets can hold and skips the others', async () => {
    const onUser = await pusherJsSubscriber(userChannel(ana));
    const onTenant = await pusherJsSubscriber(tenantChannel(tenantId));
    const res = await server().trigger(
      [userChannel(ana), tenantChannel(tenantId), 'news', 'presence-room', 'private-App.Models.User.1'],
      ALARM_EVENT,
      '{"n":1}',
    );
    expect(res.status).toBe(200);
    await vi.waitFor(() => {
      expect(onUser.received).toEqual([{ n: 1 }]);
      expect(onTenant.received).toEqual([{ n: 1 }]);
    });
    expect(await metricValue(edgeA, 'ws_edge_http_api_events_total', { outcome: 'skipped' })).toBe(3);
  });

  it('triggerBatch() publishes each event on its channel, in order', async () => {
    const { client } = await rawSubscriber(userChannel(ana));
    const res = await server().triggerBatch([
      { channel: userChannel(ana), name: 'first', data: { i: 1 } },
      { channel: tenantChannel(tenantId), name: 'elsewhere', data: '{}' },
      { channel: userChannel(ana), name: 'second', data: '{"i":2}' },
    ]);
    expect(res.status).toBe(200);
    await client.next((f) => f.event === 'second');
    const events = client.frames.filter((f) => f.channel === userChannel(ana)).map((f) => [f.event, f.data]);
    expect(events).toEqual([
      ['pusher_internal:subscription_succeeded', '{}'],
      ['first', '{"i":1}'],
      ['second', '{"i":2}'],
    ]);
  });

  it('socket_id keeps the event from that one socket, on any node', async () => {
    const sender = await rawSubscriber(userChannel(ana));
    const other = await rawSubscriber(userChannel(ana));
    await server().trigger(userChannel(ana), 'saved', '{}', { socket_id: sender.socketId });
    await server().triggerBatch([
      { channel: userChannel(ana), name: 'saved-batch', data: '{}', socket_id: sender.socketId },
    ]);
    await server().trigger(userChannel(ana), 'for-all', '{}');
    await other.client.next((f) => f.event === 'for-all');
    await sender.client.next((f) => f.event === 'for-all');
    const names = (frames: Frame[]) => frames.filter((f) => f.channel !== undefined).map((f) => f.event);
    expect(names(other.client.frames)).toEqual([
      'pusher_internal:subscription_succeeded',
      'saved',
      'saved-batch',
      'for-all',
    ]);
    expect(names(sender.client.frames)).toEqual(['pusher_internal:subscription_succeeded', 'for-all']);
  });

  it('refuses a wrong secret with 401 in our error format, and publishes nothing', async () => {
    const { client } = await rawSubscriber(userChannel(ana));
    const err = await server({ secret: 'not-the-secret' })
      .trigger(userChannel(ana), 'forged', '{}')
      .then(
        () => null,
        (e: unknown) => e as PusherServer.RequestError,
      );
    expect(err?.status).toBe(401);
    expect(JSON.parse(err?.body ?? '')).toEqual({
      error: { code: 'unauthenticated', message: 'invalid auth_signature' },
    });
    await server().trigger(userChannel(ana), 'genuine', '{}');
    await client.next((f) => f.event === 'genuine');
    expect(client.frames.filter((f) => f.event === 'forged')).toEqual([]);
  });

  it.each([
    ['a timestamp older than 600 s', { timestamp: Math.floor(Date.now() / 1000) - 601 }, /auth_timestamp/],
    ['a timestamp 600 s ahead', { timestamp: Math.floor(Date.now() / 1000) + 660 }, /auth_timestamp/],
    ['a body_md5 of another body', { md5: createHash('md5').update('other').digest('hex') }, /body_md5/],
    ['no body_md5 with a body', { md5: null }, /body_md5/],
    ['another app key', { key: 'other-key' }, /auth_key/],
  ])('refuses %s with 401', async (_name, opts, message) => {
    const body = JSON.stringify({ name: 'x', data: '{}', channel: userChannel(ana) });
    const res = await signedPost(edgeA, `/apps/${app.id}/events`, body, { ...app, ...opts });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: { code: 'unauthenticated', message: expect.stringMatching(message) },
    });
  });

  it('accepts a request signed by hand exactly as Pusher specifies', async () => {
    const { client } = await rawSubscriber(userChannel(ana));
    const body = JSON.stringify({ name: 'by-hand', data: '{"ok":true}', channels: [userChannel(ana)] });
    const res = await signedPost(edgeA, `/apps/${app.id}/events`, body, app);
    expect(res.status).toBe(200);
    expect((await client.next((f) => f.event === 'by-hand')).data).toBe('{"ok":true}');
  });

  it('refuses data over 10 KB with 413 and accepts exactly 10 KB', async () => {
    const tooBig = await server()
      .trigger(userChannel(ana), 'big', 'x'.repeat(10 * 1024 + 1))
      .then(
        () => null,
        (e: unknown) => e as PusherServer.RequestError,
      );
    expect(tooBig?.status).toBe(413);
    expect(JSON.parse(tooBig?.body ?? '')).toMatchObject({ error: { code: 'payload_too_large' } });
    expect((await server().trigger(userChannel(ana), 'big', 'x'.repeat(10 * 1024))).status).toBe(200);
  });

  it.each([
    [
      'more than 100 channels',
      '/events',
      { name: 'x', data: '{}', channels: Array.from({ length: 101 }, (_, i) => userChannel(i + 1)) },
    ],
    ['both channel and channels', '/events', { name: 'x', data: '{}', channel: 'a', channels: ['b'] }],
    ['neither channel nor channels', '/events', { name: 'x', data: '{}' }],
    ['data that is not a string', '/events', { name: 'x', data: { a: 1 }, channel: 'a' }],
    ['an invalid channel name', '/events', { name: 'x', data: '{}', channel: 'a b' }],
    ['a malformed socket_id', '/events', { name: 'x', data: '{}', channel: 'a', socket_id: 'abc' }],
    [
      'more than 10 events in a batch',
      '/batch_events',
      { batch: Array.from({ length: 11 }, () => ({ name: 'x', data: '{}', channel: 'a' })) },
    ],
    ['an empty batch', '/batch_events', { batch: [] }],
  ])('refuses %s with 400', async (_name, path, body) => {
    const res = await signedPost(edgeA, `/apps/${app.id}${path}`, JSON.stringify(body), app);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'validation_failed' } });
  });

  it('answers 503 with Retry-After at once while Redis is unreachable', async () => {
    const blind = await world.startEdge({ REDIS_URL: 'redis://127.0.0.1:1' });
    const body = JSON.stringify({ name: 'x', data: '{}', channel: userChannel(ana) });
    const res = await signedPost(blind, `/apps/${app.id}/events`, body, app);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({ error: { code: 'service_unavailable' } });
  });

  it('answers a body that is not JSON with 400, and an unknown app id with 404', async () => {
    const notJson = await signedPost(edgeA, `/apps/${app.id}/events`, '{"name":', app);
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { code: 'invalid_json' } });
    const otherApp = await signedPost(edgeA, '/apps/other/events', '{}', app);
    expect(otherApp.status).toBe(404);
  });

  it('answers a malformed percent-escape in the app id with 400 invalid_path, not 500', async () => {
    for (const path of ['/apps/%E0%A4%A/events', '/apps/%E0%A4%A/batch_events']) {
      const res = await signedPost(edgeA, path, '{}', app);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: { code: 'invalid_path', message: expect.any(String) } });
    }
  });
});
