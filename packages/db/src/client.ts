import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.js';

export { PrismaClient, Prisma } from './generated/client.js';
export type { PerceivedSeverity, UserRole } from './generated/enums.js';

export interface PrismaClientOptions {
  /** @defaultValue 10 connections in this process's pool */
  poolMax?: number;
  /**
   * How long a query may wait for a free connection or for Postgres to answer a connect.
   * @defaultValue 5000 ms: long enough for a busy pool, short enough that a dead Postgres is noticed
   */
  connectTimeoutMs?: number;
}

/**
 * Prisma 7 with the node-postgres driver adapter: no native query engine to download, which these
 * machines could not do anyway.
 */
export function createPrismaClient(databaseUrl: string, options: PrismaClientOptions = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: options.poolMax ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
  });
  return new PrismaClient({ adapter });
}
