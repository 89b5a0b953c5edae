import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { APP, JWT_SECRET, type StackOptions } from './stack.js';
import { freePort } from '@alarmcast/testing';

/** A free TCP port on 127.0.0.1 (packages/testing). */
export { freePort };

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A service running as its own process, as in production. */
export interface SpawnedService {
  name: string;
  child: ChildProcess;
  port: number;
  url: string;
  /** everything it printed, for diagnosing a failed start */
  output: string[];
}

export interface SpawnedStack {
  ingest: SpawnedService;
  edges: SpawnedService[];
  resolvers: SpawnedService[];
  all: SpawnedService[];
  /** SIGTERM to every process, and wait for them to exit */
  close: () => Promise<void>;
}

/** `EDGE_WORKERS` / `INGEST_WORKERS` of every spawned service unless its `env` says otherwise. */
export const SINGLE_PROCESS = { EDGE_WORKERS: '1', INGEST_WORKERS: '1' } as const;

export async function spawnService(
  name: string,
  entry: string,
  env: Record<string, string>,
  port: number,
  /** extra node options, e.g. `--cpu-prof` (which NODE_OPTIONS may not carry) */
  nodeArgs: string[] = [],
): Promise<SpawnedService> {
  const child = spawn(process.execPath, [...nodeArgs, '--conditions=source', '--import', 'tsx', entry], {
    cwd: ROOT,
    // One process per service unless a test (or the benchmark) asks for workers: a worker per core in
    // every spawned edge and ingest would multiply CI's processes for nothing it tests.
    env: { ...process.env, ...SINGLE_PROCESS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (b: Buffer) => output.push(b.toString()));
  child.stderr!.on('data', (b: Buffer) => output.push(b.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${name} exited with ${child.exitCode}:\n${output.join('')}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, child, port, url, output };
}

export async function stopService(
  s: SpawnedService,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
  s.child.kill(signal);
  return exited;
}

/** The three services as separate processes on free ports (the shape of a real deployment). */
export async function spawnStack(o: StackOptions): Promise<SpawnedStack> {
  const common = {
    NODE_ENV: 'development',
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    ...(o.redisClusterNodes ? { REDIS_CLUSTER_NODES: o.redisClusterNodes } : {}),
    REDIS_PREFIX: o.redisPrefix,
    LOG_LEVEL: o.logLevel ?? 'warn',
    PUSHER_APP_ID: APP.id,
    PUSHER_APP_KEY: APP.key,
    PUSHER_APP_SECRET: APP.secret,
    JWT_SECRET,
    ...o.env,
  };
  const edges = await Promise.all(
    Array.from({ length: o.edges ?? 1 }, async (_, i) => {
      const port = await freePort();
      return spawnService(
        `ws-edge-${i}`,
        'services/ws-edge/src/main.ts',
        { ...common, EDGE_PORT: String(port), EDGE_INTERNAL_PORT: '0' },
        port,
        o.nodeArgs,
      );
    }),
  );
  const resolvers = await Promise.all(
    Array.from({ length: o.resolvers ?? 1 }, async (_, i) => {
      const port = await freePort();
      return spawnService(
        `resolver-${i}`,
        'services/recipient-resolver/src/main.ts',
        { ...common, RESOLVER_METRICS_PORT: String(port) },
        port,
        o.nodeArgs,
      );
    }),
  );
  const ingestPort = await freePort();
  const ingest = await spawnService(
    'alarm-ingest',
    'services/alarm-ingest/src/main.ts',
    { ...common, INGEST_PORT: String(ingestPort), INGEST_INTERNAL_PORT: '0' },
    ingestPort,
    o.nodeArgs,
  );
  const all = [ingest, ...resolvers, ...edges];
  return {
    ingest,
    edges,
    resolvers,
    all,
    close: async () => {
      await Promise.all(all.map((s) => stopService(s)));
    },
  };
}
