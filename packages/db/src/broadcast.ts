import type { PgPool } from './pool.js';

/** An outbox event with everyone who may see it. */
export interface BroadcastPlan {
  eventId: string;
  tenantId: number;
  deviceId: number | null;
  kind: string;
  /** the event's `data` as JSON text, serialized once for all recipients */
  payloadJson: string;
  /** user ids, each once */
  recipients: number[];
}

/**
 * Loads an outbox event and its recipients in one round trip: every active user of the event's tenant, plus
 * every active user with an explicit share of its device (who may belong to another tenant). A device-less
 * event has no shares, so it reaches the tenant's users only.
 *
 * Both halves are index lookups (users.tenant_id, user_devices.device_id), so the cost follows the number of
 * recipients, not the number of users, devices or tenants in the system.
 */
export async function loadBroadcastPlan(pool: PgPool, eventId: string): Promise<BroadcastPlan | null> {
  const { rows } = await pool.query<{
    id: string;
    tenant_id: number;
    device_id: number | null;
    kind: string;
    payload: string;
    recipients: number[];
  }>({
    name: 'load_broadcast_plan',
    text: `
      SELECT e.id, e.tenant_id, e.device_id, e.kind, e.payload::text AS payload,
        ARRAY(
          SELECT u.id FROM users u WHERE u.tenant_id = e.tenant_id AND u.active
          UNION
          SELECT s.user_id FROM user_devices s JOIN users u ON u.id = s.user_id
           WHERE s.device_id = e.device_id AND u.active
        ) AS recipients
      FROM outbox_events e
      WHERE e.id = $1`,
    values: [eventId],
  });
  const row = rows[0];
  if (!row) return null;
  return {
    eventId: String(row.id),
    tenantId: row.tenant_id,
    deviceId: row.device_id,
    kind: row.kind,
    payloadJson: row.payload,
    recipients: row.recipients,
  };
}

/** A user as channel authorization needs it; null if there is no such user. */
export async function findUserAccess(
  pool: PgPool,
  userId: number,
): Promise<{ active: boolean; tenantId: number | null } | null> {
  const { rows } = await pool.query<{ active: boolean; tenant_id: number | null }>({
    name: 'load_user_access',
    text: 'SELECT active, tenant_id FROM users WHERE id = $1',
    values: [userId],
  });
  const row = rows[0];
  return row ? { active: row.active, tenantId: row.tenant_id } : null;
}

/**
 * Records that every recipient has the event. The resolver does this before it completes the job, so an
 * event is either marked or its job is still there to be retried (or re-enqueued by the outbox relay).
 */
export async function markBroadcast(pool: PgPool, eventId: string): Promise<void> {
  await pool.query({
    name: 'mark_broadcast',
    text: 'UPDATE outbox_events SET broadcast_at = now() WHERE id = $1 AND broadcast_at IS NULL',
    values: [eventId],
  });
}
