import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '@alarmcast/contracts';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';

/*
 * What the Docker image holds, built and run here (there is no Docker engine on these machines): the
 * workspace compiled to JavaScript (`pnpm build`), assembled by scripts/prod-tree.sh exactly as the
 * Dockerfile's build stage does it (compiled output, migrations, production dependencies only), then the CLI
 * and the three services started from that tree with plain `node`: no tsx, no source condition, no
 * TypeScript. A service that still needed TypeScript at runtime, or a dependency missing from the
 * production install, fails here.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err
        ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`))
        : resolve(stdout),
    );
  });
}

describe('the production tree (the Docker image contents) runs as compiled JavaScript', () => {
  let tree: string;
  let dbUrl: string;
  let dropDb: () => Promise<void>;
  const children: ChildProcess[] = [];

  // Bare environment: only what the services need, as in a container.
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    NODE_ENV: 'test',
    DATABASE_URL: dbUrl,
    REDIS_URL: testEnv().redisUrl,
    REDIS_PREFIX: uniqueRedisPrefix(),
    LOG_LEVEL: 'warn',
    ...extra,
  });

  /** Starts a service of the tree and resolves with its public URL once /healthz answers. */
  async function start(service: string, extra: Record<string, string>, port: string): Promise<string> {
    const child = spawn(process.execPath, [`services/${service}/dist/main.js`], {
      cwd: tree,
      env: env(extra),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 150; i++) {
      if (child.exitCode !== null) throw new Error(`${service} exited ${child.exitCode}: ${output}`);
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return url;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${service} did not answer /healthz: ${output}`);
  }

  beforeAll(async () => {
    // `pnpm build` as start.sh runs it (lib.sh brings pnpm where there is none); turbo's cache makes it a
    // no-op when nothing changed since the last build.
    await run('bash', ['-c', 'source scripts/lib.sh && ensure_build']);
    tree = mkdtempSync(join(tmpdir(), 'alarmcast-image-'));
    await run('bash', ['scripts/prod-tree.sh', tree], { ...process.env, PROD_INSTALL_FLAGS: '--offline' });
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    dropDb = db.drop;
  }, 240_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)),
    );
    await dropDb?.();
    if (tree) rmSync(tree, { recursive: true, force: true });
  });

  it('holds compiled JavaScript and production dependencies only', () => {
    const store = readdirSync(join(tree, 'node_modules/.pnpm'));
    for (const dev of [
      'tsx@',
      'vitest@',
      'vite@',
      'esbuild@',
      'turbo@',
      'testcontainers@',
      'playwright-core@',
      '@redocly',
    ])
      expect(
        store.filter((p) => p.startsWith(dev)),
        dev,
      ).toEqual([]);
    for (const service of ['alarm-ingest', 'recipient-resolver', 'ws-edge', 'admin-cli']) {
      expect(existsSync(join(tree, `services/${service}/dist/main.js`))).toBe(true);
      expect(existsSync(join(tree, `services/${service}/src`))).toBe(false);
    }
    expect(existsSync(join(tree, 'packages/testing'))).toBe(false);
  });

  it('the built CLI migrates and provisions; the built services start and serve their API documents', async () => {
    const cli = (...args: string[]) =>
      run(
        process.execPath,
        ['services/admin-cli/dist/main.js', ...args],
        env({ JWT_SECRET: 'x'.repeat(40) }),
        tree,
      );
    await cli('migrate');
    const tenant = JSON.parse(await cli('tenant', 'create', '--name', 'Built', '--slug', 'built')) as {
      id: number;
    };
    expect(tenant.id).toBeGreaterThan(0);

    const free = () => String(20_000 + Math.floor(Math.random() * 20_000));
    const [edgePort, ingestPort, resolverPort] = [free(), free(), free()];
    const edge = await start('ws-edge', { EDGE_PORT: edgePort, EDGE_INTERNAL_PORT: '0' }, edgePort);
    const ingest = await start(
      'alarm-ingest',
      { INGEST_PORT: ingestPort, INGEST_INTERNAL_PORT: '0', CONSOLE_EDGE_URL: edge },
      ingestPort,
    );
    await start('recipient-resolver', { RESOLVER_METRICS_PORT: resolverPort }, resolverPort);
    expect(await (await fetch(`${ingest}/openapi.json`)).json()).toEqual(openApiDocument('alarm-ingest'));
    expect(await (await fetch(`${edge}/openapi.json`)).json()).toEqual(openApiDocument('ws-edge'));
    expect((await fetch(`${ingest}/console/`)).status).toBe(200);
    expect((await fetch(`${ingest}/readyz`)).status).toBe(200);
  });
});
