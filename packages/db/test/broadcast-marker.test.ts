import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import pg from 'pg';
import { BroadcastMarker, createPgPool, lockInIdOrder, markEnqueued, type PgPool } from '../src/index.js';
import { countingPool } from './counting-pool.js';

describe('BroadcastMarker', () => {
  let pool: PgPool;
  let drop: () => Promise<void>;
  let ids: string[];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    drop = db.drop;
    pool = createPgPool(db.url, { max: 4 });
    await pool.query(`INSERT INTO tenants (name, slug) VALUES ('t', 't')`);
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO outbox_events (tenant_id, kind, payload)
       SELECT 1, 'alarm.created', '{}'::jsonb FROM generate_series(1, 50) RETURNING id`,
    );
    ids = rows.map((r) => String(r.id));
  });
  afterAll(async () => {
    await pool.end();
    await drop();
  });

  it('marks every event, in fewer round trips than events when jobs finish together', async () => {
    const counting = countingPool(pool);
    const marker = new BroadcastMarker(counting.pool);
    await marker.mark(ids[0]!); // alone: its own UPDATE, at once
    expect(counting.queries()).toBe(1);
    await Promise.all(ids.slice(1).map((id) => marker.mark(id)));
    // The first of the 49 goes out alone; the other 48 gather behind it.
    expect(counting.queries()).toBe(3);
    const { rows } = await pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM outbox_events WHERE broadcast_at IS NOT NULL',
    );
    expect(Number(rows[0]!.n)).toBe(50);
  });

  it('leaves broadcast events out of the enqueue mark (their rows are not rewritten)', async () => {
    const { rows: fresh } = await pool.query<{ id: string }>(
      `INSERT INTO outbox_events (tenant_id, kind, payload)
       SELECT 1, 'alarm.created', '{}'::jsonb FROM generate_series(1, 2) RETURNING id::text`,
    );
    const [done, pending] = fresh.map((r) => r.id) as [string, string];
    await new BroadcastMarker(pool).mark(done);
    await markEnqueued(pool, [done, pending]);
    const { rows } = await pool.query<{ id: string; enqueued: boolean }>(
      'SELECT id::text, enqueued_at IS NOT NULL AS enqueued FROM outbox_events WHERE id = ANY($1::bigint[]) ORDER BY id',
      [[done, pending]],
    );
    expect(rows).toEqual([
      { id: done, enqueued: false },
      { id: pending, enqueued: true },
    ]);
  });

  it('rejects every waiting mark when its UPDATE fails, and recovers for the next ones', async () => {
    let fail = true;
    const flaky = countingPool(pool, () => fail).pool;
    const marker = new BroadcastMarker(flaky);
    const results = await Promise.allSettled(ids.slice(0, 3).map((id) => marker.mark(id)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    fail = false;
    await expect(marker.mark(ids[0]!)).resolves.toBeUndefined();
  });
});

describe('lockInIdOrder', () => {
  let url: string;
  let drop: () => Promise<void>;
  const N = 3000;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    ({ url, drop } = db);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`INSERT INTO tenants (name, slug) VALUES ('t', 't')`);
    // Physical order opposite to id order, as rows updated in another order end up.
    await client.query(
      `INSERT INTO outbox_events (id, tenant_id, kind, payload)
       SELECT g, 1, 'alarm.created', '{}'::jsonb FROM generate_series(${N}, 1, -1) g`,
    );
    await client.query('ANALYZE outbox_events');
    await client.end();
  });
  afterAll(async () => drop());

  /**
   * Two many-row UPDATEs of the same rows at once, one planned as an index scan (id order), the other as
   * a sequential scan (physical order): what the ingest's and the resolver's marks looked like when they
   * deadlocked. Returns the errors.
   */
  async function race(statement: (column: string) => string): Promise<unknown[]> {
    const ids = Array.from({ length: N }, (_, i) => i + 1);
    const clients = await Promise.all(
      ['enable_seqscan', 'enable_indexscan'].map(async (off) => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query(`SET ${off} = off; SET enable_bitmapscan = off; SET deadlock_timeout = '100ms'`);
        return c;
      }),
    );
    const errors: unknown[] = [];
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled([
        clients[0]!.query(statement('enqueued_at'), [ids]),
        clients[1]!.query(statement('broadcast_at'), [ids]),
      ]);
      for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
    }
    await Promise.all(clients.map((c) => c.end()));
    return errors;
  }

  it('deadlocks without it (the statements it replaced), and not with it', async () => {
    const unordered = await race(
      (column) => `UPDATE outbox_events SET ${column} = now() WHERE id = ANY($1::bigint[])`,
    );
    expect(unordered.map((e) => (e as { code?: string }).code)).toContain('40P01');
    const ordered = await race(
      (column) =>
        `UPDATE outbox_events o SET ${column} = now() FROM (${lockInIdOrder()}) l WHERE o.id = l.id`,
    );
    expect(ordered).toEqual([]);
  }, 60_000);
});
