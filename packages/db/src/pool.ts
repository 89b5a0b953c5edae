import pg from 'pg';

export type PgPool = pg.Pool;

export interface PgPoolOptions {
  /** @defaultValue 10 connections */
  max?: number;
  /** @defaultValue 5000 ms to get a connection before the query fails (and, in ingest, the breaker counts it) */
  connectTimeoutMs?: number;
  /**
   * Commit without waiting for the WAL flush (`synchronous_commit = off`), for pools that write nothing but
   * bookkeeping that is redone when lost: a crash can then forget the last fraction of a second of commits,
   * never corrupt anything. @defaultValue false
   */
  asyncCommit?: boolean;
  /**
   * Plan every statement as lookups by key: index scans joined by nested loops (`enable_seqscan`,
   * `enable_hashjoin`, `enable_mergejoin` off), for pools whose statements all look rows up by key in tables
   * that grow from empty (the outbox, alarm audiences, alarms). A named statement's generic plan, made in a
   * connection's first seconds while such a table holds a few rows, scans the whole table (a sequential scan,
   * or a hash join over a full index scan) and stays so for the connection's life: no replan follows until
   * an ANALYZE, and autovacuum's comes minutes later (or never where autovacuum is off). The steady
   * benchmark found both: the resolver's plan query read all of alarm_audiences per event and its broadcast
   * mark all of alarms' primary key, their cost grew with the tables, and delivery fell seconds behind
   * within a minute. The planner still scans a table that has no usable index.
   *
   * Their named statements always run their generic plan (`plan_cache_mode = force_generic_plan`): planned
   * once per connection, where Postgres kept planning the resolver's plan query afresh at every execution
   * (with an array parameter, the custom plans' estimates look cheaper than the generic one's), which cost
   * five times what executing it did (`pg_stat_statements` with `track_planning`, one steady round: 13,843
   * plans for 13,841 calls, 5.0 s planning against 1.0 s executing). A lookup by key has one right plan
   * whatever the values, and the settings above keep it the indexed one. @defaultValue false
   */
  keyedLookupsOnly?: boolean;
}

/**
 * A node-postgres pool for the hot path. Prisma owns the schema, migrations and the admin side; the few
 * queries run once per alarm (ingest's insert, the resolver's recipient query, the edge's auth lookup) use
 * named prepared statements on this pool instead, because through Prisma's client each of them costs
 * about ten times the CPU (measured: findUnique ~3-4 ms, the same statement on pg ~0.3 ms), and CPU per
 * alarm is what limits throughput on a small machine.
 */
export function createPgPool(databaseUrl: string, options: PgPoolOptions = {}): PgPool {
  const settings = [
    ...(options.asyncCommit ? ['-c synchronous_commit=off'] : []),
    ...(options.keyedLookupsOnly
      ? [
          '-c enable_seqscan=off',
          '-c enable_hashjoin=off',
          '-c enable_mergejoin=off',
          '-c plan_cache_mode=force_generic_plan',
        ]
      : []),
  ];
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    // Sent in the startup packet: no extra round trip per connection.
    ...(settings.length > 0 ? { options: settings.join(' ') } : {}),
  });
  // An idle client losing its connection (Postgres restart) emits here; without a listener it would crash
  // the process. The next query gets a fresh connection.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `fn` in one transaction on one connection of `pool`: COMMIT when it resolves, ROLLBACK when it throws
 * (the error is rethrown). For writes that must read before they decide (a state machine) and so cannot be
 * one statement.
 */
export async function withTransaction<T>(
  pool: PgPool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
