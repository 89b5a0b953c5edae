import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { userChannel } from '@alarmcast/contracts';
import { createLogger } from '@alarmcast/observability';
import { createRedis, RedisPubSub, USER_SHARDS, type Redis } from '@alarmcast/redis';
import { ChannelSubscriptions, type ChannelMember } from '../src/subscriptions.js';
import { serverFrames } from '../src/pusher-protocol.js';
import { createEdgeWorld, numsub, publish, type EdgeWorld } from './helpers.js';

const log = createLogger({ service: 'ws-edge-test', level: 'silent' });

let nextSocket = 0;
class Member implements ChannelMember {
  readonly socketId = `1.${++nextSocket}`;
  readonly frames: string[] = [];
  readonly eventIds: (string | undefined)[] = [];
  deliver(frame: string, _channel: string, eventId: string | undefined): void {
    this.frames.push(frame);
    this.eventIds.push(eventId);
  }
}

describe('ChannelSubscriptions', () => {
  let world: EdgeWorld;
  let subscriber: Redis;

  beforeAll(async () => {
    // A cluster's shard count (no edge is started here): batches arrive on any of the 16 fan-out channels.
    world = await createEdgeWorld({ shards: USER_SHARDS });
  });
  afterEach(() => subscriber.disconnect());
  afterAll(() => world.teardown());

  const registry = () => {
    subscriber = createRedis(world.config().redisUrl, { name: 'ws-edge:sub-test' });
    return new ChannelSubscriptions({
      transport: new RedisPubSub(world.redis, subscriber),
      keys: world.keys,
      log,
    });
  };

  it('subscribes once per channel, and unsubscribes when the last member leaves', async () => {
    const subs = registry();
    const [a, b] = [new Member(), new Member()];
    const channel = userChannel(1);
    await Promise.all([subs.join(channel, a), subs.join(channel, b)]);
    expect(await numsub(world, channel)).toBe(1);
    expect(subs.membershipCount).toBe(2);

    await publish(world, channel, 'e', '"x"');
    await vi.waitFor(() =>
      expect([a.frames, b.frames]).toEqual([[expect.any(String)], [expect.any(String)]]),
    );
    // serialized once, in the key order pusher-js reads
    expect(a.frames[0]).toBe(`{"event":"e","channel":"${channel}","data":"\\"x\\""}`);
    expect(a.frames[0]).toBe(b.frames[0]);

    subs.leave(channel, a);
    expect(await numsub(world, channel)).toBe(1);
    subs.leave(channel, b);
    await vi.waitFor(async () => expect(await numsub(world, channel)).toBe(0));
    expect(subs.localChannels()).toEqual([]);

    // leave then rejoin: the UNSUBSCRIBE and SUBSCRIBE go out in order, so it ends subscribed
    await subs.join(channel, a);
    expect(await numsub(world, channel)).toBe(1);
  });

  it("hands each user's copy of a user-batch to that user's members, in order with per-user events", async () => {
    const dropped: string[] = [];
    subscriber = createRedis(world.config().redisUrl, { name: 'ws-edge:sub-test' });
    const subs = new ChannelSubscriptions({
      transport: new RedisPubSub(world.redis, subscriber),
      keys: world.keys,
      log,
      onDropped: (reason) => dropped.push(reason),
    });
    const [u3a, u3b, u4] = [new Member(), new Member(), new Member()];
    await Promise.all([
      subs.join(userChannel(3), u3a),
      subs.join(userChannel(3), u3b),
      subs.join(userChannel(4), u4),
    ]);
    const dataHead = '{"alarm":{"id":"5","text":"quote \\" é \\u2028"},';
    const batch = (event: string, users: [number, string][]): Promise<number> =>
      world.redis.publish(
        // The edge takes a batch from any shard's channel (these users are on shards 3, 4 and 3).
        world.keys.userBatchChannel(event === 'E' ? 7 : 3),
        JSON.stringify({ v: 1, node: 'test', type: 'user-batch', event, dataHead, users }),
      );
    await publish(world, userChannel(3), 'before', '{}');
    // User 99 is not held here: skipped, not an error.
    await batch('App\\Events\\AlarmCreated', [
      [3, '1700000000000-0'],
      [4, '1700000000000-1'],
      [99, '1700000000000-2'],
    ]);
    await publish(world, userChannel(3), 'after', '{}');
    // Malformed batches are dropped and counted: a user id that is not a positive integer, no users.
    await batch('E', [[-1, '1-0']]);
    await batch('E', []);
    await world.redis.publish(world.keys.userBatchChannel(15), 'not json');

    await vi.waitFor(() =>
      expect(dropped).toEqual(['malformed_envelope', 'malformed_envelope', 'malformed_envelope']),
    );
    // Byte for byte the frame an `event` envelope with the same data would give.
    const copyFor = (userId: number, eventId: string) =>
      serverFrames.channelEvent(
        userChannel(userId),
        'App\\Events\\AlarmCreated',
        `${dataHead}"event_id":"${eventId}"}`,
      );
    const order = (m: Member) => m.frames.map((f) => (JSON.parse(f) as { event: string }).event);
    expect(order(u3a)).toEqual(['before', 'App\\Events\\AlarmCreated', 'after']);
    expect(u3a.frames[1]).toBe(copyFor(3, '1700000000000-0'));
    expect(u3a.eventIds[1]).toBe('1700000000000-0');
    expect(u3b.frames).toEqual(u3a.frames);
    expect(u4.frames).toEqual([copyFor(4, '1700000000000-1')]);
    expect(JSON.parse((JSON.parse(u4.frames[0]!) as { data: string }).data)).toEqual({
      alarm: { id: '5', text: 'quote " é \u2028' },
      event_id: '1700000000000-1',
    });
  });

  it('keeps a subscription made while the connection is still handshaking', async () => {
    // Regression: a SUBSCRIBE written before ioredis' ready check made the check fail, and ioredis reconnected
    // without it, after having resolved the SUBSCRIBE: a socket told "subscribed" that never got an event.
    const subs = registry();
    const member = new Member();
    const channel = userChannel(2);
    await new Promise<void>((resolve, reject) =>
      subscriber.once('connect', () => subs.join(channel, member).then(resolve, reject)),
    );
    await vi.waitFor(async () => {
      await publish(world, channel, 'e', '{}');
      expect(member.frames.length).toBeGreaterThan(0);
    });
    expect(await numsub(world, channel)).toBe(1);
  });
});
