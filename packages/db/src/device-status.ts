import { DEVICE_KEPT_PARAMETERS_MAX, DEVICE_OFFLINE_ALARM } from '@alarmcast/contracts';
import { deviceStatusWireSql } from './device-status-wire-sql.js';
import { insertAlarmEventsSql } from './outbox.js';
import type { PgPool } from './pool.js';

/**
 * Device status and presence: the statements of POST /v1/devices/informs and of the presence detector, on
 * `device_status` (one row per device, created with the device by trigger). Both answer with each changed
 * device's status in wire form and its row `version`, which the caller writes to the device's state channel
 * in Redis (packages/redis state-channel.ts): the highest version wins there, so two writers racing to Redis
 * can never leave an older status behind.
 *
 * The offline alarm (`alarmcast.device-offline`) goes the reliable way: its row and its outbox event are
 * written by the detector's statement, and the inform that brings the device back clears it in its own
 * statement, with its outbox event.
 */

/** One inform, validated, as the statement takes it. */
export interface InformWrite {
  /** its position in the request */
  index: number;
  deviceId: number;
  informedAt: Date;
  /** informedAt when the inform says the device booted (BOOT_EVENT_CODES), else null */
  bootAt: Date | null;
  eventCodes: string[];
  periodicInformIntervalS: number;
  softwareVersion: string | null;
  hardwareVersion: string | null;
  uptimeS: number | null;
  parameters: Record<string, string> | null;
}

export interface PresencePolicy {
  /** offline after `intervals ×` the device's periodic inform interval... */
  intervals: number;
  /** ...plus this, in seconds */
  graceS: number;
  /** whether going offline raises the offline alarm (tenants.device_offline_alarm overrides) */
  offlineAlarm: boolean;
}

/** A device whose status the statement changed (or touched), for its state channel. */
export interface DeviceStateRow {
  deviceId: number;
  tenantId: number;
  /** device_status.version after the write, as a decimal string (bigint) */
  version: string;
  /** the change fields that changed; [] when only the time moved */
  changed: string[];
  /** the status in wire form (a JSON object's text) */
  state: string;
  /** whether this write moved the device between online and offline (the tenant summary changes) */
  presenceChanged: boolean;
}

export interface InformBatchResult {
  /** `{"results":[...]}`, one per item in request order */
  bodyJson: string;
  states: DeviceStateRow[];
  /** outbox events written (the offline alarms cleared) */
  eventIds: string[];
}

/**
 * Informs of one device in one batch, folded into one write (one statement can change a row once): applied
 * in informedAt order, later values win, parameters merged, the latest boot kept. Every item of the device
 * gets the answer of the combined write.
 */
export function foldInforms(items: readonly InformWrite[]): { write: InformWrite; indexes: number[] }[] {
  const byDevice = new Map<number, InformWrite[]>();
  for (const item of items) {
    const list = byDevice.get(item.deviceId);
    if (list) list.push(item);
    else byDevice.set(item.deviceId, [item]);
  }
  return [...byDevice.values()].map((list) => {
    if (list.length === 1) return { write: list[0]!, indexes: [list[0]!.index] };
    const ordered = [...list].sort((a, b) => a.informedAt.getTime() - b.informedAt.getTime());
    const last = ordered.at(-1)!;
    const write: InformWrite = { ...last, parameters: null, bootAt: null };
    for (const i of ordered) {
      if (i.parameters) write.parameters = { ...(write.parameters ?? {}), ...i.parameters };
      if (i.bootAt) write.bootAt = i.bootAt;
      write.softwareVersion = i.softwareVersion ?? write.softwareVersion;
      write.hardwareVersion = i.hardwareVersion ?? write.hardwareVersion;
      write.uptimeS = i.uptimeS ?? write.uptimeS;
    }
    return { write, indexes: list.map((i) => i.index) };
  });
}

