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
  // Sessions still on the database belong to services of another run, or ones an interrupted run left
  // behind. FORCE ends the sessions, but the services' pools reconnect by name to the new database and
  // share its work. Their presence detectors then take offline transitions that they publish under their
  // own Redis prefix, so the measured system never sees them. Say so: such a run's figures are not its own.
  const { rows: others } = await admin.query<{ pid: number; app: string; since: string }>(
    `SELECT pid, application_name AS app, to_char(backend_start, 'HH24:MI:SS') AS since
       FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
    [name],
  );
  if (others.length > 0)
    process.stderr.write(
      `[bench] WARNING: ${others.length} session(s) of other processes on database ${name} ` +
        `(${others.map((o) => `pid ${o.pid}${o.app ? ` ${o.app}` : ''} since ${o.since}`).join(', ')}): ` +
        'stop the services of other runs first, or they reconnect to the new database and skew this run\n',
    );
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

/**
 * Gives every user of the database notification preferences, the issue's realistic mix, by user id mod 20:
 * 30 % a minimum severity (Major: the benchmark's Major alarms pass it, but it is evaluated), 10 % quiet
 * hours now (a window over the whole of today, UTC: delivered silently), 5 % a muted device (the lowest id
 * of their tenant: its alarms are suppressed for them), and the other 55 % a rule that never matches (a muted
 * event type the benchmark does not raise). Returns each muting user's muted device.
 */
export async function holdPreferences(databaseUrl: string, now = new Date()): Promise<Map<number, number>> {
  const pool = createPgPool(databaseUrl, { max: 1 });
  const today = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][now.getUTCDay()]!;
  const { rows } = await pool.query<{ user_id: number; muted: string | null }>(
    `INSERT INTO user_preferences (user_id, rules, version)
     SELECT u.id, CASE
         WHEN u.id % 20 < 6 THEN '{"minSeverity":"Major"}'::jsonb
         WHEN u.id % 20 < 8 THEN jsonb_build_object('quietHours', jsonb_build_object('timeZone', 'UTC',
           'windows', jsonb_build_array(jsonb_build_object('days', jsonb_build_array($1::text),
             'start', '00:00', 'end', '24:00'))))
         WHEN u.id % 20 = 8 THEN jsonb_build_object('mute', jsonb_build_object('devices',
           jsonb_build_array((SELECT min(d.id) FROM cpe_devices d WHERE d.tenant_id = u.tenant_id))))
         ELSE '{"mute":{"eventTypes":["Environmental Alarm"]}}'::jsonb
       END, 1
       FROM users u WHERE u.tenant_id IS NOT NULL
     ON CONFLICT (user_id) DO UPDATE SET rules = EXCLUDED.rules, version = user_preferences.version + 1
     RETURNING user_id, rules->'mute'->'devices'->>0 AS muted`,
    [today],
  );
  await pool.query('ANALYZE user_preferences');
  await pool.end();
  return new Map(rows.filter((r) => r.muted !== null).map((r) => [r.user_id, Number(r.muted)]));
}

/** `world` once its users hold preferences: a muted device's alarms are not expected at its muters. */
export function withPreferences(world: BenchWorld, muted: ReadonlyMap<number, number>): BenchWorld {
  const cache = new Map<number, ReadonlySet<number>>();
  return {
    ...world,
    recipientsOf: (deviceId) => {
      let set = cache.get(deviceId);
      if (!set) {
        set = new Set([...world.recipientsOf(deviceId)].filter((u) => muted.get(u) !== deviceId));
        cache.set(deviceId, set);
      }
      return set;
    },
  };
}
