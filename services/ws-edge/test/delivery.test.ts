import { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import {
  connectedSocketId,
  createEdgeWorld,
  numsub,
  provisionTenant,
  publish,
  publishMany,
  pusherClient,
  type EdgeWorld,
  type Pusher,
} from './helpers.js';

const ALARM_EVENT = 'App\\Events\\AlarmCreated';

/** Subscribes through the real pusher-js path (POST /broadcasting/auth, then pusher:subscribe). */
async function subscribed(pusher: Pusher, channelName: string) {
  const channel = pusher.subscribe(channelName);
  await new Promise<void>((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => resolve());
    channel.bind('pusher:subscription_error', (err: unknown) => reject(new Error(JSON.stringify(err))));
  });
  const received: unknown[] = [];
  channel.bind(ALARM_EVENT, (data: unknown) => received.push(data));
  return { channel, received };
}

describe('delivery through pusher-js', () => {
  let world: EdgeWorld;
  let tenant: { tenantId: number; userIds: number[] };
  let appKey: string;

  const client = (edge: EdgeServer, jwt: string): Pusher =>
    world.track(pusherClient(edge, appKey, jwt), (p) => p.disconnect());

  beforeAll(async () => {
    world = await createEdgeWorld();
    appKey = world.config().app.key;
    tenant = await provisionTenant(world.prisma, 'acme', [{ name: 'ana' }, { name: 'bo' }]);
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  it('connects, authorizes its own channel and receives an event published on Redis, data unchanged', async () => {
    const edge = await world.startEdge();
    const [ana] = tenant.userIds as [number];
    const pusher = client(edge, await world.jwt(ana));
    expect(await connectedSocketId(pusher)).toMatch(/^\d+\.\d+$/);

    const { received } = await subscribed(pusher, userChannel(ana));
    // Laravel sends data as a JSON string; the edge forwards it byte for byte and pusher-js parses it.
    const data = JSON.stringify({
      alarm: { id: '42', perceived_severity: 'Major', additional_text: 'ünïcødé "quoted"' },
    });
    expect(await publish(world, userChannel(ana), ALARM_EVENT, data)).toBe(1);
    await vi.waitFor(() => expect(received).toEqual([JSON.parse(data)]));
  });

  it('with two edges on one Redis, one publish reaches a client on each; a node subscribes only to its own channels', async () => {
    const [edgeA, edgeB] = await Promise.all([world.startEdge(), world.startEdge()]);
    const [ana, bo] = tenant.userIds as [number, number];
    const onA = client(edgeA, await world.jwt(ana));
    const onB = client(edgeB, await world.jwt(bo));
    const channel = tenantChannel(tenant.tenantId);
    const [a, b] = await Promise.all([subscribed(onA, channel), subscribed(onB, channel)]);
    await subscribed(onA, userChannel(ana));

    expect(await numsub(world, channel)).toBe(2);
    // Only edge A has a socket on ana's channel, so only edge A listens to it.
    expect(await numsub(world, userChannel(ana))).toBe(1);
    expect(edgeA.subscriptions.localChannels()).toContain(userChannel(ana));
    expect(edgeB.subscriptions.localChannels()).not.toContain(userChannel(ana));

    expect(await publish(world, channel, ALARM_EVENT, '{"alarm":{"id":"7"}}')).toBe(2);
    await vi.waitFor(() => {
      expect(a.received).toEqual([{ alarm: { id: '7' } }]);
      expect(b.received).toEqual([{ alarm: { id: '7' } }]);
    });

    // The last local socket leaving a channel unsubscribes the node from it.
    onA.unsubscribe(userChannel(ana));
    await vi.waitFor(async () => expect(await numsub(world, userChannel(ana))).toBe(0));
    onB.disconnect();
    await vi.waitFor(async () => expect(await numsub(world, channel)).toBe(1));
    expect(edgeB.subscriptions.localChannels()).toEqual([]);
  });

  it('delivers to every local socket on a channel with one Redis subscription, and counts it in /metrics', async () => {
    const edge = await world.startEdge();
    const [ana, bo] = tenant.userIds as [number, number];
    const channel = tenantChannel(tenant.tenantId);
    const clients = await Promise.all(
      [ana, bo, ana].map(async (u) => subscribed(client(edge, await world.jwt(u)), channel)),
    );
    expect(await numsub(world, channel)).toBe(1);
    expect(edge.subscriptions.localChannels()).toEqual([channel]);

    await publish(world, channel, ALARM_EVENT, '{"n":1}');
    await vi.waitFor(() => {
      for (const c of clients) expect(c.received).toEqual([{ n: 1 }]);
    });
    const metrics = await (await fetch(`${edge.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^ws_edge_connections\{[^}]*\} 3$/m);
    expect(metrics).toMatch(/^ws_edge_subscriptions\{[^}]*\} 3$/m);
    expect(metrics).toMatch(/^ws_edge_redis_channels\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^ws_edge_messages_delivered_total\{[^}]*\} 3$/m);
  });

  it('writes the frames one socket gets in one turn of the event loop together, not one syscall each', async () => {
    const edge = await world.startEdge();
    const [ana] = tenant.userIds as [number];
    const { received } = await subscribed(client(edge, await world.jwt(ana)), userChannel(ana));
    // Counts the edge's writes to its client sockets (local port = the edge's), below ws and the cork.
    const writes = { count: 0 };
    const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
    const original = { _write: proto._write, _writev: proto._writev };
    for (const name of ['_write', '_writev'] as const) {
      proto[name] = function (this: Socket, ...args: unknown[]) {
        if (this.localPort === edge.port) writes.count++;
        return original[name].apply(this, args);
      };
    }
    try {
      // One pipeline: the edge's subscriber reads the 20 messages in one chunk, so in one turn.
      const datas = Array.from({ length: 20 }, (_, n) => JSON.stringify({ n }));
      await publishMany(world, userChannel(ana), ALARM_EVENT, datas);
      await vi.waitFor(() => expect(received).toHaveLength(20));
    } finally {
      Object.assign(proto, original);
    }
    expect(received).toEqual(Array.from({ length: 20 }, (_, n) => ({ n })));
    // One write per turn in which messages arrived; a reply split across turns may take a few.
    expect(writes.count).toBeGreaterThan(0);
    expect(writes.count).toBeLessThanOrEqual(5);
  });

  it('drops malformed pub/sub messages and keeps delivering', async () => {
    const edge = await world.startEdge();
    const [ana] = tenant.userIds as [number];
    const { received } = await subscribed(client(edge, await world.jwt(ana)), userChannel(ana));
    const redisChannel = world.keys.pubsubChannel(userChannel(ana));
    await world.redis.publish(redisChannel, 'not json');
    await world.redis.publish(redisChannel, JSON.stringify({ v: 2, type: 'event' }));
    // an envelope naming another channel than the one it was published on
    await world.redis.publish(
      redisChannel,
      JSON.stringify({ v: 1, node: 't', type: 'event', channel: userChannel(999), event: 'x', data: '{}' }),
    );
    await publish(world, userChannel(ana), ALARM_EVENT, '{"ok":true}');
    await vi.waitFor(() => expect(received).toEqual([{ ok: true }]));
    const metrics = await (await fetch(`${edge.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^ws_edge_frames_dropped_total\{reason="malformed_envelope"[^}]*\} 2$/m);
    expect(metrics).toMatch(/^ws_edge_frames_dropped_total\{reason="channel_mismatch"[^}]*\} 1$/m);
  });
});
