import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import Echo from 'laravel-echo';
import PusherServer from 'pusher';
// At run time the CommonJS pusher-js module is the class itself, which is how Echo's typings describe it.
import PusherJs from 'pusher-js';
import { WIRE_EVENTS, deviceChannel, userChannel } from '@alarmcast/contracts';
import { StateChannelWriter } from '@alarmcast/redis';
import type { EdgeServer } from '../src/server.js';
import { createEdgeWorld, numsub, provisionTenant, publish, type EdgeWorld } from './helpers.js';

/**
 * laravel-echo 2.5, unmodified, in Node with the options an existing Laravel front end passes, against the
 * edge; events come in through the Pusher HTTP API as Laravel's broadcaster sends them, or straight on Redis
 * as the resolver publishes them.
 */
describe.each(['reverb', 'pusher'] as const)('laravel-echo with broadcaster %s', (broadcaster) => {
  let world: EdgeWorld;
  let ana: number;
  let app: { id: string; key: string; secret: string };

  beforeAll(async () => {
    world = await createEdgeWorld();
    app = world.config().app;
    [ana] = (await provisionTenant(world.prisma, 'e', [{ name: 'ana' }])).userIds as [number];
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  async function echo(edge: EdgeServer, port = edge.port) {
    const jwt = await world.jwt(ana);
    const options = {
      key: app.key,
      wsHost: '127.0.0.1',
      wsPort: port,
      forceTLS: false,
      enabledTransports: ['ws'] as ['ws'],
      authEndpoint: `${edge.url}/broadcasting/auth`,
      auth: { headers: { Authorization: `Bearer ${jwt}` } },
      Pusher: PusherJs,
    };
    const instance =
      broadcaster === 'reverb'
        ? new Echo({ broadcaster: 'reverb', ...options })
        : new Echo({ broadcaster: 'pusher', cluster: 'mt1', ...options });
    return world.track(instance, (e) => e.disconnect());
  }

  /** Subscribed once pusher-js saw `subscription_succeeded` for the channel. */
  async function joined(e: Echo<'reverb'> | Echo<'pusher'>, channel: string): Promise<void> {
    const pusher = e.connector.pusher;
    await vi.waitFor(() => expect(pusher.channel(channel)?.subscribed).toBe(true), {
      timeout: 10_000,
      interval: 20,
    });
  }

  const laravel = (edge: EdgeServer): PusherServer =>
    new PusherServer({
      appId: app.id,
      key: app.key,
      secret: app.secret,
      host: '127.0.0.1',
      port: String(edge.port),
      useTLS: false,
    });

  it('listen("AlarmCreated") gets App\\Events\\AlarmCreated; listen(".alarm.created") gets alarm.created', async () => {
    const edge = await world.startEdge();
    const e = await echo(edge);
    const byClass: unknown[] = [];
    const byAlias: unknown[] = [];
    e.private(`user.${ana}`)
      .listen('AlarmCreated', (d: unknown) => byClass.push(d))
      .listen('.alarm.created', (d: unknown) => byAlias.push(d));
    await joined(e, userChannel(ana));

    await laravel(edge).trigger(userChannel(ana), 'App\\Events\\AlarmCreated', { alarm: { id: '1' } });
    await laravel(edge).trigger(userChannel(ana), 'alarm.created', { alarm: { id: '2' } });
    await publish(world, userChannel(ana), 'App\\Events\\AlarmCreated', '{"alarm":{"id":"3"}}');
    await vi.waitFor(() => {
      expect(byClass).toEqual([{ alarm: { id: '1' } }, { alarm: { id: '3' } }]);
      expect(byAlias).toEqual([{ alarm: { id: '2' } }]);
    });
  });

  it('leave() unsubscribes: no more events, and the node leaves the Redis channel', async () => {
    const edge = await world.startEdge();
    const e = await echo(edge);
    const got: unknown[] = [];
    e.private(`user.${ana}`).listen('AlarmCreated', (d: unknown) => got.push(d));
    await joined(e, userChannel(ana));
    expect(await numsub(world, userChannel(ana))).toBe(1);

    e.leave(`user.${ana}`);
    await vi.waitFor(async () => expect(await numsub(world, userChannel(ana))).toBe(0));
    expect(edge.subscriptions.localChannels()).toEqual([]);
    await laravel(edge).trigger(userChannel(ana), 'App\\Events\\AlarmCreated', { late: true });
    // Proof of absence: a later event on a channel still held arrives, the one after leave() never did.
    const probe: unknown[] = [];
    e.private(`user.${ana}`).listen('.probe', (d: unknown) => probe.push(d));
    await joined(e, userChannel(ana));
    await laravel(edge).trigger(userChannel(ana), 'probe', {});
    await vi.waitFor(() => expect(probe).toHaveLength(1));
    expect(got).toEqual([]);
  });

  it('reconnects and resubscribes after the edge restarts on the same port, and gets later events', async () => {
    const first = await world.startEdge();
    const port = first.port;
    const e = await echo(first);
    const got: unknown[] = [];
    e.private(`user.${ana}`).listen('AlarmCreated', (d: unknown) => got.push(d));
    await joined(e, userChannel(ana));

    await first.close(); // every socket gets 4200: reconnect now
    const second = await world.startEdge({ EDGE_PORT: String(port) });
    await vi.waitFor(
      async () => {
        expect(e.connector.pusher.connection.state).toBe('connected');
        expect(await numsub(world, userChannel(ana))).toBe(1);
        expect(e.connector.pusher.channel(userChannel(ana))?.subscribed).toBe(true);
      },
      { timeout: 30_000, interval: 50 },
    );
    await laravel(second).trigger(userChannel(ana), 'App\\Events\\AlarmCreated', { after: 'restart' });
    await vi.waitFor(() => expect(got).toEqual([{ after: 'restart' }]));
  });

  it('whisper() reaches the same user’s other tabs through another node, never the sender', async () => {
    const [edgeA, edgeB] = await Promise.all([world.startEdge(), world.startEdge()]);
    const tab1 = await echo(edgeA);
    const tab2 = await echo(edgeB);
    const heard1: unknown[] = [];
    const heard2: unknown[] = [];
    const ch1 = tab1.private(`user.${ana}`).listenForWhisper('acked', (d: unknown) => heard1.push(d));
    tab2.private(`user.${ana}`).listenForWhisper('acked', (d: unknown) => heard2.push(d));
    await Promise.all([joined(tab1, userChannel(ana)), joined(tab2, userChannel(ana))]);

    ch1.whisper('acked', { alarmId: '9' });
    await vi.waitFor(() => expect(heard2).toEqual([{ alarmId: '9' }]));
    // The sender's own copy would have come back before another event the server sends after it.
    await publish(world, userChannel(ana), 'client-acked', '{"from":"server"}');
    await vi.waitFor(() => expect(heard1).toEqual([{ from: 'server' }]));
  });

  it('private("device.{id}").listen("DeviceStatusChanged") gets the snapshot, then live changes', async () => {
    const tenantId = (await world.prisma.user.findUniqueOrThrow({ where: { id: ana } })).tenantId!;
    const device = await world.prisma.cpeDevice.create({
      data: { tenantId, oui: '00D09E', productClass: 'IGD', serialNumber: `E${broadcaster}` },
    });
    const writer = new StateChannelWriter(world.redis, world.keys, { node: 'test' });
    const state = (online: boolean, version: number) => ({
      channel: deviceChannel(device.id),
      event: WIRE_EVENTS.deviceStatusChanged,
      root: 'device',
      version: String(version),
      state: JSON.stringify({ id: device.id, online }),
      changed: ['online'],
      minIntervalMs: 0,
    });
    await writer.write([state(true, 1)]);
    const edge = await world.startEdge();
    const e = await echo(edge);
    const heard: unknown[] = [];
    e.private(`device.${device.id}`).listen('DeviceStatusChanged', (d: unknown) => heard.push(d));
    await vi.waitFor(() =>
      expect(heard).toEqual([{ device: { id: device.id, online: true }, changed: [], snapshot: true }]),
    );
    await writer.write([state(false, 2)]);
    await vi.waitFor(() =>
      expect(heard.at(-1)).toEqual({ device: { id: device.id, online: false }, changed: ['online'] }),
    );
  });
});
