import type { AlarmIngestBody } from '@alarmcast/contracts';
import { alarmWireSql } from './alarm-wire-sql.js';
import { viewerMaySeeSql, type AlarmViewer } from './access.js';
import { dropExpiredIdempotencyKey } from './idempotency-keys.js';
import { insertAlarmEventsSql } from './outbox.js';
import type pg from 'pg';
import type { PgPool } from './pool.js';

/**
 * The statements that change an alarm. Each one writes the change and its outbox event together (one
 * statement, one implicit transaction), and answers with the alarm's wire form built in SQL.
 */

/**
 * A raise or clear reported by a collector, for the alarm (tenantId, deviceId, alarmIdentifier): the
 * validated ingest body's alarm fields (`Cleared` clears the active alarm; any other severity raises or
 * updates it) and where it belongs.
 */
export type AlarmReport = Omit<AlarmIngestBody, 'deviceId' | 'tenantId' | 'raisedAt'> & {
  /**
   * With a device: null takes the device's tenant (a platform token), a number requires the device to be that
   * tenant's (a tenant-scoped token). Without a device: the (existing) tenant of the alarm.
   */
  tenantId: number | null;
  deviceId: number | null;
  /** used only when the raise creates the alarm */
  raisedAt: Date;
  changedAt: Date;
  sourceTokenId: number;
};

/** The request's Idempotency-Key, scoped to the collector token of the report. */
export interface IdempotencyClaim {
  key: string;
  /** SHA-256 hex of the canonical request body */
  requestHash: string;
  /** how long an answer is replayed */
  windowS: number;
}

export type AlarmWriteResult =
  /** the change was committed with its outbox event (and, with a key, the answer stored) */
  | { kind: 'applied'; eventId: string; status: number; bodyJson: string }
  /** the key was used within its window: nothing was changed; the stored answer and its request's hash */
  | { kind: 'replay'; status: number; bodyJson: string; requestHash: string }
  /**
   * nothing was changed: a Cleared report for an identifier that is not active, or a device that does not
   * exist or is not of the given tenant (the caller tells which apart; this is the rare path)
   */
  | { kind: 'not_applied' };

// Parameters shared by both statements: $1 collector token id, $2 Idempotency-Key (null without one),
// $3 request hash, $4 replay window in seconds, $5 tenant id, $6 device id, $7 alarm identifier. A
// statement's own parameters start at $8. The alarm's tenant is `target` (see writeStatement).
const RAISE = `
  INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
    perceived_severity, managed_object_instance, additional_text, additional_information,
    raised_at, changed_at, source_token_id)
  SELECT target.tenant_id, $6::int, $7::text, $8::text, $9::text, $10::text, $11::perceived_severity, $12::text,
    $13::text, $14::text, $15::timestamptz, $16::timestamptz, $1::int
    FROM target
   WHERE target.tenant_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM prior)
  ON CONFLICT (tenant_id, (COALESCE(device_id, 0)), alarm_identifier) WHERE cleared_at IS NULL
  DO UPDATE SET event_type = EXCLUDED.event_type, probable_cause = EXCLUDED.probable_cause,
    specific_problem = EXCLUDED.specific_problem, perceived_severity = EXCLUDED.perceived_severity,
    managed_object_instance = EXCLUDED.managed_object_instance, additional_text = EXCLUDED.additional_text,
    additional_information = EXCLUDED.additional_information, changed_at = EXCLUDED.changed_at
  -- xmax is 0 on a freshly inserted row version and set on one that ON CONFLICT updated.
  RETURNING alarms.*, CASE WHEN alarms.xmax = 0 THEN 'alarm.created' ELSE 'alarm.updated' END AS kind`;

const CLEAR = `
  UPDATE alarms SET perceived_severity = 'Cleared', cleared_at = $8::timestamptz, changed_at = $8::timestamptz
   WHERE tenant_id = (SELECT tenant_id FROM target) AND COALESCE(device_id, 0) = COALESCE($6::int, 0)
     AND alarm_identifier = $7::text
     AND cleared_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM prior)
  RETURNING alarms.*, 'alarm.cleared' AS kind`;

/**
 * One statement, so one round trip and one implicit transaction: the alarm change (`change`), its outbox event,
 * and with an Idempotency-Key the stored answer, commit together or not at all.
 *
 * `target` is the alarm's tenant: with a device, the device's tenant, found here rather than by a query of
 * its own (one Postgres round trip less per report), and null when the device does not exist or is not of
 * the tenant in $5; without a device, $5.
 *
 * `prior` is a live answer for the same token and key: then nothing changes and that answer is returned. Two
 * concurrent requests with one key both pass `prior` (neither sees the other's uncommitted row), but the
 * second one's insert into idempotency_keys waits for the first and then fails on the primary key, which
 * rolls its whole statement back: the caller retries it and replays the first answer.
 */
const writeStatement = (change: string): string => `
  WITH prior AS (
    SELECT request_hash, response_status, response_body FROM idempotency_keys
     WHERE token_id = $1::int AND key = $2::text AND created_at > now() - make_interval(secs => $4::float8)
  ),
  target AS (
    SELECT CASE WHEN $6::int IS NULL THEN $5::int
                ELSE (SELECT d.tenant_id FROM cpe_devices d
                       WHERE d.id = $6::int AND ($5::int IS NULL OR d.tenant_id = $5::int)) END AS tenant_id
  ),
  a AS (${change}),
  e AS (${insertAlarmEventsSql('a', 'a.kind')}),
  r AS (
    SELECT e.id AS event_id, CASE WHEN e.kind = 'alarm.created' THEN 202 ELSE 200 END AS status,
           jsonb_build_object('id', e.alarm_id::text, 'alarm', e.payload -> 'alarm',
             'outcome', substr(e.kind, length('alarm.') + 1)) AS body
      FROM e
  ),
  k AS (
    INSERT INTO idempotency_keys (token_id, key, request_hash, response_status, response_body)
    SELECT $1::int, $2::text, $3::text, r.status, r.body FROM r WHERE $2::text IS NOT NULL
  )
  SELECT false AS replay, r.event_id::text AS event_id, r.status, r.body::text AS body, NULL::text AS request_hash
    FROM r
  UNION ALL
  SELECT true, NULL, p.response_status, p.response_body::text, p.request_hash FROM prior p`;

