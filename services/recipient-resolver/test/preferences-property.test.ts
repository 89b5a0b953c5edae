import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LOCKABLE_SETTINGS, MIN_SEVERITIES, WEEKDAYS } from '@alarmcast/contracts';
import { BroadcastMarker, BroadcastPlanLoader, createPgPool, type PgPool } from '@alarmcast/db';
import { createLogger } from '@alarmcast/observability';
import { DEFAULT_RETENTION, RedisKeys, UserLogWriter, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { broadcastJob } from '../src/broadcast-job.js';
import { createResolverMetrics } from '../src/metrics.js';
import { PreferenceCache } from '../src/preference-cache.js';

/**
 * Property: for random tenants, users, rules, tenant defaults and locks, time zones and event streams, what
 * the resolver delivers (read back from the users' logs in Redis: no entry, an entry with notify, a silent
 * entry) equals what a plain reference evaluator written here says, for every (event, user); the rule the
 * resolver records for each alarm's latest event is the reference's; and lifecycle coherence holds: once a
 * user has an event of an alarm, they have every later one. Real Postgres and Redis, the resolver's job
 * function with its real plan loader, preference cache, writer and marker (BullMQ left out: it only calls it).
 */

const EVENT_TYPES = ['communicationsAlarm', 'qualityOfServiceAlarm', 'equipmentAlarm'];
const CAUSES = ['lossOfSignal', 'powerProblem', 'thresholdCrossed'];
// Whole, half and quarter-hour offsets, both hemispheres' summer time.
const ZONES = [
  'UTC',
  'Europe/Paris',
  'America/New_York',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Australia/Sydney',
];
const SEVERITY_ORDER = ['Cleared', 'Indeterminate', 'Warning', 'Minor', 'Major', 'Critical'];

type Doc = Record<string, unknown>;
interface World {
  tenants: { users: number; devices: number; doc: Doc | null }[];
  userDocs: (Doc | null)[];
  steps: Step[];
}
type Step =
  | {
      op: 'raise';
      tenant: number;
      device: number | null;
      eventType: string;
      cause: string;
      severity: string;
      at: number;
    }
  | { op: 'update'; alarm: number; severity: string; at: number }
  | { op: 'clear'; alarm: number; at: number }
  | { op: 'ack'; alarm: number; at: number }
  | { op: 'rules'; user: number; doc: Doc | null; at: number };

const hhmm = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.constantFrom(0, 15, 30, 45))
  .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
const window = fc
  .record({ days: fc.subarray([...WEEKDAYS], { minLength: 1 }), start: hhmm, end: hhmm })
  .filter((w) => w.start !== w.end);
