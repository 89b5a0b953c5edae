import { ALARM_WIRE_FIELDS } from '@alarmcast/contracts';

/** An ISO 8601 UTC timestamp with milliseconds, as JavaScript's Date#toISOString writes it (null stays null). */
const iso = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * SQL building the snake_case wire form of the alarm row `alias` (a jsonb object) from contracts'
 * ALARM_WIRE_FIELDS, the same list toAlarmWire renders a Prisma row from (the ingest tests compare the
 * two). Statements that change an alarm build their outbox payload and answer with it, and the list query
 * answers with it, so none needs a second round trip or a mapping of its own.
 */
export function alarmWireSql(alias: string): string {
  const pairs = ALARM_WIRE_FIELDS.map((f) => {
    const c = `${alias}.${f.column}`;
    const value = f.render === 'bigint' ? `${c}::text` : f.render === 'time' ? iso(c) : c;
    return `'${f.wire}', ${value}`;
  });
  return `jsonb_build_object(${pairs.join(', ')})`;
}
