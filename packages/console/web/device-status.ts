/**
 * One device's live status as the device panel shows it: the latest `DeviceStatusChanged` state and the
 * recent changes, built from the channel's snapshot and live events (ARCHITECTURE.md "Phase 3 events").
 * No DOM here, so the rules are tested without a browser.
 */

/** The device object of `App\Events\DeviceStatusChanged` (and of `GET /v1/devices/{id}`), snake_case. */
export interface DeviceStatus {
  id: number;
  tenant_id: number;
  online: boolean;
  last_inform_at: string | null;
  last_boot_at: string | null;
  software_version: string | null;
  hardware_version: string | null;
  uptime_s: number | null;
  [field: string]: unknown;
}

/** `data` of `App\Events\DeviceStatusChanged`. */
export interface DeviceStatusEvent {
  device: DeviceStatus;
  /** the fields that changed since the previous event (conflated: the union over the interval) */
  changed: string[];
  /** the channel's current state, sent first on every (re)subscribe */
  snapshot?: boolean;
}

/** One change as the panel lists it: when, and each changed field with its new value. */
export interface StatusChange {
  at: string;
  fields: { field: string; value: unknown }[];
  /** true for a difference found between two snapshots (changes made while the page was not connected) */
  missed?: boolean;
}

export const DEVICE_STATUS_EVENT = 'App\\Events\\DeviceStatusChanged';

/** The panel keeps this many recent changes, newest first. */
export const RECENT_CHANGES = 50;

const nullableString = (v: unknown) => v === null || typeof v === 'string';

/** A frame's data is applied only when it has the contract's shape; anything else is dropped. */
export function isDeviceStatusEvent(x: unknown): x is DeviceStatusEvent {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  const d = e.device as Record<string, unknown> | null | undefined;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.id === 'number' &&
    typeof d.online === 'boolean' &&
    nullableString(d.last_inform_at ?? null) &&
    nullableString(d.software_version ?? null) &&
    nullableString(d.hardware_version ?? null) &&
    Array.isArray(e.changed) &&
    e.changed.every((f) => typeof f === 'string') &&
    (e.snapshot === undefined || typeof e.snapshot === 'boolean')
  );
}

/** The fields the panel compares between two states (everything but the id and tenant). */
const comparable = (s: DeviceStatus) =>
  Object.keys(s).filter((k) => k !== 'id' && k !== 'tenant_id' && k !== 'name' && k !== 'serial_number');

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export class DeviceView {
  status: DeviceStatus | null = null;
  /** newest first, at most RECENT_CHANGES */
  changes: StatusChange[] = [];

  constructor(readonly deviceId: number) {}

  /**
   * What the API said when the panel opened: used only until the channel's snapshot arrives (the channel is
   * newer or as new), and its recent changes seed the list.
   */
  seed(status: DeviceStatus | null, changes: readonly StatusChange[]): void {
    if (this.status === null && status !== null) this.status = status;
    const known = new Set(this.changes.map((c) => c.at));
    this.changes = [...this.changes, ...changes.filter((c) => !known.has(c.at))]
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
      .slice(0, RECENT_CHANGES);
  }

  /**
   * Applies one event; returns whether anything shown changed. A live event replaces the state and is
   * listed as a change of its `changed` fields. A snapshot replaces the state too; after a reconnect, the
   * fields where it differs from what the panel had are listed as one change marked `missed`.
   */
  apply(event: DeviceStatusEvent, receivedAt: Date = new Date()): boolean {
    if (event.device.id !== this.deviceId) return false;
    const before = this.status;
    this.status = event.device;
    let fields: string[];
    if (event.snapshot) {
      if (before === null) return true;
      fields = comparable(event.device).filter((f) => !same(before[f], event.device[f]));
      if (fields.length === 0) return !same(before, event.device);
    } else {
      fields = event.changed;
    }
    if (fields.length > 0) {
      this.changes.unshift({
        at: receivedAt.toISOString(),
        fields: fields.map((field) => ({ field, value: event.device[field] ?? null })),
        ...(event.snapshot ? { missed: true } : {}),
      });
      this.changes.length = Math.min(this.changes.length, RECENT_CHANGES);
    }
    return true;
  }
}

/** `1 d 2 h`, `3 h 4 min`, `5 min 6 s`, `7 s`: an uptime as an operator reads it. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
