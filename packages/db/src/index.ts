export { createPrismaClient, PrismaClient, Prisma, type PrismaClientOptions } from './client.js';
export type { PerceivedSeverity, UserRole } from './client.js';
export { applyMigrations, ensureDatabase, MIGRATIONS_DIR } from './migrate.js';
export { loadBroadcastPlan, loadUserAccess, type BroadcastPlan } from './broadcast.js';
export { provisionGraph, type ProvisionOptions } from './provision.js';
