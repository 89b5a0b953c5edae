import type { Request, RequestHandler, Response } from 'express';
import { hashCollectorToken } from '@alarmcast/auth';
import type { CollectorScope } from '@alarmcast/contracts';
import { findCollectorToken, type CollectorTokenRow, type PgPool } from '@alarmcast/db';
import { ApiError, type RateLimit } from '@alarmcast/http';
import type { DbCall } from './db-breaker.js';

/** The authenticated collector of a request. */
export interface Collector {
  tokenId: number;
  /** null: platform-wide token, may post for any tenant */
  tenantId: number | null;
  /** what the token may post */
  scopes: readonly string[];
}

/** The collector that collectorAuth put on this response's locals. */
export function collectorOf(res: Response): Collector {
  const collector = res.locals.collector as Collector | undefined;
  if (!collector) throw new Error('collectorAuth must run before this route');
  return collector;
}

/**
 * Tokens remembered at most, known and unknown; past this the cache starts over (a collector fleet has far
 * fewer, and a client trying many unknown tokens is stopped by the failed-authentication limit).
 */
const CACHE_LIMIT = 10_000;

/** Limits an authentication middleware applies around its credential check. */
export interface AuthLimits {
  /** failed authentications, keyed by client IP: checked before, counted after a failure */
  failures: RateLimit;
  /** requests per authenticated principal (collector token id, user id), counted once it is known */
  perPrincipal: RateLimit;
}

/** 401, or the 429 that counting this failure earned the client IP. */
export async function authFailure(limits: AuthLimits, req: Request, error: ApiError): Promise<ApiError> {
  return (await limits.failures.penalize(req.ip ?? '')) ?? error;
}

/**
 * `Authorization: Bearer <collector token>`: looked up by its SHA-256, revoked tokens refused. A token that
 * was found is remembered for `cacheMs`, which saves a Postgres round trip on almost every report (a
 * collector posts many); the price is that a revocation takes up to `cacheMs` to bite. A token that was not
 * found is remembered as unknown for `negativeCacheMs`, so that a client retrying a wrong token costs no
 * lookup either. An IP over its failed-authentication limit gets 429 before any lookup; a known token over
 * its request limit gets 429.
 */
export function collectorAuth(
  pool: PgPool,
  db: DbCall,
  cacheMs: number,
  negativeCacheMs: number,
  limits: AuthLimits,
): RequestHandler {
  const cache = new Map<string, { token: CollectorTokenRow | null; until: number }>();
  const lookup = async (tokenHash: string): Promise<CollectorTokenRow | null> => {
    const now = Date.now();
    const hit = cache.get(tokenHash);
    if (hit && hit.until > now) return hit.token;
    const token = await db(() => findCollectorToken(pool, tokenHash));
    const ttl = token ? cacheMs : negativeCacheMs;
    if (ttl > 0) {
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(tokenHash, { token, until: now + ttl });
    }
    return token;
  };
  return async (req, res, next) => {
    limits.failures.check(req.ip ?? '');
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_\-.~+/]{8,200}=*)$/.exec(header);
    if (!match)
      throw await authFailure(
        limits,
        req,
        new ApiError('unauthenticated', 'missing or malformed bearer token'),
      );
    const token = await lookup(hashCollectorToken(match[1]!));
    if (!token || token.revoked)
      throw await authFailure(
        limits,
        req,
        new ApiError('unauthenticated', 'unknown or revoked collector token'),
      );
    await limits.perPrincipal.consume(String(token.id));
    const collector: Collector = { tokenId: token.id, tenantId: token.tenantId, scopes: token.scopes };
    res.locals.collector = collector;
    next();
  };
}

/**
 * After collectorAuth: 403 `insufficient_scope` unless the token has `scope`. Checked before the body is
 * looked at, so a token without the scope learns nothing about the route's validation.
 */
export function requireScope(scope: CollectorScope): RequestHandler {
  return (_req, res, next) => {
    if (!collectorOf(res).scopes.includes(scope)) {
      throw new ApiError(
        'insufficient_scope',
        `this collector token lacks the scope ${JSON.stringify(scope)}`,
        {
          scope,
        },
      );
    }
    next();
  };
}
