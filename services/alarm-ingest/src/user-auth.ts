import type { RequestHandler, Response } from 'express';
import { verifyUserJwt } from '@alarmcast/auth';
import { findUserAccess, type AlarmViewer, type PgPool, type UserRole } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { authFailure, type AuthLimits } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';

/** The role of the user that userAuth authenticated (for routes only some roles may use). */
export function roleOf(res: Response): UserRole {
  const role = res.locals.role as UserRole | undefined;
  if (!role) throw new Error('userAuth must run before this route');
  return role;
}

/** The user that userAuth put on this response's locals. */
export function viewerOf(res: Response): AlarmViewer {
  const viewer = res.locals.viewer as AlarmViewer | undefined;
  if (!viewer) throw new Error('userAuth must run before this route');
  return viewer;
}

/**
 * `Authorization: Bearer <user JWT>` (HS256, `sub` = user id, the JWTs ws-edge accepts): 401 for a missing or
 * invalid token, 403 for a user who does not exist (any more) or is inactive; both count as failed
 * authentications of the client IP. 429 for a user over the request limit.
 */
export function userAuth(pool: PgPool, db: DbCall, jwtSecret: string, limits: AuthLimits): RequestHandler {
  return async (req, res, next) => {
    limits.failures.check(req.ip ?? '');
    const match = /^Bearer (\S{1,4096})$/.exec(req.get('authorization') ?? '');
    const claims = match ? await verifyUserJwt(jwtSecret, match[1]!) : null;
    if (!claims)
      throw await authFailure(
        limits,
        req,
        new ApiError('unauthenticated', 'missing, invalid or expired user token'),
      );
    // Counted on the signed user id before the lookup, so a user over the limit costs no query.
    await limits.perPrincipal.consume(String(claims.userId));
    const user = await db(() => findUserAccess(pool, claims.userId));
    if (!user?.active)
      throw await authFailure(limits, req, new ApiError('forbidden', 'this user is unknown or inactive'));
    res.locals.viewer = { userId: claims.userId, tenantId: user.tenantId } satisfies AlarmViewer;
    res.locals.role = user.role;
    next();
  };
}
