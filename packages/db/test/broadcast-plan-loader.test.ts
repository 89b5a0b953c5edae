import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { BroadcastPlanLoader, createPgPool, loadBroadcastPlan, type PgPool } from '../src/index.js';
import { countingPool } from './counting-pool.js';

describe('BroadcastPlanLoader (real Postgres)', () => {
  let pool: PgPool;
  let drop: () => Promise<void>;
  let ids: string[];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    drop = db.drop;
    pool = createPgPool(db.url, { max: 4 });
    await pool.query(`INSERT INTO tenants (name, slug) VALUES ('t', 't'), ('u', 'u')`);
    await pool.query(
      `INSERT INTO users (tenant_id, email, name) SELECT 1 + (g % 2), 'u' || g || '@x', 'u' FROM generate_series(1, 6) g`,
    );
    await pool.query(
      `INSERT INTO cpe_devices (tenant_id, oui, product_class, serial_number) VALUES (1, 'O', 'P', 'S')`,
    );
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO outbox_events (tenant_id, device_id, kind, payload)
       SELECT 1 + (g % 2), CASE WHEN g % 2 = 0 THEN 1 END, 'alarm.created', jsonb_build_object('n', g)
         FROM generate_series(1, 40) g ORDER BY g RETURNING id`,
    );
    ids = rows.map((r) => String(r.id));
  });
  afterAll(async () => {
    await pool.end();
    await drop();
  });

  it('loads concurrent plans in a few queries, each identical to loading it alone', async () => {
    const counting = countingPool(pool);
    const loader = new BroadcastPlanLoader(counting.pool);
    const plans = await Promise.all([...ids, ids[3]!, '999999'].map((id) => loader.load(id)));
    // The first goes alone; the other 41 asks (one id twice, one unknown) gather behind it.
    expect(counting.queries()).toBe(2);
    expect(plans.at(-1)).toBeNull();
    expect(plans.at(-2)).toEqual(plans[3]);
    for (const [i, id] of ids.entries()) expect(plans[i]).toEqual(await loadBroadcastPlan(pool, id));
    // Device events see the device's earlier pending ones, with their payloads.
    expect(plans[3]!.pendingBefore.map((p) => p.eventId)).toEqual([ids[1]]);
    expect(JSON.parse(plans[3]!.pendingBefore[0]!.payloadJson)).toEqual({ n: 2 });
    expect(plans[3]!.recipients.sort()).toEqual([2, 4, 6]);
  });
});
