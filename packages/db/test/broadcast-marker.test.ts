import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { BroadcastMarker, createPgPool, type PgPool } from '../src/index.js';

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
    let updates = 0;
    const counting = new Proxy(pool, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? (...args: Parameters<PgPool['query']>) => {
              updates++;
              return (target.query as (...a: unknown[]) => unknown).apply(target, args);
            }
          : Reflect.get(target, prop, receiver),
    });
    const marker = new BroadcastMarker(counting);
    await marker.mark(ids[0]!); // alone: its own UPDATE, at once
    expect(updates).toBe(1);
    await Promise.all(ids.slice(1).map((id) => marker.mark(id)));
    // The first of the 49 goes out alone; the other 48 gather behind it.
    expect(updates).toBe(3);
    const { rows } = await pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM outbox_events WHERE broadcast_at IS NOT NULL',
    );
    expect(Number(rows[0]!.n)).toBe(50);
  });

  it('rejects every waiting mark when its UPDATE fails, and recovers for the next ones', async () => {
    let fail = true;
    const flaky = new Proxy(pool, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? (...args: Parameters<PgPool['query']>) =>
              fail
                ? Promise.reject(new Error('connection lost'))
                : (target.query as (...a: unknown[]) => unknown).apply(target, args)
          : Reflect.get(target, prop, receiver),
    });
    const marker = new BroadcastMarker(flaky);
    const results = await Promise.allSettled(ids.slice(0, 3).map((id) => marker.mark(id)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    fail = false;
    await expect(marker.mark(ids[0]!)).resolves.toBeUndefined();
  });
});
