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
  /**
   * Earlier events of the same device (of the same alarm, for a device-less one) that are not marked
   * broadcast yet, oldest first: the resolver delivers them before this one (see the worker).
   */
  pendingBefore: string[];
}

/**
 * Loads an outbox event and its recipients in one round trip: every active user of the event's tenant, plus
 * every active user with an explicit share of its device (who may belong to another tenant). A device-less
 * event has no shares, so it reaches the tenant's users only.
 *
 * Both halves are index lookups (users.tenant_id, user_devices.device_id), so the cost follows the number of
 * recipients, not the number of users, devices or tenants in the system. So is `pendingBefore` (partial
 * indexes over the events not broadcast yet, a handful in flight).
 */
export async function loadBroadcastPlan(pool: PgPool, eventId: string): Promise<BroadcastPlan | null> {
  const { rows } = await pool.query<{
    id: string;
    tenant_id: number;
    device_id: number | null;
    kind: string;
    payload: string;
    recipients: number[];
    pending_before: string[];
  }>({
    name: 'load_broadcast_plan',
    text: `
      SELECT e.id, e.tenant_id, e.device_id, e.kind, e.payload::text AS payload,
        ARRAY(
          SELECT u.id FROM users u WHERE u.tenant_id = e.tenant_id AND u.active
          UNION
          SELECT s.user_id FROM user_devices s JOIN users u ON u.id = s.user_id
           WHERE s.device_id = e.device_id AND u.active
        ) AS recipients,
        ARRAY(
          SELECT p.id FROM outbox_events p
           WHERE e.device_id IS NOT NULL AND p.device_id = e.device_id
             AND p.broadcast_at IS NULL AND p.id < e.id
          UNION ALL
          SELECT p.id FROM outbox_events p
           WHERE e.device_id IS NULL AND p.device_id IS NULL AND p.alarm_id = e.alarm_id
             AND p.broadcast_at IS NULL AND p.id < e.id
          ORDER BY 1
        ) AS pending_before
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
    pendingBefore: row.pending_before.map(String),
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
 * Records that every recipient has an event. The resolver does this before it completes the job, so an
 * event is either marked or its job is still there to be retried (or re-enqueued by the outbox relay).
 *
 * Jobs are marked in batches: while one UPDATE is in flight, the events of jobs finishing meanwhile
 * gather and go in the next one, so under load a resolver spends one round trip and one commit per batch
 * instead of per job, and at low load nothing waits for a timer. Each promise settles when the UPDATE that
 * holds its event has committed (or failed), so "marked before the job completes" still holds.
 */
export class BroadcastMarker {
  private waiting: { eventId: string; done: (err?: unknown) => void }[] = [];
  private flushing = false;

  constructor(private readonly pool: PgPool) {}

  mark(eventId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ eventId, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        await this.pool.query({
          name: 'mark_broadcast_many',
          text: `UPDATE outbox_events o SET broadcast_at = now()
                   FROM (${lockInIdOrder('broadcast_at IS NULL')}) l
                  WHERE o.id = l.id`,
          values: [batch.map((w) => w.eventId)],
        });
        for (const w of batch) w.done();
      } catch (err) {
        for (const w of batch) w.done(err ?? new Error('mark_broadcast_many failed'));
      }
    }
    this.flushing = false;
  }
}

/**
 * The outbox rows `$1` (ids), locked in id order, as a subquery for a many-row UPDATE. The resolver's
 * broadcast marks and the ingest's enqueue marks update overlapping batches of rows at the same moment;
 * locking them in whatever order the plan visits them deadlocked (the benchmark found it: each deadlock
 * stalls both for deadlock_timeout, 1 s). In one order, one waits for the other instead.
 */
export function lockInIdOrder(condition = 'true'): string {
  return `SELECT id FROM outbox_events WHERE id = ANY($1::bigint[]) AND ${condition} ORDER BY id FOR UPDATE`;
}
