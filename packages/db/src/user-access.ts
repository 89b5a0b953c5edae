import type { PgPool } from './pool.js';

/** What channel authorization reads of a user (findUserAccess, for many users at once). */
export interface UserAccess {
  active: boolean;
  tenantId: number | null;
}

/**
 * The access of many users in one round trip (primary-key lookups), for the edge's re-check after an access
 * change or a lost LISTEN connection. A user missing from the map does not exist (any more).
 */
export async function findUsersAccess(
  pool: PgPool,
  userIds: readonly number[],
): Promise<Map<number, UserAccess>> {
  const access = new Map<number, UserAccess>();
  if (userIds.length === 0) return access;
  const { rows } = await pool.query<{ id: number; active: boolean; tenant_id: number | null }>({
    name: 'load_users_access',
    text: 'SELECT id, active, tenant_id FROM users WHERE id = ANY($1::int[])',
    values: [userIds],
  });
  for (const r of rows) access.set(r.id, { active: r.active, tenantId: r.tenant_id });
  return access;
}