// $1 scope tenant (null: platform token), $2 default intervals, $3 default grace s, $4 kept-parameter cap,
// $5 results decided before the write (jsonb array), then one array per column, one element per device:
// $6 first item index, $7 device, $8 informed_at, $9 boot_at, $10 event codes (jsonb array each),
// $11 interval, $12 software, $13 hardware, $14 uptime, $15 parameters (jsonb or null), $16 the indexes of
// every item folded into it (jsonb array each).
const INFORM_STATEMENT = `
  WITH input AS (
    SELECT * FROM unnest($6::int[], $7::int[], $8::timestamptz[], $9::timestamptz[], $10::jsonb[], $11::int[],
                         $12::text[], $13::text[], $14::bigint[], $15::jsonb[], $16::jsonb[])
      AS u(ord, device_id, informed_at, boot_at, event_codes, interval_s, software_version, hardware_version,
           uptime_s, parameters, indexes)
  ),
  -- Another tenant's device, for a scoped token, answers as one that does not exist (no enumeration).
  items AS (
    SELECT i.*, d.id IS NOT NULL AND ($1::int IS NULL OR d.tenant_id = $1::int) AS allowed,
           COALESCE(t.device_offline_intervals, $2::int) AS k, COALESCE(t.device_offline_grace_s, $3::int) AS grace
      FROM input i
      LEFT JOIN cpe_devices d ON d.id = i.device_id
      LEFT JOIN tenants t ON t.id = d.tenant_id
  ),
  -- The rows as they are now, locked in id order (batches sharing devices then queue instead of
  -- deadlocking). FOR UPDATE waits for a presence detector holding a row and returns its committed version.
  old AS (
    SELECT s.* FROM device_status s
     WHERE s.device_id IN (SELECT device_id FROM items WHERE allowed)
     ORDER BY s.device_id
       FOR UPDATE
  ),
  calc AS (
    SELECT i.ord, i.indexes, i.device_id, i.informed_at, i.boot_at, i.interval_s, i.software_version,
           i.hardware_version, i.uptime_s, i.parameters, o.online AS was_online, o.offline_alarm_id AS old_alarm_id,
           ARRAY(SELECT jsonb_array_elements_text(i.event_codes)) AS event_codes,
           o.last_inform_at IS NOT NULL AND i.informed_at <= o.last_inform_at AS dup,
           make_interval(secs => i.k::float8 * i.interval_s + i.grace) AS deadline_in,
           CASE WHEN i.parameters IS NULL THEN NULL
                WHEN (SELECT count(*) FROM jsonb_object_keys(o.parameters || i.parameters)) > $4::int THEN i.parameters
                ELSE o.parameters || i.parameters END AS new_parameters,
           array_remove(ARRAY[
             CASE WHEN NOT o.online THEN 'online' END,
             CASE WHEN i.boot_at IS NOT NULL AND (o.last_boot_at IS NULL OR i.boot_at > o.last_boot_at)
                  THEN 'last_boot_at' END,
             CASE WHEN i.software_version IS NOT NULL AND i.software_version IS DISTINCT FROM o.software_version
                  THEN 'software_version' END,
             CASE WHEN i.hardware_version IS NOT NULL AND i.hardware_version IS DISTINCT FROM o.hardware_version
                  THEN 'hardware_version' END,
             CASE WHEN i.interval_s IS DISTINCT FROM o.periodic_inform_interval_s
                  THEN 'periodic_inform_interval_s' END,
             CASE WHEN i.parameters IS NOT NULL AND NOT (o.parameters @> i.parameters) THEN 'parameters' END
           ], NULL) AS changed
      FROM items i JOIN old o ON o.device_id = i.device_id
  ),
  -- Back online: the offline alarm raised when it went away is cleared, the reliable way (row + outbox).
  cleared AS (
    UPDATE alarms a SET perceived_severity = 'Cleared', cleared_at = now(), changed_at = now()
      FROM calc c
     WHERE NOT c.dup AND NOT c.was_online AND a.id = c.old_alarm_id AND a.cleared_at IS NULL
    RETURNING a.*, 'alarm.cleared' AS kind
  ),
  e AS (${insertAlarmEventsSql('cleared', 'cleared.kind', 'cleared.id')}),
  -- A periodic inform with nothing new writes only the times (deadline, last inform, uptime, codes): the
  -- parameters column is assigned itself, which keeps its stored (possibly TOASTed) value as it is.
  updated AS (
    UPDATE device_status s SET
      online = true,
      last_inform_at = c.informed_at,
      last_boot_at = CASE WHEN 'last_boot_at' = ANY(c.changed) THEN c.boot_at ELSE s.last_boot_at END,
      software_version = COALESCE(c.software_version, s.software_version),
      hardware_version = COALESCE(c.hardware_version, s.hardware_version),
      uptime_s = COALESCE(c.uptime_s, s.uptime_s),
      periodic_inform_interval_s = c.interval_s,
      last_event_codes = c.event_codes,
      parameters = CASE WHEN 'parameters' = ANY(c.changed) THEN c.new_parameters ELSE s.parameters END,
      offline_at = now() + c.deadline_in,
      -- Kept when the alarm could not be cleared here (committed after this statement's snapshot, or
      -- cleared by someone else): the detector's sweep settles it (clearStrandedOfflineAlarms).
      offline_alarm_id = CASE WHEN c.old_alarm_id IS NULL OR EXISTS (SELECT 1 FROM cleared x WHERE x.id = c.old_alarm_id)
                              THEN NULL ELSE s.offline_alarm_id END,
      status_changed_at = CASE WHEN cardinality(c.changed) > 0 THEN now() ELSE s.status_changed_at END,
      version = s.version + 1
      FROM calc c
     WHERE s.device_id = c.device_id AND NOT c.dup
    RETURNING s.*, c.indexes, c.changed, NOT c.was_online AS presence_changed
  ),
  done AS (
    SELECT u.*, ${deviceStatusWireSql('u', 'd')} AS wire FROM updated u JOIN cpe_devices d ON d.id = u.device_id
  ),
  results AS (
    SELECT jsonb_build_object('index', x.value::int, 'status', 200, 'device_id', u.device_id,
             'outcome', CASE WHEN cardinality(u.changed) > 0 THEN 'changed' ELSE 'unchanged' END,
             'changed', to_jsonb(u.changed), 'online', true) AS result
      FROM done u CROSS JOIN LATERAL jsonb_array_elements_text(u.indexes) x
    UNION ALL
    SELECT jsonb_build_object('index', x.value::int, 'status', 200, 'device_id', c.device_id,
             'outcome', 'duplicate', 'changed', '[]'::jsonb, 'online', c.was_online)
      FROM calc c CROSS JOIN LATERAL jsonb_array_elements_text(c.indexes) x WHERE c.dup
    UNION ALL
    SELECT jsonb_build_object('index', x.value::int, 'status', 422, 'error',
             jsonb_build_object('code', 'unknown_device', 'message', 'no device with id ' || i.device_id,
                                'details', jsonb_build_object('field', 'deviceId')))
      FROM items i CROSS JOIN LATERAL jsonb_array_elements_text(i.indexes) x WHERE NOT i.allowed
    UNION ALL
    SELECT value FROM jsonb_array_elements($5::jsonb)
  )
  SELECT (SELECT jsonb_build_object('results',
                   COALESCE(jsonb_agg(result ORDER BY (result ->> 'index')::int), '[]'::jsonb))::text
            FROM results) AS body,
         (SELECT COALESCE(json_agg(json_build_object('deviceId', device_id, 'tenantId', tenant_id,
                    'version', version::text, 'changed', changed, 'state', wire::text,
                    'presenceChanged', presence_changed)), '[]'::json) FROM done) AS states,
         ARRAY(SELECT id::text FROM e ORDER BY id) AS event_ids`;

