import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import {
  createPgPool,
  detectOfflineDevices,
  writeAlarmBatch,
  type AlarmBatchItem,
  type PgPool,
} from '../src/index.js';

/**
 * The many-row statements must do work in proportion to their rows. Postgres estimates one row for every
 * CTE fed by RETURNING, so a join between two such CTEs becomes a nested loop: a scan of one per row of
 * the other, n² for a batch of n (it cost a 1,000-alarm batch ~190 of its ~290 ms, and a presence sweep
 * of 1,000 devices 356 of 426 ms). Timing would be flaky; the plan's own row counts are not. auto_explain
 * (loaded into this test's one connection, not into the server) hands each statement's executed plan to
 * the client as a notice; the rows every node produced or filtered out, summed, measure the work.
 */
const N = 1000;

/** Rows produced (times loops) and rows filtered out, over every node of an executed plan. */
function rowsTouched(node: Record<string, unknown>): number {
  const loops = Number(node['Actual Loops'] ?? 1);
  let n = Number(node['Actual Rows'] ?? 0) * loops;
  n += Number(node['Rows Removed by Filter'] ?? 0) + Number(node['Rows Removed by Join Filter'] ?? 0);
  for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) n += rowsTouched(child);
  return n;
}

describe('many-row statements (real Postgres, plans read through auto_explain)', () => {
  let pool: PgPool;
  let drop: () => Promise<void>;
  const plans: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    drop = db.drop;
    pool = createPgPool(db.url, { max: 1 });
    pool.on('connect', (client: pg.PoolClient) => {
      client.on('notice', (msg) => {
        const text = msg.message ?? '';
        const at = text.indexOf('{');
        if (text.includes('"Plan"') && at >= 0) plans.push(JSON.parse(text.slice(at)) as never);
      });
    });
    await pool.query(`INSERT INTO tenants (name, slug) VALUES ('t', 't')`);
    await pool.query(`INSERT INTO collector_tokens (name, token_hash) VALUES ('c', 'h')`);
    await pool.query(
      `INSERT INTO cpe_devices (tenant_id, oui, product_class, serial_number)
       SELECT 1, 'O', 'P', 'S' || g FROM generate_series(1, ${N}) g`,
    );
    await pool.query('ANALYZE');
    await pool.query(`LOAD 'auto_explain'`);
    await pool.query(
      `SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
       SET auto_explain.log_timing = off; SET auto_explain.log_format = json;
       SET auto_explain.log_level = notice; SET auto_explain.log_nested_statements = off`,
    );
  });
  afterAll(async () => {
    await pool.end();
    await drop();
  });

  /** The plan of the one statement `run` sends, and how many rows its nodes touched. */
  async function workOf(run: () => Promise<unknown>): Promise<number> {
    plans.length = 0;
    await run();
    expect(plans).toHaveLength(1);
    return rowsTouched((plans[0] as { Plan: Record<string, unknown> }).Plan);
  }

  it(`a batch of ${N} alarm reports touches rows in proportion to its items`, async () => {
    const items: AlarmBatchItem[] = Array.from({ length: N }, (_, i) => ({
      index: i,
      deviceId: i + 1,
      tenantId: null,
      alarmIdentifier: 'link-down',
      eventType: 'communicationsAlarm',
      probableCause: 'lossOfSignal',
      specificProblem: '',
      perceivedSeverity: 'Major',
      managedObjectInstance: 'Device.DSL.Line.1',
      raisedAt: new Date(),
      unknownMessage: 'no such device',
      notActiveMessage: 'not active',
    }));
    let eventIds: string[] = [];
    const work = await workOf(async () => {
      const result = await writeAlarmBatch(
        pool,
        {
          sourceTokenId: 1,
          scopeTenantId: null,
          changedAt: new Date(),
          items,
          decided: [],
          forbiddenMessage: 'forbidden',
        },
        null,
      );
      if (result.kind === 'answered') eventIds = result.eventIds;
    });
    expect(eventIds).toHaveLength(N);
    // ~40 rows per item today; the nested loop made it ~1,000 (n per item).
    expect(work).toBeLessThan(100 * N);
  });

  it(`a presence sweep of ${N} devices touches rows in proportion to its devices`, async () => {
    await pool.query(`UPDATE device_status SET online = true, offline_at = now() - interval '1 s'`);
    let offline = 0;
    const work = await workOf(async () => {
      offline = (await detectOfflineDevices(pool, N, true)).states.length;
    });
    expect(offline).toBe(N);
    expect(work).toBeLessThan(100 * N);
  });
});
