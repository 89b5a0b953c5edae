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
import { uniqueRedisPrefix, type LocalRedisCluster } from '@alarmcast/testing';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { ConnectUser } from './delivery.js';
import { leanPusherClient } from './lean-client.js';
import { connectSocketIoUser } from './peer/socketio-client.js';
import { pidsNamed, processTree, type ProcessGroup } from './proc-stats.js';

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

/**
 * `pnpm bench steady --cluster`: the local Redis Cluster (packages/testing `startRedisCluster`, 3 masters and
 * 3 replicas on this machine) the alarmcast services run on instead of the single Redis; null otherwise.
 */
let benchCluster: LocalRedisCluster | null = null;
export const setBenchCluster = (cluster: LocalRedisCluster | null): void => void (benchCluster = cluster);
export const getBenchCluster = (): LocalRedisCluster | null => benchCluster;

/** The processes of the Redis the services use: the single one, or every node of the bench cluster. */
export function redisPids(singleRedisPid: number): number[] {
  if (!benchCluster) return [singleRedisPid];
  const ports = new Set(benchCluster.nodes.map((n) => n.port));
  // redis-server titles itself `redis-server 127.0.0.1:<port> [cluster]`.
  return pidsNamed('redis-server').filter((pid) => {
    try {
      const port = /:(\d+)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1];
      return port !== undefined && ports.has(Number(port));
    } catch {
      return false; // gone meanwhile
    }
  });
}

// A service's primary and its workers count as one.
const group = (s: SpawnedService): ProcessGroup => ({ name: s.name, pids: () => processTree(s.child.pid!) });

/**
 * Workers per service as deployed: `EDGE_WORKERS` / `INGEST_WORKERS` from the harness' environment, else
 * the services' own default, one per core (the tests' spawned services run one; the benchmark does not).
 * The peer's ingest is the same ingest with the same workers; its Socket.IO server is one process.
 */
export const benchWorkers = () => ({
  EDGE_WORKERS: process.env.EDGE_WORKERS ?? String(availableParallelism()),
  INGEST_WORKERS: process.env.INGEST_WORKERS ?? String(availableParallelism()),
});

/** Shared infrastructure, reported beside the services: the local Redis and every PostgreSQL process. */
export const infrastructureGroups = (redisPid: number): ProcessGroup[] => [
  { name: benchCluster ? 'redis cluster (6 nodes)' : 'redis', pids: () => redisPids(redisPid) },
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
  /** extra node options for every process of the system (e.g. `--heapsnapshot-signal`, src/idle-heap.ts) */
  nodeArgs?: string[];
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
  const nodeArgs = [
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    ...(options.nodeArgs ?? []),
  ];
  if (name === 'alarmcast') {
    const stack = await spawnStack({
      databaseUrl,
      redisUrl,
      redisClusterNodes: benchCluster?.seedList,
      redisPrefix,
      logLevel,
      nodeArgs,
      env: { ...NO_ABUSE_LIMITS, ...benchWorkers() },
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
        // The bench cluster goes away with its keys at the end of the run.
        await Promise.all([benchCluster ? null : dropRedisKeys(redisPrefix), saveLogs(stack.all)]);
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
    {
      ...env,
      ...NO_ABUSE_LIMITS,
      INGEST_WORKERS: benchWorkers().INGEST_WORKERS,
      INGEST_PORT: String(ingestPort),
      INGEST_INTERNAL_PORT: '0',
    },
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
