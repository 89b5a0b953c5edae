import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PubSubEnvelope } from '@alarmcast/contracts';
import { testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import {
  DEFAULT_RETENTION,
  RedisKeys,
  USER_SHARDS,
  UserLogWriter,
  createRedis,
  decodeEnvelope,
  encodeChannelEvent,
  notifyHead,
  readUserLogAfter,
  userCopyData,
  type Redis,
} from '../src/index.js';

/**
 * The delivery script builds envelopes from the codec's pieces inside Redis; the edge reads them with the
 * codec's decoder. Here the real script publishes and the decoder must give back exactly the envelope the
 * codec's layout describes, for data that needs every kind of JSON escaping.
 */
describe('envelope codec (real Redis, the real delivery script)', () => {
  let redis: Redis;
  let sub: Redis;
  const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
  const messages: { channel: string; message: string }[] = [];
  const data = JSON.stringify({ alarm: { id: '9', text: 'quote " back\\slash é \u2028 \t </script>' } });
  const head = data.slice(0, -1) + ',';

  beforeAll(async () => {
    redis = createRedis(testEnv().redisUrl, { name: 'codec' });
    sub = createRedis(testEnv().redisUrl, { name: 'codec-sub' });
    await sub.psubscribe(`${keys.prefix}:*`);
    sub.on('pmessage', (_p, channel: string, message: string) => messages.push({ channel, message }));
  });
  afterAll(() => {
    redis.disconnect();
    sub.disconnect();
  });

  const writer = (batchMinRecipients: number) =>
    new UserLogWriter(redis, keys, {
      retention: DEFAULT_RETENTION,
      deliveredTtlS: 60,
      node: 'n"1',
      batchMinRecipients,
    });

  it('decodes every per-user envelope the script publishes to exactly its layout', async () => {
    expect(await writer(1000).appendAndPublish('e1', 'App\\Events\\AlarmCreated', data, [3, 4])).toBe(2);
    await vi.waitFor(() => expect(messages.filter((m) => m.channel.includes(':ch:'))).toHaveLength(2));
    for (const { channel, message } of messages.filter((m) => m.channel.includes(':ch:'))) {
      const envelope = decodeEnvelope(message);
      expect(envelope?.type).toBe('event');
      const e = envelope as Extract<PubSubEnvelope, { type: 'event' }>;
      expect(keys.pubsubChannel(e.channel)).toBe(channel);
      expect(e).toEqual({
        v: 1,
        node: 'n"1',
        source: 'e1',
        type: 'event',
        event: 'App\\Events\\AlarmCreated',
        channel: e.channel,
        eventId: e.eventId,
        data: userCopyData(notifyHead(head, true), e.eventId!),
      });
      expect(JSON.parse(e.data)).toEqual({
        ...(JSON.parse(data) as object),
        notify: true,
        event_id: e.eventId,
      });
    }
  });

  it('gives silent recipients "notify":false, per user and as their own batch, and keeps it in the log', async () => {
    messages.length = 0;
    const w = writer(1000);
    expect(await w.appendAndPublish('e-s1', 'E', data, [6, 7], new Set([7]))).toBe(2);
    await vi.waitFor(() => expect(messages).toHaveLength(2));
    const byChannel = new Map(
      messages.map((m) => [
        m.channel,
        decodeEnvelope(m.message) as Extract<PubSubEnvelope, { type: 'event' }>,
      ]),
    );
    const notifyOf = (user: number) =>
      (JSON.parse(byChannel.get(keys.pubsubChannel(`private-user.${user}`))!.data) as { notify: boolean })
        .notify;
    expect([notifyOf(6), notifyOf(7)]).toEqual([true, false]);

    // Batched: users 8 and 24 and 40 share shard 8; 24 is silent: two messages, one per group.
    messages.length = 0;
    expect(await writer(2).appendAndPublish('e-s2', 'E', data, [8, 24, 40], new Set([24]))).toBe(3);
    await vi.waitFor(() => expect(messages).toHaveLength(2));
    const batches = messages.map(
      (m) => decodeEnvelope(m.message) as Extract<PubSubEnvelope, { type: 'user-batch' }>,
    );
    expect(batches.map((b) => [b.dataHead, b.users.map(([u]) => u)])).toEqual([
      [notifyHead(head, true), [8, 40]],
      [notifyHead(head, false), [24]],
    ]);
    // The data is stored once, without the flag; the silent entry carries it.
    expect(await redis.hget(keys.eventData('e-s2', 8), 'h')).toBe(head);
    const entries = (await redis.xrange(keys.userLog(24), '-', '+')) as [string, string[]][];
    expect(entries.map(([, fields]) => fields)).toEqual([['r', 'e-s2', 'n', '0']]);
    // A replay gives each recipient the flag they had live.
    const replayed = async (user: number) =>
      (JSON.parse((await readUserLogAfter(redis, keys, user, '0-0')).events[0]!.data) as { notify: boolean })
        .notify;
    expect([await replayed(8), await replayed(24)]).toEqual([true, false]);
  });

  it('decodes the user-batch envelope the script publishes', async () => {
    messages.length = 0;
    // Users of one shard (5): one call, one batch on that shard's channel.
    expect(await writer(2).appendAndPublish('e2', 'E', data, [5, 21, 37])).toBe(3);
    await vi.waitFor(() => expect(messages).toHaveLength(1));
    expect(messages[0]!.channel).toBe(keys.userBatchChannel(5));
    const envelope = decodeEnvelope(messages[0]!.message);
    expect(envelope).toMatchObject({
      v: 1,
      node: 'n"1',
      source: 'e2',
      type: 'user-batch',
      event: 'E',
      dataHead: notifyHead(head, true),
    });
    const users = (envelope as Extract<PubSubEnvelope, { type: 'user-batch' }>).users;
    expect(users.map(([uid]) => uid)).toEqual([5, 21, 37]);
  });

  it('round-trips a whole event envelope and refuses malformed ones', () => {
    const text = encodeChannelEvent({ node: 'n', channel: 'private-tenant.1', event: 'X', data: '{"a":1}' });
    expect(decodeEnvelope(text)).toEqual({
      v: 1,
      type: 'event',
      node: 'n',
      channel: 'private-tenant.1',
      event: 'X',
      data: '{"a":1}',
    });
    for (const bad of ['', 'not json', '{"v":2}', JSON.stringify({ v: 1, type: 'event', node: 'n' })]) {
      expect(decodeEnvelope(bad)).toBeNull();
    }
  });
});
