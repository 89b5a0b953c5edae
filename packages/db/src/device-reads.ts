import { viewerMaySeeSql, type AlarmViewer } from './access.js';
import { deviceStatusWireSql } from './device-status-wire-sql.js';
import type { PgPool } from './pool.js';

/**
 * The user API's device reads: the devices a viewer may see (access.ts: their tenant's, and those shared
 * with them), each in the wire form of `DeviceStatusChanged`'s `device`, built in SQL
 * (device-status-wire-sql.ts). The tenant summary's counts are device-status.ts' `tenantDeviceCounts`.
 */

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
      SELECT d.id, ${deviceStatusWireSql('s', 'd')}::text AS device
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
    text: `SELECT ${deviceStatusWireSql('st', 'd')}::text AS device
             FROM cpe_devices d JOIN device_status st ON st.device_id = d.id
            WHERE d.id = $1::int AND ${viewerMaySeeSql('st', '$2', '$3')}`,
    values: [deviceId, viewer.userId, viewer.tenantId],
  });
  return rows[0]?.device ?? null;
}
