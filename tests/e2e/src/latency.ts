/**
 * POST-to-socket latency probe: starts the three services as separate processes (or, with --in-process, in
 * this one) on a fresh database, connects a real pusher-js client per user, POSTs alarms at a steady rate
 * and measures, for every delivery, the time from just before the POST was sent to the frame's arrival at
 * the client. Prints a table and JSON.
 *
 *   pnpm latency [--alarms 1000] [--rate 100] [--warmup 200] [--tenants 10] [--users 10] [--in-process]
 *
 * Clients and services share one machine, so these are upper bounds of what a deployment would show. The
 * side-by-side benchmarks with the Socket.IO peer are `pnpm bench` (tests/bench).
 */
import { parseArgs } from 'node:util';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { applyMigrations, createPrismaClient, ensureDatabase, provisionGraph } from '@alarmcast/db';
import { uniqueRedisPrefix } from '@alarmcast/testing';
import pg from 'pg';
import { connectUser, startStack, type ReceivedEvent } from './stack.js';
import { spawnStack } from './spawned-stack.js';

const { values } = parseArgs({
  options: {
    alarms: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '100' },
    tenants: { type: 'string', default: '10' },
    users: { type: 'string', default: '10' },
    'in-process': { type: 'boolean', default: false },
    // Alarms sent first and left out of the latency figures (still checked for exact delivery): the first
    // seconds of a fresh process measure V8's JIT and tsx's lazy transpiling, not the design.
    warmup: { type: 'string', default: '200' },
  },
});
const ALARMS = Number(values.alarms);
const WARMUP = Number(values.warmup);
const RATE = Number(values.rate);
const TENANTS = Number(values.tenants);
const USERS = Number(values.users);
const adminUrl = process.env.DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const dbUrl = adminUrl.replace(/\/[^/]*$/, '/alarmcast_latency');

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS alarmcast_latency WITH (FORCE)');
  await admin.end();
  await ensureDatabase(dbUrl);
  await applyMigrations(dbUrl);
  const prisma = createPrismaClient(dbUrl);
  const world = await provisionGraph(
    prisma,
    {
      tenants: Array.from({ length: TENANTS }, (_, t) => ({
        ref: `t${t}`,
        name: `Tenant ${t}`,
        slug: `t${t}`,
        users: Array.from({ length: USERS }, (_, u) => ({
          ref: `t${t}u${u}`,
          email: `t${t}u${u}@example.test`,
          name: `u${u}`,
        })),
        devices: Array.from({ length: 10 }, (_, d) => ({
          ref: `t${t}d${d}`,
          oui: '00D09E',
          productClass: 'PC',
          serialNumber: `t${t}d${d}`,
        })),
      })),
      collectorTokens: [{ ref: 'platform', name: 'latency probe' }],
      // Every tenant's first user also sees one device of the next tenant.
      shares: Array.from({ length: TENANTS }, (_, t) => ({
        user: `t${t}u0`,
        device: `t${(t + 1) % TENANTS}d0`,
      })),
    },
    { hashToken: hashCollectorToken, newToken: generateCollectorToken },
  );
  // By default each service is its own process, as deployed; --in-process shares this event loop.
  const options = { databaseUrl: dbUrl, redisUrl, redisPrefix: uniqueRedisPrefix() };
  const stack = values['in-process'] ? await startStack(options) : await spawnStack(options);
  const edge = stack.edges[0]!;

  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const lastPerAlarm = new Map<string, number>();
  let duplicates = 0;
  let received = 0;
  const seen = new Set<string>();
  const onEvent = (userId: number) => (e: ReceivedEvent) => {
    const key = `${userId}:${e.data.alarm.id}`;
    if (seen.has(key)) duplicates++;
    seen.add(key);
    received++;
    const ident = e.data.alarm.alarm_identifier as string;
    const t0 = sentAt.get(ident);
    if (t0 === undefined || Number(ident.slice(4)) < WARMUP) return;
    const ms = e.at - t0;
    latencies.push(ms);
    lastPerAlarm.set(ident, Math.max(lastPerAlarm.get(ident) ?? 0, ms));
  };
  const clients = await Promise.all(
    Object.values(world.users).map((u) => connectUser(edge, u.id, onEvent(u.id))),
  );

  const devices = Object.entries(world.devices);
  const token = world.collectorTokens.platform!.token;
  let expected = 0;
  // Every tenant's users, plus the one user of the previous tenant sharing device d0.
  const recipientsOf = (deviceRef: string) => USERS + (deviceRef.endsWith('d0') && TENANTS > 1 ? 1 : 0);
  const start = performance.now();
  const posts: Promise<void>[] = [];
  for (let i = 0; i < WARMUP + ALARMS; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const [ref, device] = devices[i % devices.length]!;
    expected += recipientsOf(ref);
    const ident = `lat-${i}`;
    sentAt.set(ident, performance.now());
    posts.push(
      fetch(`${stack.ingest.url}/v1/alarms`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          deviceId: device.id,
          alarmIdentifier: ident,
          eventType: 'Communications Alarm',
          probableCause: 'Loss of signal',
          specificProblem: 'probe',
          perceivedSeverity: 'Major',
        }),
      }).then(async (r) => {
        if (r.status !== 202) throw new Error(`POST answered ${r.status}: ${await r.text()}`);
      }),
    );
  }
  await Promise.all(posts);
  const deadline = performance.now() + 10_000;
  while (received < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const elapsed = (performance.now() - start) / 1000;

  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
  };
  const last = [...lastPerAlarm.values()];
  const result = {
    alarms: ALARMS,
    ratePerSecond: RATE,
    sockets: clients.length,
    deliveriesExpected: expected,
    warmupAlarms: WARMUP,
    deliveriesReceived: received,
    duplicates,
    elapsedSeconds: Number(elapsed.toFixed(2)),
    perDeliveryMs: {
      p50: pct(latencies, 50),
      p90: pct(latencies, 90),
      p99: pct(latencies, 99),
      max: pct(latencies, 100),
    },
    lastRecipientPerAlarmMs: { p50: pct(last, 50), p99: pct(last, 99), max: pct(last, 100) },
  };
  const f = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `\nPOST-to-socket latency, ${ALARMS} alarms at ${RATE}/s after ${WARMUP} warm-up alarms, ${clients.length} pusher-js sockets`,
  );
  console.log(
    `deliveries (all ${WARMUP + ALARMS} alarms): expected ${expected}, received ${received}, duplicates ${duplicates}`,
  );
  console.log('                      p50      p90      p99      max (ms)');
  console.log(
    `per delivery      ${f(result.perDeliveryMs.p50)}  ${f(result.perDeliveryMs.p90)}  ${f(result.perDeliveryMs.p99)}  ${f(result.perDeliveryMs.max)}`,
  );
  console.log(
    `last recipient    ${f(result.lastRecipientPerAlarmMs.p50)}        -  ${f(result.lastRecipientPerAlarmMs.p99)}  ${f(result.lastRecipientPerAlarmMs.max)}`,
  );
  // Where the slow ones are: the worst last-recipient latency per tenth of the run.
  const tenth = Math.max(1, Math.ceil(ALARMS / 10));
  const byTenth = Array.from({ length: Math.ceil(ALARMS / tenth) }, (_, k) =>
    Math.max(
      0,
      ...[...lastPerAlarm]
        .filter(([ident]) => Math.floor((Number(ident.slice(4)) - WARMUP) / tenth) === k)
        .map(([, ms]) => ms),
    ),
  );
  console.log(`worst per tenth of the run (ms): ${byTenth.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(JSON.stringify(result));

  for (const c of clients) c.disconnect();
  await stack.close();
  await prisma.$disconnect();
  process.exitCode = received === expected && duplicates === 0 ? 0 : 1;
}

await main();
