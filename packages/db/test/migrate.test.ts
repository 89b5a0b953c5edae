import { describe, expect, it, afterAll } from 'vitest';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { applyMigrations, MIGRATIONS_DIR } from '../src/index.js';

const migrationNames = async (): Promise<string[]> =>
  (await readdir(MIGRATIONS_DIR, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

describe('applyMigrations', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('records each migration as prisma migrate deploy does, and is idempotent', async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    cleanups.push(db.drop);
    // The template is already migrated: a second run applies nothing.
    expect((await applyMigrations(db.url)).applied).toEqual([]);

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at
           FROM "_prisma_migrations" ORDER BY migration_name`,
      );
      const names = await migrationNames();
      expect(names.slice(0, 2)).toEqual(['20261125000000_init', '20261125120000_alarm_lifecycle']);
      expect(rows.map((r) => r.migration_name)).toEqual(names);
      for (const [i, name] of names.entries()) {
        const sql = await readFile(join(MIGRATIONS_DIR, name, 'migration.sql'), 'utf8');
        expect(rows[i].checksum).toBe(createHash('sha256').update(sql).digest('hex'));
        expect(rows[i].finished_at).toBeInstanceOf(Date);
        expect(rows[i].applied_steps_count).toBe(1);
        expect(rows[i].rolled_back_at).toBeNull();
      }
      const tables = await client.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      );
      expect(tables.rows.map((r) => r.tablename)).toEqual([
        '_prisma_migrations',
        'alarm_audiences',
        'alarms',
        'campaign_count_shards',
        'campaign_devices',
        'collector_tokens',
        'cpe_devices',
        'device_status',
        'device_tasks',
        'firmware_campaigns',
        'idempotency_keys',
        'outbox_events',
        'tenant_preferences',
        'tenants',
        'user_devices',
        'user_preferences',
        'users',
      ]);
    } finally {
      await client.end();
    }
  });

  it('refuses a migration edited after it was applied', async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    cleanups.push(db.drop);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query(`UPDATE "_prisma_migrations" SET checksum = 'x'`);
    await client.end();
    await expect(applyMigrations(db.url)).rejects.toThrow(/edited after it was applied/);
  });

  it('applies concurrently from several processes without applying twice', async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    cleanups.push(db.drop);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    // Start from an empty database.
    await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
    await client.end();
    const results = await Promise.all([
      applyMigrations(db.url),
      applyMigrations(db.url),
      applyMigrations(db.url),
    ]);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, (await migrationNames()).length]);
  });

  it('alarm_lifecycle closes older duplicates of an active alarm before making identifiers unique', async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    cleanups.push(db.drop);
    const initOnly = await mkdtemp(join(tmpdir(), 'ac-migrations-'));
    cleanups.push(() => rm(initOnly, { recursive: true, force: true }));
    await cp(join(MIGRATIONS_DIR, '20261125000000_init'), join(initOnly, '20261125000000_init'), {
      recursive: true,
    });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
      await applyMigrations(db.url, initOnly);
      await client.query(`INSERT INTO tenants (id, name, slug) VALUES (1, 't', 't')`);
      await client.query(`INSERT INTO cpe_devices (id, tenant_id, oui, product_class, serial_number)
                          VALUES (1, 1, '00D09E', 'PC', 'S1')`);
      // Three active "wan" rows on the device, two device-less "quota" rows, one already cleared "wan".
      await client.query(`INSERT INTO alarms (id, tenant_id, device_id, alarm_identifier, event_type, probable_cause,
                            specific_problem, perceived_severity, raised_at, changed_at, cleared_at)
                          SELECT v.id, 1, v.dev, v.ident, 'e', 'p', 's', 'Major', now(), now(), v.cleared
                            FROM (VALUES (1, 1, 'wan', NULL::timestamptz), (2, 1, 'wan', NULL), (3, 1, 'wan', NULL),
                                         (4, NULL, 'quota', NULL), (5, NULL, 'quota', NULL),
                                         (6, 1, 'wan', now())) AS v(id, dev, ident, cleared)`);
      await client.query(`SELECT setval('alarms_id_seq', 100)`);
      expect((await applyMigrations(db.url)).applied).toContain('20261125120000_alarm_lifecycle');
      const { rows } = await client.query<{ id: string }>(
        'SELECT id FROM alarms WHERE cleared_at IS NULL ORDER BY id',
      );
      expect(rows.map((r) => Number(r.id))).toEqual([3, 5]);
      await expect(
        client.query(`INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause,
                        specific_problem, perceived_severity, raised_at, changed_at)
                      VALUES (1, NULL, 'quota', 'e', 'p', 's', 'Major', now(), now())`),
      ).rejects.toThrow(/alarms_active_identifier_key/);
    } finally {
      await client.end();
    }
  });
});
