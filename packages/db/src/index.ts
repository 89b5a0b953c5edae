export { createPrismaClient, PrismaClient, Prisma, type PrismaClientOptions } from './client.js';
export type { PerceivedSeverity, UserRole } from './client.js';
export { createPgPool, type PgPool, type PgPoolOptions } from './pool.js';
export { applyMigrations, ensureDatabase, MIGRATIONS_DIR } from './migrate.js';
export {
  loadBroadcastPlan,
  findUserAccess,
  BroadcastMarker,
  lockInIdOrder,
  type BroadcastPlan,
} from './broadcast.js';
export {
  findCollectorToken,
  findDeviceTenant,
  tenantExists,
  writeAlarmReport,
  pruneIdempotencyKeys,
  type AlarmReport,
  type AlarmWriteResult,
  type IdempotencyClaim,
  type CollectorTokenRow,
} from './alarms.js';
export {
  acknowledgeAlarm,
  listVisibleAlarms,
  type AckResult,
  type AlarmViewer,
  type AlarmListFilter,
  type AlarmListPosition,
  type AlarmListRow,
} from './alarm-access.js';
export { provisionGraph, type ProvisionOptions } from './provision.js';
export { findUsersAccess, type UserAccess } from './user-access.js';
