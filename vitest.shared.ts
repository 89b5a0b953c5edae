import { basename } from 'node:path';
import { defineConfig } from 'vitest/config';

// Vite's own defaults for Node, after ours (setting `conditions` replaces them).
const SOURCE_FIRST = ['source', 'module', 'node', 'development|production'];

/**
 * The vitest settings every package shares: the global setup that finds Postgres/Redis and migrates a
 * template database, generous hook timeouts for starting real services, and a JSON report per package
 * that scripts/test.sh adds up into one summary line.
 */
export function packageTestConfig(packageDir: string, options: { services?: boolean } = {}) {
  return defineConfig({
    // Workspace packages from their TypeScript source (the "source" export condition), as in dev: their
    // "default" condition is the compiled dist/ that production runs, which tests must not depend on.
    // (`__vitest__` is the environment vitest loads global setup files in.)
    resolve: { conditions: SOURCE_FIRST },
    ssr: { resolve: { conditions: SOURCE_FIRST } },
    environments: { __vitest__: { resolve: { conditions: SOURCE_FIRST } } },
    test: {
      // Pure unit-test packages need no Postgres/Redis.
      globalSetup: options.services === false ? [] : ['./test/global-setup.ts'],
      // vi.waitFor's default timeout raised to 10 s for every package (why: in the file)
      setupFiles: [new URL('./packages/testing/src/wait-defaults.ts', import.meta.url).pathname],
      testTimeout: 30_000,
      hookTimeout: 60_000,
      reporters: ['default', 'json'],
      outputFile: { json: `../../.test-results/${basename(packageDir)}.json` },
    },
  });
}
