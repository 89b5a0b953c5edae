import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, testEnv, type LocalRedisCluster } from '@alarmcast/testing';
import { Cluster, Redis } from 'ioredis';
import { createRedisClient, type RedisConnection } from '../src/index.js';

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
});
