import type pg from 'pg';
import { alarmWireSql } from './alarm-wire-sql.js';
import { recipientsSql, requesterSql } from './access.js';
import type { PgPool } from './pool.js';
import type { RecordedDecision } from './preferences.js';

/**
 * The transactional outbox, every statement on `outbox_events` in one place. An event row is written by
 * the same statement as the change it announces (so one exists exactly when the other does), then moves
 * through two bookkeeping marks:
 *
 *   written ──(enqueued by the request, or by the relay)──▶ enqueued_at ──(resolver)──▶ broadcast_at
 *
 * The request enqueues right after its commit; the relay (`claimRelayBatch`) takes over events left
 * without `enqueued_at`, and events enqueued long ago but never broadcast (their job went with Redis'
 * data). `broadcast_at` is the only mark delivery relies on: an event is done when it is set.
 */

/**
 * A CTE body that writes the outbox event of every alarm row of CTE `source`, with kind `kind` (a SQL
 * expression over `source`) and the alarm's wire form as payload. Returns `id, alarm_id, kind, payload`.
 * With `orderBy` (a SQL expression over `source`), the events' ids ascend in that order: a statement that
 * writes several events of one device must give them ids in the order they happened, since the resolver
 * delivers a device's events in id order.
 */
export function insertAlarmEventsSql(source: string, kind: string, orderBy?: string): string {
  return `INSERT INTO outbox_events (tenant_id, device_id, kind, alarm_id, payload)
    SELECT ${source}.tenant_id, ${source}.device_id, ${kind}, ${source}.id,
           jsonb_build_object('alarm', ${alarmWireSql(source)}) FROM ${source}
    ${orderBy === undefined ? '' : `ORDER BY ${orderBy}`}
    RETURNING id, alarm_id, kind, payload`;
}

/**
 * Writes the outbox event of a task change meant for one user (`recipient_user_id`: the task's requester),
 * inside the caller's transaction, and returns its id. The resolver delivers it to that user only (see
 * PLAN_SQL), in id order with that user's other pending task events of the device.
 */
export async function insertRequesterEvent(
  client: pg.PoolClient,
  event: { tenantId: number; deviceId: number; recipientUserId: number; kind: string; payload: unknown },
): Promise<string> {
  const { rows } = await client.query<{ id: string }>({
    name: 'outbox_insert_requester_event',
    text: `INSERT INTO outbox_events (tenant_id, device_id, kind, payload, recipient_user_id)
           VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id::text`,
    values: [
      event.tenantId,
      event.deviceId,
      event.kind,
      JSON.stringify(event.payload),
      event.recipientUserId,
    ],
  });
  return rows[0]!.id;
}

/**
 * The outbox rows `$1` (ids), locked in id order, as a subquery for a many-row UPDATE. The resolver's
 * broadcast marks and the ingest's enqueue marks update overlapping batches of rows at the same moment;
 * locking them in whatever order the plan visits them deadlocked (the benchmark found it: each deadlock
 * stalls both for deadlock_timeout, 1 s). In one order, one waits for the other instead.
 */
export const lockInIdOrder = (condition = 'true'): string =>
  `SELECT id FROM outbox_events WHERE id = ANY($1::bigint[]) AND ${condition} ORDER BY id FOR UPDATE`;

const MARK_ENQUEUED = `UPDATE outbox_events o SET enqueued_at = now()
  FROM (${lockInIdOrder('broadcast_at IS NULL')}) l WHERE o.id = l.id`;

/**
 * Records that events are on the queue (bookkeeping: if it is lost, the relay enqueues them again). Events
 * already broadcast are left alone: the relay never looks at them again, and not rewriting their rows (a
 * new row version and an entry in each of the outbox's indexes) is most of what this mark cost.
 */
export async function markEnqueued(db: PgPool | pg.PoolClient, eventIds: readonly string[]): Promise<void> {
  await db.query({ name: 'outbox_mark', text: MARK_ENQUEUED, values: [eventIds] });
}

export interface RelayClaim {
  /** events without `enqueued_at` older than this are taken over from their request */
  graceMs: number;
  /** events enqueued this long ago and still not broadcast are enqueued again */
  redeliverAfterMs: number;
  limit: number;
}

/**
 * Locks (FOR UPDATE SKIP LOCKED, so any number of relays share the work) and returns the ids of the events
 * the relay must enqueue, oldest first. Runs inside the caller's transaction on `client`, which then
 * enqueues them, calls `markEnqueued(client, ids)` and commits.
 */
