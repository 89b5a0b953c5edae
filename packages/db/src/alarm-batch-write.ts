import type pg from 'pg';
import type { IdempotencyClaim, AlarmReport } from './alarm-writes.js';
import { dropExpiredIdempotencyKey } from './idempotency-keys.js';
import { insertAlarmEventsSql } from './outbox.js';
import type { PgPool } from './pool.js';

/**
 * POST /v1/alarms/batch's write: many reports, one statement. Each report does what writeAlarmReport
 * (alarm-writes.ts) does for one, with the same upsert on alarms_active_identifier_key, and the statement
 * answers every item and stores the whole answer under the batch's Idempotency-Key.
 */

/** One report of a batch, validated, with where it belongs and its messages for the refusals only SQL can tell. */
export type AlarmBatchItem = Omit<AlarmReport, 'tenantId' | 'changedAt' | 'sourceTokenId'> & {
  /** its position in the request */
  index: number;
  /** device-less: the alarm's tenant (checked to exist here); with a device: ignored (the device's tenant) */
  tenantId: number | null;
  /** the message of unknown_device (with a device) or unknown_tenant (without) */
  unknownMessage: string;
  /** the message of alarm_not_active, for a Cleared report with nothing active */
  notActiveMessage: string;
};

export interface AlarmBatchWrite {
  sourceTokenId: number;
  /** a tenant-scoped token's tenant (a device of another tenant is refused with 403), null for a platform token */
  scopeTenantId: number | null;
  /** changed_at of every change of the batch (and raised_at where an item gives none) */
  changedAt: Date;
  /** the items to write, in request order */
  items: AlarmBatchItem[];
  /** results the caller decided without the database (items refused before the write), for the answer */
  decided: unknown[];
  /** the message of forbidden, for a device of another tenant than the scoped token's */
  forbiddenMessage: string;
}

export type AlarmBatchResult =
  /**
   * the batch ran: `bodyJson` is the whole answer `{"results":[...]}` (stored under the key when one is given
   * and at least one item changed something), `eventIds` the outbox events written, in item order
   */
  | { kind: 'answered'; bodyJson: string; eventIds: string[] }
  /** the key was used within its window: nothing was changed; the stored answer and its request's hash */
  | { kind: 'replay'; status: number; bodyJson: string; requestHash: string };

