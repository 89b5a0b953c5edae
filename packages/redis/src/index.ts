export { RedisKeys, KEY_PART, USER_SHARDS, shardsFor } from './keys.js';
export {
  createRedis,
  createRedisClient,
  parseClusterNodes,
  type ClusterNode,
  type RedisClientFactoryOptions,
  type RedisClientOptions,
  type RedisConnection,
  type RedisTarget,
} from './client.js';
export {
  RedisPubSub,
  ShardedPubSub,
  createPubSubTransport,
  type PubSubTransport,
} from './pubsub-transport.js';
export {
  decodeEnvelope,
  encodeChannelEvent,
  escapedUserCopy,
  notifyHead,
  userCopyData,
  userEventPieces,
  userBatchStart,
  stateEventData,
  stateEventPieces,
  type StateEventPieces,
} from './envelope-codec.js';
export {
  StateChannelWriter,
  StateChannelFlusher,
  readStateSnapshot,
  type StateUpdate,
  type StateWriteResult,
  type StateSnapshot,
  type StateChannelOptions,
} from './state-channel.js';
export {
  UserLogWriter,
  DEFAULT_RETENTION,
  type UserLogRetention,
  type UserLogWriterOptions,
} from './user-log-writer.js';
export {
  readUserLogAfter,
  readUserLogTail,
  LOG_START,
  logEntryData,
  compareStreamIds,
  parseStreamId,
  type LoggedEvent,
  type LogGap,
} from './user-log.js';
export type { Cluster, Redis } from 'ioredis';
export {
  readTaskSnapshots,
  writeTaskSnapshot,
  writeCampaignSnapshot,
  TASK_SNAPSHOT_TTL_S,
} from './task-snapshots.js';
