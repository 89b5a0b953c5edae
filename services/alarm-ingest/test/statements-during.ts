import pg from 'pg';

/**
 * Every statement that reaches Postgres while `run` runs, from any pool's clients, by its name (or its text
 * when it has none): the queries still run, nothing is mocked. Background work of the ingest runs beside
 * the request, so callers keep or drop statements by name.
 */
export async function statementsDuring<T>(
  run: () => Promise<T>,
): Promise<{ result: T; statements: string[] }> {
  const statements: string[] = [];
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const config = args[0] as string | { name?: string; text?: string };
    statements.push(typeof config === 'string' ? config : (config.name ?? config.text ?? ''));
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  try {
    return { result: await run(), statements };
  } finally {
    pg.Client.prototype.query = original;
  }
}
