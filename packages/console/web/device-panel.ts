/**
 * The device panel: one device's live status beside the lists, opened from an alarm's device or from the
 * device list (`#device=<id>` in the address, so it survives a reload and can be linked). It subscribes to
 * `private-device.{id}` for as long as it is open: the edge sends the current status first (`"snapshot":
 * true`), then every change, so the panel never polls and converges after a reconnect. `GET
 * /v1/devices/{id}` gives the name, serial number and the recent changes kept by the server; a device the
 * user may not see answers 404 and its channel is refused, and the panel says so.
 */
import {
  DEVICE_STATUS_EVENT,
  DeviceView,
  formatDuration,
  isDeviceStatusEvent,
  type DeviceStatus,
  type StatusChange,
} from './device-status.js';

/** What the panel needs of the page: the API, and the page's Pusher connection. */
export interface PanelHost {
  api: (path: string) => Promise<Response>;
  subscribe: (channel: string) => PanelChannel | null;
  unsubscribe: (channel: string) => void;
}

/** The part of a pusher-js channel the panel uses. */
export interface PanelChannel {
  bind: (event: string, callback: (data: unknown) => void) => void;
}

/** GET /v1/devices/{id} */
interface DeviceAnswer {
  device: DeviceStatus & { name: string | null; serial_number: string };
  recent_changes?: { at: string; changed: string[]; device: DeviceStatus }[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** How the panel labels a status field in its list of changes. */
const LABELS: Record<string, string> = {
  online: 'online',
  last_inform_at: 'last inform',
  last_boot_at: 'last boot',
  software_version: 'software',
  hardware_version: 'hardware',
  uptime_s: 'uptime',
  periodic_inform_interval_s: 'inform interval',
  parameters: 'parameters',
};

const time = (iso: unknown) => (typeof iso === 'string' ? new Date(iso).toLocaleString() : '—');

function valueText(field: string, value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (field === 'online') return value ? 'online' : 'offline';
  if (field === 'uptime_s' && typeof value === 'number') return formatDuration(value);
  if (field === 'periodic_inform_interval_s' && typeof value === 'number') return `${value} s`;
  if (field.endsWith('_at')) return time(value);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export class DevicePanel {
  private view: DeviceView | null = null;
  private channel: string | null = null;
  private opening = 0;

  constructor(private readonly host: PanelHost) {
    $('device-close').addEventListener('click', () => {
      if (location.hash.startsWith('#device=')) history.replaceState(null, '', location.pathname);
      this.close();
    });
  }

  get openDeviceId(): number | null {
    return this.view?.deviceId ?? null;
  }

  /** Opens (or switches to) a device: subscribe first, then load, so no change falls between the two. */
  async open(deviceId: number): Promise<void> {
    if (this.view?.deviceId === deviceId) return;
    this.close();
    const attempt = ++this.opening;
    const view = new DeviceView(deviceId);
    this.view = view;
    const panel = $('device-panel');
    panel.hidden = false;
    panel.dataset.deviceId = String(deviceId);
    panel.dataset.state = 'loading';
    $('device-title').textContent = `Device #${deviceId}`;
    $('device-serial').textContent = '';
    $('device-error').textContent = '';
    this.draw();

    this.channel = `private-device.${deviceId}`;
    const channel = this.host.subscribe(this.channel);
    channel?.bind(DEVICE_STATUS_EVENT, (data) => {
      if (this.view !== view) return;
      if (!isDeviceStatusEvent(data)) {
        console.warn('alarmcast: dropped a malformed device status event', data);
        return;
      }
      // Live from the first event on (a snapshot equal to what the API gave changes nothing shown).
      const changed = view.apply(data);
      if (changed || panel.dataset.state !== 'live') {
        panel.dataset.state = 'live';
        this.draw();
      }
    });
    channel?.bind('pusher:subscription_error', () => {
      if (this.view === view) this.refuse();
    });

    const res = await this.host.api(`/v1/devices/${deviceId}`);
    if (attempt !== this.opening) return;
    if (res.status === 404) {
      this.refuse();
      return;
    }
    if (!res.ok) {
      $('device-error').textContent = `Could not load the device (${res.status}).`;
      return;
    }
    const body = (await res.json()) as DeviceAnswer;
    if (attempt !== this.opening) return;
    const { name, serial_number } = body.device;
    $('device-title').textContent = name ?? serial_number;
    $('device-serial').textContent = `${serial_number} · #${deviceId}`;
    const history: StatusChange[] = (body.recent_changes ?? []).map((c) => ({
      at: c.at,
      fields: c.changed.map((field) => ({ field, value: c.device[field] ?? null })),
    }));
    view.seed(body.device, history);
    if (panel.dataset.state === 'loading') panel.dataset.state = 'loaded';
    this.draw();
  }

  close(): void {
    this.opening++;
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    this.view = null;
    const panel = $('device-panel');
    panel.hidden = true;
    delete panel.dataset.deviceId;
  }

  /** Not found or not allowed: one answer for both, as the API gives (no enumeration). */
  private refuse(): void {
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    if (this.view) this.view.status = null;
    const panel = $('device-panel');
    panel.dataset.state = 'refused';
    $('device-title').textContent = 'Device not available';
    $('device-serial').textContent = '';
    $('device-error').textContent = 'No such device, or you may not see it.';
    this.draw();
  }

  private draw(): void {
    const s = this.view?.status ?? null;
    const badge = $('device-online');
    badge.hidden = s === null;
    badge.dataset.online = String(s?.online ?? false);
    badge.textContent = s?.online ? 'online' : 'offline';
    const facts: [string, string][] = [
      ['device-last-inform', time(s?.last_inform_at)],
      ['device-last-boot', time(s?.last_boot_at)],
      ['device-software', s?.software_version ?? '—'],
      ['device-hardware', s?.hardware_version ?? '—'],
      ['device-uptime', typeof s?.uptime_s === 'number' ? formatDuration(s.uptime_s) : '—'],
    ];
    for (const [id, text] of facts) $(id).textContent = text;
    $('device-facts').hidden = s === null;

    const list = $('device-changes');
    list.replaceChildren(
      ...(this.view?.changes ?? []).map((c) => {
        const li = document.createElement('li');
        const when = document.createElement('time');
        when.dateTime = c.at;
        when.textContent = new Date(c.at).toLocaleTimeString();
        const what = c.fields
          .map((f) => `${LABELS[f.field] ?? f.field} ${valueText(f.field, f.value)}`)
          .join(', ');
        li.append(when, ` ${what}${c.missed ? ' (while disconnected)' : ''}`);
        if (c.fields.some((f) => f.field === 'online')) li.className = 'presence';
        return li;
      }),
    );
    $('device-changes-empty').hidden = list.childElementCount > 0 || s === null;
  }
}
