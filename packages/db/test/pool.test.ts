import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { createPgPool } from '../src/index.js';

describe('createPgPool', () => {
  let url: string;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    ({ url, drop } = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate));
  });
  afterAll(() => drop());

  const setting = async (asyncCommit?: boolean): Promise<string> => {
    const pool = createPgPool(url, { max: 1, ...(asyncCommit === undefined ? {} : { asyncCommit }) });
    try {
      return (await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!
        .synchronous_commit;
    } finally {
      await pool.end();
    }
  };

  it('waits for the WAL flush unless asked not to (bookkeeping pools only)', async () => {
    expect(await setting()).toBe('on');
    expect(await setting(false)).toBe('on');
    expect(await setting(true)).toBe('off');
  });

  /**
   * The trap `keyedLookupsOnly` closes: a named statement's generic plan made while its table is nearly
   * empty is kept after the table has grown (no ANALYZE in between, as in a fresh deployment's first
   * minutes). Returns the plans of a lookup and of a semi-join by key (the broadcast mark's `EXISTS`).
   */
  const plansAfterGrowth = async (keyedLookupsOnly: boolean): Promise<string[]> => {
    const pool = createPgPool(url, { max: 1, keyedLookupsOnly });
    const client = await pool.connect();
    try {
      await client.query(
        'DROP TABLE IF EXISTS growing; CREATE TABLE growing (id bigint PRIMARY KEY, v text)',
      );
      await client.query('INSERT INTO growing SELECT i, repeat($$x$$, 100) FROM generate_series(1, 3) i');
      await client.query('ANALYZE growing');
      const statements = {
        growing_lookup: 'SELECT v FROM growing WHERE id = ANY($1::bigint[])',
        growing_exists:
          'SELECT x FROM unnest($1::bigint[]) x WHERE EXISTS (SELECT 1 FROM growing g WHERE g.id = x)',
      };
      // the server switches a named statement to its generic plan after five custom ones
      for (const [name, text] of Object.entries(statements))
        for (let i = 0; i < 6; i++) await client.query({ name, text, values: [[1, 2]] });
      await client.query('INSERT INTO growing SELECT i, repeat($$x$$, 100) FROM generate_series(4, 50000) i');
      const plans: string[] = [];
      for (const name of Object.keys(statements)) {
        const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(
          `EXPLAIN (FORMAT JSON) EXECUTE ${name}('{1,2}')`,
        );
        plans.push(JSON.stringify(rows[0]!['QUERY PLAN']));
      }
      return plans;
    } finally {
      client.release();
      await pool.end();
    }
  };

  /** How a named `= ANY($1)` lookup was planned over 10 executions: pg_prepared_statements' counts. */
  const planCounts = async (keyedLookupsOnly: boolean): Promise<{ generic: number; custom: number }> => {
    const pool = createPgPool(url, { max: 1, keyedLookupsOnly });
    const client = await pool.connect();
    try {
      await client.query(
        'DROP TABLE IF EXISTS planned; CREATE TABLE planned (id bigint PRIMARY KEY, v text); ' +
          'INSERT INTO planned SELECT i, $$x$$ FROM generate_series(1, 10000) i; ANALYZE planned',
      );
      for (let i = 0; i < 10; i++)
        await client.query({
          name: 'planned_lookup',
          text: 'SELECT v FROM planned WHERE id = ANY($1::bigint[])',
          values: [[i, i + 1]],
        });
      const { rows } = await client.query<{ generic: string; custom: string }>(
        `SELECT generic_plans AS generic, custom_plans AS custom FROM pg_prepared_statements
          WHERE name = 'planned_lookup'`,
      );
      return { generic: Number(rows[0]!.generic), custom: Number(rows[0]!.custom) };
    } finally {
      client.release();
      await pool.end();
    }
  };

  it('plans a keyed lookup once per connection, not at every execution (keyedLookupsOnly)', async () => {
    // The trap: an array parameter's custom plans look cheaper than the generic one, so by default the
    // statement is planned afresh every time (the resolver's plan query: planning cost 5x its execution).
    expect(await planCounts(false)).toEqual({ generic: 0, custom: 10 });
    expect(await planCounts(true)).toEqual({ generic: 10, custom: 0 });
  });

  it('keeps keyed lookups on their index after the table grew (keyedLookupsOnly)', async () => {
    const [lookup, semiJoin] = await plansAfterGrowth(false);
    expect(lookup).toContain('Seq Scan');
    expect(semiJoin).toMatch(/Seq Scan|Hash/);
    for (const plan of await plansAfterGrowth(true)) {
      expect(plan).not.toMatch(/Seq Scan|Hash Join|Merge Join/);
      expect(plan).toContain('growing_pkey');
    }
  });
});
