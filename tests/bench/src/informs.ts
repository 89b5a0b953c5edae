/**
 * The `informs` scenario (issue 12): 100,000 devices in 1,000 tenants informing every 300 s (333 informs/s,
 * in collector batches), 1 % of them flapping, 2,000 sockets each watching 20 devices; then a ramp of the
 * informs rate until the ingest stops keeping up; then the same world, load and watches on the Socket.IO
 * peer (one room per device), for the ratio. `--quick`: a tenth of the world for a few seconds a step.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { APP, JWT_SECRET } from '@alarmcast/e2e/stack';
import { provisionWorld, type BenchWorld } from './bench-world.js';
import {
  pusherDeviceWatcher,
  socketIoDeviceWatcher,
  type ConnectWatcher,
  type StatusFrame,
  type Watcher,
} from './device-watchers.js';
import { InformsAccount, runInforms, type InformsRunResult, type Presence } from './informs-load.js';
import { ResourceMonitor, round, type GroupUsage } from './proc-stats.js';
import { benchRedisUrl, benchWorkers, infrastructureGroups, startSystem, type SystemName } from './stacks.js';
import type { BenchSettings, Floor } from './scenarios.js';

/** The world's presence settings (tenant overrides): a flapper (interval 5 s) is offline 13 s after its boot. */
const PRESENCE: Presence = { intervals: 2, graceS: 3, flapperIntervalS: 5 };
const FLAP_PERIOD_S = 20;
const WATCHES_PER_SOCKET = 20;
/** The collector fleet: each flushes once a second, in turn. */
const COLLECTORS = 4;

interface InformsWorld extends BenchWorld {
  /** per socket (user): the devices it watches */
  watches: Map<number, number[]>;
  flappers: number[];
  periodic: number[];
  informTokens: string[];
}

/**
 * Scenario 1's world writer with 2 users and 100 devices per tenant, then: every device online in a steady
 * state (as after a day of informs: last informs spread over the past 300 s, deadlines ahead), the first
 * device of each tenant a flapper, user 1 of a tenant watching its devices 0-19 and user 2 devices 20-39, and
 * collector tokens with the `informs` scope.
 */
async function provisionInformsWorld(tenants: number): Promise<InformsWorld> {
  const world = await provisionWorld('alarmcast_bench_informs', {
    tenants,
    usersPerTenant: 2,
    devicesPerTenant: 100,
    shareEveryNthUser: 0,
    sharesPerSharer: 0,
  });
  const pool = new pg.Pool({ connectionString: world.databaseUrl, max: 1 });
  await pool.query('UPDATE tenants SET device_offline_intervals = $1, device_offline_grace_s = $2', [
    PRESENCE.intervals,
    PRESENCE.graceS,
  ]);
  const informTokens = Array.from({ length: COLLECTORS }, () => generateCollectorToken());
  for (const [i, token] of informTokens.entries()) {
    await pool.query(
      `INSERT INTO collector_tokens (name, token_hash, scopes) VALUES ($1, $2, ARRAY['informs'])`,
      [`bench informs collector ${i + 1}`, hashCollectorToken(token)],
    );
  }
  await pool.end();
  const byTenant = new Map<number, number[]>();
  world.deviceIds.forEach((id, i) => {
    const t = Math.floor(i / 100);
    (byTenant.get(t) ?? byTenant.set(t, []).get(t)!).push(id);
  });
  const watches = new Map<number, number[]>();
  world.userIds.forEach((userId, i) => {
    const devices = byTenant.get(Math.floor(i / 2))!;
    const from = (i % 2) * WATCHES_PER_SOCKET;
    watches.set(userId, devices.slice(from, from + WATCHES_PER_SOCKET));
  });
  const flappers = [...byTenant.values()].map((d) => d[0]!);
  const flapSet = new Set(flappers);
  return {
    ...world,
    watches,
    flappers,
    periodic: world.deviceIds.filter((id) => !flapSet.has(id)),
    informTokens,
  };
}

