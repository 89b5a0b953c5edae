import { describe, expect, it } from 'vitest';
import { AlarmStore, NO_FILTER, isAlarm, type Alarm } from '../web/alarm-store.js';

const alarm = (id: string, over: Partial<Alarm> = {}): Alarm => ({
  id,
  tenant_id: 1,
  device_id: 1,
  device_name: null,
  device_serial_number: 'S1',
  alarm_identifier: `a${id}`,
  event_type: 'e',
  probable_cause: 'p',
  specific_problem: 's',
  perceived_severity: 'Major',
  managed_object_instance: null,
  additional_text: null,
  additional_information: null,
  raised_at: '2026-11-25T10:00:00.000Z',
  changed_at: '2026-11-25T10:00:00.000Z',
  cleared_at: null,
  acknowledged_at: null,
  ...over,
});

describe('AlarmStore', () => {
  it('holds live events until the list is loaded, then applies them over it', () => {
    const store = new AlarmStore();
    expect(
      store.apply(alarm('2', { perceived_severity: 'Critical', changed_at: '2026-11-25T10:05:00.000Z' })),
    ).toBe(false);
    store.load([alarm('1'), alarm('2')]);
    expect(store.sorted().map((a) => [a.id, a.perceived_severity])).toEqual([
      ['2', 'Critical'],
      ['1', 'Major'],
    ]);
  });

  it('never lets an older version replace a newer one', () => {
    const store = new AlarmStore();
    store.load([alarm('1', { changed_at: '2026-11-25T10:05:00.000Z', perceived_severity: 'Minor' })]);
    expect(
      store.apply(alarm('1', { changed_at: '2026-11-25T10:01:00.000Z', perceived_severity: 'Critical' })),
    ).toBe(false);
    expect(store.sorted()[0]!.perceived_severity).toBe('Minor');
    expect(
      store.apply(
        alarm('1', {
          changed_at: '2026-11-25T10:05:00.000Z',
          perceived_severity: 'Minor',
          acknowledged_at: '2026-11-25T10:06:00.000Z',
        }),
      ),
    ).toBe(true);
  });

  it('sorts active before cleared, then by severity, then newest first', () => {
    const store = new AlarmStore();
    store.load([
      alarm('1', { perceived_severity: 'Warning' }),
      alarm('2', { perceived_severity: 'Cleared', cleared_at: '2026-11-25T10:09:00.000Z' }),
      alarm('3', { perceived_severity: 'Critical', raised_at: '2026-11-25T09:00:00.000Z' }),
      alarm('4', { perceived_severity: 'Critical', raised_at: '2026-11-25T11:00:00.000Z' }),
    ]);
    expect(store.sorted().map((a) => a.id)).toEqual(['4', '3', '1', '2']);
  });

  it('counts active alarms per severity and cleared ones, as events change them', () => {
    const store = new AlarmStore();
    store.load([alarm('1', { perceived_severity: 'Critical' }), alarm('2'), alarm('3')]);
    expect(store.severityCounts()).toMatchObject({ Critical: 1, Major: 2, Cleared: 0 });
    store.apply(
      alarm('2', {
        perceived_severity: 'Cleared',
        changed_at: '2026-11-25T10:05:00.000Z',
        cleared_at: '2026-11-25T10:05:00.000Z',
      }),
    );
    store.apply(alarm('4', { perceived_severity: 'Warning' }));
    expect(store.severityCounts()).toEqual({
      Critical: 1,
      Major: 1,
      Minor: 0,
      Warning: 1,
      Indeterminate: 0,
      Cleared: 1,
    });
    expect(store.activeCount).toBe(3);
  });

  it('filters by severity, device and text, and keeps the filtered view current as events arrive', () => {
    const store = new AlarmStore();
    store.load([
      alarm('1', { perceived_severity: 'Critical', device_id: 7, specific_problem: 'WAN link down' }),
      alarm('2', { perceived_severity: 'Minor', device_id: 7, additional_text: 'Fan speed LOW' }),
      alarm('3', { perceived_severity: 'Critical', device_id: 8, additional_information: 'slot=3' }),
      alarm('4', { perceived_severity: 'Major', device_id: null, alarm_identifier: 'billing-sync' }),
    ]);
    store.setFilter({ ...NO_FILTER, severities: new Set(['Critical']) });
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['3', '1']);
    store.setFilter({ ...NO_FILTER, deviceId: 7 });
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['1', '2']);
    store.setFilter({ ...NO_FILTER, text: ' fan SPEED ' });
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['2']);
    store.setFilter({ ...NO_FILTER, text: 'SLOT=3' });
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['3']);
    store.setFilter({ ...NO_FILTER, text: 'billing' });
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['4']);

    store.setFilter({ ...NO_FILTER, severities: new Set(['Critical']), deviceId: 7 });
    expect(store.viewSize).toBe(1);
    // A new matching alarm joins the view in order; one that no longer matches leaves it.
    store.apply(
      alarm('5', { perceived_severity: 'Critical', device_id: 7, raised_at: '2026-11-25T11:00:00.000Z' }),
    );
    store.apply(alarm('6', { perceived_severity: 'Critical', device_id: 9 }));
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['5', '1']);
    store.apply(
      alarm('1', { perceived_severity: 'Minor', device_id: 7, changed_at: '2026-11-25T10:05:00.000Z' }),
    );
    expect(store.slice(0, 10).map((a) => a.id)).toEqual(['5']);
    expect(store.indexOf('5')).toBe(0);
    expect(store.indexOf('1')).toBe(-1);
    store.setFilter(NO_FILTER);
    expect(store.viewSize).toBe(6);
  });

  it('keeps the same order by incremental updates as a full sort would give, under random events', () => {
    // A small deterministic generator, so a failure can be replayed.
    let seed = 42;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const severities = ['Critical', 'Major', 'Minor', 'Warning', 'Indeterminate'] as const;
    const store = new AlarmStore();
    const reference = new AlarmStore();
    const initial = Array.from({ length: 300 }, (_, i) =>
      alarm(String(i + 1), {
        perceived_severity: severities[rand(5)]!,
        raised_at: `2026-11-25T10:${String(rand(60)).padStart(2, '0')}:00.000Z`,
      }),
    );
    store.load(initial);
    store.setFilter({ ...NO_FILTER, severities: new Set(['Critical', 'Cleared']) });
    const latest = new Map(initial.map((a) => [a.id, a]));
    for (let step = 0; step < 2000; step++) {
      const id = String(1 + rand(400));
      const minute = String(10 + Math.floor(step / 60)).padStart(2, '0');
      const changed = `2026-11-25T${minute}:${String(step % 60).padStart(2, '0')}:00.000Z`;
      const clear = rand(4) === 0;
      const next = alarm(id, {
        perceived_severity: clear ? 'Cleared' : severities[rand(5)]!,
        raised_at: latest.get(id)?.raised_at ?? changed,
        changed_at: changed,
        cleared_at: clear ? changed : null,
      });
      store.apply(next);
      latest.set(id, next);
    }
    reference.load([...latest.values()]);
    expect(store.sorted()).toEqual(reference.sorted());
    expect(store.severityCounts()).toEqual(reference.severityCounts());
    reference.setFilter({ ...NO_FILTER, severities: new Set(['Critical', 'Cleared']) });
    expect(store.slice(0, 1000)).toEqual(reference.slice(0, 1000));
  });

  it('refuses a malformed live payload', () => {
    expect(isAlarm(alarm('1'))).toBe(true);
    expect(isAlarm({ ...alarm('1'), perceived_severity: 'toString' })).toBe(false);
    expect(isAlarm({ ...alarm('1'), id: 1 })).toBe(false);
    expect(isAlarm(null)).toBe(false);
  });
});
