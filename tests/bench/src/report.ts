/**
 * What the harness prints and files: a table per scenario (stdout and docs/BENCHMARKS.md alike), the JSON
 * results and the latency charts.
 */
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import type {
  Floor,
  RunResult,
  bigTenant,
  capacity,
  equivalence,
  steady,
  storm,
  world,
} from './scenarios.js';
import type { informs, InformsStep } from './informs.js';
import type { campaign, CampaignSystemRun } from './campaign.js';

export function machine() {
  const cpu = cpus();
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0];
    } catch {
      return 'unknown';
    }
  };
  return {
    date: new Date().toISOString(),
    commit: version('git', ['rev-parse', '--short', 'HEAD']),
    cpu: `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: version('psql', ['--version']),
    redis: version('redis-server', ['--version']),
  };
}

const fmt = (x: number) => (Number.isFinite(x) ? String(x) : '–');

/** One markdown table row per run: what was offered, what arrived, how fast, at what cost. */
export function runsTable(runs: RunResult[]): string {
  const head =
    '| run | sockets | alarms/s offered → sustained | deliveries expected / received / dup / unexpected | p50 | p90 | p99 | max | last recipient p99 | ack p99 |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = runs.map(
    (r) =>
      `| ${r.label} | ${r.sockets} | ${r.ratePerS} → ${r.sustained.alarmsPerS} | ${r.deliveries.expected} / ${r.deliveries.received} / ${r.deliveries.duplicates} / ${r.deliveries.unexpected}${r.exact ? '' : ' ✗'} | ${fmt(r.latencyMs.p50)} | ${fmt(r.latencyMs.p90)} | ${fmt(r.latencyMs.p99)} | ${fmt(r.latencyMs.max)} | ${fmt(r.lastRecipientMs.p99)} | ${fmt(r.ackMs.p99)} |`,
  );
  const tenths = runs
    .filter((r) => r.worstPerTenthMs.length)
    .map((r) => `- ${r.label}: ${r.worstPerTenthMs.join(' ')}`)
    .join('\n');
  const failures = runs
    .filter((r) => Object.keys(r.postFailures).length > 0)
    .map((r) => {
      const causes = Object.entries(r.postFailures).map(([why, n]) => `${why}: ${n}`);
      return `- ${r.label}: ${causes.join(', ')} (of ${r.alarmsSent} POSTs)`;
    })
    .join('\n');
  return (
    [head, ...rows].join('\n') +
    '\n\n(latencies in ms, POST sent → frame received; ✗: not exact)\n' +
    (failures
      ? `\nPOSTs the ingest did not acknowledge (owed to nobody, but the run is not exact):\n\n${failures}\n`
      : '') +
    (tenths ? `\nSlowest last recipient (ms) in each tenth of the measured window:\n\n${tenths}\n` : '')
  );
}

/** CPU (share of one core over the run) and peak resident memory of each process group. */
export function resourcesTable(runs: RunResult[]): string {
  const names = [...new Set(runs.flatMap((r) => r.resources.map((g) => g.name)))];
  const head = `| run | ${names.join(' | ')} |\n|---|${names.map(() => '---:').join('|')}|`;
  const rows = runs.map(
    (r) =>
      `| ${r.label} | ${names
        .map((n) => {
          const g = r.resources.find((x) => x.name === n);
          return g ? `${g.cpuPercent}% / ${g.peakRssMb} MB` : '';
        })
        .join(' | ')} |`,
  );
  const growth = runs.map((r) => `${r.label} ${r.redisGrowthMb} MB`).join('; ');
  return (
    [head, ...rows].join('\n') +
    '\n\n(CPU as % of one core / peak RSS; Redis RSS never shrinks, so its peak includes earlier runs)\n\n' +
    `Redis dataset growth over the run (INFO used_memory): ${growth}\n`
  );
}

export function floorsTable(floors: Floor[]): string {
  return (
    '| floor | target | measured | met |\n|---|---|---|---|\n' +
    floors
      .map((f) => `| ${f.what} | ${f.target} | ${f.measured} | ${f.met ? 'yes' : '**no**'} |`)
      .join('\n') +
    '\n'
  );
}

type Steady = Awaited<ReturnType<typeof steady>>;
type BigTenant = Awaited<ReturnType<typeof bigTenant>>;
type Capacity = Awaited<ReturnType<typeof capacity>>;
type Equivalence = Awaited<ReturnType<typeof equivalence>>;
type World = Awaited<ReturnType<typeof world>>;
type Storm = Awaited<ReturnType<typeof storm>>;
type Informs = Awaited<ReturnType<typeof informs>>;
type Campaign = Awaited<ReturnType<typeof campaign>>;
export type ScenarioResult = Steady | BigTenant | Capacity | Equivalence | World | Storm | Informs | Campaign;

/** One row per informs step: what was offered and ingested, what reached the watchers, at what cost. */
function informsTable(steps: InformsStep[]): string {
  const head =
    '| run | informs/s offered → ingested | batch answer p50 / p99 | changes delivered | delivery p50 / p99 / max | offline seen / late | offline detection p50 / p99 / max | Redis MB/min | Postgres MB/min |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = steps.map(
    (r) =>
      `| ${r.label} | ${r.ratePerS} → ${r.ingestedPerS} | ${fmt(r.batchAnswerMs.p50)} / ${fmt(r.batchAnswerMs.p99)} | ${r.changes.received}/${r.changes.expected} | ` +
      `${fmt(r.deliveryMs.p50)} / ${fmt(r.deliveryMs.p99)} / ${fmt(r.deliveryMs.max)} | ${r.offline.received}/${r.offline.expected} / ${r.offline.late} | ` +
      `${fmt(r.offlineDetectionMs.p50)} / ${fmt(r.offlineDetectionMs.p99)} / ${fmt(r.offlineDetectionMs.max)} | ${r.redisGrowthMbPerMin} | ${r.postgresGrowthMbPerMin} |`,
  );
  const failures = steps
    .filter((r) => Object.keys(r.failures).length > 0)
    .map(
      (r) =>
        `- ${r.label}: ${Object.entries(r.failures)
          .map(([why, n]) => `${why}: ${n}`)
          .join(', ')}`,
    )
    .join('\n');
  const outcomes = steps
    .map(
      (r) =>
        `- ${r.label}: ${Object.entries(r.outcomes)
          .map(([o, n]) => `${o} ${n}`)
          .join(', ')}; ${r.batches} batches, ${r.snapshots} snapshots, ${r.strayFrames} stray frames`,
    )
    .join('\n');
  return (
    [head, ...rows].join('\n') +
    '\n\n(ms; delivery: POST sent → `DeviceStatusChanged` frame at the watcher; offline detection: deadline → frame)\n\n' +
    `Per-item outcomes:\n\n${outcomes}\n` +
    (failures ? `\nInforms not accepted:\n\n${failures}\n` : '')
  );
}

/** The campaign runs: reports ingested, per-device delivery, progress broadcasts, per-device changes on the campaign channel. */
function campaignTables(runs: CampaignSystemRun[]): string {
  const p = (x: { p50: number; p99: number; max: number }) => `${fmt(x.p50)} / ${fmt(x.p99)} / ${fmt(x.max)}`;
  const reports =
    '| run | reports | updates/s offered → sent → accepted | run / schedule (s) | PUT answer p50 / p99 / max | send lag p99 | campaign created in | sockets subscribed in |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|\n' +
    runs
      .map(
        (r) =>
          `| ${r.label} | ${r.reports} | ${r.offeredPerS} → ${r.sentPerS} → ${r.acceptedPerS} | ${r.runS} / ${r.scheduleS} | ${p(r.answerMs)} | ${fmt(r.sendLagMs.p99)} | ${r.createCampaignMs} ms | ${r.socketsConnectS} s |`,
      )
      .join('\n');
  const delivery =
    '| run | DeviceTaskUpdated delivered / expected (dup, stray) | device channel p50 / p99 / max | progress broadcasts (per subscriber min–max) | interval p50 / max | staleness p50 / p99 / max | exact / inexact / version ✗ / not monotone | last = GET = reports | campaign-channel task frames/s per socket | their latency p50 / p99 / max |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n' +
    runs
      .map((r) => {
        const e = r.progress.exactness;
        return (
          `| ${r.label} | ${r.device.received}/${r.device.expected} (${r.device.duplicates}, ${r.device.stray}) | ${p(r.device.latencyMs)} | ` +
          `${r.progress.broadcasts} (${r.progress.broadcastsPerSocket.min}–${r.progress.broadcastsPerSocket.max}) | ${fmt(r.progress.intervalMs.p50)} / ${fmt(r.progress.intervalMs.max)} | ` +
          `${p(r.progress.stalenessMs)} | ${e.broadcasts - e.inexact - e.versionMismatch - e.nonMonotone} / ${e.inexact} / ${e.versionMismatch} / ${e.nonMonotone} | ` +
          `${r.progress.finalEqualsTruth ? 'yes' : '**no**'} | ${r.campaignTasks.framesPerSocketPerS} | ${p(r.campaignTasks.latencyMs)} |`
        );
      })
      .join('\n');
  const outcomes = runs
    .map(
      (r) =>
        `- ${r.label}: ${Object.entries(r.outcomes)
          .map(([o, n]) => `${o} ${n}`)
          .join(', ')}${
          Object.keys(r.failures).length
            ? `; refused: ${Object.entries(r.failures)
                .map(([w, n]) => `${w}: ${n}`)
                .join(', ')}`
            : ''
        }` + (r.progress.exactness.examples.length ? `; ${r.progress.exactness.examples.join('; ')}` : ''),
    )
    .join('\n');
  const names = [...new Set(runs.flatMap((r) => r.resources.map((g) => g.name)))];
  const resources =
    `| run | ${names.join(' | ')} |\n|---|${names.map(() => '---:').join('|')}|\n` +
    runs
      .map(
        (r) =>
          `| ${r.label} | ${names
            .map((n) => {
              const g = r.resources.find((x) => x.name === n);
              return g ? `${g.cpuPercent}% / ${g.peakRssMb} MB` : '';
            })
            .join(' | ')} |`,
      )
      .join('\n');
  return (
    reports +
    '\n\n' +
    delivery +
    '\n\n(ms; staleness: a count-moving report acknowledged → the first broadcast certainly including it arrives, at every subscriber; ' +
    `campaign-channel task frames timed at ${runs[0]?.campaignTasks.sampledSockets ?? 0} subscribers, counted at all)\n\n` +
    `Per-report outcomes:\n\n${outcomes}\n\n` +
    resources +
    '\n\n(CPU as % of one core / peak RSS, from the first report to the last frame)\n'
  );
}

function informsResources(steps: InformsStep[]): string {
  const names = [...new Set(steps.flatMap((r) => r.resources.map((g) => g.name)))];
  const head = `| run | ${names.join(' | ')} |\n|---|${names.map(() => '---:').join('|')}|`;
  const rows = steps.map(
    (r) =>
      `| ${r.label} | ${names
        .map((n) => {
          const g = r.resources.find((x) => x.name === n);
          return g ? `${g.cpuPercent}% / ${g.peakRssMb} MB` : '';
        })
        .join(' | ')} |`,
  );
  return [head, ...rows].join('\n') + '\n\n(CPU as % of one core / peak RSS)\n';
}

/** The markdown section for one scenario's latest result (also what is printed at the end of a run). */
export function scenarioMarkdown(r: ScenarioResult): string {
  switch (r.scenario) {
    case 'steady': {
      const ratios = r.versusPeer
        ? '\nalarmcast ÷ Socket.IO (medians over the rounds; below 1 means alarmcast is lower):\n\n' +
          '| latency p50 | latency p99 | last recipient p99 | sustained deliveries/s | CPU s per 1,000 deliveries (services, Redis, Postgres) | idle KB per connection |\n|---:|---:|---:|---:|---:|---:|\n' +
          `| ${r.versusPeer.latencyP50} | ${r.versusPeer.latencyP99} | ${r.versusPeer.lastRecipientP99} | ${r.versusPeer.sustainedDeliveriesPerS} | ${r.versusPeer.cpuSecondsPer1000Deliveries} | ${r.versusPeer.idleKbPerConnection} |\n`
        : '';
      return (
        `World: ${r.world.tenants} tenants × ${r.world.usersPerTenant} users (${r.world.users} sockets), ${r.world.devices} devices, ` +
        `${r.world.usersWithShares} users with ${r.world.sharesPerSharer} shares each into the next tenant; ` +
        `${r.load.ratePerS} alarms/s for ${r.load.durationS} s after ${r.load.warmupS} s of warm-up.\n\n` +
        floorsTable(r.floors) +
        '\n' +
        runsTable(r.runs) +
        ratios +
        '\n' +
        resourcesTable(r.runs) +
        '\n![steady latency](benchmarks/steady-latency.svg)\n'
      );
    }
    case 'big-tenant':
      return (
        `World: one tenant of ${r.world.users} users, all connected; ${r.load.ratePerS} alarm/s for ${r.load.durationS} s after ${r.load.warmupS} s of warm-up.` +
        // Runs filed before workers existed have no `workers`: one process each.
        (r.workers
          ? ` ws-edge with ${r.workers.EDGE_WORKERS} workers, alarm-ingest with ${r.workers.INGEST_WORKERS} (EDGE_WORKERS, INGEST_WORKERS); the peer's Socket.IO server is one process.`
          : '') +
        '\n\n' +
        floorsTable(r.floors) +
        '\n' +
        runsTable(r.runs) +
        (r.preferences
          ? `\nThe same run on fresh processes with every user holding preferences (\`--preferences\`; last recipient p99 ${r.preferences.lastRecipientP99Ratio}×, latency p50 ${r.preferences.latencyP50Ratio}×, p99 ${r.preferences.latencyP99Ratio}× the run without):\n\n` +
            runsTable([r.preferences.run])
          : '') +
        '\n' +
        resourcesTable(r.preferences ? [...r.runs, r.preferences.run] : r.runs) +
        '\n![big tenant latency](benchmarks/big-tenant-latency.svg)\n'
      );
    case 'capacity':
      return (
        `Scenario 1's world at rising rates on one set of processes per system (${r.step.durationS} s measured after ${r.step.warmupS} s warm-up per step) until ${r.pastCliffSteps} steps past the first with p99 > 250 ms or delivery incomplete` +
        `${r.batch ? `, posted through POST /v1/alarms/batch in requests of ${r.batch} alarms` : ', one POST /v1/alarms per alarm'}.\n\n` +
        '| system | highest rate held (alarms/s) | deliveries/s at that rate |\n|---|---:|---:|\n' +
        r.ramps
          .map((x) => {
            const held = x.steps.find((s) => s.ratePerS === x.highestRateHeld);
            return `| ${x.system} | ${x.highestRateHeld} | ${held?.sustained.deliveriesPerS ?? '–'} |`;
          })
          .join('\n') +
        '\n\n' +
        (r.ramps.length === 2 && r.ramps[1]!.highestRateHeld > 0
          ? `alarmcast ÷ Socket.IO, highest rate held (throughput): ${(r.ramps[0]!.highestRateHeld / r.ramps[1]!.highestRateHeld).toFixed(2)}\n\n`
          : '') +
        runsTable(r.ramps.flatMap((x) => x.steps)) +
        '\nOverload (the ramp goes on past the first failing rate): what the ingest accepted, what it refused with\n' +
        '503 (admission control, `Retry-After`), and whether every accepted alarm was delivered exactly once:\n\n' +
        '| run | offered/s | accepted/s | 503s | other failures | p99 of accepted (ms) | accepted delivered exactly |\n' +
        '|---|---:|---:|---:|---:|---:|---|\n' +
        r.ramps
          .flatMap((x) => x.steps)
          .map((s) => {
            const refused = s.postFailures['503'] ?? 0;
            const other = Object.entries(s.postFailures)
              .filter(([why]) => why !== '503')
              .reduce((n, [, k]) => n + k, 0);
            return `| ${s.label} | ${s.ratePerS} | ${s.sustained.alarmsPerS} | ${refused} | ${other} | ${fmt(s.latencyMs.p99)} | ${s.acceptedDeliveredExactly ? 'yes' : '**no**'} |`;
          })
          .join('\n') +
        '\n\n' +
        resourcesTable(r.ramps.flatMap((x) => x.steps)) +
        "\nIdle connections (the socket server's RSS growth after connecting them, divided by their number; and the\n" +
        'growth of the second half alone, per socket: the marginal cost, without what grows once per process):\n\n' +
        '| system | sockets | KB per idle connection | marginal KB per connection |\n|---|---:|---:|---:|\n' +
        r.idle
          .map(
            (x) =>
              `| ${x.system} | ${x.sockets} | ${x.idleKbPerConnection} | ${x.marginalKbPerConnection ?? '–'} |`,
          )
          .join('\n') +
        '\n\n![capacity latency](benchmarks/capacity-latency.svg)\n'
      );
    case 'storm':
      return (
        `World: ${r.world.tenants} tenants × ${r.world.usersPerTenant} users (${r.world.users} sockets), ${r.world.devices} devices; ` +
        `${r.load.ratePerS} alarms within ${r.load.durationS} s, each on another device, through POST /v1/alarms/batch in requests of ${r.load.batch}.\n\n` +
        floorsTable(r.floors) +
        '\n| run | first POST → last delivery (ms) |\n|---|---:|\n' +
        r.runs.map((x) => `| ${x.label} | ${x.firstPostToLastDeliveryMs} |`).join('\n') +
        '\n\n' +
        runsTable(r.runs) +
        '\n' +
        resourcesTable(r.runs)
      );
    case 'informs': {
      const steps = r.runs.flatMap((x) => [x.steady, ...x.ramp]);
      const w = r.world;
      return (
        `World: ${w.devices.toLocaleString('en')} devices in ${w.tenants} tenants, ${w.flappers} flapping (interval ${w.presence.flapperIntervalS} s, ` +
        `offline ${w.presence.intervals} × interval + ${w.presence.graceS} s after the last inform, booting again every ${w.flapPeriodS} s), ` +
        `${w.sockets} sockets each watching ${w.watchesPerSocket} devices; ${r.steadyRate} periodic informs/s (every device every 300 s; 2 % carry a changed parameter) ` +
        `from ${w.collectors} collectors flushing once a second, for ${r.base.durationS} s after ${r.base.warmupS} s of warm-up; then the ramp (${r.rampStep.durationS} s a step) until the ingest stops keeping up ` +
        '(every inform accepted, ≥ 97 % of the offered rate ingested, batches answered within 1 s at p99).\n\n' +
        floorsTable(r.floors) +
        '\n| system | sockets × watches | watchers connected in | Redis for the watchers | their subscriptions | duplicate watches (same process) | Redis for them | subscriptions they added | highest rate kept |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
        r.runs
          .map(
            (x) =>
              `| ${x.system} | ${x.sockets} × ${x.watches / Math.max(1, x.sockets)} | ${x.watchersConnectS} s | ${x.redisForWatchersMb} MB | ${x.subscriptionsForWatchers} | ` +
              `${x.duplicates.watches} | ${x.duplicates.redisMb} MB | ${x.duplicates.subscriptionsAdded} | ${x.system === 'alarmcast' ? x.highestRateKept : '– (same ingest)'} |`,
          )
          .join('\n') +
        '\n\n' +
        informsTable(steps) +
        (r.versusPeer
          ? `\nalarmcast ÷ Socket.IO on the steady step (below 1: alarmcast lower): delivery p50 ${r.versusPeer.deliveryP50}, p99 ${r.versusPeer.deliveryP99}, offline detection p99 ${r.versusPeer.offlineDetectionP99}, CPU seconds (services, Redis, Postgres) ${r.versusPeer.cpuSeconds}\n`
          : '') +
        '\n' +
        informsResources(steps)
      );
    }
    case 'campaign': {
      const w = r.world;
      return (
        `World: one tenant, one campaign over ${w.devices.toLocaleString('en')} devices, each reporting one download task through ${w.reportsPerDevice} reports ` +
        `(queued, dispatched, running: downloading 10 % and 50 %, applying, rebooting, verifying; then succeeded, or for every ${w.failEvery}th device failed with a TransferComplete fault 9010-9020), ` +
        `in waves of ${r.ratePerS * w.stepGapS} devices (a device's reports ${w.stepGapS} s apart) at ${r.ratePerS} reports/s; ` +
        `${w.campaignSockets} sockets on \`private-campaign.{id}\` and ${w.deviceSockets} sockets on ${w.devicesPerSocket} \`private-device.{id}\` channels each (every device watched once); ` +
        `latency figures leave out the first ${r.warmupS} s.\n\n` +
        floorsTable(r.floors) +
        '\n' +
        campaignTables(r.runs)
      );
    }
    case 'equivalence':
      return (
        `${r.users} users, each with a lean-client socket and a pusher-js 8.6 socket, ${r.framesPerClient} event frames per client kind.\n\n` +
        floorsTable(r.floors) +
        `\npusher-js hands an event over ${r.pusherJsLagMs.median} ms (median; max ${r.pusherJsLagMs.max} ms) after the lean client does, in the same process.\n`
      );
    case 'world':
      return (
        floorsTable(r.floors) +
        '\n| users | tenants | recipients per alarm | alarmcast p50 / p99 (ms) | baseline p50 / max (ms) | baseline ÷ alarmcast (p50) |\n|---:|---:|---:|---:|---:|---:|\n' +
        r.results
          .map(
            (x) =>
              `| ${x.users} | ${x.tenants} | ${x.meanRecipients} | ${x.alarmcastMs.p50} / ${x.alarmcastMs.p99} | ${x.baselineMs.p50} / ${x.baselineMs.max} | ${Math.round(x.baselineMs.p50 / x.alarmcastMs.p50)} |`,
          )
          .join('\n') +
        '\n' +
        (r.results.some((x) => x.resolveMs)
          ? "\nWith `--preferences`: the whole resolution (plan query and every recipient's preference decision, warm\n" +
            'cache), first with no user holding preferences, then with every user holding the mix of\n' +
            '`holdPreferences` (30 % a minimum severity, 10 % quiet hours now, 5 % a muted device, the rest a rule\n' +
            'that never matches):\n\n' +
            '| users | without p50 / p99 (ms) | with p50 / p99 (ms) | with ÷ without (p50 / p99) |\n|---:|---:|---:|---:|\n' +
            r.results
              .filter((x) => x.resolveMs)
              .map(
                (x) =>
                  `| ${x.users} | ${x.resolveMs!.p50} / ${x.resolveMs!.p99} | ${x.resolveWithPreferencesMs!.p50} / ${x.resolveWithPreferencesMs!.p99} | ${x.preferencesRatioP50} / ${x.preferencesRatioP99} |`,
              )
              .join('\n') +
            '\n'
          : '')
      );
  }
}
