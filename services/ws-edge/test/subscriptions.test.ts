import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { userChannel } from '@alarmcast/contracts';
import { createLogger } from '@alarmcast/observability';
import { createRedis, type Redis } from '@alarmcast/redis';
import { ChannelSubscriptions, type ChannelMember } from '../src/subscriptions.js';
import { createEdgeWorld, numsub, publish, type EdgeWorld } from './helpers.js';

const log = createLogger({ service: 'ws-edge-test', level: 'silent' });

let nextSocket = 0;
class Member implements ChannelMember {
  readonly socketId = `1.${++nextSocket}`;
  readonly frames: string[] = [];
  deliver(frame: string): void {
    this.frames.push(frame);
  }
}

describe('ChannelSubscriptions', () => {
  let world: EdgeWorld;
  let subscriber: Redis;

  beforeAll(async () => {
    world = await createEdgeWorld();
  });
  afterEach(() => subscriber.disconnect());
  afterAll(() => world.teardown());

  const registry = () => {
    subscriber = createRedis(world.config().redisUrl, { name: 'ws-edge:sub-test' });
    return new ChannelSubscriptions({ subscriber, keys: world.keys, log });
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
