/**
 * The benchmark harness (issue 5):
 *
 *   pnpm bench [all|equivalence|world|steady|big-tenant|capacity|storm|informs|campaign] [--quick] [--rounds 2] [--no-peer]
 *              [--profile <dir>] [--report-only] [--batch <alarms per request> (capacity)]
 *              [--cpus <list>] [--cluster (steady only: alarmcast on a local Redis Cluster, no peer)]
 *              [--preferences (world, big-tenant: also with every user holding preferences)]
 *
 * Starts the services it measures as separate processes on this machine (fresh ones per run), provisions
 * each scenario's world in its own database, connects the sockets, POSTs alarms at the scenario's rate and
 * accounts for every delivery. Prints a table per scenario; writes docs/benchmarks/<scenario>.json, the
 * latency charts, and the results section of docs/BENCHMARKS.md (`--quick`: a short smoke run whose files
 * go to a temporary directory instead). Load goes to 127.0.0.1 only and every run is bounded in time.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { latencyCdfSvg } from './chart.js';
import { pinRunTo } from './cpu-pinning.js';
import { machine, scenarioMarkdown, type ScenarioResult } from './report.js';
import { bigTenant, capacity, equivalence, steady, storm, world, type BenchSettings } from './scenarios.js';
import { informs } from './informs.js';
import { campaign } from './campaign.js';
import { benchRedisUrl, setBenchCluster } from './stacks.js';
import { startRedisCluster } from '@alarmcast/testing';

const SCENARIOS = {
  equivalence,
  world,
  steady,
  'big-tenant': bigTenant,
  capacity,
  storm,
  informs,
  campaign,
} as const;
type ScenarioName = keyof typeof SCENARIOS;
const TITLES: Record<ScenarioName, string> = {
  equivalence: 'Lean client ≡ pusher-js',
  world: 'Scenario 3 — size of the world',
  steady: 'Scenario 1 — steady (with the Socket.IO peer)',
  'big-tenant': 'Scenario 2 — big tenant',
  capacity: 'Scenario 4 — capacity',
  storm: 'Scenario 5 — storm (batch endpoint, with the Socket.IO peer)',
  informs: 'Scenario 6 — device informs and live status (with the Socket.IO peer)',
  campaign: 'Scenario 7 — a firmware campaign, live (with the Socket.IO peer)',
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
    'no-peer': { type: 'boolean', default: false },
    profile: { type: 'string' },
    // Rewrites docs/BENCHMARKS.md and the charts from the saved JSON, measuring nothing.
    'report-only': { type: 'boolean', default: false },
    // capacity through POST /v1/alarms/batch, this many alarms per request
    batch: { type: 'string' },
    // steady on a local Redis Cluster (3 masters + 3 replicas started for the run), alarmcast only
    cluster: { type: 'boolean', default: false },
    // Pins the run (harness, services, Redis, Postgres) to these CPUs, e.g. 0: the same run on less CPU.
    cpus: { type: 'string' },
    // world, big-tenant: also with every user holding notification preferences, and the ratio
    preferences: { type: 'boolean', default: false },
  },
});
const chosen = (positionals[0] ?? 'all') as ScenarioName | 'all';
if (chosen !== 'all' && !(chosen in SCENARIOS)) {
  console.error(`unknown scenario ${chosen}; choose all or one of ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}
if (values.cluster && chosen !== 'steady') {
  console.error('--cluster runs the steady scenario only: pnpm bench steady --cluster');
  process.exit(2);
}
const settings: BenchSettings = {
  quick: values.quick,
  rounds: Math.max(1, Number(values.rounds)),
  // The Socket.IO peer's Redis adapter runs on a single Redis: a cluster run is alarmcast alone.
  peer: !values['no-peer'] && !values.cluster,
  cluster: values.cluster,
  profileDir: values.profile,
  batch: values.batch === undefined ? undefined : Number(values.batch),
  preferences: values.preferences,
};
if (
  settings.batch !== undefined &&
  !(Number.isInteger(settings.batch) && settings.batch >= 1 && settings.batch <= 1000)
) {
  console.error('--batch takes 1 to 1000 alarms per request');
  process.exit(2);
}
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const outDir = settings.quick ? join(tmpdir(), 'alarmcast-bench') : join(ROOT, 'docs/benchmarks');
await mkdir(outDir, { recursive: true });

if (values['report-only']) {
  for (const name of Object.keys(SCENARIOS) as ScenarioName[]) {
    const path = join(outDir, `${name}.json`);
    if (existsSync(path)) await writeCharts(JSON.parse(await readFile(path, 'utf8')) as ScenarioResult);
  }
  await updateBenchmarksMd();
  process.exit(0);
}

if (values.cpus !== undefined) {
  const redis = new Redis(benchRedisUrl());
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))![1]);
  redis.disconnect();
  try {
    pinRunTo(values.cpus, redisPid);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  console.log(`pinned the harness, Redis and PostgreSQL to CPUs ${values.cpus}`);
}
/** A pinned run's results are kept beside the unpinned ones: `steady.json`, `steady.cpus-0.json`. */
const variant = values.cpus === undefined ? '' : `.cpus-${values.cpus.replace(/,/g, '_')}`;
const about = { ...machine(), cpusPinned: values.cpus ?? null };
let allMet = true;
const cluster = settings.cluster ? await startRedisCluster({ timeoutMs: 60_000 }) : null;
setBenchCluster(cluster);
// A cluster run is kept beside the single-Redis results, never in their place: `steady.cluster.json`.
const kept = `${variant}${cluster ? '.cluster' : ''}`;
try {
  for (const name of chosen === 'all' ? (Object.keys(SCENARIOS) as ScenarioName[]) : [chosen]) {
    console.log(`\n=== ${TITLES[name]}${cluster ? ', on a local Redis Cluster' : ''} ===`);
    const result = (await SCENARIOS[name](settings)) as ScenarioResult;
    await writeFile(
      join(outDir, `${name}${kept}.json`),
      JSON.stringify({ machine: about, settings, ...result }, null, 2) + '\n',
    );
    // The charts show the unpinned single-Redis runs (a pinned or cluster run's tables say what they need).
    if (!kept) await writeCharts(result);
    console.log(scenarioMarkdown(result));
    allMet &&= result.floors.every((f) => f.met);
  }
} finally {
  await cluster?.stop();
}
if (!settings.quick && !cluster) await updateBenchmarksMd();
console.log(`results in ${outDir}`);
process.exitCode = allMet ? 0 : 1;

