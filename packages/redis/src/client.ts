import { Redis, type RedisOptions } from 'ioredis';

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
  const redisOptions: RedisOptions = {
    connectionName: options.name,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 20 : options.maxRetriesPerRequest,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    lazyConnect: false,
  };
  return new Redis(url, redisOptions);
}
