import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A local Redis Cluster started for a test: 3 masters, 3 replicas, on 127.0.0.1. */
export interface LocalRedisCluster {
  /** every node, as seed nodes for a cluster client */
  nodes: { host: string; port: number }[];
  /** the same as `REDIS_CLUSTER_NODES` wants it: `127.0.0.1:p1,127.0.0.1:p2,...` */
  seedList: string;
  /** ports of the nodes that are masters now (asked from a live node) */
  masters(): Promise<number[]>;
  /**
   * Kills one master (SIGKILL: a crash, nothing flushed), by default the first one, and resolves once its
   * replica has been promoted and every live node reports `cluster_state:ok` again. Resolves with the
   * killed master's port, the port of the replica that took its slots, and `takeover`: true when the
   * replica was not elected within 5 node timeouts and was told to take over (CLUSTER FAILOVER TAKEOVER).
   */
  killMaster(port?: number): Promise<{ killed: number; promoted: number; takeover: boolean }>;
  /** shuts every node down and removes the directory */
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  /**
   * How long a master may be unreachable before its replica takes over. Redis' default is 15 s; a test
   * wants a failover within a few seconds. @defaultValue 2000
   */
  nodeTimeoutMs?: number;
  /** the whole start (or a failover) must finish within this. @defaultValue 30000 */
  timeoutMs?: number;
}

const HOST = '127.0.0.1';

/**
 * Starts six `redis-server --cluster-enabled yes` processes on free high ports in a temporary directory
 * and joins them with `redis-cli --cluster create --cluster-replicas 1` (redis-server and redis-cli must be
 * on PATH, Redis >= 7 for sharded pub/sub). Resolves once every node reports `cluster_state:ok` and knows
 * all six. The servers are children of this process and are killed if it exits without `stop()`.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dir = await mkdtemp(join(tmpdir(), 'ac-redis-cluster-'));
  const servers = new Map<number, ChildProcess>();
  const killAll = (): void => {
    for (const child of servers.values()) if (child.exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  let watchdog: ChildProcess | null = null;
  const stop = async (): Promise<void> => {
    process.off('exit', killAll);
    watchdog?.kill('SIGKILL');
    await Promise.all(
      [...servers.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ports = await freeClusterPorts(6);
    for (const port of ports) servers.set(port, startNode(dir, port, nodeTimeoutMs));
    watchdog = startWatchdog(dir, [...servers.values()]);
    const deadline = Date.now() + timeoutMs;
    await waitFor(deadline, 'nodes to accept connections', async () => {
      const replies = await Promise.all(ports.map((p) => ask(p, ['PING']).catch(() => null)));
      return replies.every((r) => r === 'PONG');
    });
    await createCluster(ports, deadline);
    await waitFor(deadline, 'cluster_state:ok on every node', () => allOk(ports, 6));
    // Only a replica in sync can take over: a failover test needs all three to be.
    await waitFor(deadline, 'every replica to sync', async () => {
      const infos = await Promise.all(ports.map((p) => ask(p, ['INFO', 'replication']).catch(() => '')));
      return infos.filter((i) => /master_link_status:up/.test(i)).length === 3;
    });
    // ...and every node's view to say so: a node learns of the replicas by gossip, and until then its
    // CLUSTER NODES (what clients and killMaster read) still lists all six as masters (seen).
    await waitFor(deadline, 'every node to see 3 replicas', async () => {
      const views = await Promise.all(ports.map((p) => clusterNodes([p]).catch(() => [])));
      return views.every((v) => v.filter((n) => !n.master).length === 3);
    });
    return {
      nodes: ports.map((port) => ({ host: HOST, port })),
      seedList: ports.map((p) => `${HOST}:${p}`).join(','),
      masters: () => masters(liveNodes(servers)),
      killMaster: async (port) => {
        const live = liveNodes(servers);
        const before = await clusterNodes(live);
        const victim = before.find((n) => n.master && (port === undefined || n.port === port));
        if (!victim) throw new Error(`no live master${port === undefined ? '' : ` on port ${port}`}`);
        const replicas = await replicasOf(live, victim.port);
        const child = servers.get(victim.port)!;
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
        const rest = liveNodes(servers);
        let promoted = -1;
        const promotedAndOk = async (): Promise<boolean> => {
          const now = await masters(rest).catch((): number[] => []);
          promoted = replicas.find((p) => now.includes(p)) ?? -1;
          return promoted > 0 && (await allOk(rest, 5));
        };
        // The replica's own failover (failure detection, then an election among the masters) takes
        // 2-4 node timeouts on an idle machine; on a loaded CI machine an election can time out and be
        // retried past any deadline worth waiting (seen once: none in 20 s). Past ELECTION_WAIT_NODE_TIMEOUTS
        // the replica is told to take over without one (CLUSTER FAILOVER TAKEOVER), which is what an
        // operator would do: what the tests check is how alarmcast lives through a promotion, not Redis'
        // election. `takeover` says which happened.
        const electionDeadline = Date.now() + ELECTION_WAIT_NODE_TIMEOUTS * nodeTimeoutMs;
        let takeover = false;
        try {
          await waitFor(electionDeadline, `a replica of ${victim.port} to be elected`, promotedAndOk);
        } catch {
          if (replicas.length === 0) throw new Error(`master ${victim.port} had no replica`);
          takeover = true;
          await ask(replicas[0]!, ['CLUSTER', 'FAILOVER', 'TAKEOVER']).catch(() => undefined);
          await waitFor(Date.now() + timeoutMs, `a replica of ${victim.port} to take over`, promotedAndOk);
        }
        return { killed: victim.port, promoted, takeover };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** How many node timeouts killMaster waits for the replica's own election before CLUSTER FAILOVER TAKEOVER. */
