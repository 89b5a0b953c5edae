export { RedisKeys } from './keys.js';
export { createRedis, type RedisClientOptions } from './client.js';
export type { Redis } from 'ioredis';
