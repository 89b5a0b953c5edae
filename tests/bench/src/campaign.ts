/**
 * The `campaign` scenario (issue 13): one firmware campaign over 10,000 devices of one tenant, its tasks
 * reported at 500 updates/s through the phases (campaign-load.ts), 200 sockets on `private-campaign.{id}` and
 * 2,000 sockets each on 5 `private-device.{id}` channels (every device watched once); then the same on the
 * Socket.IO peer. Measures the updates/s ingested (offered vs accepted), the per-device event latency, the
 * staleness and exactness of every progress broadcast (campaign-check.ts), and CPU and memory per process.
 * `--quick`: a tenth of the world.
 *
 * The peer: the task state machine, the campaign counts and the once-a-second progress throttle are
 * alarmcast's ingest, which both systems share (as in `informs`); what differs is the fan-out, so the
 * peer's state bridge re-emits the device and campaign channels the ingest publishes to one Socket.IO room
 * each, and its sockets join those rooms.
 */
import http from 'node:http';
import { join } from 'node:path';
import pg from 'pg';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { APP, JWT_SECRET } from '@alarmcast/e2e/stack';
import { provisionWorld } from './bench-world.js';
import {
  CHAIN,
  certainRanks,
  checkBroadcasts,
  firstCertain,
  type Broadcast,
  type DevicePlan,
} from './campaign-check.js';
import {
  CampaignAccount,
  FAIL_EVERY,
  runReports,
  STEP_GAP_S,
  type CampaignRunResult,
} from './campaign-load.js';
import { pusherCampaignWatcher, socketIoCampaignWatcher } from './campaign-watchers.js';
import { percentiles, type Percentiles } from './load.js';
import { ResourceMonitor, round, type GroupUsage } from './proc-stats.js';
import { benchRedisUrl, infrastructureGroups, startSystem, type SystemName } from './stacks.js';
import type { BenchSettings, Floor } from './scenarios.js';
import { Redis } from 'ioredis';

const CAMPAIGN_ID = 'bench-fw-2-0-0';
const DEVICES_PER_SOCKET = 5;
/** campaign sockets whose per-device frames are parsed and timed (all of them count theirs) */
const SAMPLED_CAMPAIGN_SOCKETS = 10;
/** the ingest's CAMPAIGN_PROGRESS_INTERVAL_MS (its default, which the benchmark runs with) */
const PROGRESS_INTERVAL_MS = 1000;

interface CampaignWorld {
  databaseUrl: string;
  deviceIds: number[];
  campaignUsers: number[];
  deviceUsers: number[];
  token: string;
}

/** One tenant: its devices, a user per socket, and a collector token with scopes tasks and campaigns. */
async function provisionCampaignWorld(devices: number, campaignSockets: number): Promise<CampaignWorld> {
  const deviceSockets = devices / DEVICES_PER_SOCKET;
  const world = await provisionWorld('alarmcast_bench_campaign', {
    tenants: 1,
    usersPerTenant: campaignSockets + deviceSockets,
    devicesPerTenant: devices,
    shareEveryNthUser: 0,
    sharesPerSharer: 0,
  });
  const token = generateCollectorToken();
  const pool = new pg.Pool({ connectionString: world.databaseUrl, max: 1 });
  await pool.query(
    `INSERT INTO collector_tokens (name, token_hash, scopes) VALUES ($1, $2, ARRAY['tasks', 'campaigns'])`,
    ['bench acs', hashCollectorToken(token)],
  );
  await pool.end();
  return {
    databaseUrl: world.databaseUrl,
    deviceIds: world.deviceIds,
    campaignUsers: world.userIds.slice(0, campaignSockets),
    deviceUsers: world.userIds.slice(campaignSockets),
    token,
  };
}

