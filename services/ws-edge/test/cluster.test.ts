import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signChannelAuth } from '@alarmcast/auth';
import { RESUME_FAILED_EVENT, RESUME_FIELD, userChannel } from '@alarmcast/contracts';
import {
  DEFAULT_RETENTION,
  USER_SHARDS,
  UserLogWriter,
  createRedisClient,
  type RedisConnection,
} from '@alarmcast/redis';
import { startRedisCluster, type LocalRedisCluster } from '@alarmcast/testing';
import type { EdgeServer } from '../src/server.js';
import { RawClient, createEdgeWorld, provisionTenant, type EdgeWorld, type Frame } from './helpers.js';

/**
 * The edge on a Redis Cluster (REDIS_CLUSTER_NODES): users on different shards get their events live
 * through sharded pub/sub, per user and in user-batch envelopes, and resume from their shard's log.
 */
describe('ws-edge on a real local Redis Cluster', () => {
  let cluster: LocalRedisCluster;
  let world: EdgeWorld;
  let edge: EdgeServer;
  let redis: RedisConnection;
  let userIds: number[];
  let n = 0;

  beforeAll(async () => {
    cluster = await startRedisCluster({ timeoutMs: 20_000 });
    world = await createEdgeWorld({ shards: USER_SHARDS });
    edge = await world.startSharedEdge({ REDIS_CLUSTER_NODES: cluster.seedList });
    redis = createRedisClient(
      { url: 'redis://unused.invalid:1', clusterNodes: cluster.nodes },
      { name: 'test' },
    );
    const names = Array.from({ length: 20 }, (_, i) => ({ name: `op${i}` }));
    userIds = (await provisionTenant(world.prisma, 'cluster', names)).userIds;
  });
  afterAll(async () => {
    redis?.disconnect();
    await world?.teardown();
    await cluster?.stop();
  });

  /** What the resolver does on the cluster; `batchMinRecipients` 1 sends user-batch envelopes. */
  const raise = async (users: number[], batchMinRecipients: number): Promise<string> => {
    const writer = new UserLogWriter(redis, world.keys, {
      retention: DEFAULT_RETENTION,
      deliveredTtlS: 60,
      node: 'test',
      batchMinRecipients,
    });
    n++;
    expect(
      await writer.appendAndPublish(
        `c${n}`,
        'App\\Events\\AlarmCreated',
        JSON.stringify({ alarm: { id: String(n) } }),
        users,
      ),
    ).toBe(users.length);
    return String(n);
  };

  const subscribe = async (userId: number, lastEventId?: string): Promise<RawClient> => {
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

  const alarms = (client: RawClient): { id: string; eventId: string }[] =>
    client.frames
      .filter((f: Frame) => f.event === 'App\\Events\\AlarmCreated')
      .map((f) => {
        const d = JSON.parse(f.data as string) as { alarm: { id: string }; event_id: string };
        return { id: d.alarm.id, eventId: d.event_id };
      });

  it('delivers live to users on different shards, per user and batched, and resumes each', async () => {
    const [a, b] = [userIds[0]!, userIds[1]!];
    expect(world.keys.shardOf(a)).not.toBe(world.keys.shardOf(b));
    const [ca, cb] = [await subscribe(a), await subscribe(b)];
    const first = await raise(userIds, 1_000); // per user
    const second = await raise(userIds, 1); // one batch per shard
    for (const c of [ca, cb]) await c.next(() => alarms(c).length === 2);
    for (const c of [ca, cb]) expect(alarms(c).map((e) => e.id)).toEqual([first, second]);
    const missedFrom = alarms(cb)[0]!.eventId;

    // A reconnect of b after the first event gets the second from its shard's log, then live ones.
    const resumed = await subscribe(b, missedFrom);
    await resumed.next(
      () => alarms(resumed).length === 1 || resumed.frames.some((f) => f.event === RESUME_FAILED_EVENT),
    );
    expect(alarms(resumed)).toEqual([alarms(cb)[1]]);
    const third = await raise([b], 1_000);
    await resumed.next(() => alarms(resumed).length === 2);
    expect(alarms(resumed).map((e) => e.id)).toEqual([second, third]);
    expect(resumed.frames.some((f) => f.event === RESUME_FAILED_EVENT)).toBe(false);
  });

  it('is ready, and publishes HTTP API events through sharded pub/sub', async () => {
    expect((await fetch(`${edge.url}/readyz`)).status).toBe(200);
    const user = userIds[2]!;
    const client = await subscribe(user);
    const { id, key, secret } = world.config().app;
    const path = `/apps/${id}/events`;
    const body = JSON.stringify({ name: 'Hello', data: '{"x":1}', channel: userChannel(user) });
    const query = `auth_key=${key}&auth_timestamp=${Math.floor(Date.now() / 1000)}&auth_version=1.0&body_md5=${createHash('md5').update(body).digest('hex')}`;
    const signature = createHmac('sha256', secret).update(`POST\n${path}\n${query}`).digest('hex');
    const res = await fetch(`${edge.url}${path}?${query}&auth_signature=${signature}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    const frame = await client.next((f) => f.event === 'Hello');
    expect(frame.data).toBe('{"x":1}');
  });
});
