import { ALARM_WIRE_FIELDS, isDeviceField } from '@alarmcast/contracts';

/** An ISO 8601 UTC timestamp with milliseconds, as JavaScript's Date#toISOString writes it (null stays null). */
const iso = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const rendered = (f: (typeof ALARM_WIRE_FIELDS)[number], c: string): string =>
  f.render === 'bigint' ? `${c}::text` : f.render === 'time' ? iso(c) : c;

/**
 * SQL building the snake_case wire form of the alarm row `alias` (a jsonb object) from contracts'
 * ALARM_WIRE_FIELDS, the same list toAlarmWire renders a Prisma row from (the ingest tests compare the
 * two). Statements that change an alarm build their outbox payload and answer with it, and the list query
 * answers with it, so none needs a second round trip or a mapping of its own.
 *
 * The device's fields (`from: 'device'`) come from one primary-key lookup of `cpe_devices` per alarm, a
 * scalar subquery so that every statement using this keeps its FROM clause; a device-less alarm (or none
 * found) gets them as null.
 */
export function alarmWireSql(alias: string): string {
  const own = ALARM_WIRE_FIELDS.filter((f) => !isDeviceField(f)).map(
    (f) => `'${f.wire}', ${rendered(f, `${alias}.${f.column}`)}`,
  );
  const deviceFields = ALARM_WIRE_FIELDS.filter(isDeviceField);
  const fromDevice = deviceFields.map((f) => `'${f.wire}', ${rendered(f, `d.${f.column}`)}`);
  const none = deviceFields.map((f) => `'${f.wire}', NULL`);
  return `(jsonb_build_object(${own.join(', ')}) || COALESCE(
    (SELECT jsonb_build_object(${fromDevice.join(', ')}) FROM cpe_devices d WHERE d.id = ${alias}.device_id),
    jsonb_build_object(${none.join(', ')})))`;
}
