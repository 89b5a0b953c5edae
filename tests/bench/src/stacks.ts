/**
 * The two systems the benchmark drives, each as separate processes as deployed: alarmcast (ingest,
 * recipient-resolver, ws-edge) and the peer (the same ingest, a resolver with the same queue and recipient
 * query that emits through Socket.IO's Redis emitter, and a Socket.IO server with the Redis adapter).
 */
import { APP, JWT_SECRET } from '@alarmcast/e2e/stack';
import {
  freePort,
  spawnService,
  spawnStack,
  stopService,
  type SpawnedService,
} from '@alarmcast/e2e/spawned-stack';
import { uniqueRedisPrefix } from '@alarmcast/testing';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { ConnectUser } from './delivery.js';
import { leanPusherClient } from './lean-client.js';
import { connectSocketIoUser } from './peer/socketio-client.js';
import { pidsNamed, type ProcessGroup } from './proc-stats.js';

export type SystemName = 'alarmcast' | 'socketio';

export interface SystemUnderTest {
  name: SystemName;
  ingestUrl: string;
  /** how a benchmark socket connects to this system */
  connect: ConnectUser;
  /** the processes whose CPU and memory are reported */
  groups: ProcessGroup[];
  /** the process holding the sockets (for memory per connection) */
  socketServer: SpawnedService;
  close: () => Promise<void>;
}

export const benchRedisUrl = (): string => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const group = (s: SpawnedService): ProcessGroup => ({ name: s.name, pids: () => [s.child.pid!] });

/** Shared infrastructure, reported beside the services: the local Redis and every PostgreSQL process. */
export const infrastructureGroups = (redisPid: number): ProcessGroup[] => [
  { name: 'redis', pids: () => [redisPid] },
  { name: 'postgres (all)', pids: () => pidsNamed('postgres') },
];

/**
 * The benchmarks drive thousands of requests and sockets from one IP, one collector token and few users:
 * every abuse limit off (0), so they measure delivery, not the limits (which have their own tests).
 */
const NO_ABUSE_LIMITS = {
  RATE_LIMIT_ALARMS_PER_TOKEN: '0',
  RATE_LIMIT_ALARMS_PER_IP: '0',
  RATE_LIMIT_USER_API_PER_USER: '0',
  RATE_LIMIT_USER_API_PER_IP: '0',
  RATE_LIMIT_AUTH_FAILURES_PER_IP: '0',
  RATE_LIMIT_CHANNEL_AUTH_PER_USER: '0',
  RATE_LIMIT_CHANNEL_AUTH_PER_IP: '0',
  EDGE_MAX_CONNECTIONS_PER_IP: '0',
  EDGE_MAX_CONNECTIONS_PER_USER: '0',
};

/** Deletes a run's keys (user logs, delivery marks, queue): a run at 200 alarms/s leaves ~100 MB behind. */
async function dropRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(benchRedisUrl());
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  redis.disconnect();
}

/** What each service printed (LOG_LEVEL from BENCH_LOG_LEVEL, default warn), for looking into a bad run. */
async function saveLogs(services: SpawnedService[]): Promise<void> {
  const dir = join(tmpdir(), 'alarmcast-bench-logs');
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  await Promise.all(services.map((s) => writeFile(join(dir, `${stamp}-${s.name}.log`), s.output.join(''))));
}

/**
 * Starts `name` on `databaseUrl`. With `profileDir`, every service writes a V8 CPU profile there when it
 * exits (`--cpu-prof`; open in Chrome DevTools or speedscope, or summarize with `pnpm bench:profile`).
 */
export interface SystemOptions {
  /**
   * the peer also delivers device status: a bridge process re-emits alarmcast's device state channels
   * (written by the shared ingest, conflated as for alarmcast) to one Socket.IO room per device
   */
  deviceStatus?: boolean;
}

export async function startSystem(
  name: SystemName,
  databaseUrl: string,
  profileDir?: string,
  options: SystemOptions = {},
): Promise<SystemUnderTest> {
  const redisPrefix = uniqueRedisPrefix();
  const redisUrl = benchRedisUrl();
  const logLevel = process.env.BENCH_LOG_LEVEL ?? 'warn';
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  if (name === 'alarmcast') {
    const stack = await spawnStack({
      databaseUrl,
      redisUrl,
      redisPrefix,
      logLevel,
      nodeArgs,
      env: NO_ABUSE_LIMITS,
    });
    const edge = stack.edges[0]!;
    return {
      name,
      ingestUrl: stack.ingest.url,
      connect: leanPusherClient({ edgeUrl: edge.url, appKey: APP.key }),
      groups: stack.all.map(group),
      socketServer: edge,
      close: async () => {
        await stack.close();
        await Promise.all([dropRedisKeys(redisPrefix), saveLogs(stack.all)]);
      },
    };
  }
  const env = {
    NODE_ENV: 'development',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redisPrefix,
    LOG_LEVEL: logLevel,
    JWT_SECRET,
    PUSHER_APP_KEY: APP.key,
  };
  const serverPort = await freePort();
  const server = await spawnService(
    'socketio-server',
    'tests/bench/src/peer/socketio-server.ts',
    { ...env, PEER_PORT: String(serverPort) },
    serverPort,
    nodeArgs,
  );
  const resolverPort = await freePort();
  const resolver = await spawnService(
    'socketio-resolver',
    'tests/bench/src/peer/socketio-resolver.ts',
    { ...env, RESOLVER_METRICS_PORT: String(resolverPort) },
    resolverPort,
    nodeArgs,
  );
  const ingestPort = await freePort();
  const ingest = await spawnService(
    'alarm-ingest',
    'services/alarm-ingest/src/main.ts',
    { ...env, ...NO_ABUSE_LIMITS, INGEST_PORT: String(ingestPort), INGEST_INTERNAL_PORT: '0' },
    ingestPort,
    nodeArgs,
  );
  const all = [ingest, resolver, server];
  if (options.deviceStatus) {
    const bridgePort = await freePort();
    all.push(
      await spawnService(
        'socketio-state-bridge',
        'tests/bench/src/peer/socketio-state-bridge.ts',
        { ...env, BRIDGE_PORT: String(bridgePort) },
        bridgePort,
        nodeArgs,
      ),
    );
  }
  return {
    name,
    ingestUrl: ingest.url,
    connect: connectSocketIoUser(server.url),
    groups: all.map(group),
    socketServer: server,
    close: async () => {
      await Promise.all(all.map((s) => stopService(s)));
      await Promise.all([dropRedisKeys(redisPrefix), saveLogs(all)]);
    },
  };
}
