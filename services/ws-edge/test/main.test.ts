import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEdgeWorld, type EdgeWorld } from './helpers.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

/** Runs src/main.ts as the deployment does (tsx, source condition), with only the given environment (one process). */
function runMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { PATH: process.env.PATH ?? '', EDGE_WORKERS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '', exit: null as number | null };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => resolve((out.exit = code))),
  );
  return { child, out, exited };
}

describe('main', () => {
  let world: EdgeWorld;
  beforeAll(async () => {
    world = await createEdgeWorld();
  });
  afterAll(() => world.teardown());

  it('stops at boot in production without credentials, naming each missing variable', async () => {
    const { out, exited } = runMain({ NODE_ENV: 'production' });
    expect(await exited).toBe(1);
    expect(out.stderr).toContain('refusing to start in production');
    for (const name of ['PUSHER_APP_ID', 'PUSHER_APP_KEY', 'PUSHER_APP_SECRET', 'JWT_SECRET']) {
      expect(out.stderr).toContain(`${name}: is required when NODE_ENV=production`);
    }
  });

  it('starts on local defaults with a warning that shows them, and drains on SIGTERM', async () => {
    const config = world.config();
    const { child, out, exited } = runMain({
      EDGE_PORT: '0',
      EDGE_INTERNAL_PORT: '0',
      DATABASE_URL: config.databaseUrl,
      REDIS_URL: config.redisUrl,
      REDIS_PREFIX: config.redisPrefix,
    });
    try {
      const lines = await vi.waitFor(
        () => {
          const parsed = out.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          if (!parsed.some((l) => l.msg === 'ws-edge listening')) throw new Error(out.stdout + out.stderr);
          return parsed;
        },
        { timeout: 20_000, interval: 50 },
      );
      const warning = lines.find((l) => l.level === 40);
      expect(warning).toMatchObject({
        PUSHER_APP_KEY: 'alarmcast-key',
        JWT_SECRET: 'alarmcast-dev-jwt-secret',
      });
      const listening = lines.find((l) => l.msg === 'ws-edge listening') as {
        websocket: string;
        channelAuth: string;
      };
      expect(listening.websocket).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/app\/alarmcast-key\?protocol=7$/);
      const health = await fetch(listening.channelAuth.replace('/broadcasting/auth', '/healthz'));
      expect(health.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (out.exit === null) child.kill('SIGKILL');
    }
  });
});
