import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { startStack, type Stack } from '../src/stack.js';
import { readCatalogue, registeredMetrics } from '../src/metric-catalogue.js';

/**
 * docs/METRICS.md against the code: every metric a service registers is in the catalogue with its type
 * and labels, and the catalogue lists nothing a service does not register (so neither can drift). The
 * services run in this process, so their registries can be read directly (labels included, which
 * /metrics only shows once a series exists).
 */
describe('the metric catalogue (docs/METRICS.md)', () => {
  let stack: Stack;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: testEnv().redisUrl,
      redisPrefix: uniqueRedisPrefix(),
    });
  });
  afterAll(async () => {
    await stack?.close();
    await dropDb?.();
  });

  it('lists exactly the metrics each service registers, with their types and labels', async () => {
    const actual = [
      ...(await registeredMetrics('alarm-ingest', stack.ingest.metrics)),
      ...(await registeredMetrics('recipient-resolver', stack.resolvers[0]!.metrics)),
      ...(await registeredMetrics('ws-edge', stack.edges[0]!.metrics)),
    ];
    const documented = readCatalogue().map(({ meaning: _m, ...rest }) => rest);
    const key = (e: { service: string; name: string }) => `${e.service} ${e.name}`;
    const byKey = (list: typeof actual) => new Map(list.map((e) => [key(e), e]));
    const missing = actual.filter((e) => !byKey(documented).has(key(e))).map(key);
    const stale = documented.filter((e) => !byKey(actual).has(key(e))).map(key);
    expect({ missing, stale }).toEqual({ missing: [], stale: [] });
    for (const e of actual) expect(byKey(documented).get(key(e)), key(e)).toEqual(e);
  });

  it('gives every metric a meaning and never a user id or socket id label', () => {
    const catalogue = readCatalogue();
    expect(catalogue.length).toBeGreaterThan(30);
    for (const e of catalogue) {
      expect(e.meaning.length, e.name).toBeGreaterThan(10);
      for (const label of e.labels) expect(label).not.toMatch(/user|socket|tenant|device|ip/i);
    }
  });
});
