import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PubSubEnvelope } from '@alarmcast/contracts';
import { testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { RedisKeys, createRedis, type Redis } from '../src/index.js';
import { DEFAULT_RETENTION, UserLogWriter, compareStreamIds, readUserLogAfter } from '../src/user-log.js';

describe('user event logs (real Redis)', () => {
  let redis: Redis;
  let sub: Redis;
  const keys = new RedisKeys(uniqueRedisPrefix());
  const received: PubSubEnvelope[] = [];
  const writer = () =>
    new UserLogWriter(redis, keys, { retention: DEFAULT_RETENTION, deliveredTtlS: 60, node: 'n1' });

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
    const data = JSON.stringify({ alarm: { id: '1', specific_problem: 'quote " and \\ slash / é' } });
    expect(await writer().deliver('1', 'App\\Events\\AlarmCreated', data, [10, 11])).toBe(2);
    // A retried job (same event) delivers to nobody again, but reaches a user added meanwhile.
    expect(await writer().deliver('1', 'App\\Events\\AlarmCreated', data, [10, 11, 12])).toBe(1);
    expect(await writer().deliver('2', 'App\\Events\\AlarmCreated', data, [10])).toBe(1);

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

    // Replay gives back exactly what was delivered live, in order.
    const replay = await readUserLogAfter(redis, keys, 10, '0-0');
    expect(replay.gap).toBeNull();
    expect(replay.events).toEqual(
      toUser10.map((e) => ({ eventId: e.eventId, event: e.event, data: e.data })),
    );
    expect((await readUserLogAfter(redis, keys, 10, first!)).events.map((e) => e.eventId)).toEqual([second]);
  });

  it('remembers a delivery as one mark per event, whatever the order users are given in', async () => {
    expect(await writer().deliver('4', 'Mark', '{}', [205, 201, 203])).toBe(3);
    expect(await redis.get(keys.deliveredTo('4'))).toBe('205');
    // A retry with the same users, in another order, reaches nobody again; a new higher id is reached, and
    // a user added below the mark meanwhile is not (the event predates them).
    expect(await writer().deliver('4', 'Mark', '{}', [203, 207, 201, 202, 205])).toBe(1);
    expect(await redis.get(keys.deliveredTo('4'))).toBe('207');
    expect(await redis.ttl(keys.deliveredTo('4'))).toBeGreaterThan(0);
    await vi.waitFor(() => expect(received.filter((e) => e.event === 'Mark')).toHaveLength(4));
    expect(
      received
        .filter((e) => e.event === 'Mark')
        .map((e) => e.channel)
        .sort(),
    ).toEqual(['private-user.201', 'private-user.203', 'private-user.205', 'private-user.207']);
  });

  it('handles data that is an empty object and tenants larger than one script call', async () => {
    const users = Array.from({ length: 1234 }, (_, i) => 100_000 + i);
    expect(await writer().deliver('3', 'Ping', '{}', users)).toBe(users.length);
    await vi.waitFor(() => expect(received.filter((e) => e.event === 'Ping')).toHaveLength(users.length));
    const one = received.find((e) => e.event === 'Ping')!;
    expect(JSON.parse(one.data)).toEqual({ event_id: one.eventId });
  });

  it('keeps at least the newest minEvents, trims older ones past the age floor, and reports the gap', async () => {
    // minAgeS 0: everything is "old", so only the count floor protects entries.
    const w = new UserLogWriter(redis, keys, {
      retention: { minEvents: 150, minAgeS: 0, maxEvents: 10_000, idleTtlS: 60 },
      deliveredTtlS: 60,
      node: 'n1',
    });
    const ids: string[] = [];
    for (let i = 0; i < 600; i++) {
      await w.deliver(`trim-${i}`, 'E', `{"n":${i}}`, [7]);
    }
    const log = await redis.xrange(keys.userLog(7), '-', '+');
    for (const [id] of log) ids.push(id);
    expect(log.length).toBeGreaterThanOrEqual(150);
    expect(log.length).toBeLessThan(600); // whole stream nodes (100 entries) were trimmed
    // The newest entry is the last event.
    expect(JSON.parse((await readUserLogAfter(redis, keys, 7, ids.at(-2)!)).events[0]!.data)).toMatchObject({
      n: 599,
    });

    // Resuming from before the oldest kept entry is a gap; from a kept entry it is not.
    expect((await readUserLogAfter(redis, keys, 7, '1-0')).gap).toBe('log_trimmed');
    expect((await readUserLogAfter(redis, keys, 7, ids[0]!)).gap).toBeNull();
    // A log that does not exist (expired) cannot prove continuity.
    expect(await readUserLogAfter(redis, keys, 99_999, '1-0')).toEqual({ events: [], gap: 'log_expired' });
  });

  it('keeps everything younger than the age floor even past minEvents', async () => {
    const w = new UserLogWriter(redis, keys, {
      retention: { minEvents: 10, minAgeS: 600, maxEvents: 10_000, idleTtlS: 60 },
      deliveredTtlS: 60,
      node: 'n1',
    });
    for (let i = 0; i < 300; i++) await w.deliver(`young-${i}`, 'E', '{}', [8]);
    expect(await redis.xlen(keys.userLog(8))).toBe(300);
    expect(await redis.ttl(keys.userLog(8))).toBeGreaterThan(0);
  });
});
