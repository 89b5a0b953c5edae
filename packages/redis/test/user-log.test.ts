import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PubSubEnvelope, type ChannelEventEnvelope } from '@alarmcast/contracts';
import { testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { RedisKeys, USER_SHARDS, createRedis, type Redis } from '../src/index.js';
import { LOG_START, compareStreamIds, readUserLogAfter, readUserLogTail } from '../src/user-log.js';
import { DEFAULT_RETENTION, UserLogWriter } from '../src/user-log-writer.js';

describe('user event logs (real Redis)', () => {
  let redis: Redis;
  let sub: Redis;
  // A cluster's shard count on a single Redis: the per-shard paths (marks, batches) run here too.
  const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
  const received: ChannelEventEnvelope[] = [];
  const writer = () =>
    new UserLogWriter(redis, keys, { retention: DEFAULT_RETENTION, deliveredTtlS: 60, node: 'n1' });

  beforeAll(async () => {
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
    sub = createRedis(testEnv().redisUrl, { name: 'test-sub' });
    await sub.psubscribe(`${keys.prefix}:ch:*`);
    sub.on('pmessage', (_p, _ch, message) => received.push(userEvent(message)));
  });
  afterAll(async () => {
    redis.disconnect();
    sub.disconnect();
  });

  it('logs and publishes each user once per event, with per-user ordered event ids', async () => {
    const data = JSON.stringify({ alarm: { id: '1', specific_problem: 'quote " and \\ slash / é' } });
    expect(await writer().appendAndPublish('1', 'App\\Events\\AlarmCreated', data, [10, 11])).toBe(2);
    // A retried job (same event) delivers to nobody again, but reaches a user added meanwhile.
    expect(await writer().appendAndPublish('1', 'App\\Events\\AlarmCreated', data, [10, 11, 12])).toBe(1);
    expect(await writer().appendAndPublish('2', 'App\\Events\\AlarmCreated', data, [10])).toBe(1);

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

    // Replay gives back exactly what was delivered live, in order. ('0-0' precedes every entry but is no
    // entry of this log, so it cannot prove continuity; what the log holds is returned all the same.)
    const replay = await readUserLogAfter(redis, keys, 10, '0-0');
    expect(replay.gap).toBe('log_recreated');
    expect(replay.events).toEqual(
      toUser10.map((e) => ({ eventId: e.eventId, event: e.event, data: e.data })),
    );
    expect((await readUserLogAfter(redis, keys, 10, first!)).events.map((e) => e.eventId)).toEqual([second]);
  });

  it('remembers a delivery as one mark per event, whatever the order users are given in', async () => {
    // One mark per event and shard: these users are all on shard 9.
    const mark = keys.deliveredTo('4', 9);
    expect(await writer().appendAndPublish('4', 'Mark', '{}', [249, 201, 233])).toBe(3);
    expect(await redis.get(mark)).toBe('249');
    // A retry with the same users, in another order, reaches nobody again; a new higher id is reached, and
    // a user added below the mark meanwhile is not (the event predates them).
    expect(await writer().appendAndPublish('4', 'Mark', '{}', [233, 265, 201, 217, 249])).toBe(1);
    expect(await redis.get(mark)).toBe('265');
    expect(await redis.ttl(mark)).toBeGreaterThan(0);
    await vi.waitFor(() => expect(received.filter((e) => e.event === 'Mark')).toHaveLength(4));
    expect(
      received
        .filter((e) => e.event === 'Mark')
        .map((e) => e.channel)
        .sort(),
    ).toEqual(['private-user.201', 'private-user.233', 'private-user.249', 'private-user.265']);
    // Another shard has its own mark: user 202 (shard 10) is served.
    expect(await writer().appendAndPublish('4', 'Mark', '{}', [202, 265])).toBe(1);
    expect(await redis.get(keys.deliveredTo('4', 10))).toBe('202');
  });

  it('handles data that is an empty object and tenants larger than one script call, per user', async () => {
    const users = Array.from({ length: 1234 }, (_, i) => 100_000 + i);
    const perUser = new UserLogWriter(redis, keys, {
      retention: DEFAULT_RETENTION,
      deliveredTtlS: 60,
      node: 'n1',
      batchMinRecipients: Number.POSITIVE_INFINITY,
    });
    expect(await perUser.appendAndPublish('3', 'Ping', '{}', users)).toBe(users.length);
    await vi.waitFor(() => expect(received.filter((e) => e.event === 'Ping')).toHaveLength(users.length));
    const one = received.find((e) => e.event === 'Ping')!;
    expect(JSON.parse(one.data)).toEqual({ notify: true, event_id: one.eventId });
  });

  it('publishes a large broadcast as user-batch envelopes whose copies match the logs exactly', async () => {
    const batches: PubSubEnvelope[] = [];
    const batchSub = createRedis(testEnv().redisUrl, { name: 'test-batch-sub' });
    batchSub.on('message', (_ch, message) => batches.push(PubSubEnvelope.parse(JSON.parse(message))));
    await batchSub.subscribe(...keys.userBatchChannels);
    try {
      const w = new UserLogWriter(redis, keys, {
        retention: DEFAULT_RETENTION,
        deliveredTtlS: 60,
        node: 'n1',
        batchMinRecipients: 3,
      });
      const users = Array.from({ length: 1100 }, (_, i) => 200_000 + i);
      const data = JSON.stringify({ alarm: { id: '9', text: 'quote " back\\slash é \u2028' } });
      const before = received.length;
      expect(await w.appendAndPublish('batch-1', 'App\\Events\\AlarmCreated', data, users)).toBe(
        users.length,
      );
      // One script call per shard (~69 users each here, 500 at most), one message each, on its shard's
      // channel; nothing on the user channels.
      await vi.waitFor(() => expect(batches).toHaveLength(16));
      expect(received.length).toBe(before);
      const copies = batches.flatMap((b) => {
        if (b.type !== 'user-batch') throw new Error(`unexpected ${b.type}`);
        expect(b.event).toBe('App\\Events\\AlarmCreated');
        return b.users.map(([uid, id]) => ({ uid, id, data: `${b.dataHead}"event_id":"${id}"}` }));
      });
      copies.sort((a, b) => a.uid - b.uid);
      expect(copies.map((c) => c.uid)).toEqual(users);
      for (const c of [copies[0]!, copies[777]!, copies.at(-1)!]) {
        const [logged] = (await readUserLogAfter(redis, keys, c.uid, '0-0')).events;
        expect(logged).toEqual({ eventId: c.id, event: 'App\\Events\\AlarmCreated', data: c.data });
        expect(JSON.parse(c.data)).toEqual({ ...(JSON.parse(data) as object), notify: true, event_id: c.id });
      }
      // A retry serves nobody again and publishes nothing.
      expect(await w.appendAndPublish('batch-1', 'App\\Events\\AlarmCreated', data, users)).toBe(0);
      // Below the threshold the same writer publishes per user.
      expect(await w.appendAndPublish('batch-2', 'Small', '{}', [5, 6])).toBe(2);
      await vi.waitFor(() => expect(received.filter((e) => e.event === 'Small')).toHaveLength(2));
      expect(batches).toHaveLength(16);
    } finally {
      batchSub.disconnect();
    }
  });

  it('keeps at least the newest minEvents, trims older ones past the age floor, and reports the gap', async () => {
    // minAgeS 0: everything is "old", so only the count floor protects entries.
    const w = new UserLogWriter(redis, keys, {
      retention: { minEvents: 150, minAgeS: 0, maxEvents: 10_000, idleTtlS: 60, eventDataTtlS: 600 },
      deliveredTtlS: 60,
      node: 'n1',
    });
    const ids: string[] = [];
    for (let i = 0; i < 600; i++) {
      await w.appendAndPublish(`trim-${i}`, 'E', `{"n":${i}}`, [7]);
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

  describe('a position is trusted only when its entry is still in this log', () => {
    // Entries with chosen ids, as the writer stores them, so each case sits exactly where it should.
    const userId = 4242;
    const key = () => keys.userLog(userId);
    const add = async (...ids: string[]) => {
      for (const id of ids) await redis.xadd(key(), id, 'event', 'E', 'head', `{"at":"${id}"`, 'sep', ',');
    };
    const read = (after: string) => readUserLogAfter(redis, keys, userId, after);
    const idsOf = (r: Awaited<ReturnType<typeof read>>) => r.events.map((e) => e.eventId);

    it('replays after an entry of the log, whatever its age', async () => {
      await redis.del(key());
      await add('1000-0', '2000-0', '3000-0');
      expect(await read('1000-0')).toMatchObject({ gap: null });
      expect(idsOf(await read('1000-0'))).toEqual(['2000-0', '3000-0']);
      expect(await read('3000-0')).toEqual({ events: [], gap: null });
    });

    it('log_recreated: a position older than a log that never dropped an entry (Redis restarted empty)', async () => {
      // The client saw 1000-0..3000-0 and 3500-0; Redis lost the log, later events recreated it.
      await redis.del(key());
      await add('5000-0', '6000-0');
      const r = await read('3000-0');
      expect(r.gap).toBe('log_recreated');
      // What the new log holds is still given, for the edge to send after saying it is incomplete.
      expect(idsOf(r)).toEqual(['5000-0', '6000-0']);
    });

    it('log_trimmed: a position older than the oldest kept once entries were dropped', async () => {
      await redis.del(key());
      await add('1000-0', '2000-0', '3000-0', '4000-0');
      await redis.xtrim(key(), 'MAXLEN', 2);
      expect((await read('1000-0')).gap).toBe('log_trimmed');
      expect((await read('2000-0')).gap).toBe('log_trimmed'); // the last one dropped: the safe side
      expect((await read('500-0')).gap).toBe('log_trimmed');
      expect(await read('3000-0')).toMatchObject({ gap: null });
    });

    it('unknown_position: newer than anything the log held, or inside it but not one of its ids', async () => {
      await redis.del(key());
      await add('1000-0', '2000-0', '3000-0');
      // Forged, or a clock that went back, or a log from another Redis.
      expect(await read('9000-0')).toEqual({ events: [], gap: 'unknown_position' });
      expect((await read('3000-1')).gap).toBe('unknown_position');
      // Inside the log's range, but never one of its entries.
      const inside = await read('1500-0');
      expect(inside.gap).toBe('unknown_position');
      expect(idsOf(inside)).toEqual(['2000-0', '3000-0']);
      // A failover to a replica that had not received 4000-0 (the client's last event) when it took over,
      // then new writes: the log's ids reach past the client's, but its entry is not there.
      await add('5000-0');
      expect((await read('4000-0')).gap).toBe('unknown_position');
      // Ids Redis would refuse (a part above 2^64-1) are no position at all.
      expect((await read('18446744073709551616-0')).gap).toBe('unknown_position');
    });

    it('log_expired: no log at all', async () => {
      await redis.del(key());
      expect(await read('1000-0')).toEqual({ events: [], gap: 'log_expired' });
    });

    it('a subscriber without a position stands at the log tail, or at LOG_START before the first entry', async () => {
      await redis.del(key());
      expect(await readUserLogTail(redis, keys, userId)).toBe(LOG_START);
      // From LOG_START, no log is nothing missed, and a log that never dropped an entry is all new.
      expect(await read(LOG_START)).toEqual({ events: [], gap: null });
      await add('1000-0', '2000-0');
      expect(await read(LOG_START)).toMatchObject({ gap: null });
      expect(idsOf(await read(LOG_START))).toEqual(['1000-0', '2000-0']);
      expect(await readUserLogTail(redis, keys, userId)).toBe('2000-0');
      await add('3000-0');
      expect(idsOf(await read(await readUserLogTail(redis, keys, userId)))).toEqual([]);
      // A log that dropped entries cannot prove it holds all that came after LOG_START.
      await redis.xtrim(key(), 'MAXLEN', 1);
      expect((await read(LOG_START)).gap).toBe('log_trimmed');
    });

    it('too_many_events: the position is fine but more follow than one replay sends', async () => {
      await redis.del(key());
      await add('1000-0', '2000-0', '3000-0', '4000-0');
      const r = await readUserLogAfter(redis, keys, userId, '1000-0', 2);
      expect(r.gap).toBe('too_many_events');
      expect(idsOf(r)).toEqual(['2000-0', '3000-0']);
    });
  });

  it('keeps everything younger than the age floor even past minEvents', async () => {
    const w = new UserLogWriter(redis, keys, {
      retention: { minEvents: 10, minAgeS: 600, maxEvents: 10_000, idleTtlS: 60, eventDataTtlS: 600 },
      deliveredTtlS: 60,
      node: 'n1',
    });
    for (let i = 0; i < 300; i++) await w.appendAndPublish(`young-${i}`, 'E', '{}', [8]);
    expect(await redis.xlen(keys.userLog(8))).toBe(300);
    expect(await redis.ttl(keys.userLog(8))).toBeGreaterThan(0);
  });
});

/** An `event` envelope (one channel's event); a batch on a user channel would be a bug. */
function userEvent(message: string): ChannelEventEnvelope {
  const envelope = PubSubEnvelope.parse(JSON.parse(message));
  if (envelope.type !== 'event') throw new Error(`a ${envelope.type} envelope on a user channel`);
  return envelope;
}

// One shard on a single Redis (the default), USER_SHARDS on a cluster.
describe.each([1, USER_SHARDS])('event data stored once (real Redis, %i shards)', (shards) => {
  let redis: Redis;
  const keys = new RedisKeys(uniqueRedisPrefix(), { shards });
  beforeAll(() => {
    redis = createRedis(testEnv().redisUrl, { name: 'test-once' });
  });
  afterAll(() => redis.disconnect());

  it('keeps one copy of the data per event and a reference per log entry', async () => {
    const w = new UserLogWriter(redis, keys, { retention: DEFAULT_RETENTION, deliveredTtlS: 60, node: 'n1' });
    const data = JSON.stringify({ alarm: { id: '1', text: 'x'.repeat(400) } });
    const users = Array.from({ length: 200 }, (_, i) => 1_000 + i);
    for (let n = 0; n < 50; n++) await w.appendAndPublish(`once-${n}`, 'E', data, users);
    // Each entry names its event; the data is in one hash per event, with its TTL.
    const [first] = await redis.xrange(keys.userLog(1_000), '-', '+', 'COUNT', 1);
    const fields = first?.[1];
    expect(fields).toEqual(['r', 'once-0']);
    const dataKey = keys.eventData('once-0', keys.shardOf(1_000));
    expect(await redis.hgetall(dataKey)).toEqual({ e: 'E', h: data.slice(0, -1) + ',' });
    expect(await redis.ttl(dataKey)).toBeGreaterThan(86_000);
    // What a delivery adds to a log: a reference, not a copy (measured ~550 bytes per entry with copies).
    // The first entry of a log also pays for the stream's node (its size is Redis' stream-node-max-bytes,
    // which scripts/lib.sh sets to 1024; see infra/redis/redis.conf), so the cost per delivery is measured
    // past it, over 1,000 more events.
    const usage = async (): Promise<number> =>
      Number(await redis.call('MEMORY', 'USAGE', keys.userLog(1_000), 'SAMPLES', '0'));
    const before = await usage();
    for (let n = 50; n < 1050; n++) await w.appendAndPublish(`once-${n}`, 'E', data, [1_000]);
    expect((await usage()) - before).toBeLessThan(1000 * 50);
    // One data hash per event and shard with recipients, whatever the number of recipients: the 200 users
    // are on every shard, user 1000 on one.
    expect(await redis.keys(`${keys.prefix}:ev:*:once-*`)).toHaveLength(50 * shards + 1000);
    // A replay reads the data back, identical to what was published live.
    const { events, gap } = await readUserLogAfter(redis, keys, 1_000, first![0]);
    expect(gap).toBeNull();
    expect(events).toHaveLength(1049);
    expect(JSON.parse(events[7]!.data)).toEqual({
      ...(JSON.parse(data) as object),
      notify: true,
      event_id: events[7]!.eventId,
    });
  });

  it('reports a replay that reaches an event whose data is gone as a gap, with the events before it', async () => {
    const w = new UserLogWriter(redis, keys, { retention: DEFAULT_RETENTION, deliveredTtlS: 60, node: 'n1' });
    for (let n = 0; n < 4; n++) await w.appendAndPublish(`gone-${n}`, 'E', `{"n":${n}}`, [77]);
    await redis.del(keys.eventData('gone-2', keys.shardOf(77)));
    const [[position]] = (await redis.xrange(keys.userLog(77), '-', '+', 'COUNT', 1)) as [[string, string[]]];
    const { events, gap } = await readUserLogAfter(redis, keys, 77, position);
    expect(gap).toBe('event_expired');
    expect(events.map((e) => JSON.parse(e.data) as { n: number }).map((d) => d.n)).toEqual([1]);
  });
});