/** Every run starts from the same status: online, versions known, last informs over the past 300 s. */
async function steadyState(world: InformsWorld): Promise<void> {
  const client = new pg.Client({ connectionString: world.databaseUrl });
  await client.connect();
  await client.query(
    `UPDATE device_status SET online = true, periodic_inform_interval_s = 300, software_version = '1.0.0',
            hardware_version = 'HW1', uptime_s = 259200, last_event_codes = ARRAY['2 PERIODIC'], parameters = '{}',
            last_boot_at = now() - interval '3 days', offline_alarm_id = NULL,
            last_inform_at = now() - make_interval(secs => device_id % 300),
            offline_at = now() - make_interval(secs => device_id % 300) + make_interval(secs => $1 * 300 + $2),
            status_changed_at = now() - interval '3 days'`,
    [PRESENCE.intervals, PRESENCE.graceS],
  );
  // Flappers have their short interval, and their deadline only after their first boot in the run: one
  // seeded a few seconds ahead would pass while the watchers connect, and the offline alarms it raised
  // (user logs, in Redis) would be counted as the watchers' memory.
  await client.query(
    `UPDATE device_status SET periodic_inform_interval_s = $1, last_inform_at = now() - interval '1 s',
            offline_at = now() + interval '1 day'
      WHERE device_id = ANY($2::int[])`,
    [PRESENCE.flapperIntervalS, world.flappers],
  );
  await client.query(`UPDATE alarms SET perceived_severity = 'Cleared', cleared_at = now(), changed_at = now()
                       WHERE cleared_at IS NULL`);
  await client.query('VACUUM ANALYZE');
  await client.query('CHECKPOINT');
  await client.end();
}

async function redisUsedMb(): Promise<{ pid: number; usedMb: number }> {
  const redis = new Redis(benchRedisUrl());
  const info = await redis.info();
  redis.disconnect();
  return {
    pid: Number(/process_id:(\d+)/.exec(info)![1]),
    usedMb: Number(/used_memory:(\d+)/.exec(info)![1]) / 2 ** 20,
  };
}

/** Channels subscribed by all Redis clients together (CLIENT LIST's sub + ssub): what pub/sub holds. */
async function redisSubscriptions(): Promise<number> {
  const redis = new Redis(benchRedisUrl());
  const list = (await redis.client('LIST')) as string;
  redis.disconnect();
  let total = 0;
  for (const m of list.matchAll(/ (s?sub)=(\d+)/g)) total += Number(m[2]);
  return total;
}

async function databaseMb(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ bytes: string }>(
    'SELECT pg_database_size(current_database()) AS bytes',
  );
  await client.end();
  return Number(rows[0]!.bytes) / 2 ** 20;
}

export interface InformsStep extends InformsRunResult {
  label: string;
  system: SystemName;
  resources: GroupUsage[];
  redisGrowthMbPerMin: number;
  postgresGrowthMbPerMin: number;
}

interface SystemRun {
  system: SystemName;
  sockets: number;
  watches: number;
  watchersConnectS: number;
  /** Redis used_memory after connecting the watchers minus before: what watching costs Redis */
  redisForWatchersMb: number;
  /** pub/sub subscriptions the watchers added (one per device and edge process that holds it) */
  subscriptionsForWatchers: number;
  /**
   * A second socket for some watchers, on the same devices and the same edge process as their first one
   * (those that landed on another process are closed before measuring): what watching once more costs.
   */
  duplicates: { sockets: number; watches: number; redisMb: number; subscriptionsAdded: number };
  steady: InformsStep;
  ramp: InformsStep[];
  /** the highest periodic rate at which the ingest kept up (see keptUp) */
  highestRateKept: number;
}

/** Kept up: every inform accepted, the ingested rate within 3 % of the offered, batches answered in ≤ 1 s (p99). */
const keptUp = (r: InformsRunResult) =>
  Object.keys(r.failures).length === 0 &&
  r.informsAccepted > 0 &&
  r.ingestedPerS >= 0.97 * r.ratePerS &&
  r.batchAnswerMs.p99 <= 1000;

/**
 * A second socket for a quarter of the watchers, on the same devices; those that landed on another edge
 * process than the first (the socket id's counter tells the process: server.ts nextSocketId) are closed,
 * so what is measured is watching a device again where it is already watched. All closed afterwards.
 */
async function watchAgain(
  system: SystemName,
  watchers: readonly Watcher[],
  connect: ConnectWatcher,
  redisBeforeMb: number,
  subscriptionsBefore: number,
): Promise<SystemRun['duplicates']> {
  const processes = system === 'alarmcast' ? Number(benchWorkers().EDGE_WORKERS) : 1;
  const processOf = (w: Watcher) => (w.socketId ? Number(w.socketId.split('.')[1]) % processes : 0);
  const kept: Watcher[] = [];
  const originals = watchers.slice(0, Math.ceil(watchers.length / 4));
  let next = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < originals.length) {
        const first = originals[next++]!;
        const jwt = await signUserJwt(JWT_SECRET, first.userId);
        const again = await connect(first.userId, jwt, first.deviceIds, () => {});
        if (processOf(again) === processOf(first)) kept.push(again);
        else again.close();
      }
    }),
  );
  try {
    await new Promise((r) => setTimeout(r, 2000));
    return {
      sockets: kept.length,
      watches: kept.reduce((n, w) => n + w.deviceIds.length, 0),
      redisMb: round((await redisUsedMb()).usedMb - redisBeforeMb, 2),
      subscriptionsAdded: (await redisSubscriptions()) - subscriptionsBefore,
    };
  } finally {
    for (const w of kept) w.close();
  }
}

