import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedisCluster, testEnv, uniqueRedisPrefix, type LocalRedisCluster } from '@alarmcast/testing';
import type { Cluster } from 'ioredis';
import {
  RedisKeys,
  StateChannelFlusher,
  StateChannelWriter,
  USER_SHARDS,
  createPubSubTransport,
  createRedis,
  createRedisClient,
  decodeEnvelope,
  readStateSnapshot,
  type RedisConnection,
  type StateUpdate,
} from '../src/index.js';

const update = (
  channel: string,
  version: number,
  state: object,
  changed: string[],
  minIntervalMs = 300,
): StateUpdate => ({
  channel,
  event: 'App\\Events\\DeviceStatusChanged',
  root: 'device',
  version: String(version),
  state: JSON.stringify(state),
  changed,
  minIntervalMs,
});

describe('state channels on a single Redis', () => {
  const keys = new RedisKeys(uniqueRedisPrefix());
  const open: RedisConnection[] = [];
  const connect = (name: string) => {
    const c = createRedis(testEnv().redisUrl, { name });
    open.push(c);
    return c;
  };
  afterAll(() => {
    for (const c of open) c.disconnect();
  });

  async function listen(channel: string) {
    const sub = connect('test-sub');
    const got: { data: { device: unknown; changed: string[] }; seq: string | undefined; event: string }[] =
      [];
    sub.on('message', (_c: string, m: string) => {
      const env = decodeEnvelope(m);
      if (env?.type === 'event' && env.channel === channel)
        got.push({ data: JSON.parse(env.data), seq: env.eventId, event: env.event });
    });
    await sub.subscribe(keys.pubsubChannel(channel));
    return got;
  }

  it('keeps the newest version, publishes the first change at once and conflates the rest once, across writers and flushers', async () => {
    const channel = 'private-device.42';
    const got = await listen(channel);
    // Two "processes": their own connections, writers and flushers.
    const [w1, w2] = [
      new StateChannelWriter(connect('w1'), keys, { node: 'a' }),
      new StateChannelWriter(connect('w2'), keys, { node: 'b' }),
    ];
    const flushers = [w1, w2].map(
      (w) => new StateChannelFlusher(w, { intervalMs: 20, onError: () => undefined }),
    );
    for (const f of flushers) f.start();
    try {
      expect(await w1.write([update(channel, 1, { v: 1 }, ['online'])])).toEqual({
        published: 1,
        pending: 0,
        stored: 0,
        stale: 0,
      });
      expect(await w2.write([update(channel, 3, { v: 3 }, ['software_version'])])).toMatchObject({
        pending: 1,
      });
      // Older than what is stored: ignored, even with changes.
      expect(await w1.write([update(channel, 2, { v: 2 }, ['parameters'])])).toMatchObject({ stale: 1 });
      expect(
        await w1.write([update(channel, 4, { v: 4 }, ['hardware_version', 'software_version'])]),
      ).toMatchObject({ pending: 1 });
      // No changes: stored, not published, not pending.
      expect(await w2.write([update(channel, 5, { v: 5 }, [])])).toMatchObject({ stored: 1 });
      await vi.waitFor(() => expect(got).toHaveLength(2), { timeout: 3000 });
      await new Promise((r) => setTimeout(r, 500));
      expect(got).toHaveLength(2);
      expect(got[0]).toMatchObject({ seq: '1', data: { device: { v: 1 }, changed: ['online'] } });
      // At the window's end: the latest state and the union of the pending changes, published once.
      expect(got[1]).toMatchObject({
        seq: '2',
        data: { device: { v: 5 }, changed: ['software_version', 'hardware_version'] },
      });
      const snapshot = await readStateSnapshot(connect('reader'), keys, channel);
      expect(snapshot).toEqual({
        event: 'App\\Events\\DeviceStatusChanged',
        data: '{"device":{"v":5},"changed":[],"snapshot":true}',
        seq: 2,
      });
      expect(await readStateSnapshot(connect('reader2'), keys, 'private-device.43')).toBeNull();
    } finally {
      for (const f of flushers) await f.stop();
    }
  });

  it('a chatty entity costs one event per interval, whatever it sends', async () => {
    const channel = 'private-device.7';
    const got = await listen(channel);
    const writer = new StateChannelWriter(connect('w'), keys, { node: 'a' });
    const flusher = new StateChannelFlusher(writer, { intervalMs: 20, onError: () => undefined });
    flusher.start();
    try {
      const started = Date.now();
      let v = 100;
      while (Date.now() - started < 1000)
        await writer.write([update(channel, v++, { v }, ['parameters'], 250)]);
      await new Promise((r) => setTimeout(r, 400));
      // ~1.25 s of writes at one event per 250 ms: at most 6 events, whatever the number of writes.
      expect(v - 100).toBeGreaterThan(50);
      expect(got.length).toBeGreaterThanOrEqual(4);
      expect(got.length).toBeLessThanOrEqual(6);
      expect((got.at(-1)!.data.device as { v: number }).v).toBe(v);
    } finally {
      await flusher.stop();
    }
  });

  it('refuses what would corrupt the script input', async () => {
    const writer = new StateChannelWriter(connect('w'), keys, { node: 'a' });
    await expect(writer.write([update('private-user.1', 1, {}, [])])).rejects.toThrow(/state channel/);
    await expect(writer.write([update('private-device.1', 1, {}, ['a,b'])])).rejects.toThrow(/change name/);
    await expect(
      writer.write([{ ...update('private-device.1', 1, {}, []), version: '1e3' }]),
    ).rejects.toThrow(/version/);
  });
});

describe('state channels on a real local Redis Cluster', () => {
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
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.disconnect();
    await cluster?.stop();
  });

  it('stores, SPUBLISHes, conflates and snapshots channels on every shard, one slot per script call', async () => {
    const keys = new RedisKeys(uniqueRedisPrefix(), { shards: USER_SHARDS });
    const subscriber = client('sub', true) as Cluster;
    const transport = createPubSubTransport(subscriber, subscriber);
    const got: string[] = [];
    transport.onMessage((_c, m) => {
      const env = decodeEnvelope(m);
      if (env?.type === 'event') got.push(`${env.channel}#${env.eventId}`);
    });
    const channels = Array.from({ length: USER_SHARDS }, (_, i) => `private-device.${1000 + i}`);
    for (const c of channels) await transport.subscribe(keys.pubsubChannel(c));
    const writerConn = client('writer');
    const writer = new StateChannelWriter(writerConn, keys, { node: 'cluster' });
    const flusher = new StateChannelFlusher(writer, { intervalMs: 20, onError: () => undefined });
    flusher.start();
    try {
      // One call per shard: 16 channels, 16 shards, spread over the three masters.
      expect(await writer.write(channels.map((c, i) => update(c, 1, { i }, ['online'])))).toMatchObject({
        published: 16,
      });
      expect(
        await writer.write(channels.map((c, i) => update(c, 2, { i, x: 1 }, ['parameters']))),
      ).toMatchObject({ pending: 16 });
      await vi.waitFor(() => expect(got).toHaveLength(32), { timeout: 5000 });
      expect(new Set(got).size).toBe(32);
      for (const c of channels) expect(got).toContain(`${c}#2`);
      const snap = await readStateSnapshot(writerConn, keys, channels[5]!);
      expect(snap).toMatchObject({ seq: 2, data: '{"device":{"i":5,"x":1},"changed":[],"snapshot":true}' });
    } finally {
      await flusher.stop();
    }
  }, 30_000);
});
