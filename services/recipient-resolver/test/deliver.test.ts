import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PubSubEnvelope } from '@alarmcast/contracts';
import { RedisKeys, createRedis, type Redis } from '@alarmcast/redis';
import { testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { EventDeliverer } from '../src/deliver.js';

describe('EventDeliverer (real Redis)', () => {
  let redis: Redis;
  let sub: Redis;
  const keys = new RedisKeys(uniqueRedisPrefix());
  const received: PubSubEnvelope[] = [];

  beforeAll(async () => {
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
    sub = createRedis(testEnv().redisUrl, { name: 'test-sub' });
    await sub.psubscribe(`${keys.prefix}:ch:*`);
    sub.on('pmessage', (_p, _ch, message) => received.push(PubSubEnvelope.parse(JSON.parse(message))));
  });
  afterAll(async () => {
    redis.disconnect();
    sub.disconnect();
  });

  it('logs and publishes each user once per event, with per-user ordered event ids', async () => {
    const deliverer = new EventDeliverer(redis, keys, { logMaxEvents: 100, deliveredTtlS: 60, node: 'n1' });
    const data = JSON.stringify({ alarm: { id: '1', specific_problem: 'quote " and \\ slash / é' } });
    expect(await deliverer.deliver('1', 'App\\Events\\AlarmCreated', data, [10, 11])).toBe(2);
    // A retried job (same event) delivers to nobody again, but reaches a user added meanwhile.
    expect(await deliverer.deliver('1', 'App\\Events\\AlarmCreated', data, [10, 11, 12])).toBe(1);
    expect(await deliverer.deliver('2', 'App\\Events\\AlarmCreated', data, [10])).toBe(1);

    await vi.waitFor(() => expect(received).toHaveLength(4));
    const toUser10 = received.filter((e) => e.channel === 'private-user.10');
    expect(toUser10).toHaveLength(2);
    for (const e of received) {
      const parsed = JSON.parse(e.data) as { alarm: unknown; event_id: string };
      expect(parsed.alarm).toEqual({ id: '1', specific_problem: 'quote " and \\ slash / é' });
      expect(parsed.event_id).toBe(e.eventId);
      expect(e.event).toBe('App\\Events\\AlarmCreated');
    }
    const [first, second] = toUser10.map((e) => e.eventId!);
    expect(compareStreamIds(first!, second!)).toBeLessThan(0);

    const log = await redis.xrange(keys.userLog(10), '-', '+');
    expect(log.map(([id]) => id)).toEqual([first, second]);
  });

  it('handles data that is an empty object and tenants larger than one script call', async () => {
    const deliverer = new EventDeliverer(redis, keys, { logMaxEvents: 100, deliveredTtlS: 60, node: 'n1' });
    const users = Array.from({ length: 1234 }, (_, i) => 100_000 + i);
    expect(await deliverer.deliver('3', 'Ping', '{}', users)).toBe(users.length);
    await vi.waitFor(() => expect(received.filter((e) => e.event === 'Ping')).toHaveLength(users.length));
    const one = received.find((e) => e.event === 'Ping')!;
    expect(JSON.parse(one.data)).toEqual({ event_id: one.eventId });
  });
});

function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