function request(
  method: string,
  url: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(text ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } : {}),
        },
      },
      (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (out += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(out || '{}') as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

interface CampaignTruth {
  counts: Record<string, number>;
  version: number;
}

export interface CampaignSystemRun extends CampaignRunResult {
  system: SystemName;
  label: string;
  campaignSockets: number;
  deviceSockets: number;
  socketsConnectS: number;
  createCampaignMs: number;
  /** DeviceTaskUpdated on the device channels: POST sent → frame */
  device: { expected: number; received: number; duplicates: number; stray: number; latencyMs: Percentiles };
  /** FirmwareCampaignProgress on the campaign channel */
  progress: {
    /** broadcasts at the first subscriber, and the fewest / most any subscriber got */
    broadcasts: number;
    broadcastsPerSocket: { min: number; max: number };
    /** subscribers whose broadcasts (versions and counts) differ from the first subscriber's */
    socketsDiffering: number;
    /** milliseconds between successive broadcasts at the first subscriber */
    intervalMs: Percentiles;
    /** acknowledgement of a count-moving report → first broadcast certainly including it, every subscriber */
    stalenessMs: Percentiles;
    /** reports no broadcast certainly included (0 when the final broadcast arrived) */
    neverIncluded: number;
    exactness: ReturnType<typeof checkBroadcasts>;
    /** the last broadcast equals GET /v1/campaigns/{id} and the harness' own count of its reports */
    finalEqualsTruth: boolean;
    final: CampaignTruth | null;
    get: CampaignTruth;
    harness: Record<string, number>;
  };
  /** per-device changes on the campaign channel (conflated), counted at every socket, timed at a sample */
  campaignTasks: { framesPerSocketPerS: number; sampledSockets: number; latencyMs: Percentiles };
  resources: GroupUsage[];
}

async function redisPid(): Promise<number> {
  const redis = new Redis(benchRedisUrl());
  const info = await redis.info('server');
  redis.disconnect();
  return Number(/process_id:(\d+)/.exec(info)![1]);
}

async function runOn(
  system: SystemName,
  devicesN: number,
  campaignSocketsN: number,
  ratePerS: number,
  warmupS: number,
  profileDir: string | undefined,
): Promise<CampaignSystemRun> {
  const world = await provisionCampaignWorld(devicesN, campaignSocketsN);
  const profile = profileDir && join(profileDir, `campaign-${system}`);
  const sys = await startSystem(system, world.databaseUrl, profile, { deviceStatus: true });
  const closers: { close: () => void }[] = [];
  try {
    const t0 = performance.now();
    const created = await request('POST', `${sys.ingestUrl}/v1/campaigns`, world.token, {
      campaignId: CAMPAIGN_ID,
      tenantId: 1, // the world's one tenant, the first row of a fresh database
      name: 'bench: everything to 2.0.0',
      targetVersion: '2.0.0',
      deviceIds: world.deviceIds,
    });
    const createCampaignMs = round(performance.now() - t0, 1);
    if (created.status !== 201)
      throw new Error(`POST /v1/campaigns: ${created.status} ${JSON.stringify(created.json)}`);

    const connect =
      system === 'alarmcast'
        ? pusherCampaignWatcher({ edgeUrl: sys.socketServer.url, appKey: APP.key })
        : socketIoCampaignWatcher(sys.socketServer.url);
    let account = new CampaignAccount();
    const campaignRoutes = world.campaignUsers.map((_, i) =>
      account.campaignSocket(i, i < SAMPLED_CAMPAIGN_SOCKETS),
    );
    const jobs: (() => Promise<void>)[] = [
      ...world.campaignUsers.map((userId, i) => async () => {
        const jwt = await signUserJwt(JWT_SECRET, userId);
        closers.push(await connect(userId, jwt, { campaign: CAMPAIGN_ID }, (f) => campaignRoutes[i]!(f)));
      }),
      ...world.deviceUsers.map((userId, i) => async () => {
        const jwt = await signUserJwt(JWT_SECRET, userId);
        const devices = world.deviceIds.slice(i * DEVICES_PER_SOCKET, (i + 1) * DEVICES_PER_SOCKET);
        closers.push(await connect(userId, jwt, { devices }, (f) => account.onDeviceFrame(f)));
      }),
    ];
    const s0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < jobs.length) await jobs[next++]!();
      }),
    );
    const socketsConnectS = round((performance.now() - s0) / 1000, 1);
    process.stderr.write(`[campaign ${system}] ${jobs.length} sockets subscribed in ${socketsConnectS} s\n`);
    await new Promise((r) => setTimeout(r, 2000));
    // The subscribe snapshots are behind us: a fresh account for the run (the routes read `account` anew).
    account = new CampaignAccount();
    world.campaignUsers.forEach(
      (_, i) => (campaignRoutes[i] = account.campaignSocket(i, i < SAMPLED_CAMPAIGN_SOCKETS)),
    );

    const monitor = new ResourceMonitor([
      ...sys.groups,
      ...infrastructureGroups(await redisPid()),
      { name: 'harness (sockets, reports)', pids: () => [process.pid] },
    ]);
    monitor.start();
    const devices: DevicePlan[] = [];
    const run = await runReports(
      {
        ingestUrl: sys.ingestUrl,
        token: world.token,
        campaignId: CAMPAIGN_ID,
        deviceIds: world.deviceIds,
        ratePerS,
        warmupS,
      },
      account,
      devices,
    );
    // The truth: the campaign as the API has it, and as the harness' acknowledged reports make it.
    const viewer = await signUserJwt(JWT_SECRET, world.campaignUsers[0]!);
    const got = await request('GET', `${sys.ingestUrl}/v1/campaigns/${CAMPAIGN_ID}`, viewer);
    const campaign = got.json.campaign as { counts: Record<string, number>; version: number };
    const get: CampaignTruth = { counts: campaign.counts, version: campaign.version };
    const harness: Record<string, number> = Object.fromEntries(CHAIN.map((s) => [s, 0]));
    for (const d of devices) {
      const rank = Math.max(0, ...d.reports.filter((r) => r.ackWall !== null).map((r) => r.rank));
      harness[rank < 4 ? CHAIN[rank]! : d.terminal]!++;
    }
    // What is owed arrives: the per-device frames, and every subscriber's final broadcast.
    const expected = [...account.sent.values()].filter((x) => x.measured && x.applied).length;
    const drainUntil = performance.now() + 2 * PROGRESS_INTERVAL_MS + 5000;
    const lastVersion = (l: Broadcast[]) => l[l.length - 1]?.version ?? -1;
    while (
      performance.now() < drainUntil &&
      (account.deviceReceived < expected || account.broadcasts.some((l) => lastVersion(l) < get.version))
    )
      await new Promise((r) => setTimeout(r, 50));
    const resources = monitor.stop();

    const reference = account.broadcasts[0] ?? [];
    const last = reference[reference.length - 1];
    const final = last ? { counts: last.counts, version: last.version } : null;
    // Every count, a missing one being 0 (the harness counts only the chain's states).
    const sameCounts = (a: Record<string, number>, b: Record<string, number>) =>
      [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
    const isFinal = (b: Broadcast) => b.version === get.version && sameCounts(b.counts, get.counts);
    const finalEqualsTruth =
      final !== null &&
      isFinal(last!) &&
      sameCounts(get.counts, harness) &&
      Object.keys(run.failures).length === 0;
    const exactness = checkBroadcasts(devices, reference, devicesN);
    const signature = (l: Broadcast[]) => l.map((b) => `${b.version}:${JSON.stringify(b.counts)}`).join(' ');
    const referenceSignature = signature(reference);
    // Staleness: each count-moving report, from its acknowledgement to the arrival, at every subscriber, of
    // the first broadcast that certainly includes it (the subscriber's first at or past that version).
    const certain = certainRanks(devices, reference);
    // arrival[s][i]: when subscriber s got its first broadcast at or past the version of reference[i]
    const arrival = account.broadcasts.map((list) => {
      let j = 0;
      return reference.map((r) => {
        while (j < list.length && list[j]!.version < r.version) j++;
        return j < list.length ? list[j]!.arrivedWall : NaN;
      });
    });
    const stale: number[] = [];
    let neverIncluded = 0;
    for (const m of account.moves) {
      const i = firstCertain(certain, m.device, m.rank);
      if (i < 0) {
        neverIncluded++;
        continue;
      }
      for (const at of arrival) {
        if (Number.isNaN(at[i]!)) neverIncluded++;
        else stale.push(at[i]! - m.ackWall);
      }
    }
    const gaps = reference.slice(1).map((b, i) => b.arrivedWall - reference[i]!.arrivedWall);
    const counts = account.broadcasts.map((l) => l.length);
    return {
      system,
      label: `campaign ${system} ${ratePerS}/s`,
      ...run,
      campaignSockets: campaignSocketsN,
      deviceSockets: world.deviceUsers.length,
      socketsConnectS,
      createCampaignMs,
      device: {
        expected,
        received: account.deviceReceived,
        duplicates: account.deviceDuplicates,
        stray: account.deviceStray,
        latencyMs: percentiles(account.deviceLatencies),
      },
      progress: {
        broadcasts: reference.length,
        broadcastsPerSocket: { min: Math.min(...counts), max: Math.max(...counts) },
        socketsDiffering: account.broadcasts.filter((l) => signature(l) !== referenceSignature).length,
        intervalMs: percentiles(gaps),
        stalenessMs: percentiles(stale),
        neverIncluded,
        exactness,
        finalEqualsTruth,
        final,
        get,
        harness,
      },
      campaignTasks: {
        framesPerSocketPerS: round(
          account.campaignTaskFrames.reduce((a, b) => a + b, 0) / Math.max(1, campaignSocketsN) / run.runS,
          1,
        ),
        sampledSockets: Math.min(SAMPLED_CAMPAIGN_SOCKETS, campaignSocketsN),
        latencyMs: percentiles(account.campaignTaskLatencies),
      },
      resources,
    };
  } finally {
    for (const c of closers) c.close();
    await sys.close();
  }
}

