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
});
