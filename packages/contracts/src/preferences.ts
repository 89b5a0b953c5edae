import { z } from 'zod';
import { PERCEIVED_SEVERITIES, type PerceivedSeverity } from './ingest.js';

/**
 * Notification preferences: the documents (user rules, tenant defaults and locks), their validation, and the
 * one evaluator that turns (preferences, event, moment) into an outcome and the rule that decided it. The
 * resolver runs it once per (event, recipient); `GET /v1/alarms/{id}/audience` and the `deliverable` filter of
 * `GET /v1/alarms` run the same code, so what the API explains is what the resolver did. Pure: no I/O, the
 * moment is an argument.
 */

/** Severities a minimum may name, lowest last (Cleared is not a minimum: it ranks below every one). */
export const MIN_SEVERITIES = ['Critical', 'Major', 'Minor', 'Warning', 'Indeterminate'] as const;
export type MinSeverity = (typeof MIN_SEVERITIES)[number];

const SEVERITY_RANK: Record<PerceivedSeverity, number> = {
  Critical: 5,
  Major: 4,
  Minor: 3,
  Warning: 2,
  Indeterminate: 1,
  Cleared: 0,
};

/** The kinds of events on a user's channel that preferences can switch off, by outbox kind prefix. */
export const PREFERENCE_CATEGORIES = ['alarms', 'tasks', 'campaigns', 'devices'] as const;
export type PreferenceCategory = (typeof PREFERENCE_CATEGORIES)[number];

const CATEGORY_OF_PREFIX: Record<string, PreferenceCategory> = {
  alarm: 'alarms',
  task: 'tasks',
  campaign: 'campaigns',
  device: 'devices',
};

/** The category of an outbox kind (`alarm.created` → `alarms`), or null for a kind preferences do not cover. */
export function categoryOfKind(kind: string): PreferenceCategory | null {
  return CATEGORY_OF_PREFIX[kind.slice(0, kind.indexOf('.'))] ?? null;
}

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Limits of one preferences document (user rules, or a tenant's defaults). */
export const PREFERENCE_LIMITS = {
  /** entries per mute list */
  muteEntries: 200,
  /** quiet-hour windows */
  quietWindows: 14,
} as const;

const timeOfDay = (end: boolean) =>
  z
    .string()
    .regex(
      end ? /^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$/ : /^(?:[01]\d|2[0-3]):[0-5]\d$/,
      end ? 'must be HH:MM, 00:00 to 24:00' : 'must be HH:MM, 00:00 to 23:59',
    );

/** Whether Intl knows `zone` as an IANA time zone (`Europe/Paris`, `UTC`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const QuietWindow = z
  .object({
    /** the days the window starts on */
    days: z.array(z.enum(WEEKDAYS)).min(1).max(7),
    start: timeOfDay(false),
    /** before `start`: the window crosses midnight into the next day */
    end: timeOfDay(true),
  })
  .strict()
  .refine((w) => w.start !== w.end, { message: 'start and end must differ', path: ['end'] });

export const QuietHours = z
  .object({
    timeZone: z.string().max(64).refine(isTimeZone, 'must be an IANA time zone such as Europe/Paris'),
    windows: z.array(QuietWindow).min(1).max(PREFERENCE_LIMITS.quietWindows),
  })
  .strict();
export type QuietHours = z.infer<typeof QuietHours>;

const muteText = z.string().min(1).max(64);

/**
 * One preferences document: a user's rules, or a tenant's defaults. Every setting is optional; an absent
 * one falls back (user → tenant default → built-in default: everything delivered with notify).
 */
export const PreferenceRules = z
  .object({
    /** alarms below this severity are not delivered; null: no minimum */
    minSeverity: z.enum(MIN_SEVERITIES).nullable().optional(),
    mute: z
      .object({
        eventTypes: z.array(muteText).max(PREFERENCE_LIMITS.muteEntries).optional(),
        probableCauses: z.array(muteText).max(PREFERENCE_LIMITS.muteEntries).optional(),
        devices: z
          .array(z.number().int().positive().max(2_147_483_647))
          .max(PREFERENCE_LIMITS.muteEntries)
          .optional(),
      })
      .strict()
      .optional(),
    categories: z
      .object(
        Object.fromEntries(PREFERENCE_CATEGORIES.map((c) => [c, z.boolean().optional()])) as {
          [C in PreferenceCategory]: z.ZodOptional<z.ZodBoolean>;
        },
      )
      .strict()
      .optional(),
    /** delivered in the feed with `"notify":false` during these windows; null: none */
    quietHours: QuietHours.nullable().optional(),
  })
  .strict();
