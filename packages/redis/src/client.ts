import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

export interface RedisClientOptions {
  /** Connection name shown by CLIENT LIST, e.g. `ws-edge:sub`. */
  name: string;
  /**
   * BullMQ workers and blocking commands need `maxRetriesPerRequest: null`: commands wait for the
   * connection instead of failing after a few reconnect attempts.
   * @defaultValue 20 (ioredis' default)
   */
  maxRetriesPerRequest?: number | null;
  /** @defaultValue true: queue commands while reconnecting */
  enableOfflineQueue?: boolean;
}

/**
 * One Redis connection. Reconnects forever with a capped backoff: Redis being away for a while (restart,
 * failover) must never make a service give up; callers decide what to do with commands meanwhile.
 */
export function createRedis(url: string, options: RedisClientOptions): Redis {
  return new Redis(url, { ...connectionOptions(options), lazyConnect: false });
}

/** The capped backoff of every connection: 100 ms, 200 ms, ... up to 2 s, forever. */
const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** attempt, 2000);

function connectionOptions(options: RedisClientOptions): RedisOptions {
  return {
    connectionName: options.name,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 20 : options.maxRetriesPerRequest,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    retryStrategy: reconnectDelay,
  };
}

/** A Redis Cluster seed node. */
export interface ClusterNode {
  host: string;
  port: number;
}

/** Where Redis is: one server (`url`), or a Redis Cluster found from `clusterNodes` when that is not empty. */
export interface RedisTarget {
  url: string;
  /** seed nodes; empty means the single Redis at `url` @defaultValue [] */
  clusterNodes?: readonly ClusterNode[];
}

/**
 * A connection to a single Redis or a Redis Cluster. Both have every command alarmcast uses (a Cluster routes
 * each by its key's slot, which is why every script's keys share a hash tag: keys.ts), so callers need not
 * care which; `isCluster` tells them apart where it matters (SPUBLISH, a subscriber per shard).
 */
export type RedisConnection = Redis | Cluster;

export interface RedisClientFactoryOptions extends RedisClientOptions {
  /**
   * On a cluster, open a subscriber connection per master so that SSUBSCRIBE reaches the shard that owns
   * each channel (ShardedPubSub needs it; other connections should not pay for it). Ignored on a single Redis.
   * @defaultValue false
   */
  shardedSubscribers?: boolean;
}

/**
 * `createRedis` for either topology: a `Cluster` when `target.clusterNodes` is not empty, else a `Redis` on
 * `target.url`. Same reconnect policy on both: every node connection retries forever with the capped
 * backoff, and so does the cluster as a whole (a cluster whose seeds are all down at boot keeps trying
 * instead of ending the client). Each node connection gets `name`.
 */
export function createRedisClient(target: RedisTarget, options: RedisClientFactoryOptions): RedisConnection {
  const nodes = target.clusterNodes ?? [];
  if (nodes.length === 0) return createRedis(target.url, options);
  // Node connections do not reconnect by themselves in a Cluster (ioredis refreshes the slot map and
  // reconnects them), so the cluster-wide strategy carries the policy.
  const { retryStrategy: _node, enableOfflineQueue: _queue, ...perNode } = connectionOptions(options);
  const clusterOptions: ClusterOptions = {
    redisOptions: perNode,
    clusterRetryStrategy: reconnectDelay,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    maxRedirections: 16,
    shardedSubscribers: options.shardedSubscribers ?? false,
    lazyConnect: false,
  };
  return new Cluster(
    nodes.map((n) => ({ host: n.host, port: n.port })),
    clusterOptions,
  );
}

/**
 * `REDIS_CLUSTER_NODES`' form: `host:port,host:port,...` (spaces around entries allowed; empty = none).
 * Throws on anything else, naming the bad entry.
 */
export function parseClusterNodes(list: string): ClusterNode[] {
  return list
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/.exec(entry);
      const port = m ? Number(m[2]) : 0;
      if (!m || port < 1 || port > 65_535) throw new Error(`invalid cluster node ${JSON.stringify(entry)}`);
      return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
    });
}
