import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CATALOGUE,
  ROUTES,
  SERVICES,
  errorStatuses,
  openApiDocument,
  type RouteSpec,
} from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('the OpenAPI documents generated from ROUTES', () => {
  it('pass `redocly lint` (the recommended rules, as configured in redocly.yaml)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'alarmcast-openapi-'));
    try {
      const files = SERVICES.map((service) => {
        const file = join(dir, `${service}.json`);
        writeFileSync(file, JSON.stringify(openApiDocument(service), null, 2));
        return file;
      });
      const result = await new Promise<{ code: number; output: string }>((resolve) => {
        execFile(
          join(ROOT, 'node_modules/.bin/redocly'),
          ['lint', '--config', join(ROOT, 'redocly.yaml'), '--format', 'stylish', ...files],
          {
            cwd: ROOT,
            env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
          },
          (err, stdout, stderr) =>
            resolve({ code: err ? ((err.code as number) ?? 1) : 0, output: stdout + stderr }),
        );
      });
      // stylish lines: `  12:3  warning  rule-name  message`; warnings fail too
      expect(result.output).not.toMatch(/^\s*\d+:\d+\s+(error|warning)\s/m);
      expect(result.code, result.output).toBe(0);
      expect(result.output).toMatch(/validated/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('list every error of a route under its catalogue status, with Retry-After on 429 and 503', () => {
    for (const service of SERVICES) {
      const doc = openApiDocument(service) as {
        paths: Record<
          string,
          Record<
            string,
            { responses: Record<string, { description: string; headers?: Record<string, unknown> }> }
          >
        >;
      };
      for (const route of Object.values(ROUTES) as RouteSpec[]) {
        if (!route.services.includes(service)) continue;
        const op = doc.paths[route.path]![route.method]!;
        for (const [status, codes] of errorStatuses(route)) {
          const response = op.responses[String(status)]!;
          for (const code of codes) {
            expect(ERROR_CATALOGUE[code]).toBeDefined();
            expect(response.description).toContain(`\`${code}\``);
          }
          if (status === 429 || status === 503) expect(response.headers).toHaveProperty('Retry-After');
        }
      }
    }
  });

  it('names each operation once per document and declares no path twice for one method', () => {
    for (const service of SERVICES) {
      const seen = new Set<string>();
      for (const route of Object.values(ROUTES) as RouteSpec[]) {
        if (!route.services.includes(service)) continue;
        const key = `${route.method} ${route.path}`;
        expect(seen.has(key), key).toBe(false);
        seen.add(key);
      }
    }
  });
});
