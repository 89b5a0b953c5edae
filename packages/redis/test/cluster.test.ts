import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedisCluster, testEnv, uniqueRedisPrefix, type LocalRedisCluster } from '@alarmcast/testing';
import { Cluster, Redis } from 'ioredis';
import { PubSubEnvelope } from '@alarmcast/contracts';
import {
  DEFAULT_RETENTION,
  RedisKeys,
  USER_SHARDS,
  UserLogWriter,
  readUserLogAfter,
  ShardedPubSub,
  createPubSubTransport,
  createRedisClient,
  type RedisConnection,
} from '../src/index.js';

describe('on a real local Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: LocalRedisCluster;
  const open: RedisConnection[] = [];
  const client = (name: string, shardedSubscribers = false): RedisConnection => {
    const c = createRedisClient(
      { url: 'redis://unused.invalid:1', clusterNodes: cluster.nodes },
      { name, shardedSubscribers },
    );
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startRedisCluster({ timeoutMs: 20_000 });
  });
  afterAll(async () => {
    for (const c of open) c.disconnect();
    await cluster?.stop();
  });

  it('createRedisClient gives a Cluster for seed nodes, a single Redis without', async () => {
    const c = client('test-cluster');
    expect(c).toBeInstanceOf(Cluster);
    // Keys on every master, through the one client.
    for (let i = 0; i < 20; i++) await c.set(`key-${i}`, String(i));
    expect(await c.mget('key-3')).toEqual(['3']);
    for (const node of (c as Cluster).nodes('master')) expect(await node.dbsize()).toBeGreaterThan(0);
    const single = createRedisClient({ url: testEnv().redisUrl, clusterNodes: [] }, { name: 'test-single' });
    open.push(single);
    expect(single).toBeInstanceOf(Redis);
    expect(await single.ping()).toBe('PONG');
  });

  it('ShardedPubSub: SPUBLISH from one connection reaches SSUBSCRIBE on another, on every shard', async () => {
    const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
    const publisher = client('test-pub') as Cluster;
    const subscriber = client('test-sub', true) as Cluster;
    const transport = createPubSubTransport(subscriber, subscriber);
    expect(transport).toBeInstanceOf(ShardedPubSub);
    const received: [string, string][] = [];
    transport.onMessage((channel, message) => received.push([channel, message]));
    // The 16 fan-out channels and a user channel per shard: all three masters own some of them.
    const channels = [
      ...keys.userBatchChannels,
      ...Array.from({ length: 16 }, (_, i) => keys.pubsubChannel(`private-user.${i}`)),
    ];
    const owners = new Set(
      await Promise.all(
        channels.map(async (c) => {
          const slot = Number(await publisher.cluster('KEYSLOT', c));
          const ranges = await publisher.cluster('SLOTS');
          const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
          return range[2]![1];
        }),
      ),
    );
    expect(owners.size).toBe(3);
    for (const c of channels) await transport.subscribe(c);

    const sender = new ShardedPubSub(publisher, publisher);
    await vi.waitFor(() => expect(sender.publishReady).toBe(true));
    // Each message is handed to exactly one subscriber: ours, on the master owning the channel.
    for (const c of channels.slice(0, 16)) expect(await sender.publish(c, `one ${c}`)).toBe(1);
    await sender.publishMany(channels.slice(16).map((c) => ({ channel: c, message: `many ${c}` })));
    await vi.waitFor(() => expect(received).toHaveLength(channels.length));
    expect(new Map(received)).toEqual(
      new Map(channels.map((c, i) => [c, `${i < 16 ? 'one' : 'many'} ${c}`])),
    );

    // Plain subscribers do not see sharded messages: the transport really is the sharded one.
    const plain = client('test-plain-sub') as Cluster;
    const plainReceived: string[] = [];
    plain.on('message', (_c, m: string) => plainReceived.push(m));
    await plain.subscribe(channels[0]!);
    await transport.unsubscribe(channels[0]!);
    expect(await sender.publish(channels[0]!, 'after')).toBe(0);
    expect(await sender.publish(channels[1]!, 'still')).toBe(1);
    await vi.waitFor(() => expect(received.at(-1)).toEqual([channels[1], 'still']));
    expect(received.some(([, m]) => m === 'after')).toBe(false);
    expect(plainReceived).toEqual([]);
  });

  it('delivers to users on every shard: logged, SPUBLISHed per user and in batches, replayed', async () => {
    const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
    const redis = client('test-deliver') as Cluster;
    const subscriber = client('test-deliver-sub', true) as Cluster;
    const transport = createPubSubTransport(subscriber, subscriber);
    const envelopes: PubSubEnvelope[] = [];
    transport.onMessage((_c, m) => envelopes.push(PubSubEnvelope.parse(JSON.parse(m))));
    const small = Array.from({ length: 40 }, (_, i) => 1_000 + i); // 16 shards, per user
    const big = Array.from({ length: 1_200 }, (_, i) => 50_000 + i); // 16 shards, batched
    for (const u of small) await transport.subscribe(keys.pubsubChannel(`private-user.${u}`));
    for (const c of keys.userBatchChannels) await transport.subscribe(c);
    const writer = new UserLogWriter(redis, keys, {
      retention: DEFAULT_RETENTION,
      deliveredTtlS: 60,
      node: 'n1',
      // Per shard: the small event's 2-3 users of a shard go per user, the big one's 75 in a batch.
      batchMinRecipients: 50,
    });
    const data = JSON.stringify({ alarm: { id: '3', text: 'é "q"' } });

    expect(await writer.appendAndPublish('c1', 'Raised', data, small)).toBe(small.length);
    expect(await writer.appendAndPublish('c2', 'Big', data, big)).toBe(big.length);
    // A retry delivers to nobody again, on every shard.
    expect(await writer.appendAndPublish('c2', 'Big', data, big)).toBe(0);
    expect(await writer.appendAndPublish('c1', 'Raised', data, small)).toBe(0);

    await vi.waitFor(() => expect(envelopes.filter((e) => e.type === 'event')).toHaveLength(small.length));
    // 1,200 users over 16 shards: 75 per shard, one batch each.
    await vi.waitFor(() => expect(envelopes.filter((e) => e.type === 'user-batch')).toHaveLength(16));
    const live = new Map<number, string>();
    for (const e of envelopes) {
      if (e.type === 'event') live.set(Number(e.channel.split('.')[1]), e.eventId!);
      if (e.type === 'user-batch') for (const [uid, id] of e.users) live.set(uid, id);
    }
    expect([...live.keys()].sort((a, b) => a - b)).toEqual([...small, ...big]);

    // Each user's log replays exactly what was published live, its data read from the user's shard.
    for (const u of [...small.slice(0, 17), big[0]!, big[601]!, big.at(-1)!]) {
      const { events, gap } = await readUserLogAfter(redis, keys, u, '0-0');
      // '0-0' precedes every entry but is none of the log's ids: all entries come, flagged as a gap.
      expect(gap).toBe('log_recreated');
      expect(events).toEqual([
        {
          eventId: live.get(u),
          event: u < 50_000 ? 'Raised' : 'Big',
          data: JSON.stringify({ alarm: { id: '3', text: 'é "q"' }, notify: true, event_id: live.get(u) }),
        },
      ]);
    }
  });

  // Kills a master: keep it the last test of the file.
  it('ShardedPubSub after a master failover: reports the loss once the shard is back, then delivers there', async () => {
    const publisher = client('test-failover-pub') as Cluster;
    const subscriber = client('test-failover-sub', true) as Cluster;
    publisher.on('error', () => undefined);
    subscriber.on('error', () => undefined);
    const transport = new ShardedPubSub(publisher, subscriber);
    const received: string[] = [];
    transport.onMessage((_channel, message) => received.push(message));
    const reports: Promise<void>[] = [];
    transport.onResubscribed((settled) => reports.push(settled));
    const channel = 'failover:{f}';
    const other = 'failover:{g}';
    const masterOf = async (c: string): Promise<number> => {
      const slot = Number(await publisher.cluster('KEYSLOT', c));
      const ranges = await publisher.cluster('SLOTS');
      return ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
    };
    expect(await masterOf(other)).not.toBe(await masterOf(channel));
    await transport.subscribe(channel);
    await transport.subscribe(other);
    expect(await transport.publish(channel, 'before')).toBe(1);
    const { promoted } = await cluster.killMaster(await masterOf(channel));
    expect(await masterOf(channel)).toBe(promoted);
    // What was published to the shard while its subscriber connection was being replaced reached nobody:
    // the transport says so (the edge then resumes its sockets from the logs), and once that report has
    // settled the channel is subscribed on the promoted replica.
    await vi.waitFor(() => expect(reports.length).toBeGreaterThan(0), { timeout: 15_000, interval: 50 });
    await Promise.race(reports.map((r) => r.catch(() => new Promise(() => undefined))));
    expect(await transport.publish(channel, 'after')).toBe(1);
    expect(await transport.publish(other, 'other')).toBe(1);
    await vi.waitFor(() => expect(received).toEqual(expect.arrayContaining(['before', 'after', 'other'])));
    // Unsubscribing still ends it, the repeated SSUBSCRIBE notwithstanding.
    await transport.unsubscribe(channel);
    expect(await transport.publish(channel, 'gone')).toBe(0);
  }, 40_000);
});
