import { describe, expect, it } from 'vitest';
import { AlarmStore, type Alarm } from '../web/alarm-store.js';

const alarm = (id: string, over: Partial<Alarm> = {}): Alarm => ({
  id,
  tenant_id: 1,
  device_id: 1,
  alarm_identifier: `a${id}`,
  event_type: 'e',
  probable_cause: 'p',
  specific_problem: 's',
  perceived_severity: 'Major',
  managed_object_instance: null,
  additional_text: null,
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
});
