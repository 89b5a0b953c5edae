import { DEVICE_STATUS_WIRE_FIELDS } from '@alarmcast/contracts';

/** As alarm-wire-sql.ts: an ISO 8601 UTC timestamp with milliseconds, as Date#toISOString writes it. */
const iso = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * SQL building a device's status in wire form (a jsonb object) from contracts' DEVICE_STATUS_WIRE_FIELDS,
 * with `status` the alias of a device_status row and `device` that of its cpe_devices row. The inform and
 * presence statements answer with it (it is what goes to Redis as the device's state), and the device
 * reads list with it, so none maps rows of its own.
 */
export function deviceStatusWireSql(status: string, device: string): string {
  const pairs = DEVICE_STATUS_WIRE_FIELDS.map((f) => {
    const c = `${f.table === 'd' ? device : status}.${f.column}`;
    const value = f.render === 'time' ? iso(c) : f.render === 'texts' ? `to_jsonb(${c})` : c;
    return `'${f.wire}', ${value}`;
  });
  return `jsonb_build_object(${pairs.join(', ')})`;
}