export async function claimRelayBatch(client: pg.PoolClient, claim: RelayClaim): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>({
    name: 'outbox_relay_claim',
    text: `SELECT id FROM outbox_events
            WHERE broadcast_at IS NULL
              AND ((enqueued_at IS NULL AND created_at < now() - make_interval(secs => $1))
                OR enqueued_at < now() - make_interval(secs => $3))
            ORDER BY id LIMIT $2
            FOR UPDATE SKIP LOCKED`,
    values: [claim.graceMs / 1000, claim.limit, claim.redeliverAfterMs / 1000],
  });
  return rows.map((r) => String(r.id));
}

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
   * broadcast yet, oldest first: the resolver delivers them before this one, so that every user's log is
   * in commit order per device. They have this event's tenant and device, hence its recipients: loaded
   * here with their payloads, so that a backlog costs no recipient query per earlier event (under a
   * backlog of k events per device, that was k queries per job).
   */
  pendingBefore: { eventId: string; kind: string; payloadJson: string; alarmId: string | null }[];
  /** the alarm the event is about, if any */
  alarmId: string | null;
  /**
   * Preferences (contracts preferences.ts), as far as the resolver needs them to know whether its compiled
   * copies are current: the version of each recipient's rules (users without rules are absent) and of the
   * tenant's document (0: none). The documents themselves are loaded only when a version is new to it.
   */
  preferenceVersions: Map<number, number>;
  tenantPreferenceVersion: number;
  /**
   * Per alarm (this event's and the pending ones'), the users who received one of its events already
   * (alarm_audiences): they get the rest of its lifecycle whatever their rules.
   */
  received: Map<string, ReadonlySet<number>>;
}

type PlanRow = {
  id: string;
  tenant_id: number;
  device_id: number | null;
  kind: string;
  payload: string;
  recipients: number[];
  pending_before: [string, string, string, string][];
  alarm_id: string | null;
  pref_versions: number[];
  tenant_pref_version: number | null;
  received: Record<string, number[]> | null;
};

const PLAN_SQL = (where: string): string => `
  SELECT e.id, e.tenant_id, e.device_id, e.kind, e.payload::text AS payload, e.alarm_id::text AS alarm_id,
    COALESCE(r.ids, '{}') AS recipients, pb.rows AS pending_before,
    COALESCE(r.versions, '{}') AS pref_versions,
    (SELECT t.version FROM tenant_preferences t WHERE t.tenant_id = e.tenant_id) AS tenant_pref_version,
    -- one = ANY over the primary key (an OR of two conditions would not use the index)
    (SELECT json_object_agg(a.alarm_id::text, a.received) FROM alarm_audiences a
      WHERE a.alarm_id = ANY(array_append(pb.alarm_ids, e.alarm_id))) AS received
  FROM outbox_events e
  CROSS JOIN LATERAL (
    -- two aggregates over the same rows: versions[i] is the version of ids[i]
    SELECT array_agg(x.id) AS ids, array_agg(x.preferences_version) AS versions
      FROM (
        -- an event for one user (a task's requester: recipient_user_id) or for everyone who may see it
        SELECT a.* FROM (${recipientsSql('e', true)}) a WHERE e.recipient_user_id IS NULL
        UNION ALL
        SELECT b.* FROM (${requesterSql('e', true)}) b WHERE e.recipient_user_id IS NOT NULL
      ) x
  ) r
  CROSS JOIN LATERAL (
    SELECT COALESCE(array_agg(ARRAY[p.id::text, p.kind, p.payload::text, COALESCE(p.alarm_id::text, '')]
                    ORDER BY p.id), '{}') AS rows,
           COALESCE(array_agg(p.alarm_id) FILTER (WHERE p.alarm_id IS NOT NULL), '{}') AS alarm_ids
    FROM (
      SELECT p.id, p.kind, p.payload, p.alarm_id FROM outbox_events p
       WHERE e.device_id IS NOT NULL AND p.device_id = e.device_id
         AND p.broadcast_at IS NULL AND p.id < e.id
         -- a device's alarm events and each requester's task events are ordered apart: their audiences differ
         AND p.recipient_user_id IS NOT DISTINCT FROM e.recipient_user_id
      UNION ALL
      SELECT p.id, p.kind, p.payload, p.alarm_id FROM outbox_events p
       WHERE e.device_id IS NULL AND p.device_id IS NULL AND p.alarm_id = e.alarm_id
         AND p.broadcast_at IS NULL AND p.id < e.id
    ) p
  ) pb
  WHERE ${where}`;