const RAISE_STATEMENT = writeStatement(RAISE);
const CLEAR_STATEMENT = writeStatement(CLEAR);

/**
 * Applies a collector's report, TR-181 FaultMgmt style: a raise of an identifier already active on the device
 * (device-less: in the tenant) updates that alarm, otherwise creates one; `Cleared` clears the active alarm.
 * Every change writes its outbox event (`alarm.created` / `alarm.updated` / `alarm.cleared`) in the same
 * statement. Concurrent raises of one identifier cannot create two active alarms: the insert is an upsert on
 * the partial unique index alarms_active_identifier_key.
 *
 * With `idempotency`, the answer (status and body) is stored with the change and replayed for the same token
 * and key within the window; the caller compares `requestHash` to refuse a key reused for another body.
 */
export async function writeAlarmReport(
  /** a pool, or a transaction's client (then without `idempotency`: its retry needs a fresh statement) */
  pool: PgPool | pg.PoolClient,
  report: AlarmReport,
  idempotency: IdempotencyClaim | null,
): Promise<AlarmWriteResult> {
  const clear = report.perceivedSeverity === 'Cleared';
  const shared = [
    report.sourceTokenId,
    idempotency?.key ?? null,
    idempotency?.requestHash ?? null,
    idempotency?.windowS ?? 0,
    report.tenantId,
    report.deviceId,
    report.alarmIdentifier,
  ];
  const query = clear
    ? { name: 'clear_alarm', text: CLEAR_STATEMENT, values: [...shared, report.changedAt] }
    : {
        name: 'raise_alarm',
        text: RAISE_STATEMENT,
        values: [
          ...shared,
          report.eventType,
          report.probableCause,
          report.specificProblem,
          report.perceivedSeverity,
          report.managedObjectInstance ?? null,
          report.additionalText ?? null,
          report.additionalInformation ?? null,
          report.raisedAt,
          report.changedAt,
        ],
      };
  type Row = {
    replay: boolean;
    event_id: string | null;
    status: number;
    body: string;
    request_hash: string | null;
  };
  let rows: Row[];
  try {
    ({ rows } = await pool.query<Row>(query));
  } catch (err) {
    if (!idempotency || !isKeyConflict(err)) throw err;
    // The key was taken meanwhile (a concurrent request with it committed first), or an expired answer still
    // holds it. Drop the expired one, if that is it, and run again: now `prior` sees a live answer, or the
    // key is free.
    await dropExpiredIdempotencyKey(pool as PgPool, report.sourceTokenId, idempotency);
    ({ rows } = await pool.query<Row>(query));
  }
  const row = rows[0];
  if (!row) return { kind: 'not_applied' };
  if (row.replay) {
    return { kind: 'replay', status: row.status, bodyJson: row.body, requestHash: row.request_hash ?? '' };
  }
  return { kind: 'applied', eventId: String(row.event_id), status: row.status, bodyJson: row.body };
}

function isKeyConflict(err: unknown): boolean {
  const { code, constraint } = err as { code?: unknown; constraint?: unknown };
  return code === '23505' && constraint === 'idempotency_keys_pkey';
}

export type AckResult =
  | { kind: 'acknowledged'; eventId: string; alarmJson: string }
  | { kind: 'already_acknowledged'; alarmJson: string }
  /** no such alarm, or one the user may not see */
  | { kind: 'not_found' };

/**
 * Acknowledges an alarm the viewer may see, writing its `alarm.acknowledged` outbox event in the same
 * statement. Acknowledging twice changes nothing and writes no event. The alarm row is locked first, so of
 * two concurrent acknowledgements one wins and the other sees it as already acknowledged.
 */
export async function acknowledgeAlarm(
  pool: PgPool,
  viewer: AlarmViewer,
  alarmId: string,
  at: Date,
): Promise<AckResult> {
  const { rows } = await pool.query<{ outcome: AckResult['kind']; event_id: string | null; alarm: string }>({
    name: 'acknowledge_alarm',
    text: `
      WITH t AS (
        SELECT a.* FROM alarms a
         WHERE a.id = $1::bigint AND ${viewerMaySeeSql('a', '$2', '$3')}
         FOR UPDATE OF a
      ),
      u AS (
        UPDATE alarms SET acknowledged_at = $4::timestamptz, acknowledged_by = $2::int
          FROM t
         WHERE alarms.id = t.id AND t.acknowledged_at IS NULL
        RETURNING alarms.*
      ),
      e AS (${insertAlarmEventsSql('u', "'alarm.acknowledged'")})
      SELECT 'acknowledged' AS outcome, e.id::text AS event_id, (e.payload -> 'alarm')::text AS alarm FROM e
      UNION ALL
      SELECT 'already_acknowledged', NULL, ${alarmWireSql('t')}::text FROM t WHERE t.acknowledged_at IS NOT NULL`,
    values: [alarmId, viewer.userId, viewer.tenantId, at],
  });
  const row = rows[0];
  if (!row) return { kind: 'not_found' };
  return row.outcome === 'acknowledged'
    ? { kind: 'acknowledged', eventId: String(row.event_id), alarmJson: row.alarm }
    : { kind: 'already_acknowledged', alarmJson: row.alarm };
}
