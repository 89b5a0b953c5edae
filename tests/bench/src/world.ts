/**
 * Size of the world (benchmark scenario 3): the time to resolve the recipients of one alarm as the
 * number of users grows from 1,000 to 100,000 (tenants of 100 users, one device per user, 10% of users
 * with a share into the next tenant), for alarmcast's query and for the workaround the old design proposed
 * (iterate every user and ask whether they may access the device).
 */
import { LocalClock, preferenceEventOf } from '@alarmcast/contracts';
import { createPgPool, loadBroadcastPlan, type PgPool } from '@alarmcast/db';
import { createLogger } from '@alarmcast/observability';
import { PreferenceCache, decideRecipients } from '@alarmcast/recipient-resolver';
import { freshDatabase, holdPreferences } from './bench-world.js';
import { quantile } from './load.js';
import { round } from './proc-stats.js';

export interface WorldOptions {
  /** user counts to measure at @defaultValue [1000, 10000, 100000] */
  sizes: number[];
  /** alarms resolved by alarmcast's query per size @defaultValue 200 */
  samples: number;
  /** alarms resolved by the baseline per size (seconds each at 100,000 users) @defaultValue 3 */
  baselineSamples: number;
  /**
   * Also time the whole resolution (the plan query and every recipient's preference decision, as the
   * resolver does it) without preferences and then with every user holding them (bench-world.ts
   * `holdPreferences`), in the same run. @defaultValue false
   */
  preferences?: boolean;
}

const TENANT_SIZE = 100;

/** A world of `users` users in tenants of 100, one device per user, 10% of users sharing a device of the next tenant. */
async function buildWorld(pool: PgPool, users: number, events: number): Promise<void> {
  const tenants = users / TENANT_SIZE;
  await pool.query(
    'TRUNCATE tenants, users, cpe_devices, user_devices, outbox_events RESTART IDENTITY CASCADE',
  );
  await pool.query(
    `INSERT INTO tenants (name, slug) SELECT 't' || i, 't' || i FROM generate_series(1, $1) i`,
    [tenants],
  );
  await pool.query(
    `INSERT INTO users (tenant_id, email, name) SELECT (i - 1) / $2 + 1, 'u' || i || '@x.test', 'u' || i
       FROM generate_series(1, $1) i`,
    [users, TENANT_SIZE],
  );
  await pool.query(
    `INSERT INTO cpe_devices (tenant_id, oui, product_class, serial_number)
     SELECT (i - 1) / $2 + 1, '00D09E', 'PC', 'S' || i FROM generate_series(1, $1) i`,
    [users, TENANT_SIZE],
  );
  // Every 10th user sees the same-numbered device of the next tenant.
  await pool.query(
    `INSERT INTO user_devices (user_id, device_id)
     SELECT i, ((i - 1 + $2) % $1) + 1 FROM generate_series(1, $1, 10) i`,
    [users, TENANT_SIZE],
  );
  await pool.query(
    `INSERT INTO outbox_events (tenant_id, device_id, kind, payload)
     SELECT d.tenant_id, d.id, 'alarm.created',
            jsonb_build_object('alarm', jsonb_build_object('device_id', d.id, 'perceived_severity', 'Major',
              'event_type', 'Communications Alarm', 'probable_cause', 'Loss of signal'))
       FROM cpe_devices d ORDER BY random() LIMIT $1`,
    [events],
  );
  await pool.query('ANALYZE');
}

/**
 * The old design's workaround, done faithfully: load every user, and for each one ask whether they may
 * access the alarm's device (a tenant member, or else an explicit share: one query per such user).
 */
async function baselineRecipients(pool: PgPool, eventId: string): Promise<number[]> {
  const {
    rows: [event],
  } = await pool.query<{ tenant_id: number; device_id: number }>(
    'SELECT tenant_id, device_id FROM outbox_events WHERE id = $1',
    [eventId],
  );
  const { rows: users } = await pool.query<{ id: number; tenant_id: number; active: boolean }>(
    'SELECT id, tenant_id, active FROM users',
  );
  const recipients: number[] = [];
  for (const u of users) {
    if (!u.active) continue;
    if (u.tenant_id === event!.tenant_id) {
      recipients.push(u.id);
      continue;
    }
    const { rowCount } = await pool.query({
      name: 'baseline_can_access',
      text: 'SELECT 1 FROM user_devices WHERE user_id = $1 AND device_id = $2',
      values: [u.id, event!.device_id],
    });
    if (rowCount) recipients.push(u.id);
  }
  return recipients;
}

