export { resolveTestServices, type TestServices } from './services.js';
export { createTemplateDatabase, createTestDatabase, databaseUrl, uniqueRedisPrefix } from './databases.js';
export { makeGlobalSetup, testEnv, type TestEnv } from './global-setup.js';
export { startRedisCluster, type LocalRedisCluster, type StartRedisClusterOptions } from './redis-cluster.js';
export {
  redisTopologies,
  startRedisTopology,
  type RedisTopology,
  type RedisTopologyName,
} from './redis-topology.js';
export { freePort, startPrivateRedis, type PrivateRedis } from './private-redis.js';
