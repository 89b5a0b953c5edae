import { DEVICE_STATUS_WIRE_FIELDS } from '@alarmcast/contracts';
import { viewerMaySeeSql, type AlarmViewer } from './access.js';
import type { PgPool } from './pool.js';

/**
 * The user API's device reads: the devices a viewer may see (access.ts: their tenant's, and those shared
 * with them), each in the wire form of `DeviceStatusChanged`'s `device`, built in SQL.
 */

const iso = (column: string): string =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The wire form of device `d` (cpe_devices) with its status `s` (device_status), from the one field list. */
function deviceWireSql(d: string, s: string): string {
  const pairs = DEVICE_STATUS_WIRE_FIELDS.map((f) => {
    const c = `${f.table === 'd' ? d : s}.${f.column}`;
    const value =
      f.render === 'time'
        ? iso(c)
        : f.render === 'int'
          ? `${c}::bigint`
          : f.render === 'texts'
            ? `to_jsonb(${c})`
            : c;
    return `'${f.wire}', ${value}`;
  });
  return `jsonb_build_object(${pairs.join(', ')})`;
}

export interface DeviceListFilter {
  /** only online (true) or offline (false) devices */
  online?: boolean;
  limit: number;
  /** the previous page's last device id */
  afterId?: number;
}

export interface DeviceListRow {
  id: number;
  deviceJson: string;
}

/**
 * One page of the devices a viewer may see, by id ascending; `limit + 1` rows are read so the caller knows
 * whether there is a next page. Two keyset ranges, each limited to the page: the tenant's devices (through
 * device_status' (tenant_id, online) index when filtering by presence, cpe_devices' tenant index otherwise)
 * and the devices shared with the viewer (user_devices by user), merged and cut to the page.
 */
export async function listVisibleDevices(
  pool: PgPool,
  viewer: AlarmViewer,
  filter: DeviceListFilter,
): Promise<DeviceListRow[]> {
  const online = filter.online ?? null;
  const { rows } = await pool.query<{ id: number; device: string }>({
    name: 'list_visible_devices',
    text: `
      WITH page AS (
        SELECT id FROM (
          (SELECT s.device_id AS id FROM device_status s
            WHERE s.tenant_id = $2::int AND ($4::boolean IS NULL OR s.online = $4::boolean)
              AND s.device_id > $5::int
            ORDER BY s.device_id LIMIT $3)
          UNION
          (SELECT sh.device_id FROM user_devices sh JOIN device_status s ON s.device_id = sh.device_id
            WHERE sh.user_id = $1::int AND ($4::boolean IS NULL OR s.online = $4::boolean)
              AND sh.device_id > $5::int
            ORDER BY sh.device_id LIMIT $3)
        ) visible ORDER BY id LIMIT $3
      )
      SELECT d.id, ${deviceWireSql('d', 's')}::text AS device
        FROM page JOIN cpe_devices d ON d.id = page.id JOIN device_status s ON s.device_id = d.id
       ORDER BY d.id`,
    values: [viewer.userId, viewer.tenantId, filter.limit + 1, online, filter.afterId ?? 0],
  });
  return rows.map((r) => ({ id: r.id, deviceJson: r.device }));
}

/** The device's wire form if the viewer may see it; null for one they may not see, as for none. */
export async function findVisibleDevice(
  pool: PgPool,
  viewer: AlarmViewer,
  deviceId: number,
): Promise<string | null> {
  const { rows } = await pool.query<{ device: string }>({
    name: 'find_visible_device',
    // `st`, not `s`: viewerMaySeeSql's own subquery names user_devices `s`.
    text: `SELECT ${deviceWireSql('d', 'st')}::text AS device
             FROM cpe_devices d JOIN device_status st ON st.device_id = d.id
            WHERE d.id = $1::int AND ${viewerMaySeeSql('st', '$2', '$3')}`,
    values: [deviceId, viewer.userId, viewer.tenantId],
  });
  return rows[0]?.device ?? null;
}

/** The tenant's device counts in the wire form of `TenantDeviceSummary`'s `summary`, counted now. */
export async function tenantDeviceSummary(pool: PgPool, tenantId: number): Promise<string> {
  const { rows } = await pool.query<{ summary: string }>({
    name: 'tenant_device_summary',
    text: `SELECT jsonb_build_object('tenant_id', $1::int,
                    'online', count(*) FILTER (WHERE online), 'offline', count(*) FILTER (WHERE NOT online),
                    'total', count(*), 'counted_at', ${iso('now()')})::text AS summary
             FROM device_status WHERE tenant_id = $1::int`,
    values: [tenantId],
  });
  return rows[0]!.summary;
}
