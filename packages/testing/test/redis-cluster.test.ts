import { existsSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type LocalRedisCluster } from '../src/redis-cluster.js';

describe('startRedisCluster (real redis-server processes)', () => {
  let cluster: LocalRedisCluster;
  let client: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster({ timeoutMs: 20_000 });
    client = new Cluster(cluster.nodes, { clusterRetryStrategy: (n) => Math.min(100 * n, 1000) });
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('starts 3 masters and 3 replicas that serve every slot', async () => {
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.seedList.split(',')).toHaveLength(6);
    expect(await cluster.masters()).toHaveLength(3);
    // Keys on many slots: each is written to whichever master owns it.
    for (let i = 0; i < 30; i++) await client.set(`k${i}`, String(i));
    for (let i = 0; i < 30; i++) expect(await client.get(`k${i}`)).toBe(String(i));
    // ...and the keys are spread over all three masters.
    const masters = client.nodes('master');
    expect(masters).toHaveLength(3);
    for (const node of masters) expect(await node.dbsize()).toBeGreaterThan(0);
  });

  it('kills a master: its replica takes over its slots and keeps its replicated data', async () => {
    const before = await cluster.masters();
    // Make sure every write has reached its replica before the crash.
    await Promise.all(client.nodes('master').map((node) => node.call('WAIT', '1', '2000')));
    const { killed, promoted } = await cluster.killMaster();
    expect(before).toContain(killed);
    expect(before).not.toContain(promoted);
    const after = await cluster.masters();
    expect(after).toContain(promoted);
    expect(after).not.toContain(killed);
    for (let i = 0; i < 30; i++) expect(await client.get(`k${i}`)).toBe(String(i));
  });

  it('stop() shuts every node down and removes the directory', async () => {
    const dirs = await Promise.all(
      cluster.nodes.slice(0, 1).map(async ({ port }) => {
        const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
        r.on('error', () => undefined);
        await r.connect().catch(() => undefined);
        const reply = (await r.config('GET', 'dir').catch(() => null)) as string[] | null;
        r.disconnect();
        return reply?.[1] ?? null;
      }),
    );
    client.disconnect();
    await cluster.stop();
    for (const { port } of cluster.nodes) {
      const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
      r.on('error', () => undefined);
      await expect(r.connect()).rejects.toThrow();
      r.disconnect();
    }
    for (const dir of dirs) if (dir) expect(existsSync(dir)).toBe(false);
  });
});