export type PreferenceRules = z.infer<typeof PreferenceRules>;

/** The settings a tenant can lock: a locked one takes the tenant's value whatever the user's says. */
export const LOCKABLE_SETTINGS = [
  'minSeverity',
  'mute.eventTypes',
  'mute.probableCauses',
  'mute.devices',
  'categories.alarms',
  'categories.tasks',
  'categories.campaigns',
  'categories.devices',
  'quietHours',
] as const;
export type PreferenceSetting = (typeof LOCKABLE_SETTINGS)[number];

export const TenantPreferences = z
  .object({
    defaults: PreferenceRules.default({}),
    locks: z
      .array(z.enum(LOCKABLE_SETTINGS))
      .max(LOCKABLE_SETTINGS.length)
      .refine((l) => new Set(l).size === l.length, 'each setting at most once')
      .default([]),
    /**
     * Critical alarms are delivered with notify whatever the user's own rules (only a locked tenant rule can
     * still silence or suppress them); false: they follow the rules like any other alarm.
     * @defaultValue true
     */
    criticalBypass: z.boolean().default(true),
  })
  .strict();
export type TenantPreferences = z.infer<typeof TenantPreferences>;

/** Who set the value that decided: the user, the tenant's default, a tenant lock, or the built-in default. */
export const RULE_SOURCES = ['user', 'tenant', 'tenant_lock', 'system'] as const;
export type RuleSource = (typeof RULE_SOURCES)[number];

