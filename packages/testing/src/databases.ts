import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The URL of database `name` on the server of `adminUrl`. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdmin<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * (Re)creates the template database that every test database is cloned from, and lets `prepare` migrate
 * it. Cloning a migrated template takes ~50 ms, where migrating each test database would take far longer.
 */
export async function createTemplateDatabase(
  adminUrl: string,
  name: string,
  prepare: (url: string) => Promise<void>,
): Promise<string> {
  await withAdmin(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.query(`CREATE DATABASE "${name}"`);
  });
  const url = databaseUrl(adminUrl, name);
  await prepare(url);
  return url;
}

/** A fresh database cloned from the template, for one test file; `drop` removes it. */
export async function createTestDatabase(
  adminUrl: string,
  template: string,
): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `ac_t_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (c) => c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`));
  return {
    name,
    url: databaseUrl(adminUrl, name),
    drop: () =>
      withAdmin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

/** A Redis key prefix no other test uses, so tests share one Redis without seeing each other. */
export function uniqueRedisPrefix(): string {
  return `t${randomBytes(5).toString('hex')}`;
}