// $1 token id, $2 key, $3 request hash, $4 window (s), $5 look up a prior answer (first round only),
// $6 store the answer (last round only), $7 scope tenant, $8 results decided so far (jsonb array),
// $9 whether an earlier round changed something, $10 changed_at, $11 forbidden message, then the items as
// parallel arrays $12..$26 (one element per item, in request order).
const BATCH_STATEMENT = `
  WITH prior AS (
    SELECT request_hash, response_status, response_body FROM idempotency_keys
     WHERE $5::bool AND token_id = $1::int AND key = $2::text
       AND created_at > now() - make_interval(secs => $4::float8)
  ),
  input AS (
    SELECT * FROM unnest($12::int[], $13::int[], $14::int[], $15::text[], $16::text[], $17::text[],
                         $18::text[], $19::perceived_severity[], $20::text[], $21::text[], $22::text[],
                         $23::timestamptz[], $24::text[], $25::text[])
      AS u(ord, device_id, tenant_id, alarm_identifier, event_type, probable_cause, specific_problem,
           perceived_severity, managed_object_instance, additional_text, additional_information, raised_at,
           unknown_message, not_active_message)
     WHERE NOT EXISTS (SELECT 1 FROM prior)
  ),
  -- The alarm's tenant ("target"): the device's, unless a scoped token's tenant is another (then null, and
  -- nothing is changed); device-less, the named tenant if it exists. device_tenant tells the refusals apart.
  items AS (
    SELECT i.*, d.tenant_id AS device_tenant,
           CASE WHEN i.device_id IS NULL THEN t.id
                WHEN $7::int IS NULL OR d.tenant_id = $7::int THEN d.tenant_id END AS target
      FROM input i
      LEFT JOIN cpe_devices d ON d.id = i.device_id
      LEFT JOIN tenants t ON i.device_id IS NULL AND t.id = i.tenant_id
  ),
  -- Before anything changes, the batch locks the devices (then, for device-less alarms, the tenants) it
  -- changes alarms of, in id order: batches sharing a device then run one after the other instead of locking
  -- alarm rows in crossing orders and deadlocking (each deadlock costs deadlock_timeout, 1 s, and a rerun).
  -- FOR NO KEY UPDATE does not block the FOR KEY SHARE that inserting an alarm takes on its device and
  -- tenant, so single reports never wait for it. The changes below read locked_tenants first (an
  -- uncorrelated subquery runs before their first row), which reads locked_devices first.
  locked_devices AS (
    SELECT d.id FROM cpe_devices d
     WHERE d.id IN (SELECT device_id FROM items WHERE target IS NOT NULL)
     ORDER BY d.id
       FOR NO KEY UPDATE OF d
  ),
  locked_tenants AS (
    SELECT t.id FROM tenants t
     WHERE t.id IN (SELECT target FROM items WHERE device_id IS NULL)
       AND (SELECT count(*) FROM locked_devices) >= 0
     ORDER BY t.id
       FOR NO KEY UPDATE OF t
  ),
  raised AS (
    INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
      perceived_severity, managed_object_instance, additional_text, additional_information,
      raised_at, changed_at, source_token_id)
    SELECT target, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
           perceived_severity, managed_object_instance, additional_text, additional_information,
           COALESCE(raised_at, $10::timestamptz), $10::timestamptz, $1::int
      FROM items
     WHERE target IS NOT NULL AND perceived_severity <> 'Cleared' AND (SELECT count(*) FROM locked_tenants) >= 0
     ORDER BY target, COALESCE(device_id, 0), alarm_identifier
    ON CONFLICT (tenant_id, (COALESCE(device_id, 0)), alarm_identifier) WHERE cleared_at IS NULL
    DO UPDATE SET event_type = EXCLUDED.event_type, probable_cause = EXCLUDED.probable_cause,
      specific_problem = EXCLUDED.specific_problem, perceived_severity = EXCLUDED.perceived_severity,
      managed_object_instance = EXCLUDED.managed_object_instance, additional_text = EXCLUDED.additional_text,
      additional_information = EXCLUDED.additional_information, changed_at = EXCLUDED.changed_at
    RETURNING alarms.*, CASE WHEN alarms.xmax = 0 THEN 'alarm.created' ELSE 'alarm.updated' END AS kind
  ),
  cleared AS (
    UPDATE alarms a SET perceived_severity = 'Cleared', cleared_at = $10::timestamptz,
                        changed_at = $10::timestamptz
      FROM items i
     WHERE i.perceived_severity = 'Cleared' AND i.target IS NOT NULL AND (SELECT count(*) FROM locked_tenants) >= 0
       AND a.tenant_id = i.target AND COALESCE(a.device_id, 0) = COALESCE(i.device_id, 0)
       AND a.alarm_identifier = i.alarm_identifier AND a.cleared_at IS NULL
    RETURNING a.*, 'alarm.cleared' AS kind
  ),
  -- Each changed alarm with its item's position: an alarm key occurs at most once per statement, so the
  -- join is one to one.
  changed AS (
    SELECT c.*, i.ord
      FROM (SELECT * FROM raised UNION ALL SELECT * FROM cleared) c
      JOIN items i ON i.target = c.tenant_id AND COALESCE(i.device_id, 0) = COALESCE(c.device_id, 0)
                  AND i.alarm_identifier = c.alarm_identifier
  ),
  e AS (${insertAlarmEventsSql('changed', 'changed.kind', 'changed.ord')}),
  -- Each event with its item's position: e and changed sorted by alarm id, one event per changed alarm, so
  -- zipping the two sorted lists pairs them. (Joining e to changed, Postgres, which estimates one row for
  -- every CTE fed by RETURNING, chose a nested loop: a scan of changed per event, 1,000,000 comparisons and
  -- ~190 of a 1,000-item batch's ~290 ms.)
  done AS (
    SELECT z.ord, z.event_id,
           jsonb_build_object('index', z.ord, 'status', CASE WHEN z.kind = 'alarm.created' THEN 202 ELSE 200 END,
             'id', z.alarm_id::text, 'alarm', z.payload -> 'alarm',
             'outcome', substr(z.kind, length('alarm.') + 1)) AS result
      FROM unnest(ARRAY(SELECT ord FROM changed ORDER BY id), ARRAY(SELECT id FROM e ORDER BY alarm_id),
                  ARRAY(SELECT kind FROM e ORDER BY alarm_id), ARRAY(SELECT alarm_id FROM e ORDER BY alarm_id),
                  ARRAY(SELECT payload FROM e ORDER BY alarm_id)) AS z(ord, event_id, kind, alarm_id, payload)
  ),
  -- What the single endpoint's explainNotApplied would say, decided from what the statement already read.
  refused AS (
    SELECT i.ord, jsonb_build_object('index', i.ord, 'status', x.status,
             'error', jsonb_strip_nulls(jsonb_build_object('code', x.code, 'message', x.message,
                                                           'details', x.details))) AS result
      FROM items i
      CROSS JOIN LATERAL (
        SELECT * FROM (VALUES
          -- Another tenant's device, for a scoped token, answers as a device that does not exist does (no
          -- enumeration of device ids), as the single endpoint does; so 'forbidden' below is left for
          -- nothing but a future case of a target refused for another reason.
          (i.device_id IS NOT NULL AND i.target IS NULL, 1,
             422, 'unknown_device', i.unknown_message, '{"field":"deviceId"}'::jsonb),
          (i.device_id IS NULL AND i.target IS NULL, 1, 422, 'unknown_tenant', i.unknown_message,
             '{"field":"tenantId"}'::jsonb),
          (i.target IS NULL, 2, 403, 'forbidden', $11::text, NULL),
          (true, 3, 409, 'alarm_not_active', i.not_active_message, NULL)
        ) v(applies, prio, status, code, message, details)
        WHERE v.applies ORDER BY v.prio LIMIT 1
      ) x
     WHERE NOT EXISTS (SELECT 1 FROM done WHERE done.ord = i.ord)
  ),
  answer AS (
    SELECT jsonb_build_object('results',
             COALESCE(jsonb_agg(r.result ORDER BY (r.result ->> 'index')::int), '[]'::jsonb)) AS body
      FROM (SELECT result FROM done UNION ALL SELECT result FROM refused
            UNION ALL SELECT value FROM jsonb_array_elements($8::jsonb)) r
  ),
  k AS (
    INSERT INTO idempotency_keys (token_id, key, request_hash, response_status, response_body)
    SELECT $1::int, $2::text, $3::text, 200, answer.body FROM answer
     WHERE $6::bool AND $2::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM prior)
       AND ($9::bool OR EXISTS (SELECT 1 FROM done))
  )
  SELECT false AS replay, answer.body::text AS body, NULL::int AS status, NULL::text AS request_hash,
         ARRAY(SELECT event_id::text FROM done ORDER BY ord) AS event_ids
    FROM answer WHERE NOT EXISTS (SELECT 1 FROM prior)
  UNION ALL
  SELECT true, p.response_body::text, p.response_status, p.request_hash, NULL FROM prior p`;

