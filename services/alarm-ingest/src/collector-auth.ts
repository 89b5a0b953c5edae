import type { RequestHandler, Response } from 'express';
import { hashCollectorToken } from '@alarmcast/auth';
import { findCollectorToken, type PgPool } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import type { DbCall } from './db-breaker.js';

/** The authenticated collector of a request. */
export interface Collector {
  tokenId: number;
  /** null: platform-wide token, may post for any tenant */
  tenantId: number | null;
}

/** The collector that collectorAuth put on this response's locals. */
export function collectorOf(res: Response): Collector {
  const collector = res.locals.collector as Collector | undefined;
  if (!collector) throw new Error('collectorAuth must run before this route');
  return collector;
}

/** `Authorization: Bearer <collector token>`: looked up by its SHA-256, revoked tokens refused. */
export function collectorAuth(pool: PgPool, db: DbCall): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_\-.~+/]{8,200}=*)$/.exec(header);
    if (!match) throw new ApiError(401, 'unauthenticated', 'missing or malformed bearer token');
    const tokenHash = hashCollectorToken(match[1]!);
    const token = await db(() => findCollectorToken(pool, tokenHash));
    if (!token || token.revoked)
      throw new ApiError(401, 'unauthenticated', 'unknown or revoked collector token');
    res.locals.collector = { tokenId: token.id, tenantId: token.tenantId };
    next();
  };
}
