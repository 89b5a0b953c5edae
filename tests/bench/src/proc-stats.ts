/**
 * CPU time and memory of the processes under test, read from /proc (Linux): each service process, Redis,
 * every PostgreSQL process together, and the harness itself (its clients and load generator share the
 * same two cores, so their cost is part of the picture).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: /proc reports CPU time in these ticks; 100 on every Linux this runs on. */
const TICKS_PER_S = 100;

export interface ProcessGroup {
  name: string;
  /** the pids making up this group, looked up at every sample (PostgreSQL's backends come and go) */
  pids: () => number[];
}

export interface GroupUsage {
  name: string;
  /** CPU time used over the window, as a share of one core (100 = one core busy all the time) */
  cpuPercent: number;
  cpuSeconds: number;
  /** the highest resident set size seen (summed over the group's processes) */
  peakRssMb: number;
}

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return 0; // it exited
  }
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * `pid` and every process below it (a service running workers is a primary and its `node:cluster`
 * workers), from /proc/<pid>/task/<tid>/children.
 */
export function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    try {
      for (const task of readdirSync(`/proc/${tree[i]}/task`)) {
        const children = readFileSync(`/proc/${tree[i]}/task/${task}/children`, 'utf8').trim();
        if (children) tree.push(...children.split(' ').map(Number));
      }
    } catch {
      // gone meanwhile
    }
  }
  return tree;
}

/** Resident memory of `pid` and all its descendants. */
export const treeRssMb = (pid: number): number => processTree(pid).reduce((sum, p) => sum + rssMb(p), 0);

/** Every process whose command name is `comm` (e.g. all of PostgreSQL's). */
export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Samples the groups' memory twice a second and their CPU time at start and stop. */
export class ResourceMonitor {
  private readonly startTicks = new Map<string, Map<number, number>>();
  private readonly peak = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;

  constructor(private readonly groups: ProcessGroup[]) {}

  start(): void {
    this.startedAt = performance.now();
    for (const g of this.groups) {
      this.startTicks.set(g.name, new Map(g.pids().map((pid) => [pid, cpuTicks(pid)])));
      this.peak.set(g.name, 0);
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), 500);
    this.timer.unref();
  }

  private sample(): void {
    for (const g of this.groups) {
      const rss = g.pids().reduce((sum, pid) => sum + rssMb(pid), 0);
      this.peak.set(g.name, Math.max(this.peak.get(g.name) ?? 0, rss));
    }
  }

  stop(): GroupUsage[] {
    clearInterval(this.timer);
    this.sample();
    const seconds = (performance.now() - this.startedAt) / 1000;
    return this.groups.map((g) => {
      const before = this.startTicks.get(g.name)!;
      // Processes that started during the window count from zero.
      const ticks = g.pids().reduce((sum, pid) => sum + cpuTicks(pid) - (before.get(pid) ?? 0), 0);
      const cpuSeconds = ticks / TICKS_PER_S;
      return {
        name: g.name,
        cpuSeconds: round(cpuSeconds, 2),
        cpuPercent: round((100 * cpuSeconds) / seconds, 1),
        peakRssMb: round(this.peak.get(g.name) ?? 0, 1),
      };
    });
  }
}

export const round = (x: number, digits: number): number => Number(x.toFixed(digits));
