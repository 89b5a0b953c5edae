import { describe, expect, it } from 'vitest';
import {
  LocalClock,
  PreferenceRules,
  TenantPreferences,
  compilePreferences,
  evaluatePreferences,
  inQuietHours,
  lockedSettingsIn,
  preferenceEventOf,
  type QuietHours,
} from '../src/index.js';

const alarm = (over: Record<string, unknown> = {}) =>
  preferenceEventOf('alarm.created', {
    alarm: {
      device_id: 7,
      event_type: 'Communications Alarm',
      probable_cause: 'LOS',
      perceived_severity: 'Major',
      ...over,
    },
  });
const at = (iso: string) => new LocalClock(new Date(iso));

describe('quiet hours', () => {
  const night: QuietHours = {
    timeZone: 'Europe/Paris',
    windows: [{ days: ['fri'], start: '22:00', end: '07:00' }],
  };

  it("cross midnight into the next day, in the zone's own time (summer and winter offsets)", () => {
    // Friday 2026-07-03: Paris is UTC+2.
    expect(inQuietHours(night, at('2026-07-03T19:59:00Z'))).toBe(false); // 21:59 Fri
    expect(inQuietHours(night, at('2026-07-03T20:00:00Z'))).toBe(true); // 22:00 Fri
    expect(inQuietHours(night, at('2026-07-04T04:59:00Z'))).toBe(true); // 06:59 Sat
    expect(inQuietHours(night, at('2026-07-04T05:00:00Z'))).toBe(false); // 07:00 Sat
    expect(inQuietHours(night, at('2026-07-04T20:30:00Z'))).toBe(false); // 22:30 Sat: not a start day
    // Friday 2026-01-09: UTC+1.
    expect(inQuietHours(night, at('2026-01-09T20:59:00Z'))).toBe(false);
    expect(inQuietHours(night, at('2026-01-09T21:00:00Z'))).toBe(true);
  });

  it('take a whole day with 00:00-24:00 and half-hour zones', () => {
    const allDay: QuietHours = {
      timeZone: 'Asia/Kolkata',
      windows: [{ days: ['mon'], start: '00:00', end: '24:00' }],
    };
    expect(inQuietHours(allDay, at('2026-11-29T18:30:00Z'))).toBe(true); // Mon 00:00 IST
    expect(inQuietHours(allDay, at('2026-11-29T18:29:00Z'))).toBe(false); // Sun 23:59 IST
  });
});

describe('evaluatePreferences', () => {
  const tenant = TenantPreferences.parse({ defaults: { minSeverity: 'Minor' }, locks: ['mute.devices'] });

  it('falls back user → tenant default → built-in, and a lock wins over the user', () => {
    const none = compilePreferences(null, null);
    expect(evaluatePreferences(none, alarm(), at('2026-01-01T00:00:00Z'))).toEqual({
      outcome: 'deliver',
      rule: 'default',
      source: 'system',
    });
    const warn = alarm({ perceived_severity: 'Warning' });
    expect(evaluatePreferences(compilePreferences(tenant, null), warn, at('2026-01-01T00:00:00Z'))).toEqual({
      outcome: 'suppress',
      rule: 'minSeverity',
      source: 'tenant',
    });
    // The user's own null minimum overrides the (unlocked) default.
    expect(
      evaluatePreferences(compilePreferences(tenant, { minSeverity: null }), warn, at('2026-01-01T00:00:00Z'))
        .outcome,
    ).toBe('deliver');
    const locked = TenantPreferences.parse({ defaults: { mute: { devices: [7] } }, locks: ['mute.devices'] });
    expect(
      evaluatePreferences(
        compilePreferences(locked, { mute: { devices: [] } }),
        alarm(),
        at('2026-01-01T00:00:00Z'),
      ),
    ).toEqual({
      outcome: 'suppress',
      rule: 'mute.devices',
      source: 'tenant_lock',
    });
  });

  it('lets a Critical alarm through user rules, not through a lock, and not when the tenant turns the bypass off', () => {
    const user = { mute: { eventTypes: ['Communications Alarm'] }, minSeverity: 'Critical' as const };
    const critical = alarm({ perceived_severity: 'Critical' });
    const clock = at('2026-01-01T00:00:00Z');
    expect(evaluatePreferences(compilePreferences(null, user), critical, clock)).toEqual({
      outcome: 'deliver',
      rule: 'critical_bypass',
      source: 'tenant',
    });
    const lock = TenantPreferences.parse({
      defaults: { mute: { probableCauses: ['LOS'] } },
      locks: ['mute.probableCauses'],
    });
    expect(evaluatePreferences(compilePreferences(lock, user), critical, clock).rule).toBe(
      'mute.probableCauses',
    );
    const off = TenantPreferences.parse({ criticalBypass: false });
    expect(evaluatePreferences(compilePreferences(off, user), critical, clock).rule).toBe('mute.eventTypes');
  });

  it('keeps a received alarm’s lifecycle (silently) and leaves other kinds alone', () => {
    const prefs = compilePreferences(null, { minSeverity: 'Major' });
    const clear = preferenceEventOf('alarm.cleared', {
      alarm: { perceived_severity: 'Cleared', device_id: null },
    });
    const clock = at('2026-01-01T00:00:00Z');
    expect(evaluatePreferences(prefs, clear, clock, false).outcome).toBe('suppress');
    expect(evaluatePreferences(prefs, clear, clock, true)).toEqual({
      outcome: 'deliver_silent',
      rule: 'lifecycle',
      source: 'system',
    });
    const other = preferenceEventOf('something.else', { x: { device_id: 7 } });
    expect(
      evaluatePreferences(compilePreferences(null, { mute: { devices: [7] } }), other, clock).outcome,
    ).toBe('deliver');
  });
});

describe('documents', () => {
  it('refuse unknown settings and name locked ones', () => {
    expect(PreferenceRules.safeParse({ minSeverity: 'Major', extra: 1 }).success).toBe(false);
    const t = TenantPreferences.parse({ locks: ['quietHours', 'categories.alarms'] });
    expect(lockedSettingsIn({ quietHours: null, categories: { alarms: false } }, t)).toEqual([
      'quietHours',
      'categories.alarms',
    ]);
    expect(lockedSettingsIn({ categories: {} }, t)).toEqual([]);
  });
});
