import type { AlarmEventData, OutboxKind, PerceivedSeverity } from '@alarmcast/contracts';
import type { PgPool } from './pool.js';

export interface CollectorTokenRow {
  id: number;
  tenantId: number | null;
  revoked: boolean;
}

export async function findCollectorToken(pool: PgPool, tokenHash: string): Promise<CollectorTokenRow | null> {
  const { rows } = await pool.query<{ id: number; tenant_id: number | null; revoked: boolean }>({
    name: 'find_collector_token',
    text: 'SELECT id, tenant_id, revoked_at IS NOT NULL AS revoked FROM collector_tokens WHERE token_hash = $1',
    values: [tokenHash],
  });
  const row = rows[0];
  return row ? { id: row.id, tenantId: row.tenant_id, revoked: row.revoked } : null;
}

/** The tenant of a device, or null if there is no such device. */
export async function findDeviceTenant(pool: PgPool, deviceId: number): Promise<number | null> {
  const { rows } = await pool.query<{ tenant_id: number }>({
    name: 'find_device_tenant',
    text: 'SELECT tenant_id FROM cpe_devices WHERE id = $1',
    values: [deviceId],
  });
  return rows[0]?.tenant_id ?? null;
}

export async function tenantExists(pool: PgPool, tenantId: number): Promise<boolean> {
  const { rowCount } = await pool.query({
    name: 'tenant_exists',
    text: 'SELECT 1 FROM tenants WHERE id = $1',
    values: [tenantId],
  });
  return (rowCount ?? 0) > 0;
}

export interface NewAlarm {
  tenantId: number;
  deviceId: number | null;
  alarmIdentifier: string;
  eventType: string;
  probableCause: string;
  specificProblem: string;
  perceivedSeverity: PerceivedSeverity;
  managedObjectInstance: string | null;
  additionalText: string | null;
  additionalInformation: string | null;
  raisedAt: Date;
  changedAt: Date;
  clearedAt: Date | null;
  sourceTokenId: number;
}

/**
 * Inserts an alarm and its outbox event in one statement (so one round trip, and atomic: a committed alarm
 * always has its event). `data` is the event's payload, built by the caller from the same values; the
 * alarm's id, known only once inserted, is written into `data.alarm.id` by the statement.
 */
export async function insertAlarmWithEvent(
  pool: PgPool,
  alarm: NewAlarm,
  kind: OutboxKind,
  data: AlarmEventData,
): Promise<{ alarmId: string; eventId: string }> {
  const { rows } = await pool.query<{ alarm_id: string; event_id: string }>({
    name: 'insert_alarm_with_event',
    text: `
      WITH a AS (
        INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
          perceived_severity, managed_object_instance, additional_text, additional_information,
          raised_at, changed_at, cleared_at, source_token_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7::perceived_severity, $8, $9, $10, $11, $12, $13, $14)
        RETURNING id, tenant_id, device_id
      )
      INSERT INTO outbox_events (tenant_id, device_id, kind, alarm_id, payload)
      SELECT a.tenant_id, a.device_id, $15, a.id, jsonb_set($16::jsonb, '{alarm,id}', to_jsonb(a.id::text))
        FROM a
      RETURNING alarm_id, id AS event_id`,
    values: [
      alarm.tenantId,
      alarm.deviceId,
      alarm.alarmIdentifier,
      alarm.eventType,
      alarm.probableCause,
      alarm.specificProblem,
      alarm.perceivedSeverity,
      alarm.managedObjectInstance,
      alarm.additionalText,
      alarm.additionalInformation,
      alarm.raisedAt,
      alarm.changedAt,
      alarm.clearedAt,
      alarm.sourceTokenId,
      kind,
      JSON.stringify(data),
    ],
  });
  const row = rows[0]!;
  return { alarmId: String(row.alarm_id), eventId: String(row.event_id) };
}