type Row = {
  replay: boolean;
  body: string;
  status: number | null;
  request_hash: string | null;
  event_ids: string[] | null;
};

/**
 * Splits the items into rounds, each one statement, such that
 * - an alarm key (device and identifier; device-less: tenant and identifier) occurs at most once per round,
 *   since one INSERT ... ON CONFLICT DO UPDATE cannot change a row twice, and one statement's CTEs all see
 *   the same snapshot (a raise and a clear of one alarm in one statement would not see each other);
 * - a device's items never go to an earlier round than an earlier item of the same device, so that its
 *   outbox events are written (and get ids) in item order: the resolver delivers a device's events in id
 *   order. A device-less alarm's events are ordered per alarm, which the first rule already gives.
 * A batch without repeated keys is one round. Within a round, items keep request order.
 */
export function batchRounds<T extends Pick<AlarmBatchItem, 'deviceId' | 'tenantId' | 'alarmIdentifier'>>(
  items: readonly T[],
): T[][] {
  const lastOfKey = new Map<string, number>();
  const lastOfDevice = new Map<number, number>();
  const rounds: T[][] = [];
  for (const item of items) {
    const key =
      item.deviceId === null
        ? `t${item.tenantId}\u0000${item.alarmIdentifier}`
        : `d${item.deviceId}\u0000${item.alarmIdentifier}`;
    const round = Math.max(
      (lastOfKey.get(key) ?? -1) + 1,
      item.deviceId === null ? 0 : (lastOfDevice.get(item.deviceId) ?? 0),
    );
    lastOfKey.set(key, round);
    if (item.deviceId !== null) lastOfDevice.set(item.deviceId, round);
    (rounds[round] ??= []).push(item);
  }
  return rounds;
}

/** How often a batch that deadlocked with a concurrent one is run again (it was rolled back as a whole). */
const DEADLOCK_RETRIES = 3;

