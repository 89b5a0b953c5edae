import { startRedisCluster, type LocalRedisCluster, type StartRedisClusterOptions } from './redis-cluster.js';

/** The two Redis deployments alarmcast runs on: one Redis (the default) or a Redis Cluster. */
export type RedisTopologyName = 'single' | 'cluster';

const ALL: readonly RedisTopologyName[] = ['single', 'cluster'];

/**
 * The topologies a suite runs against, from `ALARMCAST_TEST_REDIS_TOPOLOGIES` (a comma-separated subset of
 * `single,cluster`, e.g. `single` to skip starting clusters while iterating on a test). Throws on anything
 * else, naming the bad entry, so a typo never silently runs nothing.
 * @defaultValue both: `['single', 'cluster']`
 */
export function redisTopologies(env: NodeJS.ProcessEnv = process.env): RedisTopologyName[] {
  const raw = env.ALARMCAST_TEST_REDIS_TOPOLOGIES?.trim();
  if (!raw) return [...ALL];
  const names = raw.split(',').map((s) => s.trim());
  for (const name of names)
    if (!ALL.includes(name as RedisTopologyName))
      throw new Error(
        `ALARMCAST_TEST_REDIS_TOPOLOGIES: unknown topology ${JSON.stringify(name)} (use single, cluster)`,
      );
  return ALL.filter((t) => names.includes(t));
}

/**
 * One Redis topology for a test file, started once in its `beforeAll`: `single` is the run's Redis
 * (`testEnv().redisUrl`, nothing to start or stop), `cluster` a local Redis Cluster of its own
 * (`startRedisCluster`: 3 masters, 3 replicas, ~3 s to start).
 */
export interface RedisTopology {
  name: RedisTopologyName;
  /**
   * The services' environment for it: `REDIS_URL`, and on a cluster `REDIS_CLUSTER_NODES` (the services then
   * ignore `REDIS_URL`).
   */
  env: { REDIS_URL: string; REDIS_CLUSTER_NODES?: string };
  /** `createRedisClient`'s target (packages/redis) for the test's own connections */
  target: { url: string; clusterNodes: { host: string; port: number }[] };
  /** the local cluster, to kill a master; null on a single Redis */
  cluster: LocalRedisCluster | null;
  /** stops what it started (the cluster's nodes); nothing on a single Redis */
  stop(): Promise<void>;
}

export async function startRedisTopology(
  name: RedisTopologyName,
  redisUrl: string,
  clusterOptions: StartRedisClusterOptions = {},
): Promise<RedisTopology> {
  if (name === 'single')
    return {
      name,
      env: { REDIS_URL: redisUrl },
      target: { url: redisUrl, clusterNodes: [] },
      cluster: null,
      stop: async () => undefined,
    };
  const cluster = await startRedisCluster(clusterOptions);
  return {
    name,
    env: { REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: cluster.seedList },
    target: { url: redisUrl, clusterNodes: cluster.nodes },
    cluster,
    stop: () => cluster.stop(),
  };
}
