export { RedisKeys } from './keys.js';
export { createRedis, type RedisClientOptions } from './client.js';
export {
  UserLogWriter,
  readUserLogAfter,
  logEntryData,
  compareStreamIds,
  parseStreamId,
  DEFAULT_RETENTION,
  type UserLogRetention,
  type DeliverOptions,
  type LoggedEvent,
  type LogGap,
} from './user-log.js';
export type { Redis } from 'ioredis';
