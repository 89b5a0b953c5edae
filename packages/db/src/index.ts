export { createPrismaClient, PrismaClient, Prisma, type PrismaClientOptions } from './client.js';
export type { PerceivedSeverity, UserRole } from './client.js';
export { createPgPool, withTransaction, type PgPool, type PgPoolOptions } from './pool.js';
export { applyMigrations, ensureDatabase, MIGRATIONS_DIR } from './migrate.js';
export {
  loadBroadcastPlan,
  BroadcastPlanLoader,
  claimRelayBatch,
  markEnqueued,
  insertRequesterEvent,
  BroadcastMarker,
  lockInIdOrder,
  outboxBacklog,
  OUTBOX_BACKLOG_COUNT_CAP,
  type OutboxBacklog,
  type BroadcastPlan,
  type RelayClaim,
  type AudienceUpdate,
} from './outbox.js';
export {
  findUserAccess,
  findUsersAccess,
  findVisibleDevices,
  type AlarmViewer,
  type UserAccess,
} from './access.js';
export {
  readUserPreferences,
  readTenantPreferences,
  writeUserPreferences,
  writeTenantPreferences,
  loadPreferenceDocuments,
  readAlarmAudience,
  findUserProfile,
  loadAlarmAudienceUsers,
  type UserProfile,
  type StoredDocument,
  type VersionedWrite,
  type RecordedDecision,
  type AlarmAudienceRecord,
} from './preferences.js';
export { findCollectorToken, type CollectorTokenRow } from './collector-tokens.js';
export { findDeviceTenant, tenantExists } from './tenancy.js';
export {
  writeAlarmReport,
  acknowledgeAlarm,
  type AlarmReport,
  type AlarmWriteResult,
  type AckResult,
  type IdempotencyClaim,
} from './alarm-writes.js';
export {
  writeAlarmBatch,
  batchRounds,
  type AlarmBatchItem,
  type AlarmBatchWrite,
  type AlarmBatchResult,
} from './alarm-batch-write.js';
export { pruneIdempotencyKeys } from './idempotency-keys.js';
export {
  listVisibleAlarms,
  type AlarmListFilter,
  type AlarmListPosition,
  type AlarmListRow,
} from './alarm-reads.js';
export { provisionGraph, type ProvisionOptions } from './provision.js';
export {
  writeInformBatch,
  foldInforms,
  detectOfflineDevices,
  clearStrandedOfflineAlarms,
  tenantDeviceCounts,
  type InformWrite,
  type InformBatchResult,
  type DeviceStateRow,
  type PresencePolicy,
} from './device-status.js';
export {
  listVisibleDevices,
  findVisibleDevice,
  type DeviceListFilter,
  type DeviceListRow,
} from './device-reads.js';
export { deviceStatusWireSql } from './device-status-wire-sql.js';
export {
  writeTaskReport,
  confirmDownloadsByInform,
  listDeviceTasks,
  toTaskWire,
  type TaskReportWrite,
  type TaskWriteResult,
} from './tasks.js';
export {
  createCampaign,
  findCampaign,
  findCampaignTenants,
  listCampaigns,
  listFailingDevices,
  setCampaignState,
  failureCrossed,
  toCampaignWire,
  type CampaignChange,
  type CampaignStateResult,
  type CreateCampaignResult,
  type FailurePolicy,
} from './campaigns.js';