export async function campaign(s: BenchSettings) {
  const devices = s.quick ? 1000 : 10_000;
  const campaignSockets = s.quick ? 20 : 200;
  const ratePerS = 500;
  const warmupS = s.quick ? 2 : 10;
  const systems: SystemName[] = s.peer ? ['alarmcast', 'socketio'] : ['alarmcast'];
  const runs: CampaignSystemRun[] = [];
  for (const system of systems)
    runs.push(await runOn(system, devices, campaignSockets, ratePerS, warmupS, s.profileDir));
  const o = runs[0]!;
  const p = o.progress;
  const e = p.exactness;
  const floors: Floor[] = [
    {
      what: 'task updates/s ingested (PUT /v1/tasks, 500/s offered)',
      target: '≥ 500/s offered, ≥ 97 % of it accepted, none refused',
      measured: `${o.offeredPerS} → ${o.acceptedPerS}/s accepted (${Object.values(o.failures).reduce((a, b) => a + b, 0)} refused)`,
      met: o.acceptedPerS >= 0.97 * o.offeredPerS && Object.keys(o.failures).length === 0,
    },
    {
      what: 'aggregate staleness, max (report acknowledged → first broadcast certainly including it, every subscriber)',
      target: `≤ ${PROGRESS_INTERVAL_MS + 100} ms (the ${PROGRESS_INTERVAL_MS} ms broadcast interval + 100 ms)`,
      measured: `${p.stalenessMs.max} ms (p50 ${p.stalenessMs.p50}, p99 ${p.stalenessMs.p99}; ${p.neverIncluded} never included)`,
      met: p.stalenessMs.max <= PROGRESS_INTERVAL_MS + 100 && p.neverIncluded === 0,
    },
    {
      what: 'every progress broadcast exact (within the reports acknowledged / sent, version = transitions, monotone), the same at every subscriber',
      target: 'all',
      measured: `${e.broadcasts - e.inexact - e.versionMismatch - e.nonMonotone}/${e.broadcasts} exact; ${p.socketsDiffering}/${o.campaignSockets} subscribers differing`,
      met:
        e.broadcasts > 0 && e.inexact + e.versionMismatch + e.nonMonotone === 0 && p.socketsDiffering === 0,
    },
    {
      what: 'the last broadcast = GET /v1/campaigns/{id} = the reports sent',
      target: 'equal',
      measured: p.finalEqualsTruth
        ? 'equal'
        : `last ${JSON.stringify(p.final)}, GET ${JSON.stringify(p.get)}, reports ${JSON.stringify(p.harness)}`,
      met: p.finalEqualsTruth,
    },
    {
      what: 'DeviceTaskUpdated to device-channel subscribers, p99 (PUT sent → frame)',
      target: '≤ 100 ms',
      measured: `${o.device.latencyMs.p99} ms (p50 ${o.device.latencyMs.p50}; ${o.device.received}/${o.device.expected} delivered, ${o.device.duplicates} duplicates)`,
      met:
        o.device.latencyMs.p99 <= 100 && o.device.received === o.device.expected && o.device.duplicates === 0,
    },
  ];
  return {
    scenario: 'campaign' as const,
    world: {
      devices,
      campaignSockets,
      deviceSockets: devices / DEVICES_PER_SOCKET,
      devicesPerSocket: DEVICES_PER_SOCKET,
      failEvery: FAIL_EVERY,
      stepGapS: STEP_GAP_S,
      reportsPerDevice: 8,
    },
    ratePerS,
    warmupS,
    runs,
    floors,
  };
}
