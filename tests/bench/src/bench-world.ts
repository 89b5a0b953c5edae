/**
 * The benchmark's world, written straight with SQL (provisioning 10,000 users one API call at a time would
 * take longer than the benchmark), and the rule of who must receive what, computed here independently of
 * the resolver's query so that the harness can tell expected, missing and unexpected deliveries apart.
 */
import pg from 'pg';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { applyMigrations, createPgPool, ensureDatabase } from '@alarmcast/db';

export interface WorldShape {
  tenants: number;
  usersPerTenant: number;
  devicesPerTenant: number;
  /** every n-th user (0: nobody) has explicit shares into the next tenant... */
  shareEveryNthUser: number;
  /** ...of this many of its devices */
  sharesPerSharer: number;
}

export interface BenchWorld {
  shape: WorldShape;
  databaseUrl: string;
  userIds: number[];
  deviceIds: number[];
  /** who may see an alarm on the device: the device tenant's users and the device's share holders */
  recipientsOf: (deviceId: number) => ReadonlySet<number>;
  /** a platform-wide collector token (printed nowhere) */
  collectorToken: string;
  sharedUsers: number;
}

/** Database `name`, dropped and created anew and migrated, on the server of DATABASE_ADMIN_URL (default: local). */
export async function freshDatabase(name: string): Promise<string> {
  const adminUrl = process.env.DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const databaseUrl = adminUrl.replace(/\/[^/]*$/, `/${name}`);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  await ensureDatabase(databaseUrl);
  await applyMigrations(databaseUrl);
  return databaseUrl;
}

/** A fresh database `name` holding a world of `shape`. */
export async function provisionWorld(name: string, shape: WorldShape): Promise<BenchWorld> {
  const databaseUrl = await freshDatabase(name);

  const pool = createPgPool(databaseUrl, { max: 1 });
  const { tenants, usersPerTenant: upt, devicesPerTenant: dpt } = shape;
  await pool.query(
    `INSERT INTO tenants (name, slug) SELECT 't' || i, 't' || i FROM generate_series(1, $1) i`,
    [tenants],
  );
  await pool.query(
    `INSERT INTO users (tenant_id, email, name) SELECT (i - 1) / $2 + 1, 'u' || i || '@bench.test', 'u' || i
       FROM generate_series(1, $1) i`,
    [tenants * upt, upt],
  );
  await pool.query(
    `INSERT INTO cpe_devices (tenant_id, oui, product_class, serial_number)
     SELECT (i - 1) / $2 + 1, '00D09E', 'BENCH', 'S' || i FROM generate_series(1, $1) i`,
    [tenants * dpt, dpt],
  );
  if (shape.shareEveryNthUser > 0 && tenants > 1) {
    // User i (every n-th) sees devices k..k+sharesPerSharer-1 of the next tenant, k varying with i.
    await pool.query(
      `INSERT INTO user_devices (user_id, device_id)
       SELECT u.id, d.id
         FROM users u
         JOIN cpe_devices d ON d.tenant_id = u.tenant_id % $1 + 1
          AND (d.id - 1) % $2 >= (u.id - 1) % $2
          AND (d.id - 1) % $2 < (u.id - 1) % $2 + $3
        WHERE u.id % $4 = 0`,
      [tenants, dpt, shape.sharesPerSharer, shape.shareEveryNthUser],
    );
  }
  const collectorToken = generateCollectorToken();
  await pool.query('INSERT INTO collector_tokens (name, token_hash) VALUES ($1, $2)', [
    'bench collector',
    hashCollectorToken(collectorToken),
  ]);
  await pool.query('ANALYZE');

  const users = await pool.query<{ id: number; tenant_id: number }>(
    'SELECT id, tenant_id FROM users WHERE active ORDER BY id',
  );
  const devices = await pool.query<{ id: number; tenant_id: number }>(
    'SELECT id, tenant_id FROM cpe_devices ORDER BY id',
  );
  const shares = await pool.query<{ user_id: number; device_id: number }>(
    'SELECT user_id, device_id FROM user_devices',
  );
  await pool.end();

  const group = (pairs: [number, number][]) => {
    const m = new Map<number, number[]>();
    for (const [k, v] of pairs) (m.get(k) ?? m.set(k, []).get(k)!).push(v);
    return m;
  };
  const membersOf = group(users.rows.map((u) => [u.tenant_id, u.id]));
  const sharesOf = group(shares.rows.map((s) => [s.device_id, s.user_id]));
  const recipients = new Map<number, Set<number>>();
  for (const d of devices.rows) {
    recipients.set(d.id, new Set([...(membersOf.get(d.tenant_id) ?? []), ...(sharesOf.get(d.id) ?? [])]));
  }
  return {
    shape,
    databaseUrl,
    userIds: users.rows.map((u) => u.id),
    deviceIds: devices.rows.map((d) => d.id),
    recipientsOf: (deviceId) => recipients.get(deviceId) ?? new Set(),
    collectorToken,
    sharedUsers: new Set(shares.rows.map((s) => s.user_id)).size,
  };
}