interface StatementRow {
  body: string;
  states: DeviceStateRow[];
  event_ids: string[];
}

/**
 * Applies a batch of informs in one statement: every device's status, its presence deadline
 * (`now() + k × interval + grace`, the tenant's k and grace or the policy's), back online and the offline
 * alarm cleared, and every item's answer. Informs of one device are folded (foldInforms); an inform not
 * after the device's last one changes nothing (`duplicate`), so a retried batch is harmless.
 * `decided`: answers of items refused before the write, merged into the answer in index order.
 */
export async function writeInformBatch(
  pool: PgPool,
  batch: {
    scopeTenantId: number | null;
    policy: Pick<PresencePolicy, 'intervals' | 'graceS'>;
    items: readonly InformWrite[];
    decided: unknown[];
  },
): Promise<InformBatchResult> {
  const folded = foldInforms(batch.items);
  const col = <T>(f: (w: InformWrite, indexes: number[]) => T): T[] =>
    folded.map(({ write, indexes }) => f(write, indexes));
  for (let attempt = 0; ; attempt++) {
    try {
      const { rows } = await pool.query<StatementRow>({
        name: 'write_inform_batch',
        text: INFORM_STATEMENT,
        values: [
          batch.scopeTenantId,
          batch.policy.intervals,
          batch.policy.graceS,
          DEVICE_KEPT_PARAMETERS_MAX,
          JSON.stringify(batch.decided),
          col((w) => w.index),
          col((w) => w.deviceId),
          col((w) => w.informedAt),
          col((w) => w.bootAt),
          col((w) => JSON.stringify(w.eventCodes)),
          col((w) => w.periodicInformIntervalS),
          col((w) => w.softwareVersion),
          col((w) => w.hardwareVersion),
          col((w) => w.uptimeS),
          col((w) => (w.parameters ? JSON.stringify(w.parameters) : null)),
          col((_w, indexes) => JSON.stringify(indexes)),
        ],
      });
      const row = rows[0]!;
      return { bodyJson: row.body, states: row.states, eventIds: row.event_ids };
    } catch (err) {
      // Rows are locked in id order, so only a transaction outside this module can deadlock with it.
      if ((err as { code?: unknown }).code === '40P01' && attempt < 3) continue;
      throw err;
    }
  }
}

