import type { UserRole } from './client.js';
import type { PgPool } from './pool.js';

/**
 * Who may see what, the one rule of alarmcast's tenancy: an active user sees everything of their tenant
 * (nothing, for a platform user without one) and the alarms of devices explicitly shared with them,
 * whatever the device's tenant. Broadcast recipients, the alarm API and channel authorization all apply it.
 */

/**
 * SQL selecting the user ids that may see the outbox event (or alarm) row `alias`: every active user of
 * its tenant, plus every active user with an explicit share of its device (who may belong to another
 * tenant). A device-less row has no shares, so it reaches the tenant's users only. Both halves are index
 * lookups (users.tenant_id, user_devices.device_id).
 */
export function recipientsSql(alias: string, withPreferencesVersion = false): string {
  // With the version of each one's preferences (users.preferences_version, 0: none), read from the users
  // rows the lookup visits anyway: the resolver learns whose compiled rules are stale at no extra probe.
  const v = withPreferencesVersion ? ', u.preferences_version' : '';
  return `SELECT u.id${v} FROM users u WHERE u.tenant_id = ${alias}.tenant_id AND u.active
          UNION
          SELECT s.user_id${v} FROM user_devices s JOIN users u ON u.id = s.user_id
           WHERE s.device_id = ${alias}.device_id AND u.active`;
}

/**
 * SQL selecting the one user an outbox row `alias` is for (`recipient_user_id`, a task's requester), if they
 * are active and may still see the row's device by the rule above: its tenant's member or a share holder.
 */
export function requesterSql(alias: string, withPreferencesVersion = false): string {
  const v = withPreferencesVersion ? ', u.preferences_version' : '';
  return `SELECT u.id${v} FROM users u
           WHERE u.id = ${alias}.recipient_user_id AND u.active
             AND (u.tenant_id = ${alias}.tenant_id
                  OR EXISTS (SELECT 1 FROM user_devices s WHERE s.user_id = u.id AND s.device_id = ${alias}.device_id))`;
}

/**
 * SQL true when the viewer (`$user` user id, `$tenant` their tenant id, both SQL parameters) may see the
 * alarm row `alias`: of their tenant, or of a device shared with them.
 */
export function viewerMaySeeSql(alias: string, user: string, tenant: string): string {
  return `(${alias}.tenant_id = ${tenant}::int
           OR EXISTS (SELECT 1 FROM user_devices s WHERE s.user_id = ${user}::int AND s.device_id = ${alias}.device_id))`;
}

/** A user as alarm visibility needs them (see this module's rule). */
export interface AlarmViewer {
  userId: number;
  tenantId: number | null;
}

/** A user as channel authorization needs it; null if there is no such user. */
export async function findUserAccess(
  pool: PgPool,
  userId: number,
): Promise<{ active: boolean; tenantId: number | null; role: UserRole } | null> {
  const { rows } = await pool.query<{ active: boolean; tenant_id: number | null; role: UserRole }>({
    name: 'load_user_access_role',
    text: 'SELECT active, tenant_id, role FROM users WHERE id = $1',
    values: [userId],
  });
  const row = rows[0];
  return row ? { active: row.active, tenantId: row.tenant_id, role: row.role } : null;
}

/** What channel authorization reads of a user (findUserAccess). */
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

/**
 * Which of the (user, device) pairs are visible: the device is of the user's tenant or shared with them (the
 * rule above; whether the user is active is checked by the caller with findUsersAccess). One round trip for
 * many pairs, primary-key and index lookups only: channel authorization of `private-device.{id}` and the
 * edge's re-check after an access change. Answers `"<userId>:<deviceId>"` keys.
 */
export async function findVisibleDevices(
  pool: PgPool,
  pairs: readonly { userId: number; deviceId: number }[],
): Promise<Set<string>> {
  const visible = new Set<string>();
  if (pairs.length === 0) return visible;
  const { rows } = await pool.query<{ user_id: number; device_id: number }>({
    name: 'find_visible_devices',
    text: `SELECT p.user_id, p.device_id
             FROM unnest($1::int[], $2::int[]) AS p(user_id, device_id)
             JOIN cpe_devices d ON d.id = p.device_id
             JOIN users u ON u.id = p.user_id
            WHERE d.tenant_id = u.tenant_id
               OR EXISTS (SELECT 1 FROM user_devices s WHERE s.user_id = p.user_id AND s.device_id = p.device_id)`,
    values: [pairs.map((p) => p.userId), pairs.map((p) => p.deviceId)],
  });
  for (const r of rows) visible.add(`${r.user_id}:${r.device_id}`);
  return visible;
}
