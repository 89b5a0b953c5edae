import type { PgPool } from './pool.js';

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