// $1 limit, $2 default offline alarm, then the alarm's TR-181 fields $3..$8.
const DETECT_STATEMENT = `
  WITH due AS (
    SELECT s.device_id, s.tenant_id, s.last_inform_at FROM device_status s
     WHERE s.online AND s.offline_at <= now()
     ORDER BY s.offline_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
  ),
  raised AS (
    INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
      perceived_severity, managed_object_instance, additional_text, raised_at, changed_at)
    SELECT due.tenant_id, due.device_id, $3, $4, $5, $6, $7::perceived_severity, $8,
           'no inform since ' || to_char(due.last_inform_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           now(), now()
      FROM due JOIN tenants t ON t.id = due.tenant_id
     WHERE COALESCE(t.device_offline_alarm, $2::bool)
     ORDER BY due.device_id
    ON CONFLICT (tenant_id, (COALESCE(device_id, 0)), alarm_identifier) WHERE cleared_at IS NULL
    DO UPDATE SET changed_at = EXCLUDED.changed_at, additional_text = EXCLUDED.additional_text
    RETURNING alarms.*, CASE WHEN alarms.xmax = 0 THEN 'alarm.created' ELSE 'alarm.updated' END AS kind
  ),
  e AS (${insertAlarmEventsSql('raised', 'raised.kind', 'raised.id')}),
  -- Each raised alarm's id by its device, read by one lookup per device in a jsonb object evaluated once:
  -- joining due to raised, Postgres (which estimates one row for a CTE fed by RETURNING) chose a nested
  -- loop, a scan of raised per device (999,000 rows filtered for a batch of 1,000: 356 of its 426 ms).
  raised_by_device AS (SELECT jsonb_object_agg(device_id::text, id) AS m FROM raised),
  went AS (
    UPDATE device_status s SET online = false, status_changed_at = now(), version = s.version + 1,
           offline_alarm_id = COALESCE(((SELECT m FROM raised_by_device) ->> s.device_id::text)::bigint,
                                       s.offline_alarm_id)
      FROM due
     WHERE s.device_id = due.device_id
    RETURNING s.*
  ),
  done AS (
    SELECT w.*, ${deviceStatusWireSql('w', 'd')} AS wire FROM went w JOIN cpe_devices d ON d.id = w.device_id
  )
  SELECT (SELECT COALESCE(json_agg(json_build_object('deviceId', device_id, 'tenantId', tenant_id,
                    'version', version::text, 'changed', json_build_array('online'), 'state', wire::text,
                    'presenceChanged', true)), '[]'::json) FROM done) AS states,
         ARRAY(SELECT id::text FROM e ORDER BY id) AS event_ids`;