const quietHours = fc.record({
  timeZone: fc.constantFrom(...ZONES),
  windows: fc.array(window, { minLength: 1, maxLength: 3 }),
});
/** Device mutes name device indexes (0, 1) of the tenant; mapped to ids when stored. */
const rules: fc.Arbitrary<Doc> = fc.record(
  {
    minSeverity: fc.constantFrom(null, ...MIN_SEVERITIES),
    mute: fc.record(
      {
        eventTypes: fc.subarray(EVENT_TYPES),
        probableCauses: fc.subarray(CAUSES),
        devices: fc.subarray([0, 1]),
      },
      { requiredKeys: [] },
    ),
    categories: fc.record({ alarms: fc.boolean() }),
    quietHours: fc.option(quietHours, { nil: null }),
  },
  { requiredKeys: [] },
);
const tenantDoc: fc.Arbitrary<Doc> = fc.record({
  defaults: rules,
  locks: fc.subarray([...LOCKABLE_SETTINGS]),
  criticalBypass: fc.boolean(),
});
// 2026-01-01 .. 2026-12-31, so quiet hours meet every weekday, hour and both DST changes.
const at = fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 11, 31) });
const severity = fc.constantFrom(...MIN_SEVERITIES);
const step: fc.Arbitrary<Omit<Step, 'at'> & { at: number }> = fc.oneof(
  fc.record({
    op: fc.constant('raise' as const),
    tenant: fc.nat(1),
    device: fc.option(fc.nat(1), { nil: null }),
    eventType: fc.constantFrom(...EVENT_TYPES),
    cause: fc.constantFrom(...CAUSES),
    severity,
    at,
  }),
  fc.record({ op: fc.constant('update' as const), alarm: fc.nat(5), severity, at }),
  fc.record({ op: fc.constant('clear' as const), alarm: fc.nat(5), at }),
  fc.record({ op: fc.constant('ack' as const), alarm: fc.nat(5), at }),
  fc.record({ op: fc.constant('rules' as const), user: fc.nat(7), doc: fc.option(rules, { nil: null }), at }),
);
const world: fc.Arbitrary<World> = fc
  .record({
    tenants: fc.array(
      fc.record({
        users: fc.integer({ min: 1, max: 4 }),
        devices: fc.constant(2),
        doc: fc.option(tenantDoc, { nil: null }),
      }),
      { minLength: 1, maxLength: 2 },
    ),
    userDocs: fc.array(fc.option(rules, { nil: null }), { minLength: 8, maxLength: 8 }),
    steps: fc.array(step, { minLength: 1, maxLength: 14 }),
  })
  .map((w) => w as World);

// ---------------------------------------------------------------------------------------------------------
// The reference evaluator: the README's model, written plainly and independently of contracts/preferences.ts.

function localTime(ms: number, zone: string): { day: number; minute: number } {
  // toLocaleString rather than formatToParts: another way to read the same instant.
  const text = new Date(ms).toLocaleString('en-GB', {
    timeZone: zone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hour12: false,
  });
  const m = /^(\w{3}) (\d{2}):(\d{2})$/.exec(text);
  if (!m) throw new Error(`unexpected local time ${text}`);
  const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
  return { day: days.indexOf(m[1]!), minute: (Number(m[2]) % 24) * 60 + Number(m[3]) };
}

function quietNow(
  quiet: { timeZone: string; windows: { days: string[]; start: string; end: string }[] },
  ms: number,
) {
  const { day, minute } = localTime(ms, quiet.timeZone);
  const mins = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3));
  return quiet.windows.some((w) => {
    const s = mins(w.start);
    const e = mins(w.end);
    const on = (d: number) => w.days.includes(WEEKDAYS[(d + 7) % 7]!);
    if (s < e) return on(day) && minute >= s && minute < e;
    return (on(day) && minute >= s) || (on(day - 1) && minute < e);
  });
}

interface RefAlarm {
  id: string;
  tenant: number;
  deviceId: number | null;
  eventType: string;
  cause: string;
}

