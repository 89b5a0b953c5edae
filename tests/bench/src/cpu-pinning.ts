/**
 * `--cpus <list>`: gives the whole run less CPU, to find on any machine the load where one system falls
 * behind the other (issue 16: "pin every process to one core with taskset"). The harness pins itself
 * (the services it spawns inherit the mask), the running Redis server and every PostgreSQL process (new
 * backends are forked from the postmaster, so they inherit it too) with `taskset`, and gives each process
 * its own earlier mask back when the run ends, also on Ctrl-C. Linux only; Redis and Postgres must be
 * this machine's (they are, for the bench: see benchRedisUrl / DATABASE_ADMIN_URL).
 */
import { execFileSync } from 'node:child_process';
import { pidsNamed } from './proc-stats.js';

/** What taskset's `-c` takes: CPU numbers and ranges, e.g. `0` or `0,2-3`. */
const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

function maskOf(pid: number): string | null {
  try {
    // "pid 123's current affinity list: 0,1"
    const out = execFileSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8' });
    return /:\s*(\S+)\s*$/.exec(out)?.[1] ?? null;
  } catch {
    return null; // gone, or not ours to read
  }
}

function pin(pid: number, cpus: string): boolean {
  try {
    // -a: every thread of the process (Redis has I/O threads, Node its worker pool).
    execFileSync('taskset', ['-a', '-c', '-p', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Pins the harness, Redis (its pid from INFO) and PostgreSQL to `cpus`; returns the function that
 * restores every earlier mask. Throws on a malformed list or when taskset cannot pin the harness itself.
 */
export function pinRunTo(cpus: string, redisPid: number): () => void {
  if (!CPU_LIST.test(cpus)) throw new Error(`--cpus takes a CPU list such as 0 or 0,1 (got ${cpus})`);
  const targets = [process.pid, redisPid, ...pidsNamed('postgres')];
  const earlier = new Map<number, string>();
  for (const pid of targets) {
    const mask = maskOf(pid);
    if (mask !== null && pin(pid, cpus)) earlier.set(pid, mask);
  }
  if (!earlier.has(process.pid)) throw new Error('taskset could not pin the harness (is taskset installed?)');
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    // Backends started during the run inherited the pinned mask from the postmaster; they get the
    // postmaster's earlier mask back too.
    const postmasterMask = [...earlier.entries()].find(([pid]) => pidsNamed('postgres').includes(pid))?.[1];
    for (const pid of pidsNamed('postgres'))
      if (!earlier.has(pid) && postmasterMask) pin(pid, postmasterMask);
    for (const [pid, mask] of earlier) pin(pid, mask);
  };
  process.once('exit', restore);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      restore();
      process.exit(130);
    });
  }
  return restore;
}
