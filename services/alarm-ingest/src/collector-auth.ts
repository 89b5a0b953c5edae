import type { RequestHandler, Response } from 'express';
import { hashCollectorToken } from '@alarmcast/auth';
import { findCollectorToken, type CollectorTokenRow, type PgPool } from '@alarmcast/db';
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

/** Tokens remembered at most; past this the cache starts over (a collector fleet has far fewer). */
const CACHE_LIMIT = 10_000;

/**
 * `Authorization: Bearer <collector token>`: looked up by its SHA-256, revoked tokens refused. A token that
 * was found is remembered for `cacheMs`, which saves a Postgres round trip on almost every report (a
 * collector posts many); the price is that a revocation takes up to `cacheMs` to bite. Unknown tokens are
 * never remembered, so a new token works at once.
 */
export function collectorAuth(pool: PgPool, db: DbCall, cacheMs: number): RequestHandler {
  const cache = new Map<string, { token: CollectorTokenRow; until: number }>();
  const lookup = async (tokenHash: string): Promise<CollectorTokenRow | null> => {
    const now = Date.now();
    const hit = cache.get(tokenHash);
    if (hit && hit.until > now) return hit.token;
    const token = await db(() => findCollectorToken(pool, tokenHash));
    if (token && cacheMs > 0) {
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(tokenHash, { token, until: now + cacheMs });
    }
    return token;
  };
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_\-.~+/]{8,200}=*)$/.exec(header);
    if (!match) throw new ApiError('unauthenticated', 'missing or malformed bearer token');
    const token = await lookup(hashCollectorToken(match[1]!));
    if (!token || token.revoked) throw new ApiError('unauthenticated', 'unknown or revoked collector token');
    res.locals.collector = { tokenId: token.id, tenantId: token.tenantId };
    next();
  };
}