function reference(
  tenant: Doc | null,
  user: Doc | null,
  alarm: RefAlarm,
  severity: string,
  ms: number,
  receivedBefore: boolean,
): { outcome: string; rule: string } {
  const defaults = (tenant?.defaults ?? {}) as Doc;
  const locks = (tenant?.locks ?? []) as string[];
  const read = (doc: Doc | null, path: string): unknown => {
    const [a, b] = path.split('.');
    const v = doc?.[a!];
    return b === undefined ? v : v && typeof v === 'object' ? (v as Doc)[b] : undefined;
  };
  const value = (path: string, fallback: unknown): { v: unknown; locked: boolean } => {
    if (locks.includes(path)) return { v: read(defaults, path) ?? fallback, locked: true };
    const u = read(user, path);
    if (u !== undefined) return { v: u, locked: false };
    return { v: read(defaults, path) ?? fallback, locked: false };
  };
  const bypass = (tenant?.criticalBypass ?? true) !== false && severity === 'Critical';
  let bypassed = false;
  let result: { outcome: string; rule: string } | null = null;
  const consider = (locked: boolean, hit: boolean, outcome: string, rule: string) => {
    if (result || !hit) return;
    if (bypass && !locked) {
      bypassed = true;
      return;
    }
    result = { outcome, rule };
  };
  const cat = value('categories.alarms', true);
  consider(cat.locked, cat.v === false, 'suppress', 'categories.alarms');
  const dev = value('mute.devices', []);
  consider(
    dev.locked,
    alarm.deviceId !== null && (dev.v as number[]).includes(alarm.deviceId),
    'suppress',
    'mute.devices',
  );
  const et = value('mute.eventTypes', []);
  consider(et.locked, (et.v as string[]).includes(alarm.eventType), 'suppress', 'mute.eventTypes');
  const pc = value('mute.probableCauses', []);
  consider(pc.locked, (pc.v as string[]).includes(alarm.cause), 'suppress', 'mute.probableCauses');
  const min = value('minSeverity', null);
  consider(
    min.locked,
    min.v !== null && SEVERITY_ORDER.indexOf(severity) < SEVERITY_ORDER.indexOf(min.v as string),
    'suppress',
    'minSeverity',
  );
  const quiet = value('quietHours', null);
  consider(quiet.locked, quiet.v !== null && quietNow(quiet.v as never, ms), 'deliver_silent', 'quietHours');
  const decided: { outcome: string; rule: string } = result ?? {
    outcome: 'deliver',
    rule: bypassed ? 'critical_bypass' : 'default',
  };
  if (decided.outcome === 'suppress' && receivedBefore)
    return { outcome: 'deliver_silent', rule: 'lifecycle' };
  return decided;
}

// ---------------------------------------------------------------------------------------------------------

