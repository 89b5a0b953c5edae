import type { RequestHandler, Response } from 'express';
import { verifyUserJwt } from '@alarmcast/auth';
import { findUserAccess, type AlarmViewer, type PgPool } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import type { DbCall } from './db-breaker.js';

/** The user that userAuth put on this response's locals. */
export function viewerOf(res: Response): AlarmViewer {
  const viewer = res.locals.viewer as AlarmViewer | undefined;
  if (!viewer) throw new Error('userAuth must run before this route');
  return viewer;
}

/**
 * `Authorization: Bearer <user JWT>` (HS256, `sub` = user id, the JWTs ws-edge accepts): 401 for a missing or
 * invalid token, 403 for a user who does not exist (any more) or is inactive.
 */
export function userAuth(pool: PgPool, db: DbCall, jwtSecret: string): RequestHandler {
  return async (req, res, next) => {
    const match = /^Bearer (\S{1,4096})$/.exec(req.get('authorization') ?? '');
    const claims = match ? await verifyUserJwt(jwtSecret, match[1]!) : null;
    if (!claims) throw new ApiError('unauthenticated', 'missing, invalid or expired user token');
    const user = await db(() => findUserAccess(pool, claims.userId));
    if (!user?.active) throw new ApiError('forbidden', 'this user is unknown or inactive');
    res.locals.viewer = { userId: claims.userId, tenantId: user.tenantId } satisfies AlarmViewer;
    next();
  };
}
