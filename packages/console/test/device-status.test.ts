import { describe, expect, it } from 'vitest';
import {
  DeviceView,
  RECENT_CHANGES,
  formatDuration,
  isDeviceStatusEvent,
  type DeviceStatus,
} from '../web/device-status.js';

const status = (over: Partial<DeviceStatus> = {}): DeviceStatus => ({
  id: 7,
  tenant_id: 1,
  online: true,
  last_inform_at: '2026-12-02T05:00:00.000Z',
  last_boot_at: '2026-12-01T05:00:00.000Z',
  software_version: 'V1',
  hardware_version: 'HW1',
  uptime_s: 86_400,
  ...over,
});
const at = (s: number) => new Date(Date.UTC(2026, 11, 2, 5, 0, s));

describe('DeviceView', () => {
  it('takes the snapshot as the state without listing it as a change, then lists each live change, newest first', () => {
    const view = new DeviceView(7);
    expect(view.apply({ device: status(), changed: [], snapshot: true }, at(0))).toBe(true);
    expect(view.status?.software_version).toBe('V1');
    expect(view.changes).toEqual([]);
    view.apply({ device: status({ software_version: 'V2' }), changed: ['software_version'] }, at(1));
    view.apply({ device: status({ software_version: 'V2', online: false }), changed: ['online'] }, at(2));
    expect(view.status?.online).toBe(false);
    expect(view.changes).toEqual([
      { at: at(2).toISOString(), fields: [{ field: 'online', value: false }] },
      { at: at(1).toISOString(), fields: [{ field: 'software_version', value: 'V2' }] },
    ]);
  });

  it('after a reconnect, lists what the new snapshot differs in once, as missed', () => {
    const view = new DeviceView(7);
    view.apply({ device: status(), changed: [], snapshot: true }, at(0));
    view.apply(
      { device: status({ online: false, software_version: 'V3' }), changed: [], snapshot: true },
      at(5),
    );
    expect(view.changes).toEqual([
      {
        at: at(5).toISOString(),
        fields: [
          { field: 'online', value: false },
          { field: 'software_version', value: 'V3' },
        ],
        missed: true,
      },
    ]);
    // The same snapshot again (a second resubscribe) adds nothing.
    view.apply(
      { device: status({ online: false, software_version: 'V3' }), changed: [], snapshot: true },
      at(6),
    );
    expect(view.changes).toHaveLength(1);
  });

  it("ignores another device's events and keeps the API's state only until the channel has spoken", () => {
    const view = new DeviceView(7);
    expect(view.apply({ device: status({ id: 8 }), changed: ['online'] })).toBe(false);
    expect(view.status).toBeNull();
    view.apply({ device: status({ software_version: 'live' }), changed: [], snapshot: true });
    view.seed(status({ software_version: 'older, from the API' }), []);
    expect(view.status?.software_version).toBe('live');
  });

  it(`keeps at most ${RECENT_CHANGES} changes`, () => {
    const view = new DeviceView(7);
    for (let i = 0; i < RECENT_CHANGES + 10; i++)
      view.apply({ device: status({ uptime_s: i }), changed: ['uptime_s'] }, at(i));
    expect(view.changes).toHaveLength(RECENT_CHANGES);
    expect(view.changes[0]!.fields[0]!.value).toBe(RECENT_CHANGES + 9);
  });
});

describe('isDeviceStatusEvent', () => {
  it('accepts the contract shape and refuses anything else', () => {
    expect(isDeviceStatusEvent({ device: status(), changed: ['online'] })).toBe(true);
    expect(isDeviceStatusEvent({ device: status(), changed: [], snapshot: true })).toBe(true);
    for (const bad of [
      null,
      'x',
      { device: status() },
      { device: { ...status(), id: '7' }, changed: [] },
      { device: { ...status(), online: 'yes' }, changed: [] },
      { device: status(), changed: [1] },
    ])
      expect(isDeviceStatusEvent(bad)).toBe(false);
  });
});

describe('formatDuration', () => {
  it('reads as an operator would', () => {
    expect(formatDuration(7)).toBe('7 s');
    expect(formatDuration(306)).toBe('5 min 6 s');
    expect(formatDuration(3 * 3600 + 240)).toBe('3 h 4 min');
    expect(formatDuration(93_600)).toBe('1 d 2 h');
  });
});