describe('preferences in the resolver (property, real Postgres and Redis)', () => {
  let pool: PgPool;
  let redis: Redis;
  let drop: () => Promise<void>;
  let runs = 0;
  let checked = 0;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    drop = db.drop;
    pool = createPgPool(db.url, { max: 4 });
    redis = createRedis(testEnv().redisUrl, { name: 'prefs-property' });
  });
  afterAll(async () => {
    console.log(`preferences property: ${runs} worlds, ${checked} (event, user) outcomes compared`);
    redis.disconnect();
    await pool.end();
    await drop();
  });

  /** A map from a device index in a rule to the tenant's device ids. */
  const storedDoc = (doc: Doc | null, devices: number[]): Doc | null => {
    if (!doc) return null;
    const mute = doc.mute as Doc | undefined;
    if (!mute?.devices) return doc;
    return { ...doc, mute: { ...mute, devices: (mute.devices as number[]).map((i) => devices[i]!) } };
  };
  const storedTenantDoc = (doc: Doc | null, devices: number[]): Doc | null =>
    doc && { ...doc, defaults: storedDoc(doc.defaults as Doc, devices) };

  it('delivers what the reference evaluator says, for every (event, user), and keeps lifecycles whole', async () => {
    await fc.assert(
      fc.asyncProperty(world, async (w) => {
        runs++;
        const keys = new RedisKeys(uniqueRedisPrefix());
        let now = 0;
        const metrics = createResolverMetrics();
        const run = broadcastJob({
          plans: new BroadcastPlanLoader(pool),
          marker: new BroadcastMarker(pool),
          writer: new UserLogWriter(redis, keys, {
            retention: DEFAULT_RETENTION,
            deliveredTtlS: 60,
            node: 'prop',
            // Half the worlds publish batched, half per user: both paths carry notify.
            batchMinRecipients: runs % 2 === 0 ? 1 : 1000,
          }),
          metrics,
          preferences: new PreferenceCache(pool, createLogger({ service: 'test', level: 'silent' })),
          now: () => new Date(now),
        });

        // The world in Postgres.
        const tenants: { id: number; users: number[]; devices: number[]; doc: Doc | null }[] = [];
        const allUsers: { id: number; tenant: number }[] = [];
        for (const [ti, t] of w.tenants.entries()) {
          const slug = `p${runs}-${ti}-${Math.random().toString(36).slice(2, 8)}`;
          const { rows: tr } = await pool.query<{ id: number }>(
            `INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id`,
            [slug],
          );
          const tenantId = tr[0]!.id;
          const { rows: ur } = await pool.query<{ id: number }>(
            `INSERT INTO users (tenant_id, email, name)
             SELECT $1, $2 || '-' || g || '@x.test', 'u' FROM generate_series(1, $3) g RETURNING id`,
            [tenantId, slug, t.users],
          );
          const { rows: dr } = await pool.query<{ id: number }>(
            `INSERT INTO cpe_devices (tenant_id, oui, product_class, serial_number)
             SELECT $1, 'OUI', 'PC', $2 || '-' || g FROM generate_series(1, $3) g RETURNING id`,
            [tenantId, slug, t.devices],
          );
          const devices = dr.map((r) => r.id);
          const doc = storedTenantDoc(t.doc, devices);
          if (doc)
            await pool.query(
              `INSERT INTO tenant_preferences (tenant_id, rules, version) VALUES ($1, $2, 1)`,
              [tenantId, JSON.stringify(doc)],
            );
          tenants.push({ id: tenantId, users: ur.map((r) => r.id), devices, doc });
          for (const r of ur) allUsers.push({ id: r.id, tenant: ti });
        }
        const userDoc = new Map<number, Doc | null>();
        // Writes as another writer than the API would (the table is the contract): a deleted document
        // re-created later continues from a version never used before, as every writer must (a reused
        // version is one the resolver's cache, and a client's ETag, take for the old document).
        const versionUsed = new Map<number, number>();
        const setRules = async (user: { id: number; tenant: number }, doc: Doc | null) => {
          const stored = storedDoc(doc, tenants[user.tenant]!.devices);
          userDoc.set(user.id, stored);
          if (stored === null) await pool.query('DELETE FROM user_preferences WHERE user_id = $1', [user.id]);
          else {
            const { rows } = await pool.query<{ version: number }>(
              `INSERT INTO user_preferences (user_id, rules, version) VALUES ($1, $2, $3)
               ON CONFLICT (user_id) DO UPDATE SET rules = EXCLUDED.rules, version = user_preferences.version + 1
               RETURNING version`,
              [user.id, JSON.stringify(stored), (versionUsed.get(user.id) ?? 0) + 1],
            );
            versionUsed.set(user.id, rows[0]!.version);
          }
        };
        for (const [i, user] of allUsers.entries()) await setRules(user, w.userDocs[i] ?? null);

        // The stream: each step an alarm event (or a rule change), delivered by the resolver, in order.
        const alarms: (RefAlarm & { severity: string; cleared: boolean })[] = [];
        const expected: { eventId: string; alarm: string; user: number; outcome: string; rule: string }[] =
          [];
        const received = new Map<string, Set<number>>();
        const lastRules = new Map<string, Map<number, string>>();
        for (const s of w.steps) {
          now = s.at;
          let alarm: (typeof alarms)[number] | undefined;
          let kind: string;
          if (s.op === 'rules') {
            await setRules(allUsers[s.user % allUsers.length]!, s.doc);
            continue;
          }
          if (s.op === 'raise') {
            const t = tenants[s.tenant % tenants.length]!;
            const deviceId = s.device === null ? null : t.devices[s.device]!;
            const { rows } = await pool.query<{ id: string }>(
              `INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause,
                                   specific_problem, perceived_severity, raised_at, changed_at)
               VALUES ($1, $2, $3, $4, $5, '', $6, now(), now()) RETURNING id::text`,
              [t.id, deviceId, `a${alarms.length}`, s.eventType, s.cause, s.severity],
            );
            alarm = {
              id: rows[0]!.id,
              tenant: s.tenant % tenants.length,
              deviceId,
              eventType: s.eventType,
              cause: s.cause,
              severity: s.severity,
              cleared: false,
            };
            alarms.push(alarm);
            kind = 'alarm.created';
          } else {
            alarm = alarms.length === 0 ? undefined : alarms[s.alarm % alarms.length];
            if (!alarm || alarm.cleared) continue;
            if (s.op === 'update') {
              alarm.severity = s.severity;
              kind = 'alarm.updated';
            } else if (s.op === 'clear') {
              alarm.severity = 'Cleared';
              alarm.cleared = true;
              kind = 'alarm.cleared';
            } else kind = 'alarm.acknowledged';
          }
          const t = tenants[alarm.tenant]!;
          const payload = {
            alarm: {
              id: alarm.id,
              tenant_id: t.id,
              device_id: alarm.deviceId,
              event_type: alarm.eventType,
              probable_cause: alarm.cause,
              perceived_severity: alarm.severity,
            },
          };
          const { rows } = await pool.query<{ id: string }>(
            `INSERT INTO outbox_events (tenant_id, device_id, kind, alarm_id, payload)
             VALUES ($1, $2, $3, $4, $5) RETURNING id::text`,
            [t.id, alarm.deviceId, kind, alarm.id, JSON.stringify(payload)],
          );
          const eventId = rows[0]!.id;
          await run({ name: 'BroadcastAlarmToTenant', data: { eventId } });
          const got = received.get(alarm.id) ?? new Set<number>();
          const rulesNow = new Map<number, string>();
          for (const user of t.users) {
            const r = reference(t.doc, userDoc.get(user) ?? null, alarm, alarm.severity, s.at, got.has(user));
            expected.push({ eventId, alarm: alarm.id, user, ...r });
            rulesNow.set(user, r.rule);
            if (r.outcome !== 'suppress') got.add(user);
          }
          received.set(alarm.id, got);
          lastRules.set(alarm.id, rulesNow);
        }

        // What the resolver did, from the users' logs.
        const logged = new Map<string, 'deliver' | 'deliver_silent'>();
        const order = new Map<number, string[]>();
        for (const user of allUsers) {
          const entries = (await redis.xrange(keys.userLog(user.id), '-', '+')) as [string, string[]][];
          order.set(
            user.id,
            entries.map(([, f]) => f[1]!),
          );
          for (const [, f] of entries)
            logged.set(`${f[1]}:${user.id}`, f[3] === '0' ? 'deliver_silent' : 'deliver');
        }
        for (const e of expected) {
          checked++;
          const actual = logged.get(`${e.eventId}:${e.user}`) ?? 'suppress';
          if (actual !== e.outcome)
            throw new Error(
              `event ${e.eventId} user ${e.user}: resolver ${actual}, reference ${e.outcome} (${e.rule})`,
            );
        }
        // The rule recorded for each alarm's latest event (the audience's explanation) is the reference's.
        for (const [alarmId, rulesNow] of lastRules) {
          const { rows } = await pool.query<{ decisions: Record<string, [string, string, string]> }>(
            'SELECT decisions FROM alarm_audiences WHERE alarm_id = $1',
            [alarmId],
          );
          const decisions = rows[0]?.decisions ?? {};
          for (const [user, rule] of rulesNow) expect(decisions[user]?.[1] ?? 'default').toBe(rule);
        }
        // Lifecycle coherence, from the logs alone: once a user has an event of an alarm, they have every
        // later one of that alarm.
        const eventsOf = new Map<string, string[]>();
        for (const e of expected) {
          const list = eventsOf.get(e.alarm) ?? [];
          if (!list.includes(e.eventId)) list.push(e.eventId);
          eventsOf.set(e.alarm, list);
        }
        for (const [user, events] of order) {
          for (const [, list] of eventsOf) {
            const first = list.findIndex((id) => events.includes(id));
            if (first < 0) continue;
            for (const id of list.slice(first)) expect(events, `user ${user} misses ${id}`).toContain(id);
          }
        }
      }),
      { numRuns: 100 },
    );
  }, 240_000);
});