export async function informs(s: BenchSettings) {
  const tenants = s.quick ? 100 : 1000;
  const world = await provisionInformsWorld(tenants);
  const base = s.quick ? { durationS: 20, warmupS: 5 } : { durationS: 120, warmupS: 15 };
  const rampRates = s.quick ? [1000] : [1000, 2000, 3000, 4000, 6000, 8000, 12_000];
  const rampStep = s.quick ? { durationS: 5, warmupS: 2 } : { durationS: 20, warmupS: 5 };
  const steadyRate = Math.round((world.deviceIds.length - world.flappers.length) / 300);
  const systems: SystemName[] = s.peer ? ['alarmcast', 'socketio'] : ['alarmcast'];
  const runs: SystemRun[] = [];
  for (const system of systems) {
    await steadyState(world);
    const sys = await startSystem(system, world.databaseUrl, undefined, { deviceStatus: true });
    const watchers: Watcher[] = [];
    let route: (f: StatusFrame) => void = () => {};
    try {
      const connect =
        system === 'alarmcast'
          ? pusherDeviceWatcher({ edgeUrl: sys.socketServer.url, appKey: APP.key })
          : socketIoDeviceWatcher(sys.socketServer.url);
      const redisBefore = await redisUsedMb();
      const subscriptionsBefore = await redisSubscriptions();
      const t0 = performance.now();
      const users = [...world.watches.keys()];
      let next = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (next < users.length) {
            const userId = users[next++]!;
            const jwt = await signUserJwt(JWT_SECRET, userId);
            watchers.push(await connect(userId, jwt, world.watches.get(userId)!, (f) => route(f)));
          }
        }),
      );
      const watchersConnectS = round((performance.now() - t0) / 1000, 1);
      process.stderr.write(
        `[informs ${system}] ${watchers.length} watchers connected in ${watchersConnectS} s\n`,
      );
      await new Promise((r) => setTimeout(r, 2000));
      const redisWithWatchers = (await redisUsedMb()).usedMb;
      const redisForWatchersMb = round(redisWithWatchers - redisBefore.usedMb, 2);
      const subscriptionsWithWatchers = await redisSubscriptions();
      const duplicates = await watchAgain(
        system,
        watchers,
        connect,
        redisWithWatchers,
        subscriptionsWithWatchers,
      );
      process.stderr.write(
        `[informs ${system}] watchers: ${redisForWatchersMb} MB, ${subscriptionsWithWatchers - subscriptionsBefore} subscriptions; ` +
          `${duplicates.sockets} duplicate sockets: ${duplicates.redisMb} MB, ${duplicates.subscriptionsAdded} subscriptions added\n`,
      );
      const infrastructure = infrastructureGroups(redisBefore.pid);
      const watched = new Set([...world.watches.values()].flat());

      const step = async (
        label: string,
        ratePerS: number,
        timing: { durationS: number; warmupS: number },
      ) => {
        const account = new InformsAccount();
        route = account.onFrame;
        const monitor = new ResourceMonitor([
          ...sys.groups,
          ...infrastructure,
          { name: 'harness (watchers, collectors)', pids: () => [process.pid] },
        ]);
        const [r0, p0] = [(await redisUsedMb()).usedMb, await databaseMb(world.databaseUrl)];
        const t = performance.now();
        monitor.start();
        const result = await runInforms(
          {
            ingestUrl: sys.ingestUrl,
            collectorTokens: world.informTokens,
            periodicDevices: world.periodic,
            flappers: world.flappers,
            watched,
            presence: PRESENCE,
            flapPeriodS: FLAP_PERIOD_S,
            ratePerS,
            ...timing,
            valueChangeShare: 0.02,
          },
          account,
        );
        const resources = monitor.stop();
        const minutes = (performance.now() - t) / 60_000;
        const [r1, p1] = [(await redisUsedMb()).usedMb, await databaseMb(world.databaseUrl)];
        route = () => {};
        return {
          label,
          system,
          ...result,
          resources,
          redisGrowthMbPerMin: round((r1 - r0) / minutes, 2),
          postgresGrowthMbPerMin: round((p1 - p0) / minutes, 2),
        } satisfies InformsStep;
      };

      const steadyStep = await step(`informs ${system} ${steadyRate}/s`, steadyRate, base);
      const ramp: InformsStep[] = [];
      // The ingest is the same in both systems: the ramp runs on alarmcast's.
      if (system === 'alarmcast') {
        for (const rate of rampRates) {
          const r = await step(`informs ramp ${rate}/s`, rate, rampStep);
          ramp.push(r);
          if (!keptUp(r)) break;
        }
      }
      const kept = [steadyStep, ...ramp].filter(keptUp);
      runs.push({
        system,
        sockets: watchers.length,
        watches: watchers.length * WATCHES_PER_SOCKET,
        watchersConnectS,
        redisForWatchersMb,
        subscriptionsForWatchers: subscriptionsWithWatchers - subscriptionsBefore,
        duplicates,
        steady: steadyStep,
        ramp,
        highestRateKept: Math.max(0, ...kept.map((r) => r.ratePerS)),
      });
    } finally {
      for (const w of watchers) w.close();
      await sys.close();
    }
  }
  const ours = runs[0]!;
  const o = ours.steady;
  const dupBytesPerWatch = Math.round(
    (ours.duplicates.redisMb * 2 ** 20) / Math.max(1, ours.duplicates.watches),
  );
  const floors: Floor[] = [
    {
      what: 'informs/s the ingest keeps up with (ramp)',
      target: '≥ 1,000',
      measured: `${ours.highestRateKept} informs/s`,
      met: ours.highestRateKept >= 1000,
    },
    {
      what: 'status delivery to watchers, p99 (POST sent → frame)',
      target: '≤ 100 ms',
      measured: `${o.deliveryMs.p99} ms (${o.changes.received}/${o.changes.expected} delivered)`,
      met: o.deliveryMs.p99 <= 100 && o.changes.received === o.changes.expected,
    },
    {
      what: 'offline detected after its deadline, max',
      target: '≤ 5000 ms',
      measured: `${o.offlineDetectionMs.max} ms (p99 ${o.offlineDetectionMs.p99}; ${o.offline.received}/${o.offline.expected} seen)`,
      met: o.offlineDetectionMs.max <= 5000 && o.offline.received === o.offline.expected,
    },
    {
      what: 'Redis memory independent of the number of watchers: a second watcher of a device (same edge process)',
      target: 'no subscription added, ≤ 50 B per watch',
      measured:
        `${dupBytesPerWatch} B per watch (${ours.duplicates.redisMb} MB for ${ours.duplicates.watches} watches), ` +
        `${ours.duplicates.subscriptionsAdded} subscriptions added; the first watchers: ${ours.redisForWatchersMb} MB for ` +
        `${ours.subscriptionsForWatchers} subscriptions (one per device and edge process)`,
      met: ours.duplicates.subscriptionsAdded === 0 && ours.duplicates.watches > 0 && dupBytesPerWatch <= 50,
    },
  ];
  const peer = runs.find((r) => r.system === 'socketio');
  const ratio = (pick: (r: InformsStep) => number) =>
    peer && pick(peer.steady) > 0 ? round(pick(o) / pick(peer.steady), 2) : null;
  const cpuSeconds = (r: InformsStep) =>
    r.resources.filter((g) => !g.name.startsWith('harness')).reduce((sum, g) => sum + g.cpuSeconds, 0);
  return {
    scenario: 'informs' as const,
    world: {
      tenants,
      devices: world.deviceIds.length,
      flappers: world.flappers.length,
      sockets: world.watches.size,
      watchesPerSocket: WATCHES_PER_SOCKET,
      presence: PRESENCE,
      flapPeriodS: FLAP_PERIOD_S,
      collectors: COLLECTORS,
    },
    steadyRate,
    base,
    rampStep,
    runs,
    floors,
    /** alarmcast ÷ Socket.IO on the steady step (below 1: alarmcast is lower) */
    versusPeer: peer
      ? {
          deliveryP50: ratio((r) => r.deliveryMs.p50),
          deliveryP99: ratio((r) => r.deliveryMs.p99),
          offlineDetectionP99: ratio((r) => r.offlineDetectionMs.p99),
          cpuSeconds: ratio(cpuSeconds),
        }
      : null,
  };
}
