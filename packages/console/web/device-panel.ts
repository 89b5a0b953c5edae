/**
 * The device panel: one device's live status beside the lists, opened from an alarm's device or from the
 * device list (`#device=<id>` in the address, so it survives a reload and can be linked). It subscribes to
 * `private-device.{id}` for as long as it is open: the edge sends the current status first (`"snapshot":
 * true`), then every change, so the panel never polls and converges after a reconnect. `GET
 * /v1/devices/{id}` gives the name, serial number and the recent changes kept by the server; a device the
 * user may not see answers 404 and its channel is refused, and the panel says so.
 *
 * Tasks: the channel's snapshot carries the device's open tasks (one `DeviceTaskUpdated` each, after the
 * status snapshot) and each change follows at once; a task that ended while the page was not connected is in
 * no snapshot, so `GET /v1/devices/{id}/tasks?state=all` is read when the panel opens and again on the
 * status snapshot of every resubscribe, and the later copy of each task wins (device-tasks.ts).
 */
import {
  DEVICE_STATUS_EVENT,
  DeviceView,
  formatDuration,
  isDeviceStatusEvent,
  type DeviceStatus,
  type StatusChange,
} from './device-status.js';
import {
  DeviceTasks,
  TASK_EVENT,
  faultText,
  isTask,
  isTaskEvent,
  kindLabel,
  taskStatusText,
  type Task,
} from './device-tasks.js';

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
  private tasks: DeviceTasks | null = null;
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
    const tasks = new DeviceTasks(deviceId);
    this.tasks = tasks;
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
    let snapshots = 0;
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
      // A resubscribe: tasks that ended meanwhile are in no snapshot, the API has them. (The first
      // subscribe's snapshot needs no read: open() reads the tasks once the device is loaded.)
      if (data.snapshot && ++snapshots > 1) void this.loadTasks(view, tasks);
    });
    channel?.bind(TASK_EVENT, (data) => {
      if (this.view !== view) return;
      if (!isTaskEvent(data)) {
        console.warn('alarmcast: dropped a malformed task event', data);
        return;
      }
      if (tasks.apply(data.task)) this.drawTasks();
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
    await this.loadTasks(view, tasks);
  }

  /** The device's recent tasks from the API, merged with what the channel gave (the later copy wins). */
  private async loadTasks(view: DeviceView, tasks: DeviceTasks): Promise<void> {
    const res = await this.host.api(`/v1/devices/${tasks.deviceId}/tasks?state=all&limit=50`);
    if (this.view !== view || !res.ok) return;
    const body = (await res.json()) as { tasks?: unknown[] };
    if (this.view !== view) return;
    let changed = false;
    for (const t of body.tasks ?? []) if (isTask(t)) changed = tasks.apply(t) || changed;
    if (changed) this.drawTasks();
  }

  close(): void {
    this.opening++;
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    this.view = null;
    this.tasks = null;
    const panel = $('device-panel');
    panel.hidden = true;
    delete panel.dataset.deviceId;
  }

  /** Not found or not allowed: one answer for both, as the API gives (no enumeration). */
  private refuse(): void {
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    if (this.view) this.view.status = null;
    this.tasks = null;
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
    this.drawTasks();
  }

  /** The open tasks with their bars, then the recently finished ones (a failed one with its fault). */
  private drawTasks(): void {
    const tasks = this.tasks;
    $('device-tasks-section').hidden = tasks === null;
    const open = tasks?.open ?? [];
    const finished = tasks?.finished ?? [];
    $('device-tasks').replaceChildren(...open.map((t) => taskItem(t)));
    $('device-tasks-empty').hidden = open.length > 0;
    $('device-tasks-finished').replaceChildren(...finished.map((t) => taskItem(t)));
    $('device-tasks-finished-head').hidden = finished.length === 0;
  }
}

/** One task: its kind and id, a progress bar, its state, phase and progress, and its fault if it has one. */
function taskItem(t: Task): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'task';
  li.dataset.taskId = t.id;
  li.dataset.state = t.state;
  const head = document.createElement('div');
  head.className = 'task-head';
  const name = document.createElement('span');
  name.className = 'task-kind';
  name.textContent = kindLabel(t.kind);
  const id = document.createElement('span');
  id.className = 'task-id';
  id.textContent = t.id;
  head.append(name, ' ', id);
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = t.progress;
  bar.setAttribute('aria-label', `${kindLabel(t.kind)} ${t.id}: ${t.progress} %`);
  const status = document.createElement('span');
  status.className = 'task-status';
  status.textContent = taskStatusText(t);
  li.append(head, bar, status);
  const fault = faultText(t);
  if (fault !== null) {
    const f = document.createElement('span');
    f.className = 'task-fault';
    f.textContent = fault;
    li.append(f);
  }
  if (t.campaign_id !== null) {
    const link = document.createElement('a');
    link.className = 'task-campaign';
    link.href = `#campaign=${encodeURIComponent(t.campaign_id)}`;
    link.textContent = `campaign ${t.campaign_id}`;
    li.append(link);
  }
  return li;
}