/**
 * The presence detector's step: up to `limit` online devices whose deadline has passed go offline, oldest
 * deadline first, each with its offline alarm where the tenant (or the default) wants one. The cost is the
 * devices that are due (an index range on device_status_offline_due_idx), and FOR UPDATE SKIP LOCKED lets
 * any number of detectors run at once without taking a device twice; an inform holding a device's row
 * makes the detector skip it (the inform moves its deadline anyway).
 */
export async function detectOfflineDevices(
  pool: PgPool,
  limit: number,
  defaultOfflineAlarm: boolean,
): Promise<{ states: DeviceStateRow[]; eventIds: string[] }> {
  const a = DEVICE_OFFLINE_ALARM;
  const { rows } = await pool.query<{ states: DeviceStateRow[]; event_ids: string[] }>({
    name: 'detect_offline_devices',
    text: DETECT_STATEMENT,
    values: [
      limit,
      defaultOfflineAlarm,
      a.alarmIdentifier,
      a.eventType,
      a.probableCause,
      a.specificProblem,
      a.perceivedSeverity,
      a.managedObjectInstance,
    ],
  });
  const row = rows[0]!;
  return { states: row.states, eventIds: row.event_ids };
}

const CLEAR_STRANDED_STATEMENT = `
  WITH stranded AS (
    SELECT s.device_id, s.offline_alarm_id FROM device_status s
     WHERE s.online AND s.offline_alarm_id IS NOT NULL
     ORDER BY s.device_id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
  ),
  cleared AS (
    UPDATE alarms a SET perceived_severity = 'Cleared', cleared_at = now(), changed_at = now()
      FROM stranded x
     WHERE a.id = x.offline_alarm_id AND a.cleared_at IS NULL
    RETURNING a.*, 'alarm.cleared' AS kind
  ),
  e AS (${insertAlarmEventsSql('cleared', 'cleared.kind', 'cleared.id')}),
  fixed AS (
    UPDATE device_status s SET offline_alarm_id = NULL FROM stranded x WHERE s.device_id = x.device_id
    RETURNING s.device_id
  )
  SELECT ARRAY(SELECT id::text FROM e ORDER BY id) AS event_ids, (SELECT count(*) FROM fixed)::int AS fixed`;

/**
 * Online devices that still point at an offline alarm: the inform that brought them back ran on a snapshot
 * taken before the detector's alarm committed, so it could not clear it. Normally none (a partial index of
 * nothing); the detector runs this each sweep, so such an alarm is cleared within one sweep.
 */
export async function clearStrandedOfflineAlarms(
  pool: PgPool,
  limit: number,
): Promise<{ eventIds: string[]; fixed: number }> {
  const { rows } = await pool.query<{ event_ids: string[]; fixed: number }>({
    name: 'clear_stranded_offline_alarms',
    text: CLEAR_STRANDED_STATEMENT,
    values: [limit],
  });
  return { eventIds: rows[0]!.event_ids, fixed: rows[0]!.fixed };
}

/**
 * Online, offline and total devices of each tenant in `tenantIds` (a tenant without devices: zeros), or of
 * every tenant that has devices (`'all'`: a scan of device_status, for the summaries at an ingest's start).
 */
export async function tenantDeviceCounts(
  pool: PgPool,
  tenantIds: readonly number[] | 'all',
): Promise<Map<number, { online: number; offline: number; total: number }>> {
  const counts = new Map<number, { online: number; offline: number; total: number }>();
  if (tenantIds !== 'all') {
    for (const id of tenantIds) counts.set(id, { online: 0, offline: 0, total: 0 });
    if (tenantIds.length === 0) return counts;
  }
  const { rows } = await pool.query<{ tenant_id: number; online: number; total: number }>({
    name: 'tenant_device_counts',
    text: `SELECT tenant_id, (count(*) FILTER (WHERE online))::int AS online, count(*)::int AS total
             FROM device_status WHERE $1::int[] IS NULL OR tenant_id = ANY($1::int[]) GROUP BY tenant_id`,
    values: [tenantIds === 'all' ? null : tenantIds],
  });
  for (const r of rows)
    counts.set(r.tenant_id, { online: r.online, offline: r.total - r.online, total: r.total });
  return counts;
}
