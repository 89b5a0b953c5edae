/**
 * Task report probe: one campaign over `--devices` devices of one tenant on a fresh database, the services as
 * separate processes (`--ingests` ingest processes, one resolver, one edge), then every device's task reported
 * through the download phases (queued, dispatched, running downloading, applying, rebooting, verifying,
 * succeeded or, for one in ten, a TransferComplete fault), offered at `--rate` reports a second spread over
 * the ingests (at most 200 requests open). Prints the reports answered 2xx per second (a 503 `overloaded` is
 * not retried: it counts as offered, not accepted), PUT latency, and whether the campaign's final counts
 * equal a recount of its devices (a device whose report got a 503 stays in an earlier state). No sockets: the delivery side is measured by
 * the e2e tests and `pnpm bench`.
 *
 *   pnpm --dir tests/e2e exec tsx --conditions=source src/task-rate.ts [--devices 2000] [--rate 500] [--ingests 2]
 */
import { parseArgs } from 'node:util';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { applyMigrations, createPrismaClient, ensureDatabase, provisionGraph } from '@alarmcast/db';
import { uniqueRedisPrefix } from '@alarmcast/testing';
import pg from 'pg';
import { spawnIngestProcess, spawnResolverProcess, stopService } from './fault-helpers.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '500' },
    ingests: { type: 'string', default: '2' },
  },
});
const DEVICES = Number(values.devices);
const RATE = Number(values.rate);
const INGESTS = Number(values.ingests);
const adminUrl = process.env.DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const dbUrl = adminUrl.replace(/\/[^/]*$/, '/alarmcast_task_rate');

const STEPS: Record<string, unknown>[] = [
  { state: 'queued' },
  { state: 'dispatched' },
  { state: 'running', phase: 'downloading' },
  { state: 'running', phase: 'applying' },
  { state: 'running', phase: 'rebooting' },
  { state: 'running', phase: 'verifying' },
];

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS alarmcast_task_rate WITH (FORCE)');
  await admin.end();
  await ensureDatabase(dbUrl);
  await applyMigrations(dbUrl);
  const prisma = createPrismaClient(dbUrl);
  const world = await provisionGraph(
    prisma,
    {
      tenants: [
        {
          ref: 't',
          name: 'Tenant',
          slug: 't',
          users: [{ ref: 'noc', email: 'noc@example.test', name: 'noc' }],
          devices: Array.from({ length: DEVICES }, (_, i) => ({
            ref: `d${i}`,
            oui: '00D09E',
            productClass: 'HG8245',
            serialNumber: `SN${i}`,
          })),
          collectorTokens: [{ ref: 'acs', name: 'acs', scopes: ['tasks', 'campaigns'] }],
        },
      ],
    },
    { hashToken: hashCollectorToken, newToken: generateCollectorToken },
  );
  await prisma.$disconnect();
  const env = {
    databaseUrl: dbUrl,
    redisUrl,
    redisPrefix: uniqueRedisPrefix(),
    extra: {
      LOG_LEVEL: 'warn',
      RATE_LIMIT_ALARMS_PER_TOKEN: '0',
      RATE_LIMIT_ALARMS_PER_IP: '0',
      DB_POOL_MAX: '20',
    },
  };
  const services = await Promise.all([
    ...Array.from({ length: INGESTS }, (_, i) => spawnIngestProcess(env, `ingest-${i}`)),
    spawnResolverProcess(env, 'resolver'),
  ]);
  const ingests = services.slice(0, INGESTS);
  const token = world.collectorTokens.acs!.token;
  const ids = Array.from({ length: DEVICES }, (_, i) => world.devices[`d${i}`]!.id);
  const send = (n: number, method: string, path: string, body: unknown) =>
    fetch(`${ingests[n % INGESTS]!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const created = await send(0, 'POST', '/v1/campaigns', {
    campaignId: 'probe',
    tenantId: world.tenants.t!.id,
    name: 'probe',
    targetVersion: '2.0',
    deviceIds: ids,
    failureThresholdPercent: 50,
  });
  if (created.status !== 201) throw new Error(`campaign: ${created.status} ${await created.text()}`);

  // Reports in rounds: every device's next step, so each device's reports stay in order.
  const reports: { deviceId: number; body: Record<string, unknown> }[][] = [];
  for (let k = 0; k <= STEPS.length; k++)
    reports.push(
      ids.map((deviceId, i) => ({
        deviceId,
        body:
          k < STEPS.length
            ? STEPS[k]!
            : i % 10 === 0
              ? { state: 'running', phase: 'verifying', faultCode: 9010 }
              : { state: 'succeeded' },
      })),
    );
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const start = performance.now();
  let sent = 0;
  for (const round of reports) {
    const open = new Set<Promise<void>>();
    for (const r of round) {
      const due = start + (sent / RATE) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      while (open.size >= 200) await Promise.race(open);
      const n = sent++;
      const t0 = performance.now();
      const p = send(n, 'PUT', `/v1/tasks/probe-${r.deviceId}`, {
        deviceId: r.deviceId,
        kind: 'download',
        campaignId: 'probe',
        targetSoftwareVersion: '2.0',
        ...r.body,
      }).then(async (res) => {
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      });
      const tracked = p.finally(() => open.delete(tracked));
      open.add(tracked);
    }
    await Promise.all(open);
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(1);
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const counts = (
    await db.query(
      `SELECT sum(pending)::int AS pending, sum(succeeded)::int AS succeeded, sum(failed)::int AS failed,
              sum(running)::int AS running, sum(queued)::int AS queued, sum(dispatched)::int AS dispatched,
              sum(version)::int AS version
         FROM campaign_count_shards WHERE campaign_id = 'probe'`,
    )
  ).rows[0] as Record<string, number>;
  const recount = (
    await db.query<{ state: string | null; n: number }>(
      "SELECT state, count(*)::int AS n FROM campaign_devices WHERE campaign_id = 'probe' GROUP BY state",
    )
  ).rows;
  await db.end();
  const exact = recount.every((r) => counts[r.state ?? 'pending'] === r.n);
  const result = {
    devices: DEVICES,
    ingests: INGESTS,
    offeredPerS: RATE,
    reports: sent,
    seconds: Number(seconds.toFixed(1)),
    // answered 2xx (applied, or a replay of a report whose first answer was a 503 after its commit)
    acceptedPerS: Math.round(
      [...statuses].filter(([st]) => st < 300).reduce((a, [, n]) => a + n, 0) / seconds,
    ),
    statuses: Object.fromEntries(statuses),
    putLatencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) },
    counts,
    countsEqualRecount: exact,
  };
  console.log(JSON.stringify(result, null, 2));
  await Promise.all(services.map((s) => stopService(s)));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