/**
 * Applies a batch of reports as if each had been sent alone, one after another in request order, and
 * answers each item with what writeAlarmReport's caller would have answered. Without repeated alarm keys
 * the whole batch is one statement (one implicit transaction): every change, its outbox event, the answer
 * and, with `idempotency`, the stored answer commit together. With repeats it is one statement per round
 * (`batchRounds`) in one transaction, so it still commits or rolls back as a whole.
 *
 * Batches changing alarms of the same device (device-less: of the same tenant) at the same moment run one
 * after the other: each locks those devices and tenants first, in id order. Should one still deadlock
 * (with a transaction outside this module), Postgres rolls it back and it runs again, up to
 * DEADLOCK_RETRIES times.
 */
export async function writeAlarmBatch(
  pool: PgPool,
  batch: AlarmBatchWrite,
  idempotency: IdempotencyClaim | null,
): Promise<AlarmBatchResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await runBatch(pool, batch, idempotency);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (idempotency && isKeyConflict(err) && attempt === 0) {
        // As in writeAlarmReport: a concurrent request with the key committed first, or an expired answer
        // still holds it. Drop the expired one, if that is it, and run again (now `prior` sees a live one).
        await dropExpiredIdempotencyKey(pool, batch.sourceTokenId, idempotency);
        continue;
      }
      if (code === '40P01' && attempt < DEADLOCK_RETRIES) continue;
      throw err;
    }
  }
}

async function runBatch(
  pool: PgPool,
  batch: AlarmBatchWrite,
  idempotency: IdempotencyClaim | null,
): Promise<AlarmBatchResult> {
  const rounds = batchRounds(batch.items);
  if (rounds.length <= 1) {
    const row = await runRound(pool, batch, rounds[0] ?? [], idempotency, {
      first: true,
      last: true,
      decided: batch.decided,
      changedBefore: false,
    });
    return toResult(row);
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    let decided = batch.decided;
    let changedBefore = false;
    const eventIds: string[] = [];
    let row: Row | undefined;
    for (let r = 0; r < rounds.length; r++) {
      row = await runRound(client, batch, rounds[r]!, idempotency, {
        first: r === 0,
        last: r === rounds.length - 1,
        decided,
        changedBefore,
      });
      if (row.replay) break;
      const ids = row.event_ids ?? [];
      eventIds.push(...ids);
      changedBefore ||= ids.length > 0;
      decided = (JSON.parse(row.body) as { results: unknown[] }).results;
    }
    await client.query('COMMIT');
    const result = toResult(row!);
    return result.kind === 'replay' ? result : { ...result, eventIds };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

function toResult(row: Row): AlarmBatchResult {
  return row.replay
    ? { kind: 'replay', status: row.status ?? 200, bodyJson: row.body, requestHash: row.request_hash ?? '' }
    : { kind: 'answered', bodyJson: row.body, eventIds: (row.event_ids ?? []).map(String) };
}

async function runRound(
  db: PgPool | pg.PoolClient,
  batch: AlarmBatchWrite,
  items: readonly AlarmBatchItem[],
  idempotency: IdempotencyClaim | null,
  round: { first: boolean; last: boolean; decided: unknown[]; changedBefore: boolean },
): Promise<Row> {
  const column = <K extends keyof AlarmBatchItem>(k: K) => items.map((i) => i[k] ?? null);
  const { rows } = await db.query<Row>({
    name: 'write_alarm_batch',
    text: BATCH_STATEMENT,
    values: [
      batch.sourceTokenId,
      idempotency?.key ?? null,
      idempotency?.requestHash ?? null,
      idempotency?.windowS ?? 0,
      round.first,
      round.last,
      batch.scopeTenantId,
      JSON.stringify(round.decided),
      round.changedBefore,
      batch.changedAt,
      batch.forbiddenMessage,
      column('index'),
      column('deviceId'),
      column('tenantId'),
      column('alarmIdentifier'),
      column('eventType'),
      column('probableCause'),
      column('specificProblem'),
      column('perceivedSeverity'),
      column('managedObjectInstance'),
      column('additionalText'),
      column('additionalInformation'),
      column('raisedAt'),
      column('unknownMessage'),
      column('notActiveMessage'),
    ],
  });
  // The statement always answers one row: the answer, or the prior one.
  return rows[0]!;
}

function isKeyConflict(err: unknown): boolean {
  const { code, constraint } = err as { code?: unknown; constraint?: unknown };
  return code === '23505' && constraint === 'idempotency_keys_pkey';
}
