import { z } from 'zod';
import { PERCEIVED_SEVERITIES } from './ingest.js';

/**
 * The alarm as clients see it (events, API answers), defined once: each wire field with the `alarms`
 * column it comes from and how it is rendered. The zod schema, the TypeScript mapping of a Prisma row
 * (`toAlarmWire`) and the SQL that builds the same JSON inside a statement (packages/db `alarmWireSql`)
 * are all derived from this list, so a new field is one line here plus its column in the schema.
 *
 * A field `from: 'device'` is a column of the alarm's device (`cpe_devices`, joined on `alarms.device_id`), so
 * operators see which CPE it is without a lookup of their own; it is null for a device-less alarm. It is the
 * device as it was when the event was written (a renamed device shows its new name from its next event on).
 *
 * Renderings: `bigint` as a decimal string (JSON numbers lose precision past 2^53), `int` as a number,
 * `time` as an ISO 8601 UTC string with milliseconds (`Date#toISOString`), `text` and `severity` as they are;
 * `nullable` fields are JSON null when the column is.
 */
export const ALARM_WIRE_FIELDS = [
  { wire: 'id', column: 'id', render: 'bigint', nullable: false },
  { wire: 'tenant_id', column: 'tenant_id', render: 'int', nullable: false },
  { wire: 'device_id', column: 'device_id', render: 'int', nullable: true },
  { wire: 'device_name', column: 'name', from: 'device', render: 'text', nullable: true },
  { wire: 'device_serial_number', column: 'serial_number', from: 'device', render: 'text', nullable: true },
  { wire: 'alarm_identifier', column: 'alarm_identifier', render: 'text', nullable: false },
  { wire: 'event_type', column: 'event_type', render: 'text', nullable: false },
  { wire: 'probable_cause', column: 'probable_cause', render: 'text', nullable: false },
  { wire: 'specific_problem', column: 'specific_problem', render: 'text', nullable: false },
  { wire: 'perceived_severity', column: 'perceived_severity', render: 'severity', nullable: false },
  { wire: 'managed_object_instance', column: 'managed_object_instance', render: 'text', nullable: true },
  { wire: 'additional_text', column: 'additional_text', render: 'text', nullable: true },
  { wire: 'additional_information', column: 'additional_information', render: 'text', nullable: true },
  { wire: 'raised_at', column: 'raised_at', render: 'time', nullable: false },
  { wire: 'changed_at', column: 'changed_at', render: 'time', nullable: false },
  { wire: 'cleared_at', column: 'cleared_at', render: 'time', nullable: true },
  { wire: 'acknowledged_at', column: 'acknowledged_at', render: 'time', nullable: true },
] as const;

type Field = (typeof ALARM_WIRE_FIELDS)[number];
type AlarmField = Exclude<Field, { from: 'device' }>;
type DeviceField = Extract<Field, { from: 'device' }>;

/** Whether a wire field is a column of the alarm's device rather than of the alarm. */
export const isDeviceField = (f: Field): f is DeviceField => 'from' in f && f.from === 'device';
type Rendered<F extends Field> = (
  F['render'] extends 'int'
    ? number
    : F['render'] extends 'severity'
      ? (typeof PERCEIVED_SEVERITIES)[number]
      : string
) extends infer T
  ? F['nullable'] extends true
    ? T | null
    : T
  : never;

const renderSchema = {
  bigint: z.string().regex(/^[1-9]\d{0,18}$/),
  int: z.number().int(),
  text: z.string(),
  severity: z.enum(PERCEIVED_SEVERITIES),
  time: z.iso.datetime(),
} as const;

/** An alarm as clients see it: snake_case, ids as JSON numbers (alarm ids as strings: they are bigints). */
export type AlarmWire = { [F in Field as F['wire']]: Rendered<F> };

export const AlarmWire: z.ZodType<AlarmWire> = z
  .object(
    Object.fromEntries(
      ALARM_WIRE_FIELDS.map((f) => [
        f.wire,
        f.nullable ? renderSchema[f.render].nullable() : renderSchema[f.render],
      ]),
    ),
  )
  .strict() as unknown as z.ZodType<AlarmWire>;

/** snake_case column → the camelCase name Prisma gives it. */
type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
const camel = (s: string): string => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

type RowValue<F extends Field> = (
  F['render'] extends 'bigint' ? bigint : F['render'] extends 'time' ? Date : Rendered<F>
) extends infer T
  ? F['nullable'] extends true
    ? NonNullable<T> | null
    : NonNullable<T>
  : never;

/**
 * The columns of an alarm row that clients see, as the Prisma client returns them, with its device's
 * (`include: { device: true }`; null for a device-less alarm).
 */
export type AlarmRow = { [F in AlarmField as Camel<F['column']>]: RowValue<F> } & {
  device: { [F in DeviceField as Camel<F['column']>]: NonNullable<RowValue<F>> | null } | null;
};

/** An alarm row in the snake_case shape of the wire contract. */
export function toAlarmWire(row: AlarmRow): AlarmWire {
  const values = row as unknown as Record<string, unknown>;
  const device = row.device as Record<string, unknown> | null;
  const out: Record<string, unknown> = {};
  for (const f of ALARM_WIRE_FIELDS) {
    const v = isDeviceField(f) ? device?.[camel(f.column)] : values[camel(f.column)];
    out[f.wire] =
      v === null || v === undefined
        ? null
        : f.render === 'bigint'
          ? (v as bigint).toString()
          : f.render === 'time'
            ? (v as Date).toISOString()
            : v;
  }
  return out as AlarmWire;
}
