import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { signChannelAuth } from '@alarmcast/auth';
import { RESUME_FAILED_EVENT, RESUME_FIELD, userChannel, type PubSubEnvelope } from '@alarmcast/contracts';
import {
  UserLogWriter,
  DEFAULT_RETENTION,
  createPubSubTransport,
  type UserLogRetention,
} from '@alarmcast/redis';
import { redisTopologies, startRedisTopology, testEnv, type RedisTopology } from '@alarmcast/testing';
import type { EdgeServer } from '../src/server.js';
import { RawClient, createEdgeWorld, provisionTenant, type EdgeWorld, type Frame } from './helpers.js';

/**
 * Resume after reconnect: a subscribe that carries the last event id seen gets every later event of the
 * user's log, in order, then the live ones, with no duplicate and no gap, or an explicit resume_failed. On
 * each Redis topology: the run's Redis, and a local Redis Cluster started once for the file.
 */
describe.each(redisTopologies())('resume from last_event_id on Redis topology %s', (topologyName) => {
  let topology: RedisTopology;
  let world: EdgeWorld;
  let edge: EdgeServer;
  let userId: number;
  let n = 0;

  beforeAll(async () => {
    topology = await startRedisTopology(topologyName, testEnv().redisUrl);
    world = await createEdgeWorld({ topology });
    edge = await world.startEdge();
    userId = (await provisionTenant(world.prisma, 'resume', [{ name: 'op' }])).userIds[0]!;
  });
  afterAll(async () => {
    await world?.teardown();
    await topology?.stop();
  });

  /** What the resolver does: append to the user's log and publish. Returns the event ids. */
  const raise = async (count: number, retention: UserLogRetention = DEFAULT_RETENTION): Promise<string[]> => {
    const writer = new UserLogWriter(world.redis, world.keys, { retention, deliveredTtlS: 60, node: 'test' });
    for (let i = 0; i < count; i++) {
      n++;
      await writer.appendAndPublish(
        `e${n}`,
        'App\\Events\\AlarmCreated',
        JSON.stringify({ alarm: { id: String(n) } }),
        [userId],
      );
    }
    const log = await world.redis.xrange(world.keys.userLog(userId), '-', '+');
    return log.slice(-count).map(([id]) => id);
  };

  const subscribe = async (lastEventId?: string): Promise<RawClient> => {
    const client = await RawClient.connect(world, edge);
    const socketId = await client.socketId();
    const channel = userChannel(userId);
    const { key, secret } = world.config().app;
    client.send({
      event: 'pusher:subscribe',
      data: {
        channel,
        auth: signChannelAuth(key, secret, socketId, channel),
        ...(lastEventId ? { [RESUME_FIELD]: lastEventId } : {}),
      },
    });
    await client.next((f) => f.event === 'pusher_internal:subscription_succeeded');
    return client;
  };

  const alarmEvents = (client: RawClient): { id: string; eventId: string }[] =>
    client.frames
      .filter((f: Frame) => f.event === 'App\\Events\\AlarmCreated')
      .map((f) => {
        const d = JSON.parse(f.data as string) as { alarm: { id: string }; event_id: string };
        return { id: d.alarm.id, eventId: d.event_id };
      });

  it('replays what was missed, in order, then continues live', async () => {
    const ids = await raise(5);
    const client = await subscribe(ids[1]);
    await client.next((f) => alarmEvents(client).length >= 3 || f.event === RESUME_FAILED_EVENT);
    const live = await raise(2);
    await client.next(() => alarmEvents(client).length === 5);
    expect(alarmEvents(client).map((e) => e.eventId)).toEqual([...ids.slice(2), ...live]);
    expect(client.frames.some((f) => f.event === RESUME_FAILED_EVENT)).toBe(false);
  });

  it('leaves no gap and no duplicate when events keep arriving during the replay', async () => {
    const before = await raise(400);
    const client = await RawClient.connect(world, edge);
    const socketId = await client.socketId();
    const channel = userChannel(userId);
    const { key, secret } = world.config().app;
    // Subscribe and raise at the same time: some new events land in the log before the replay reads it,
    // some after; each must reach the client exactly once.
    client.send({
      event: 'pusher:subscribe',
      data: { channel, auth: signChannelAuth(key, secret, socketId, channel), [RESUME_FIELD]: before[0] },
    });
    const during = await raise(100);
    await client.next(() => alarmEvents(client).length >= 499);
    const after = await raise(1);
    await client.next(() => alarmEvents(client).some((e) => e.eventId === after[0]));
    const got = alarmEvents(client).map((e) => e.eventId);
    expect(got).toEqual([...before.slice(1), ...during, ...after]);
  });

  it('says so explicitly when the position is older than the log keeps', async () => {
    const small = { minEvents: 10, minAgeS: 0, maxEvents: 10_000, idleTtlS: 60, eventDataTtlS: 600 };
    const [old] = await raise(1, small);
    await raise(300, small);
    const client = await subscribe(old);
    const failed = await client.next((f) => f.event === RESUME_FAILED_EVENT);
    expect(failed.channel).toBe(userChannel(userId));
    expect(JSON.parse(failed.data as string)).toEqual({ last_event_id: old, reason: 'log_trimmed' });
    const live = await raise(1, small);
    await client.next(() => alarmEvents(client).some((e) => e.eventId === live[0]));
  });

  /** Frames of the user's channel after subscription_succeeded: resume_failed and alarms, in order. */
  const channelFrames = (client: RawClient): string[] =>
    client.frames
      .filter((f: Frame) => f.event === RESUME_FAILED_EVENT || f.event === 'App\\Events\\AlarmCreated')
      .map((f) =>
        f.event === RESUME_FAILED_EVENT
          ? `failed:${(JSON.parse(f.data as string) as { reason: string }).reason}`
          : (JSON.parse(f.data as string) as { event_id: string }).event_id,
      );

  it('says so first when the log was recreated after the position (Redis lost it), then what it holds', async () => {
    const [seen] = await raise(1);
    // Delivered while the client was away, then lost with the log: Redis restarted empty.
    await raise(1);
    await world.redis.del(world.keys.userLog(userId));
    const recreated = await raise(2);
    const client = await subscribe(seen);
    await client.next(() => channelFrames(client).length >= 3);
    expect(channelFrames(client)).toEqual(['failed:log_recreated', ...recreated]);
    expect(JSON.parse(client.frames.find((f) => f.event === RESUME_FAILED_EVENT)!.data as string)).toEqual({
      last_event_id: seen,
      reason: 'log_recreated',
    });
    const live = await raise(1);
    await client.next(() => alarmEvents(client).some((e) => e.eventId === live[0]));
    expect(channelFrames(client)).toEqual(['failed:log_recreated', ...recreated, ...live]);
  });

  it('refuses a position newer than the log (forged), and the socket keeps receiving live events', async () => {
    const [newest] = await raise(1);
    const forged = `${Number(newest!.split('-')[0]) + 86_400_000}-0`;
    const client = await subscribe(forged);
    const failed = await client.next((f) => f.event === RESUME_FAILED_EVENT);
    expect(JSON.parse(failed.data as string)).toEqual({ last_event_id: forged, reason: 'unknown_position' });
    const live = await raise(2);
    await client.next(() => alarmEvents(client).length >= 2);
    expect(channelFrames(client)).toEqual(['failed:unknown_position', ...live]);
  });

  it('refuses a position inside the log that is none of its ids (another Redis, a failover)', async () => {
    const [first] = await raise(1);
    const [ms, seq] = first!.split('-').map((part) => BigInt(part)) as [bigint, bigint];
    // The next entries in a later millisecond, so that the id just after the first is none of the log's.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(Number(ms) + 1));
    const ids = [first, ...(await raise(2))];
    const foreign = `${ms}-${seq + 1n}`;
    const client = await subscribe(foreign);
    await client.next(() => channelFrames(client).length >= 3);
    expect(channelFrames(client).slice(0, 3)).toEqual(['failed:unknown_position', ids[1], ids[2]]);
  });

  it('drops repeats of the replay only until it is over: a log that restarts with lower ids is delivered', async () => {
    const ids = await raise(2);
    const client = await subscribe(ids[0]);
    await client.next(() => alarmEvents(client).length >= 1);
    const live = await raise(1);
    await client.next(() => alarmEvents(client).some((e) => e.eventId === live[0]));
    // The log recreated on a Redis whose clock went back: its ids are lower than everything sent so far.
    const channel = userChannel(userId);
    const lower = '1000-0';
    const envelope: PubSubEnvelope = {
      v: 1,
      node: 'test',
      type: 'event',
      channel,
      event: 'App\\Events\\AlarmCreated',
      eventId: lower,
      data: JSON.stringify({ alarm: { id: 'clock' }, event_id: lower }),
    };
    await createPubSubTransport(world.redis, world.redis).publish(
      world.keys.pubsubChannel(channel),
      JSON.stringify(envelope),
    );
    await client.next(() => alarmEvents(client).some((e) => e.eventId === lower));
    expect(alarmEvents(client).map((e) => e.eventId)).toEqual([ids[1], live[0], lower]);
  });

  it('refuses a malformed position explicitly, and replays nothing for a legacy subscribe', async () => {
    const bad = await subscribe('yesterday');
    const failed = await bad.next((f) => f.event === RESUME_FAILED_EVENT);
    expect(JSON.parse(failed.data as string)).toMatchObject({ reason: 'invalid_event_id' });

    await raise(3);
    const legacy = await subscribe();
    const live = await raise(1);
    await legacy.next(() => alarmEvents(legacy).length > 0);
    expect(alarmEvents(legacy).map((e) => e.eventId)).toEqual(live);
  });
});
