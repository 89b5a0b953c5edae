import { describe, expect, it, afterAll } from 'vitest';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { applyMigrations, MIGRATIONS_DIR } from '../src/index.js';

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
        'SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at FROM "_prisma_migrations"',
      );
      const sql = await readFile(join(MIGRATIONS_DIR, '20261125000000_init', 'migration.sql'), 'utf8');
      expect(rows).toHaveLength(1);
      expect(rows[0].migration_name).toBe('20261125000000_init');
      expect(rows[0].checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(rows[0].finished_at).toBeInstanceOf(Date);
      expect(rows[0].applied_steps_count).toBe(1);
      expect(rows[0].rolled_back_at).toBeNull();
      const tables = await client.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      );
      expect(tables.rows.map((r) => r.tablename)).toEqual([
        '_prisma_migrations',
        'alarms',
        'collector_tokens',
        'cpe_devices',
        'outbox_events',
        'tenants',
        'user_devices',
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
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, 1]);
  });
});