export async function runWorldScenario(o: WorldOptions) {
  const { samples: SAMPLES, baselineSamples: BASELINE_SAMPLES } = o;
  const databaseUrl = await freshDatabase('alarmcast_bench_world');
  const pool = createPgPool(databaseUrl, { max: 2 });
  const results = [];
  for (const users of o.sizes) {
    await buildWorld(pool, users, Math.max(SAMPLES, BASELINE_SAMPLES));
    const { rows } = await pool.query<{ id: string }>('SELECT id FROM outbox_events ORDER BY id');
    const ids = rows.map((r) => String(r.id));
    for (const id of ids.slice(0, 20)) await loadBroadcastPlan(pool, id); // warm the plan and caches
    const ours: number[] = [];
    let recipients = 0;
    for (const id of ids.slice(0, SAMPLES)) {
      const t0 = performance.now();
      const plan = await loadBroadcastPlan(pool, id);
      ours.push(performance.now() - t0);
      recipients += plan!.recipients.length;
    }
    const baseline: number[] = [];
    for (const id of ids.slice(0, BASELINE_SAMPLES)) {
      const t0 = performance.now();
      const got = await baselineRecipients(pool, id);
      baseline.push(performance.now() - t0);
      // Both must find the same people, or the comparison means nothing.
      const plan = await loadBroadcastPlan(pool, id);
      if (
        JSON.stringify([...got].sort((a, b) => a - b)) !==
        JSON.stringify([...plan!.recipients].sort((a, b) => a - b))
      ) {
        throw new Error(`baseline and alarmcast disagree on event ${id}`);
      }
    }
    const resolution = o.preferences ? await timeResolution(pool, ids.slice(0, SAMPLES), databaseUrl) : null;
    const row = {
      ...(resolution ?? {}),
      users,
      tenants: users / TENANT_SIZE,
      devices: users,
      meanRecipients: Number((recipients / Math.min(SAMPLES, ids.length)).toFixed(1)),
      alarmcastMs: precise(ours),
      baselineMs: precise(baseline),
    };
    results.push(row);
    if (resolution)
      console.log(
        `${String(users).padStart(7)} users: resolution (plan + decisions) p50 ${resolution.resolveMs.p50} ms p99 ${resolution.resolveMs.p99} ms without preferences, ` +
          `p50 ${resolution.resolveWithPreferencesMs.p50} ms p99 ${resolution.resolveWithPreferencesMs.p99} ms with: ${resolution.preferencesRatioP50}x (p50)`,
      );
    console.log(
      `${String(users).padStart(7)} users: alarmcast p50 ${row.alarmcastMs.p50.toFixed(2)} ms p99 ${row.alarmcastMs.p99.toFixed(2)} ms | ` +
        `baseline p50 ${row.baselineMs.p50.toFixed(0)} ms | ${row.meanRecipients} recipients/alarm`,
    );
  }
  const first = results[0]!;
  const last = results.at(-1)!;
  const summary = {
    method: 'recipients of one alarm, warm, one connection; baseline = iterate every user, ask per user',
    results,
    alarmcastGrowth: Number((last.alarmcastMs.p50 / first.alarmcastMs.p50).toFixed(2)),
    baselineOverAlarmcastAtLargest: Number((last.baselineMs.p50 / last.alarmcastMs.p50).toFixed(0)),
    // With --preferences: resolution with every user holding preferences over without, at the largest size.
    preferencesRatioAtLargest:
      last.preferencesRatioP50 !== undefined && last.preferencesRatioP99 !== undefined
        ? { p50: last.preferencesRatioP50, p99: last.preferencesRatioP99 }
        : null,
  };
  console.log(
    `alarmcast p50 grew ${summary.alarmcastGrowth}x from ${first.users} to ${last.users} users; ` +
      `at ${last.users} users the baseline is ${summary.baselineOverAlarmcastAtLargest}x slower`,
  );
  await pool.end();
  return summary;
}

/**
 * The resolver's resolution of each event (plan query, preference cache, every recipient's decision), warm,
 * first with no user holding preferences, then with all of them holding the benchmark's mix; the cache is
 * warmed first each time, as a running resolver's is.
 */
async function timeResolution(pool: PgPool, ids: string[], databaseUrl: string) {
  const log = createLogger({ service: 'bench', level: 'silent' });
  const pass = async () => {
    const cache = new PreferenceCache(pool, log);
    const once = async (id: string) => {
      const plan = (await loadBroadcastPlan(pool, id))!;
      const prefsOf = await cache.forPlan(plan);
      return decideRecipients(
        plan.recipients,
        prefsOf,
        preferenceEventOf(plan.kind, JSON.parse(plan.payloadJson)),
        new LocalClock(new Date()),
        plan.received.get(plan.alarmId ?? '') ?? new Set(),
      );
    };
    for (const id of ids) await once(id); // warm: every recipient's rules compiled
    const times: number[] = [];
    let suppressed = 0;
    let silent = 0;
    for (const id of ids) {
      const t0 = performance.now();
      const d = await once(id);
      times.push(performance.now() - t0);
      suppressed += d.suppressed;
      silent += d.silent.size;
    }
    return { times, suppressed, silent };
  };
  await pool.query('TRUNCATE user_preferences');
  const without = await pass();
  await holdPreferences(databaseUrl);
  // Writing every user's preferences updated every users row (the version the plan reads): vacuum them, as
  // the other scenarios do before every run, so the run with preferences does not pay for dead rows.
  await pool.query('VACUUM ANALYZE users, user_preferences');
  const withPrefs = await pass();
  await pool.query('TRUNCATE user_preferences');
  const resolveMs = precise(without.times);
  const resolveWithPreferencesMs = precise(withPrefs.times);
  return {
    resolveMs,
    resolveWithPreferencesMs,
    preferencesRatioP50: Number((resolveWithPreferencesMs.p50 / resolveMs.p50).toFixed(2)),
    preferencesRatioP99: Number((resolveWithPreferencesMs.p99 / resolveMs.p99).toFixed(2)),
    withPreferences: { suppressed: withPrefs.suppressed, silent: withPrefs.silent },
  };
}

/** Sub-millisecond figures need more than percentiles()' one decimal. */
const precise = (xs: number[]) => {
  const s = Float64Array.from(xs).sort();
  const at = (p: number) => round(quantile(s, p), 3);
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
};
