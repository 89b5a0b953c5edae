import type { AlarmRow, PerceivedSeverity } from '@alarmcast/contracts';
import { alarmWireSql } from './alarm-wire-sql.js';
import type { PgPool } from './pool.js';

/**
 * A user as alarm visibility needs them: an active user sees every alarm of their tenant (none for a platform
 * user without one) and the alarms of devices explicitly shared with them, whatever the device's tenant.
 * The same rule as the broadcast recipients (broadcast.ts), read from the alarm's side.
 */
export interface AlarmViewer {
  userId: number;
  tenantId: number | null;
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
         WHERE a.id = $1::bigint
           AND (a.tenant_id = $3::int
                OR EXISTS (SELECT 1 FROM user_devices s WHERE s.user_id = $2::int AND s.device_id = a.device_id))
         FOR UPDATE OF a
      ),
      u AS (
        UPDATE alarms SET acknowledged_at = $4::timestamptz, acknowledged_by = $2::int
          FROM t
         WHERE alarms.id = t.id AND t.acknowledged_at IS NULL
        RETURNING alarms.*
      ),
      e AS (
        INSERT INTO outbox_events (tenant_id, device_id, kind, alarm_id, payload)
        SELECT u.tenant_id, u.device_id, 'alarm.acknowledged', u.id, jsonb_build_object('alarm', ${alarmWireSql('u')})
          FROM u
        RETURNING id, payload
      )
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

/** Where a page ends: the state group (active before cleared) and the id of its last alarm. */
export interface AlarmListPosition {
  cleared: boolean;
  id: string;
}

export interface AlarmListFilter {
  state: 'active' | 'cleared' | 'all';
  severities?: readonly PerceivedSeverity[];
  deviceId?: number;
  limit: number;
  after?: AlarmListPosition;
}

/** An alarm row, mapped from node-postgres' snake_case columns into contracts' AlarmRow. */
export type AlarmListRow = AlarmRow;

interface RawAlarm {
  id: string;
  tenant_id: number;
  device_id: number | null;
  alarm_identifier: string;
  event_type: string;
  probable_cause: string;
  specific_problem: string;
  perceived_severity: PerceivedSeverity;
  managed_object_instance: string | null;
  additional_text: string | null;
  additional_information: string | null;
  raised_at: Date;
  changed_at: Date;
  cleared_at: Date | null;
  acknowledged_at: Date | null;
}

const COLUMNS = `a.id, a.tenant_id, a.device_id, a.alarm_identifier, a.event_type, a.probable_cause,
  a.specific_problem, a.perceived_severity, a.managed_object_instance, a.additional_text,
  a.additional_information, a.raised_at, a.changed_at, a.cleared_at, a.acknowledged_at`;

/**
 * One page of the alarms a viewer may see, active first, then newest (highest id) first; `limit + 1` rows are
 * read so the caller knows whether there is a next page.
 *
 * Keyset pagination: each state is read as its own id-descending range, from the tenant's alarms (index
 * alarms_tenant_{state}_id_idx) and from each shared device of another tenant (alarms_device_{state}_id_idx,
 * one LATERAL range per share), every range limited to the page size. So a page costs O(limit x (1 + shares))
 * index entries however deep it is. The statement text varies with the filters present (at most 16 variants),
 * each one a named prepared statement.
 */
export async function listVisibleAlarms(
  pool: PgPool,
  viewer: AlarmViewer,
  filter: AlarmListFilter,
): Promise<AlarmListRow[]> {
  const values: unknown[] = [viewer.userId, viewer.tenantId, filter.limit + 1];
  const param = (v: unknown): string => `$${values.push(v)}`;
  const extra: string[] = [];
  if (filter.severities)
    extra.push(`a.perceived_severity = ANY(${param(filter.severities)}::perceived_severity[])`);
  if (filter.deviceId !== undefined) extra.push(`a.device_id = ${param(filter.deviceId)}::int`);

  const groups = (
    [
      { cleared: false, predicate: 'a.cleared_at IS NULL' },
      { cleared: true, predicate: 'a.cleared_at IS NOT NULL' },
    ] as const
  ).filter(
    (g) =>
      (filter.state === 'all' || (filter.state === 'cleared') === g.cleared) &&
      // After a page that ended in the cleared group, the active group is done.
      !(filter.after?.cleared === true && !g.cleared),
  );
  const ranges: string[] = [];
  const variant: string[] = [];
  for (const g of groups) {
    const conditions = [g.predicate, ...extra];
    if (filter.after && filter.after.cleared === g.cleared) {
      conditions.push(`a.id < ${param(filter.after.id)}::bigint`);
      variant.push(`${g.cleared ? 'c' : 'a'}<`);
    } else variant.push(g.cleared ? 'c' : 'a');
    const where = conditions.join(' AND ');
    ranges.push(
      `(SELECT ${COLUMNS} FROM alarms a WHERE a.tenant_id = $2::int AND ${where} ORDER BY a.id DESC LIMIT $3)`,
      `(SELECT x.* FROM user_devices s CROSS JOIN LATERAL (
          SELECT ${COLUMNS} FROM alarms a
           WHERE a.device_id = s.device_id AND a.tenant_id IS DISTINCT FROM $2::int AND ${where}
           ORDER BY a.id DESC LIMIT $3) x
         WHERE s.user_id = $1::int)`,
    );
  }
  if (ranges.length === 0) return [];
  if (filter.severities) variant.push('s');
  if (filter.deviceId !== undefined) variant.push('d');
  const { rows } = await pool.query<RawAlarm>({
    name: `list_alarms_${variant.join('_')}`,
    text: `SELECT * FROM (${ranges.join('\nUNION ALL\n')}) page
            ORDER BY (page.cleared_at IS NOT NULL), page.id DESC LIMIT $3`,
    values,
  });
  return rows.map((r) => ({
    id: BigInt(r.id),
    tenantId: r.tenant_id,
    deviceId: r.device_id,
    alarmIdentifier: r.alarm_identifier,
    eventType: r.event_type,
    probableCause: r.probable_cause,
    specificProblem: r.specific_problem,
    perceivedSeverity: r.perceived_severity,
    managedObjectInstance: r.managed_object_instance,
    additionalText: r.additional_text,
    additionalInformation: r.additional_information,
    raisedAt: r.raised_at,
    changedAt: r.changed_at,
    clearedAt: r.cleared_at,
    acknowledgedAt: r.acknowledged_at,
  }));
}