const ELECTION_WAIT_NODE_TIMEOUTS = 5;

function startNode(dir: string, port: number, nodeTimeoutMs: number): ChildProcess {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--logfile',
      join(dir, `${port}.log`),
      // A replica that has never synced refuses to fail over; Redis waits 5 s before a diskless sync.
      '--repl-diskless-sync-delay',
      '0',
      // BullMQ refuses any other policy.
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
  child.on('error', () => undefined); // reported by the connection wait that follows
  return child;
}

/**
 * A test runner may end a worker process without its 'exit' event (a signal), which would leave six
 * servers running: a detached shell polls this process once a second and, once it is gone, kills the
 * servers (checking that each pid is still a redis-server) and removes the directory.
 */
function startWatchdog(dir: string, children: ChildProcess[]): ChildProcess {
  const pids = children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `for p in ${pids.join(' ')}; do grep -q redis-server /proc/$p/cmdline 2>/dev/null && kill -9 $p; done`,
    `rm -rf '${dir}'`,
  ].join('; ');
  const child = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
  child.unref();
  return child;
}

function createCluster(ports: number[], deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cli = spawn(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `${HOST}:${p}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    cli.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => cli.kill('SIGKILL'), Math.max(0, deadline - Date.now()));
    cli.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    cli.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`redis-cli --cluster create failed (${code}): ${output.slice(-2000)}`));
    });
  });
}

function liveNodes(servers: Map<number, ChildProcess>): number[] {
  return [...servers].filter(([, c]) => c.exitCode === null && c.signalCode === null).map(([p]) => p);
}

async function allOk(ports: number[], known: number): Promise<boolean> {
  const infos = await Promise.all(ports.map((p) => ask(p, ['CLUSTER', 'INFO']).catch(() => '')));
  return infos.every(
    (info) =>
      /cluster_state:ok/.test(info) &&
      /cluster_slots_ok:16384/.test(info) &&
      Number(/cluster_known_nodes:(\d+)/.exec(info)?.[1]) >= known,
  );
}

interface NodeLine {
  id: string;
  port: number;
  master: boolean;
  masterId: string;
}

/** CLUSTER NODES as seen by the first node that answers; failed nodes are left out. */
async function clusterNodes(ports: number[]): Promise<NodeLine[]> {
  for (const port of ports) {
    const text = await ask(port, ['CLUSTER', 'NODES']).catch(() => null);
    if (text === null) continue;
    return text
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
      .filter((f) => !f[2]!.includes('fail'))
      .map((f) => ({
        id: f[0]!,
        port: Number(/:(\d+)@/.exec(f[1]!)?.[1]),
        master: f[2]!.includes('master'),
        masterId: f[3]!,
      }));
  }
  throw new Error('no cluster node answers');
}

/** The ports of `master`'s replicas, from each node's own ROLE (no gossip lag, unlike CLUSTER NODES). */
async function replicasOf(ports: number[], master: number): Promise<number[]> {
  const roles = await Promise.all(
    ports.map(async (p) => ({ p, role: await ask<unknown[]>(p, ['ROLE']).catch(() => null) })),
  );
  return roles
    .filter((r) => Array.isArray(r.role) && r.role[0] === 'slave' && Number(r.role[2]) === master)
    .map((r) => r.p);
}

async function masters(ports: number[]): Promise<number[]> {
  const roles = await Promise.all(
    ports.map(async (p) => ({ p, role: await ask(p, ['ROLE']).catch(() => null) })),
  );
  return roles.filter((r) => Array.isArray(r.role) && r.role[0] === 'master').map((r) => r.p);
}

/** One command on a fresh connection that gives up fast (no reconnects, no offline queue). */
async function ask<T = string>(port: number, [command, ...args]: string[]): Promise<T> {
  const redis = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.call(command!, ...args)) as T;
  } finally {
    redis.disconnect();
  }
}

async function waitFor(deadline: number, what: string, check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`local Redis Cluster: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `count` ports in 20000-29999 free on 127.0.0.1 together with their cluster bus port (port + 10000,
 * which Redis opens too); random, so that parallel runs rarely collide, and each checked by listening.
 */
async function freeClusterPorts(count: number): Promise<number[]> {
  const chosen: number[] = [];
  for (let tries = 0; chosen.length < count && tries < 500; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (chosen.includes(port)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) chosen.push(port);
  }
  if (chosen.length < count) throw new Error('local Redis Cluster: no free ports');
  return chosen;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}
