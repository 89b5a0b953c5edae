import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import {
  RawClient,
  createEdgeWorld,
  errorData,
  metricValue,
  ownedSubscription,
  provisionTenant,
  publish,
  type EdgeWorld,
} from './helpers.js';

describe('client events (client-*)', () => {
  let world: EdgeWorld;
  let edge: EdgeServer;
  let ana: number;
  let tenantId: number;

  beforeAll(async () => {
    world = await createEdgeWorld();
    const tenant = await provisionTenant(world.prisma, 'c', [{ name: 'ana' }]);
    [ana] = tenant.userIds as [number];
    tenantId = tenant.tenantId;
    edge = await world.startSharedEdge();
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  async function member(channel: string, on: EdgeServer = edge): Promise<RawClient> {
    const client = await RawClient.connect(world, on);
    // Signed with its owner, as /broadcasting/auth signs: a tenant channel is refused without one.
    client.send({
      event: 'pusher:subscribe',
      data: ownedSubscription(world, await client.socketId(), channel, ana),
    });
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return client;
  }

  /** Waits until `client` got a server event published after everything before it, then returns its events. */
  async function eventsUpTo(client: RawClient, channel: string, marker: string): Promise<string[]> {
    await publish(world, channel, marker, '{}');
    await client.next((f) => f.event === marker);
    return client.frames.filter((f) => f.event.startsWith('client-')).map((f) => f.event);
  }

  it('relays a client event on private-user to the channel’s other sockets on every node, not to the sender', async () => {
    const other = await world.startEdge();
    const sender = await member(userChannel(ana));
    const sameNode = await member(userChannel(ana));
    const otherNode = await member(userChannel(ana), other);
    sender.send({ event: 'client-acked', channel: userChannel(ana), data: { alarmId: '7' } });

    for (const peer of [sameNode, otherNode]) {
      const frame = await peer.next((f) => f.event === 'client-acked');
      // As every server event: data as a JSON string, which pusher-js decodes.
      expect(frame).toEqual({ event: 'client-acked', channel: userChannel(ana), data: '{"alarmId":"7"}' });
    }
    expect(await eventsUpTo(sender, userChannel(ana), 'marker')).toEqual([]);
    expect(await metricValue(edge, 'ws_edge_client_events_total', { outcome: 'published' })).toBe(1);
  });

  it('refuses client events on a tenant channel with 4301 and relays nothing', async () => {
    const sender = await member(tenantChannel(tenantId));
    const colleague = await member(tenantChannel(tenantId));
    const from = sender.frames.length;
    sender.send({ event: 'client-spoof', channel: tenantChannel(tenantId), data: {} });
    const error = errorData(await sender.next((f) => f.event === 'pusher:error', from));
    expect(error).toMatchObject({ code: 4301, message: expect.stringMatching(/private-user/) });
    expect(await eventsUpTo(colleague, tenantChannel(tenantId), 'marker')).toEqual([]);
    expect(sender.closed).toBeNull();
  });

  it('refuses a client event for a channel the socket has not joined with 4009, as Reverb does', async () => {
    const sender = await member(userChannel(ana));
    const from = sender.frames.length;
    sender.send({ event: 'client-x', channel: userChannel(ana + 1), data: {} });
    expect(errorData(await sender.next((f) => f.event === 'pusher:error', from))).toEqual({
      code: 4009,
      message: 'The client is not a member of the specified channel.',
    });
  });

  it('rate-limits a socket to 10 client events a second: the rest get 4301 and are dropped', async () => {
    const sender = await member(userChannel(ana));
    const peer = await member(userChannel(ana));
    for (let i = 0; i < 13; i++) {
      sender.send({ event: `client-n${i}`, channel: userChannel(ana), data: { i } });
    }
    await sender.next((f) => f.event === 'pusher:error');
    const relayed = await eventsUpTo(peer, userChannel(ana), 'marker');
    const errors = sender.frames.filter((f) => f.event === 'pusher:error').map(errorData);
    // The window may roll over mid-burst on a slow machine, so at least 10 pass and the rest are refused.
    expect(relayed.length + errors.length).toBe(13);
    expect(relayed.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `client-n${i}`));
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) {
      expect(e).toEqual({ code: 4301, message: 'Client event rejected - only 10 events per second' });
    }
    expect(sender.closed).toBeNull();
  });
});