export const DELIVERY_OUTCOMES = ['deliver', 'deliver_silent', 'suppress'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

/**
 * The rule that decided an outcome: a setting (`minSeverity`, `mute.devices`, ..., `quietHours`), or
 * `critical_bypass` (a Critical alarm delivered with notify although a user rule said otherwise),
 * `lifecycle` (delivered silently although the rules say suppress, because the user received an earlier
 * event of this alarm), `default` (nothing applied: delivered with notify).
 */
export const DECIDING_RULES = [...LOCKABLE_SETTINGS, 'critical_bypass', 'lifecycle', 'default'] as const;
export type DecidingRule = (typeof DECIDING_RULES)[number];

export const Decision = z
  .object({
    outcome: z.enum(DELIVERY_OUTCOMES),
    rule: z.enum(DECIDING_RULES),
    source: z.enum(RULE_SOURCES),
  })
  .strict();
export type Decision = z.output<typeof Decision>;

/** What the evaluator reads of an event. Alarm fields are null for events that are not alarms. */
export interface PreferenceEvent {
  category: PreferenceCategory | null;
  severity: PerceivedSeverity | null;
  eventType: string | null;
  probableCause: string | null;
  deviceId: number | null;
}

/** An outbox event's kind and `data` (JSON), as the evaluator reads it. */
export function preferenceEventOf(kind: string, data: unknown): PreferenceEvent {
  const alarm = (data as { alarm?: Record<string, unknown> } | null)?.alarm;
  const category = categoryOfKind(kind);
  if (category === 'alarms' && alarm && typeof alarm === 'object') {
    const severity = alarm.perceived_severity;
    return {
      category,
      severity: (PERCEIVED_SEVERITIES as readonly unknown[]).includes(severity)
        ? (severity as PerceivedSeverity)
        : null,
      eventType: typeof alarm.event_type === 'string' ? alarm.event_type : null,
      probableCause: typeof alarm.probable_cause === 'string' ? alarm.probable_cause : null,
      deviceId: typeof alarm.device_id === 'number' ? alarm.device_id : null,
    };
  }
  // Other categories (tasks, device summaries) name their device at the top of their entity, if at all.
  const entity = data && typeof data === 'object' ? Object.values(data as object)[0] : undefined;
  const deviceId = (entity as { device_id?: unknown } | undefined)?.device_id;
  return {
    category,
    severity: null,
    eventType: null,
    probableCause: null,
    deviceId: typeof deviceId === 'number' ? deviceId : null,
  };
}

interface Sourced<T> {
  value: T;
  source: RuleSource;
}

/** A user's effective settings, with where each came from: what the evaluator runs, built once per version. */
export interface CompiledPreferences {
  minRank: Sourced<number>;
  mutedEventTypes: Sourced<ReadonlySet<string>>;
  mutedCauses: Sourced<ReadonlySet<string>>;
  mutedDevices: Sourced<ReadonlySet<number>>;
  categories: Record<PreferenceCategory, Sourced<boolean>>;
  quietHours: Sourced<QuietHours | null>;
  criticalBypass: boolean;
}

/** The effective value of one setting: tenant lock, else the user's value, else the tenant default. */
function pick<T>(
  setting: PreferenceSetting,
  tenant: TenantPreferences | null,
  tenantValue: T | undefined,
  userValue: T | undefined,
  fallback: T,
): Sourced<T> {
  if (tenant?.locks.includes(setting)) return { value: tenantValue ?? fallback, source: 'tenant_lock' };
  if (userValue !== undefined) return { value: userValue, source: 'user' };
  if (tenantValue !== undefined) return { value: tenantValue, source: 'tenant' };
  return { value: fallback, source: 'system' };
}

/**
 * Precedence, per setting: a tenant lock wins; else the user's value; else the tenant's default; else the
 * built-in default (no minimum, nothing muted, every category on, no quiet hours).
 */
export function compilePreferences(
  tenant: TenantPreferences | null,
  user: PreferenceRules | null,
): CompiledPreferences {
  const d = tenant?.defaults ?? {};
  const u = user ?? {};
  const min = pick('minSeverity', tenant, d.minSeverity, u.minSeverity, null);
  const list = <T>(setting: PreferenceSetting, t: T[] | undefined, v: T[] | undefined) => {
    const p = pick(setting, tenant, t, v, []);
    return { value: new Set(p.value), source: p.source };
  };
  return {
    minRank: { value: min.value === null ? 0 : SEVERITY_RANK[min.value], source: min.source },
    mutedEventTypes: list('mute.eventTypes', d.mute?.eventTypes, u.mute?.eventTypes),
    mutedCauses: list('mute.probableCauses', d.mute?.probableCauses, u.mute?.probableCauses),
    mutedDevices: list('mute.devices', d.mute?.devices, u.mute?.devices),
    categories: Object.fromEntries(
      PREFERENCE_CATEGORIES.map((c) => [
        c,
        pick(`categories.${c}`, tenant, d.categories?.[c], u.categories?.[c], true),
      ]),
    ) as Record<PreferenceCategory, Sourced<boolean>>,
    quietHours: pick('quietHours', tenant, d.quietHours, u.quietHours, null),
    criticalBypass: tenant?.criticalBypass ?? true,
  };
}

/** A moment, read in time zones: memoizes each zone's local weekday and minute (Intl is slow to ask). */
export class LocalClock {
  private readonly zones = new Map<string, { day: number; minute: number }>();

  constructor(readonly now: Date) {}

  /** Weekday (0 = Monday) and minute of the day at this moment in `zone`. */
  local(zone: string): { day: number; minute: number } {
    let local = this.zones.get(zone);
    if (!local) {
      // Every zone's offset is a whole number of minutes, so a zone's local minute changes only when the
      // UTC minute does: one Intl call per zone and minute for the whole process, not one per event.
      const utcMinute = Math.floor(this.now.getTime() / 60_000);
      const shared = minuteCache.get(zone);
      if (shared?.utcMinute === utcMinute) local = shared.local;
      else {
        const parts = formatterOf(zone).formatToParts(this.now);
        const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
        const day = WEEKDAYS.indexOf(get('weekday').toLowerCase().slice(0, 3) as Weekday);
        local = { day, minute: (Number(get('hour')) % 24) * 60 + Number(get('minute')) };
        minuteCache.set(zone, { utcMinute, local });
      }
      this.zones.set(zone, local);
    }
    return local;
  }
}

const minuteCache = new Map<string, { utcMinute: number; local: { day: number; minute: number } }>();

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterOf(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(zone, f);
  }
  return f;
}

const minuteOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * Whether the moment falls in one of the windows, read in the quiet hours' own time zone. A window starts on
 * each of its days at `start`; when `end` is not after `start` it ends at `end` the next day (crossing
 * midnight, so Friday 22:00-07:00 covers Saturday's early hours).
 */
export function inQuietHours(quiet: QuietHours, clock: LocalClock): boolean {
  const { day, minute } = clock.local(quiet.timeZone);
  const today = WEEKDAYS[day];
  const yesterday = WEEKDAYS[(day + 6) % 7];
  for (const w of quiet.windows) {
    const start = minuteOf(w.start);
    const end = minuteOf(w.end);
    const days = w.days as readonly string[];
    if (start < end) {
      if (today !== undefined && days.includes(today) && minute >= start && minute < end) return true;
    } else {
      if (today !== undefined && days.includes(today) && minute >= start) return true;
      if (yesterday !== undefined && days.includes(yesterday) && minute < end) return true;
    }
  }
  return false;
}

/**
 * The outcome for one recipient of one event, and the rule that decided it. In order:
 *
 * 1. the category switched off, a muted device, event type or probable cause, a severity below the
 *    minimum (alarms; `Cleared` ranks below every minimum) → `suppress`;
 * 2. quiet hours now → `deliver_silent`;
 * 3. otherwise `deliver` (rule `default`).
 *
 * A Critical alarm (with the tenant's `criticalBypass`, the default) skips every step whose value is not a
 * tenant lock: `deliver`, rule `critical_bypass` when a user rule or tenant default would have decided
 * otherwise. Last, lifecycle coherence: when the user already received an event of this alarm
 * (`received`), a `suppress` becomes `deliver_silent` (rule `lifecycle`), so they also get its updates,
 * clear and acknowledgement.
 */
export function evaluatePreferences(
  prefs: CompiledPreferences,
  event: PreferenceEvent,
  clock: LocalClock,
  received = false,
): Decision {
  // Kinds preferences do not cover go to everyone who may see them, with notify.
  if (event.category === null) return DEFAULT_DECISION;
  const decision = rulesDecide(prefs, event, clock);
  if (decision.outcome === 'suppress' && received) return LIFECYCLE_DECISION;
  return decision;
}

const DEFAULT_DECISION: Decision = Object.freeze({ outcome: 'deliver', rule: 'default', source: 'system' });
const LIFECYCLE_DECISION: Decision = Object.freeze({
  outcome: 'deliver_silent',
  rule: 'lifecycle',
  source: 'system',
});
const BYPASS_DECISION: Decision = Object.freeze({
  outcome: 'deliver',
  rule: 'critical_bypass',
  source: 'tenant',
});

/**
 * Steps 1-3 and the bypass (see evaluatePreferences). Written without closures: it runs once per
 * (event, recipient), 10,000 times per alarm of a big tenant.
 */
function rulesDecide(prefs: CompiledPreferences, event: PreferenceEvent, clock: LocalClock): Decision {
  const category = event.category!;
  const bypass = prefs.criticalBypass && category === 'alarms' && event.severity === 'Critical';
  // With the bypass on, only a tenant lock's value may decide; a step it skips makes the outcome a bypass.
  let skipped = false;
  const cat = prefs.categories[category];
  if (!cat.value) {
    if (!bypass || cat.source === 'tenant_lock')
      return { outcome: 'suppress', rule: `categories.${category}`, source: cat.source };
    skipped = true;
  }
  const devices = prefs.mutedDevices;
  if (event.deviceId !== null && devices.value.size > 0 && devices.value.has(event.deviceId)) {
    if (!bypass || devices.source === 'tenant_lock')
      return { outcome: 'suppress', rule: 'mute.devices', source: devices.source };
    skipped = true;
  }
  if (category === 'alarms') {
    const types = prefs.mutedEventTypes;
    if (event.eventType !== null && types.value.size > 0 && types.value.has(event.eventType)) {
      if (!bypass || types.source === 'tenant_lock')
        return { outcome: 'suppress', rule: 'mute.eventTypes', source: types.source };
      skipped = true;
    }
    const causes = prefs.mutedCauses;
    if (event.probableCause !== null && causes.value.size > 0 && causes.value.has(event.probableCause)) {
      if (!bypass || causes.source === 'tenant_lock')
        return { outcome: 'suppress', rule: 'mute.probableCauses', source: causes.source };
      skipped = true;
    }
    const min = prefs.minRank;
    const rank = event.severity === null ? 0 : SEVERITY_RANK[event.severity];
    if (min.value > 0 && rank < min.value) {
      if (!bypass || min.source === 'tenant_lock')
        return { outcome: 'suppress', rule: 'minSeverity', source: min.source };
      skipped = true;
    }
  }
  const quiet = prefs.quietHours;
  if (quiet.value !== null && inQuietHours(quiet.value, clock)) {
    if (!bypass || quiet.source === 'tenant_lock')
      return { outcome: 'deliver_silent', rule: 'quietHours', source: quiet.source };
    skipped = true;
  }
  return skipped ? BYPASS_DECISION : DEFAULT_DECISION;
}

/** `ETag` of a preferences document at `version` (strong; `If-Match` compares it exactly). */
export const preferencesEtag = (version: number): string => `"${version}"`;

const sourced = <T extends z.ZodType>(value: T) => z.object({ value, source: z.enum(RULE_SOURCES) }).strict();

/** A compiled document as JSON, for the API: each setting's value and source. */
export const EffectivePreferences = z
  .object({
    minSeverity: sourced(z.enum(MIN_SEVERITIES).nullable()),
    mute: z
      .object({
        eventTypes: sourced(z.array(z.string())),
        probableCauses: sourced(z.array(z.string())),
        devices: sourced(z.array(z.number().int())),
      })
      .strict(),
    categories: z
      .object(
        Object.fromEntries(PREFERENCE_CATEGORIES.map((c) => [c, sourced(z.boolean())])) as {
          [C in PreferenceCategory]: ReturnType<typeof sourced<z.ZodBoolean>>;
        },
      )
      .strict(),
    quietHours: sourced(QuietHours.nullable()),
    criticalBypass: z.boolean(),
  })
  .strict();
export type EffectivePreferences = z.output<typeof EffectivePreferences>;

/** GET/PUT /v1/me/preferences answer. */
export const UserPreferencesResponse = z
  .object({
    user_id: z.number().int(),
    tenant_id: z.number().int().nullable(),
    /** bumped by every PUT; 0 before the first */
    version: z.number().int().min(0),
    preferences: PreferenceRules,
    /** the tenant's defaults, locks and bypass, which apply on top (read-only here) */
    tenant: TenantPreferences.nullable(),
    /** the settings in force for this user, each with where it came from */
    effective: EffectivePreferences,
  })
  .strict();
export type UserPreferencesResponse = z.output<typeof UserPreferencesResponse>;

/** GET/PUT /v1/tenants/{id}/preferences answer. */
export const TenantPreferencesResponse = z
  .object({
    tenant_id: z.number().int(),
    version: z.number().int().min(0),
    preferences: TenantPreferences,
  })
  .strict();
export type TenantPreferencesResponse = z.output<typeof TenantPreferencesResponse>;

/**
 * GET /v1/alarms/{id}/audience answer: every user who may see the alarm or received one of its events,
 * what the resolver decided for them at its latest event (null: nothing recorded), and what their rules
 * decide now.
 */
export const AlarmAudienceResponse = z
  .object({
    alarm_id: z.string().regex(/^\d+$/),
    tenant_id: z.number().int(),
    last_event_id: z.string().nullable(),
    audience: z.array(
      z
        .object({
          user_id: z.number().int(),
          email: z.string(),
          name: z.string(),
          active: z.boolean(),
          received: z.boolean(),
          last_event: Decision.nullable(),
          now: Decision,
        })
        .strict(),
    ),
  })
  .strict();
export type AlarmAudienceResponse = z.output<typeof AlarmAudienceResponse>;

export function effectiveAsJson(c: CompiledPreferences): EffectivePreferences {
  const minSeverity = (Object.entries(SEVERITY_RANK) as [MinSeverity, number][]).find(
    ([, r]) => r === c.minRank.value && r > 0,
  )?.[0];
  return {
    minSeverity: { value: minSeverity ?? null, source: c.minRank.source },
    mute: {
      eventTypes: { value: [...c.mutedEventTypes.value], source: c.mutedEventTypes.source },
      probableCauses: { value: [...c.mutedCauses.value], source: c.mutedCauses.source },
      devices: { value: [...c.mutedDevices.value], source: c.mutedDevices.source },
    },
    categories: c.categories,
    quietHours: c.quietHours,
    criticalBypass: c.criticalBypass,
  };
}

/**
 * The settings a user document sets that the tenant locks (a PUT naming one is refused: the lock would
 * silently ignore it).
 */
export function lockedSettingsIn(
  user: PreferenceRules,
  tenant: TenantPreferences | null,
): PreferenceSetting[] {
  if (!tenant) return [];
  const set = (s: PreferenceSetting): boolean => {
    const [head, tail] = s.split('.') as [keyof PreferenceRules, string | undefined];
    const v = user[head] as Record<string, unknown> | undefined | null;
    return tail === undefined ? v !== undefined : v !== undefined && v !== null && v[tail] !== undefined;
  };
  return tenant.locks.filter(set);
}