/** The recipients that hold preferences (version > 0), by id. */
function versionsOf(ids: number[], versions: number[]): Map<number, number> {
  const map = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) if (versions[i]! > 0) map.set(ids[i]!, versions[i]!);
  return map;
}

const toPlan = (row: PlanRow): BroadcastPlan => ({
  eventId: String(row.id),
  tenantId: row.tenant_id,
  deviceId: row.device_id,
  kind: row.kind,
  payloadJson: row.payload,
  recipients: row.recipients,
  pendingBefore: row.pending_before.map(([id, kind, payload, alarmId]) => ({
    eventId: id,
    kind,
    payloadJson: payload,
    alarmId: alarmId === '' ? null : alarmId,
  })),
  alarmId: row.alarm_id,
  preferenceVersions: versionsOf(row.recipients, row.pref_versions),
  tenantPreferenceVersion: row.tenant_pref_version ?? 0,
  received: new Map(Object.entries(row.received ?? {}).map(([alarm, users]) => [alarm, new Set(users)])),
});

/**
 * Loads an outbox event, its recipients (access.ts `recipientsSql`), the earlier events of its device
 * still pending, the versions of the recipients' preferences and who received its alarm, in one round trip. Every part is an index lookup, so the cost follows the number of
 * recipients, not the number of users, devices or tenants in the system; `pendingBefore` reads partial
 * indexes over the events not broadcast yet (a handful in flight).
 */
export async function loadBroadcastPlan(pool: PgPool, eventId: string): Promise<BroadcastPlan | null> {
  const { rows } = await pool.query<PlanRow>({
    name: 'load_broadcast_plan',
    text: PLAN_SQL('e.id = $1'),
    values: [eventId],
  });
  return rows[0] ? toPlan(rows[0]) : null;
}

/**
 * `loadBroadcastPlan` for many concurrent jobs: while one query is in flight, the events asked for meanwhile
 * gather and are loaded by the next one (`e.id = ANY($1)`), so a burst (a storm of alarms, a resolver
 * catching up on a backlog) costs a round trip, a parse and a plan per batch instead of per event, and at
 * low load nothing waits for a timer. Each promise settles with its own event's plan (null if there is no
 * such event) or with the batch's error.
 */
export class BroadcastPlanLoader {
  private waiting = new Map<
    string,
    { resolve: (p: BroadcastPlan | null) => void; reject: (e: unknown) => void }[]
  >();
  private loading = false;

  constructor(
    private readonly pool: PgPool,
    /** @defaultValue 200 events per query */
    private readonly maxBatch = 200,
  ) {}

  load(eventId: string): Promise<BroadcastPlan | null> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(eventId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(eventId, [{ resolve, reject }]);
      if (!this.loading) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.loading = true;
    while (this.waiting.size > 0) {
      const ids = [...this.waiting.keys()].slice(0, this.maxBatch);
      const batch = ids.map((id) => [id, this.waiting.get(id)!] as const);
      for (const id of ids) this.waiting.delete(id);
      try {
        const { rows } = await this.pool.query<PlanRow>({
          name: 'load_broadcast_plans',
          text: PLAN_SQL('e.id = ANY($1::bigint[])'),
          values: [ids],
        });
        const plans = new Map(rows.map((r) => [String(r.id), toPlan(r)]));
        for (const [id, waiters] of batch) for (const w of waiters) w.resolve(plans.get(id) ?? null);
      } catch (err) {
        for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
      }
    }
    this.loading = false;
  }
}

/**
 * Who an alarm event reached, recorded with its broadcast mark (alarm_audiences): the users who got it for
 * the first time (deliver or deliver_silent) and its decisions other than plain deliveries.
 */
export interface AudienceUpdate {
  alarmId: string;
  tenantId: number;
  newlyReceived: number[];
  decisions: Record<string, RecordedDecision>;
}

/**
 * One statement per batch: the broadcast marks, and each alarm's audience (received users appended, the
 * decisions of its latest event kept). Being the same statement as the mark is what keeps lifecycle
 * coherence under concurrency: a later event's plan either sees this event still pending (and its job
 * delivers it first, carrying who received it in memory) or sees it marked, and then also who received it.
 * Audience rows are upserted in alarm id order (concurrent batches lock them in one order: no deadlock).
 */
