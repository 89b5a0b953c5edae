import { describe, expect, it } from 'vitest';
import { RedisKeys, USER_SHARDS, shardsFor } from '../src/keys.js';

/** The part of a key Redis Cluster hashes: the first non-empty `{...}`, else the whole key. */
function hashSlotOf(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('RedisKeys', () => {
  const keys = new RedisKeys('ac', { shards: USER_SHARDS });

  it('builds every key under the prefix, user keys with their shard tag (user id mod 16)', () => {
    expect(USER_SHARDS).toBe(16);
    expect(keys.shardOf(5)).toBe(5);
    expect(keys.shardOf('37')).toBe(5);
    expect(keys.pubsubChannel('private-user.37')).toBe('ac:ch:{ac:s5}:private-user.37');
    // State channels (tenant summaries, devices) carry their entity's shard tag, as their state and due set.
    expect(keys.pubsubChannel('private-tenant.3')).toBe('ac:ch:{ac:s3}:private-tenant.3');
    expect(keys.pubsubChannel('private-device.21')).toBe('ac:ch:{ac:s5}:private-device.21');
    expect(keys.stateKey('private-device.21')).toBe('ac:state:{ac:s5}:private-device.21');
    expect(keys.stateDue(5)).toBe('ac:state-due:{ac:s5}');
    expect(keys.stateKeyPrefix(5) + 'private-device.21').toBe(keys.stateKey('private-device.21'));
    expect(keys.stateChannelPrefix(5) + 'private-device.21').toBe(keys.pubsubChannel('private-device.21'));
    expect(() => keys.stateKey('private-user.1')).toThrow();
    expect(keys.pubsubChannel('private-other.3')).toBe('ac:ch:private-other.3');
    expect(keys.pusherChannelOf('ac:ch:{ac:s5}:private-user.37')).toBe('private-user.37');
    expect(keys.pusherChannelOf('ac:ch:{ac:s3}:private-tenant.3')).toBe('private-tenant.3');
    expect(keys.pusherChannelOf('ac:ch:private-tenant.3')).toBe('private-tenant.3');
    expect(keys.pusherChannelOf('other:ch:private-user.5')).toBeNull();
    expect(keys.userLog(37)).toBe('ac:log:{ac:s5}:user:37');
    expect(keys.userLogPrefix(5) + '37').toBe(keys.userLog(37));
    expect(keys.userChannelPrefix(5) + '37').toBe(keys.pubsubChannel('private-user.37'));
    expect(keys.deliveredTo('77', 5)).toBe('ac:delivered:{ac:s5}:77');
    expect(keys.eventData('77', 15)).toBe('ac:ev:{ac:s15}:77');
    expect(keys.userBatchChannel(0)).toBe('ac:fanout:{ac:s0}:user-batch');
    expect(keys.userBatchChannels).toHaveLength(16);
    expect(keys.userBatchChannels.every((c) => keys.isUserBatchChannel(c))).toBe(true);
    expect(keys.isUserBatchChannel('ac:fanout:{ac:s16}:user-batch')).toBe(false);
    expect(keys.isUserBatchChannel('other:fanout:{ac:s1}:user-batch')).toBe(false);
    expect(keys.isUserBatchChannel(keys.pubsubChannel('private-user.1'))).toBe(false);
    // BullMQ's scripts span a queue's keys: one hash tag for all of them.
    expect(keys.bullPrefix).toBe('{ac:bull}');
  });

  it('puts everything one delivery script call touches in one cluster slot', () => {
    for (const uid of [0, 5, 37, 1_000_003]) {
      const shard = keys.shardOf(uid);
      const slots = new Set(
        [
          keys.userLog(uid),
          keys.pubsubChannel(`private-user.${uid}`),
          keys.deliveredTo('e1', shard),
          keys.eventData('e1', shard),
          keys.userBatchChannel(shard),
        ].map(hashSlotOf),
      );
      expect(slots.size).toBe(1);
    }
    // ...and the shards are different tags (a cluster spreads them over its masters).
    expect(new Set(keys.userBatchChannels.map(hashSlotOf)).size).toBe(16);
  });

  it('has one shard on a single Redis: one copy of each event, one fan-out channel', () => {
    expect(shardsFor({})).toBe(1);
    expect(shardsFor({ clusterNodes: [] })).toBe(1);
    expect(shardsFor({ clusterNodes: [{ host: '127.0.0.1', port: 7000 }] })).toBe(USER_SHARDS);
    const single = new RedisKeys('ac');
    expect(single.shards).toBe(1);
    expect(single.shardOf(37)).toBe(0);
    expect(single.userLog(37)).toBe('ac:log:{ac:s0}:user:37');
    expect(single.userBatchChannels).toEqual(['ac:fanout:{ac:s0}:user-batch']);
    expect(single.isUserBatchChannel('ac:fanout:{ac:s1}:user-batch')).toBe(false);
    expect(() => single.shardTag(1)).toThrow();
    expect(() => new RedisKeys('ac', { shards: 0 })).toThrow();
  });

  it('refuses parts that could alias another key', () => {
    expect(() => new RedisKeys('a:b')).toThrow();
    expect(() => keys.userLog('5:x')).toThrow();
    expect(() => keys.userLog(-1)).toThrow();
    expect(() => keys.deliveredTo('1 2', 0)).toThrow();
    expect(() => keys.deliveredTo('1', 16)).toThrow();
    expect(() => keys.pubsubChannel('private-user.5 *')).toThrow();
    expect(() => keys.pubsubChannel('')).toThrow();
  });
});
