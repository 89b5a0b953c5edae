/** An ISO 8601 UTC timestamp with milliseconds, as JavaScript's Date#toISOString writes it (null stays null). */
const iso = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * SQL building the snake_case wire form of the alarm row `alias` (a jsonb object), exactly as contracts'
 * toAlarmWire builds it from a Prisma row (the ingest tests compare the two). Statements that change an alarm
 * build their outbox payload and answer with it, so that they need no second round trip to read the row back.
 */
export function alarmWireSql(alias: string): string {
  const c = (name: string): string => `${alias}.${name}`;
  return `jsonb_build_object(
    'id', ${c('id')}::text, 'tenant_id', ${c('tenant_id')}, 'device_id', ${c('device_id')},
    'alarm_identifier', ${c('alarm_identifier')}, 'event_type', ${c('event_type')},
    'probable_cause', ${c('probable_cause')}, 'specific_problem', ${c('specific_problem')},
    'perceived_severity', ${c('perceived_severity')}, 'managed_object_instance', ${c('managed_object_instance')},
    'additional_text', ${c('additional_text')}, 'additional_information', ${c('additional_information')},
    'raised_at', ${iso(c('raised_at'))}, 'changed_at', ${iso(c('changed_at'))},
    'cleared_at', ${iso(c('cleared_at'))}, 'acknowledged_at', ${iso(c('acknowledged_at'))})`;
}