const MARK_SQL = `WITH marked AS (
    UPDATE outbox_events o SET broadcast_at = now()
      FROM (${lockInIdOrder('broadcast_at IS NULL')}) l
     WHERE o.id = l.id RETURNING o.id
  ), audience AS (
    INSERT INTO alarm_audiences AS a (alarm_id, tenant_id, received, last_event_id, decisions)
    SELECT x.alarm_id, x.tenant_id, x.received, x.event_id, x.decisions
      FROM jsonb_to_recordset($2::jsonb)
        AS x(alarm_id bigint, tenant_id int, received int[], event_id bigint, decisions jsonb)
     -- an alarm deleted meanwhile has no audience to keep (and must not fail the marks of the batch)
     WHERE EXISTS (SELECT 1 FROM alarms al WHERE al.id = x.alarm_id)
     ORDER BY x.alarm_id
    ON CONFLICT (alarm_id) DO UPDATE SET
      received = a.received || ARRAY(SELECT unnest(EXCLUDED.received) EXCEPT SELECT unnest(a.received)),
      last_event_id = GREATEST(a.last_event_id, EXCLUDED.last_event_id),
      decisions = CASE WHEN EXCLUDED.last_event_id >= a.last_event_id THEN EXCLUDED.decisions
                       ELSE a.decisions END,
      updated_at = now()
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM marked) AS marked, (SELECT count(*) FROM audience) AS audiences`;

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
  private waiting: { eventId: string; audience?: AudienceUpdate; done: (err?: unknown) => void }[] = [];
  private flushing = false;

  constructor(private readonly pool: PgPool) {}

  mark(eventId: string, audience?: AudienceUpdate): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({
        eventId,
        audience,
        done: (err) => (err === undefined ? resolve() : reject(err)),
      });
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
          text: MARK_SQL,
          values: [batch.map((w) => w.eventId), JSON.stringify(mergeAudiences(batch))],
        });
        for (const w of batch) w.done();
      } catch (err) {
        for (const w of batch) w.done(err ?? new Error('mark_broadcast_many failed'));
      }
    }
    this.flushing = false;
  }
}

/** One row per alarm (an upsert cannot touch a row twice): received users united, the latest decisions. */
function mergeAudiences(batch: { eventId: string; audience?: AudienceUpdate }[]) {
  const rows = new Map<
    string,
    { alarm_id: string; tenant_id: number; received: Set<number>; event_id: string; decisions: object }
  >();
  for (const { eventId, audience } of batch) {
    if (!audience) continue;
    const row = rows.get(audience.alarmId);
    if (!row) {
      rows.set(audience.alarmId, {
        alarm_id: audience.alarmId,
        tenant_id: audience.tenantId,
        received: new Set(audience.newlyReceived),
        event_id: eventId,
        decisions: audience.decisions,
      });
      continue;
    }
    for (const u of audience.newlyReceived) row.received.add(u);
    if (BigInt(eventId) > BigInt(row.event_id)) {
      row.event_id = eventId;
      row.decisions = audience.decisions;
    }
  }
  return [...rows.values()].map((r) => ({ ...r, received: [...r.received] }));
}

/** What the outbox still has to broadcast, for metrics and the operator view. */
export interface OutboxBacklog {
  /** events without `broadcast_at`, counted up to `OUTBOX_BACKLOG_COUNT_CAP` */
  pending: number;
  /** seconds since the oldest of them was written (0 when there is none) */
  oldestPendingAgeS: number;
}

/**
 * The count stops here: during a long resolver outage the pending rows can number millions, and a scrape
 * must stay an index-only look at the partial index `outbox_events_pending_broadcast_idx`, not a count of
 * all of them. Past the cap the age, not the count, is what tells how bad it is.
 */
export const OUTBOX_BACKLOG_COUNT_CAP = 100_000;

export async function outboxBacklog(db: PgPool | pg.PoolClient): Promise<OutboxBacklog> {
  const { rows } = await db.query<{ pending: number; age: number | null }>({
    name: 'outbox_backlog',
    text: `SELECT (SELECT count(*)::int FROM (SELECT 1 FROM outbox_events WHERE broadcast_at IS NULL LIMIT $1) p) AS pending,
                  (SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox_events
                    WHERE broadcast_at IS NULL ORDER BY id LIMIT 1) AS age`,
    values: [OUTBOX_BACKLOG_COUNT_CAP],
  });
  const row = rows[0];
  return { pending: row?.pending ?? 0, oldestPendingAgeS: Math.max(0, row?.age ?? 0) };
}