async function writeCharts(r: ScenarioResult): Promise<void> {
  const svg = (file: string, title: string, series: { name: string; cdf: number[] }[]) =>
    writeFile(join(outDir, file), latencyCdfSvg(title, series));
  if (r.scenario === 'steady') {
    await svg(
      'steady-latency.svg',
      `Scenario 1: ${r.load.ratePerS} alarms/s to ${r.world.users} sockets, per delivery`,
      r.runs.map((x) => ({ name: `${x.label} (p99 ${x.latencyMs.p99} ms)`, cdf: x.latencyCdf })),
    );
  } else if (r.scenario === 'big-tenant') {
    await svg(
      'big-tenant-latency.svg',
      `Scenario 2: one tenant, ${r.world.users} sockets, ${r.load.ratePerS} alarm/s, per delivery`,
      r.runs.map((x) => ({
        name: `${x.label} (last recipient p99 ${x.lastRecipientMs.p99} ms)`,
        cdf: x.latencyCdf,
      })),
    );
  } else if (r.scenario === 'capacity') {
    await svg(
      'capacity-latency.svg',
      'Scenario 4: per-delivery latency at each rate',
      r.ramps
        .flatMap((x) => x.steps)
        .map((x) => ({ name: `${x.label} (p99 ${x.latencyMs.p99} ms)`, cdf: x.latencyCdf })),
    );
  }
}

/** Rewrites the part of docs/BENCHMARKS.md between the results markers from the latest JSON files. */
async function updateBenchmarksMd(): Promise<void> {
  const file = join(ROOT, 'docs/BENCHMARKS.md');
  const doc = await readFile(file, 'utf8');
  const begin = '<!-- results:begin (written by pnpm bench) -->';
  const end = '<!-- results:end -->';
  if (!doc.includes(begin) || !doc.includes(end)) throw new Error(`${file} lacks the results markers`);
  const sections: string[] = [];
  const files = await readdir(outDir);
  for (const name of Object.keys(SCENARIOS) as ScenarioName[]) {
    // The unpinned run first, then any pinned ones (--cpus).
    const runs = files.filter(
      (f) => f === `${name}.json` || (f.startsWith(`${name}.cpus-`) && f.endsWith('.json')),
    );
    for (const file of runs.sort()) {
      const saved = JSON.parse(await readFile(join(outDir, file), 'utf8')) as ScenarioResult & {
        machine: ReturnType<typeof machine> & { cpusPinned?: string | null };
      };
      const pinned = saved.machine.cpusPinned ? ` — whole run pinned to CPU ${saved.machine.cpusPinned}` : '';
      sections.push(
        `### ${TITLES[name]}${pinned}\n\n_Run ${saved.machine.date.slice(0, 16).replace('T', ' ')} UTC at commit ${saved.machine.commit}; ` +
          `${saved.machine.cpu}, ${saved.machine.memoryGb} GB, Node ${saved.machine.node}._\n\n${scenarioMarkdown(saved)}`,
      );
    }
  }
  const updated =
    doc.slice(0, doc.indexOf(begin) + begin.length) +
    '\n\n' +
    sections.join('\n') +
    '\n' +
    doc.slice(doc.indexOf(end));
  await writeFile(file, updated);
}
