import { basename } from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * The vitest settings every package shares: the global setup that finds Postgres/Redis and migrates a
 * template database, generous hook timeouts for starting real services, and a JSON report per package
 * that scripts/test.sh adds up into one summary line.
 */
export function packageTestConfig(packageDir: string, options: { services?: boolean } = {}) {
  return defineConfig({
    test: {
      // Pure unit-test packages need no Postgres/Redis.
      globalSetup: options.services === false ? [] : ['./test/global-setup.ts'],
      testTimeout: 30_000,
      hookTimeout: 60_000,
      reporters: ['default', 'json'],
      outputFile: { json: `../../.test-results/${basename(packageDir)}.json` },
    },
  });
}
