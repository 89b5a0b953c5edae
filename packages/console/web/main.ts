import PusherModule from 'pusher-js';
import type { ConsoleConfig } from '../src/index.js';
import {
  AlarmStore,
  SEVERITIES,
  isAlarm,
  type Alarm,
  type AlarmFilter,
  type Severity,
} from './alarm-store.js';
import { enableNotifications, notifyAlarm } from './notify.js';
import { SettingsPage } from './settings.js';
import { DeviceList } from './device-list.js';
import { DevicePanel } from './device-panel.js';
import { CampaignPage } from './campaign-view.js';
import { CAMPAIGN_EVENT, CAMPAIGN_ID } from './campaign-status.js';

// pusher-js' typings declare a default export that NodeNext resolution sees as the module object.
const Pusher = PusherModule as unknown as typeof PusherModule.default;
type Pusher = InstanceType<typeof Pusher>;

const TOKEN_KEY = 'alarmcast.token';
/** The alarm alarmcast raises when a device misses its presence deadline (root README, "Offline alarm"). */
const OFFLINE_ALARM = 'alarmcast.device-offline';
const EVENTS = ['AlarmCreated', 'AlarmUpdated', 'AlarmCleared', 'AlarmAcknowledged'].map(
  (e) => `App\\Events\\${e}`,
);

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const store = new AlarmStore();
let pusher: Pusher | null = null;

/** The user id is the JWT's `sub`; the server checks the signature, the page only needs to know whose channel to join. */
function userIdOf(token: string): number | null {
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as {
      sub?: unknown;
    };
    return typeof payload.sub === 'string' && /^\d+$/.test(payload.sub) ? Number(payload.sub) : null;
  } catch {
    return null;
  }
}

function setConnection(state: 'live' | 'reconnecting' | 'offline'): void {
  const el = $('connection');
  el.className = `connection ${state}`;
  el.dataset.state = state;
  el.textContent = state;
}

// The list is virtualized: one scroll container, rows of one fixed height, and only the rows in view (plus
// OVERSCAN above and below) exist in the DOM, so 10,000 alarms cost as much to draw as 30. Keep ROW_HEIGHT_PX
// equal to `tbody tr { height }` in style.css.
const ROW_HEIGHT_PX = 44;
const OVERSCAN_ROWS = 10;

interface RenderedRow {
  alarm: Alarm;
  tr: HTMLTableRowElement;
}
/** The rows in the DOM by alarm id: reused while their alarm is unchanged, so focus and animations survive. */
let rendered = new Map<string, RenderedRow>();

function rowOf(a: Alarm, index: number, fresh: boolean): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.alarmId = a.id;
  tr.dataset.severity = a.perceived_severity;
  tr.className = [a.cleared_at ? 'cleared' : 'active', fresh ? 'fresh' : ''].join(' ').trim();
  tr.setAttribute('aria-rowindex', String(index + 2));
  const cell = (...children: (Node | string)[]) => {
    const td = document.createElement('td');
    td.append(...children);
    return td;
  };
  const span = (cls: string, text: string) => {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  };
  const headline = span('headline', '');
  headline.append(
    span('problem', a.specific_problem || a.probable_cause),
    span('detail', ` ${a.alarm_identifier} · ${a.event_type} · ${a.probable_cause}`),
  );
  const extra = [a.additional_text, a.additional_information].filter((t): t is string => !!t);
  const info = span('info', extra.join(' · '));
  const alarmCell = cell(headline, info);
  // The full text, for what the fixed row height cuts off.
  alarmCell.title = [a.specific_problem, a.alarm_identifier, a.event_type, a.probable_cause, ...extra]
    .filter(Boolean)
    .join('\n');
  const state = a.cleared_at ? 'cleared' : a.acknowledged_at ? 'acknowledged' : 'active';
  const ackCell = cell();
  if (!a.cleared_at && !a.acknowledged_at) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Acknowledge';
    button.setAttribute(
      'aria-label',
      `Acknowledge ${a.specific_problem || a.probable_cause} (${a.alarm_identifier})`,
    );
    button.addEventListener('click', () => void acknowledge(a.id, button));
    ackCell.append(button);
  }
  tr.append(
    cell(span(`sev ${a.perceived_severity}`, a.perceived_severity)),
    alarmCell,
    deviceCell(a),
    cell(`#${a.tenant_id}`),
    cell(new Date(a.raised_at).toLocaleString()),
    cell(span('state', state)),
    ackCell,
  );
  return tr;
}

/** The alarm's device by name (its serial number when it has none) and serial; a link opening its panel. */
function deviceCell(a: Alarm): HTMLTableCellElement {
  const td = document.createElement('td');
  td.className = 'device-cell';
  if (a.device_id === null) {
    td.textContent = '— (account)';
    return td;
  }
  const deviceId = a.device_id;
  const label = a.device_name ?? a.device_serial_number ?? `#${deviceId}`;
  // A link, not a button: the row's only button stays Acknowledge (keyboard focus is kept on it across
  // redraws), and the address names the open device (hashchange opens the panel).
  const open = document.createElement('a');
  open.className = 'device-link';
  open.href = `#device=${deviceId}`;
  open.textContent = label;
  open.setAttribute('aria-label', `Open device ${label}`);
  const serial = document.createElement('span');
  serial.className = 'serial';
  serial.textContent = a.device_name === null ? '' : (a.device_serial_number ?? '');
  td.append(open, serial);
  td.title = [a.device_name, a.device_serial_number, `#${deviceId}`].filter(Boolean).join(' · ');
  return td;
}

/** Draws the rows in view, the counters and the summary; `fresh` are the alarms changed in this frame. */
function render(fresh: ReadonlySet<string> = new Set()): void {
  const list = $('list');
  const total = store.viewSize;
  const first = Math.floor(list.scrollTop / ROW_HEIGHT_PX);
  const inView = Math.ceil(list.clientHeight / ROW_HEIGHT_PX) + 1;
  const start = Math.max(0, Math.min(first, total) - OVERSCAN_ROWS);
  const end = Math.min(total, first + inView + OVERSCAN_ROWS);
  const rows = $('rows');
  rows.style.paddingTop = `${start * ROW_HEIGHT_PX}px`;
  rows.style.paddingBottom = `${(total - end) * ROW_HEIGHT_PX}px`;
  $('alarms').setAttribute('aria-rowcount', String(total + 1));

  // Keep keyboard focus on the same alarm's control when its row is moved or redrawn.
  const focused = document.activeElement;
  const focusedId = focused instanceof HTMLElement ? focused.closest('tr')?.dataset.alarmId : undefined;

  const next = new Map<string, RenderedRow>();
  const wanted = store.slice(start, end).map((a, i) => {
    const old = rendered.get(a.id);
    const row = old && old.alarm === a ? old : { alarm: a, tr: rowOf(a, start + i, fresh.has(a.id)) };
    row.tr.setAttribute('aria-rowindex', String(start + i + 2));
    next.set(a.id, row);
    return row.tr;
  });
  rendered = next;
  // Move only what moved: a row inserted at the top is one insertion, not a redraw of every row.
  const body = $('alarms').querySelector('tbody')!;
  let cursor = body.firstChild;
  for (const tr of wanted) {
    if (tr === cursor) cursor = cursor.nextSibling;
    else body.insertBefore(tr, cursor);
  }
  while (cursor) {
    const after: ChildNode | null = cursor.nextSibling;
    cursor.remove();
    cursor = after;
  }
  if (focusedId !== undefined && document.activeElement !== focused) {
    const again = rendered.get(focusedId)?.tr.querySelector('button');
    if (again) again.focus({ preventScroll: true });
  }

  const counts = store.severityCounts();
  for (const s of SEVERITIES) {
    const n = $(`count-${s}`);
    const text = counts[s].toLocaleString();
    if (n.textContent !== text) n.textContent = text;
  }
  const active = store.activeCount;
  const shown = store.filtered ? `; ${total.toLocaleString()} match the filters` : '';
  $('summary').textContent = `${active} active, ${store.size - active} cleared${shown}`;
  $('empty').textContent = store.size === 0 ? 'No alarms.' : 'No alarms match the filters.';
  $('empty').hidden = total > 0;
}

// Live events are queued as they arrive and applied once per animation frame, in one batch: at 500 events a
// second that is ~8 per frame and one draw, where drawing per event would redraw 500 times a second.
const queue: { alarm: Alarm; at: number }[] = [];
let frameRequested = false;
let viewDirty = false;

function requestFrame(): void {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

/** Runs `fn` after the frame being prepared has been painted (a task queued in rAF runs after rendering). */
const afterPaint = (() => {
  const callbacks: (() => void)[] = [];
  const channel = new MessageChannel();
  channel.port1.onmessage = () => callbacks.splice(0).forEach((cb) => cb());
  return (fn: () => void) => {
    if (callbacks.push(fn) === 1) channel.port2.postMessage(null);
  };
})();

/** Event-to-paint delay of each frame's oldest event, as a User Timing measure (DevTools' Timings track). */
const EVENT_TO_PAINT = 'alarmcast:event-to-paint';

function frame(): void {
  frameRequested = false;
  const batch = queue.splice(0);
  if (filterDirty) {
    filterDirty = false;
    store.setFilter(currentFilter());
    $('list').scrollTop = 0;
    viewDirty = true;
  }
  // When the operator has scrolled down, the rows they are reading stay where they are while alarms are
  // inserted above them.
  const list = $('list');
  const top = Math.floor(list.scrollTop / ROW_HEIGHT_PX);
  const anchor = list.scrollTop > 0 ? store.slice(top, top + 1)[0]?.id : undefined;
  const fresh = new Set<string>();
  for (const { alarm } of batch) if (store.apply(alarm)) fresh.add(alarm.id);
  if (anchor !== undefined && fresh.size > 0) {
    const moved = store.indexOf(anchor);
    if (moved >= 0 && moved !== top) list.scrollTop += (moved - top) * ROW_HEIGHT_PX;
  }
  if (fresh.size > 0 || viewDirty) {
    viewDirty = false;
    render(fresh);
  }
  const oldest = batch[0];
  if (oldest && !store.loading) {
    afterPaint(() => {
      performance.measure(EVENT_TO_PAINT, { start: oldest.at, end: performance.now() });
      // Observers have the entry; the timeline buffer would otherwise grow with every frame of a long session.
      performance.clearMeasures(EVENT_TO_PAINT);
    });
  }
}

function onLiveEvent(event: string, data: unknown): void {
  const alarm = (data as { alarm?: unknown } | null)?.alarm;
  if (!isAlarm(alarm)) {
    console.warn('alarmcast: dropped a malformed alarm event', data);
    return;
  }
  queue.push({ alarm, at: performance.now() });
  requestFrame();
  // The offline alarm is the page's only per-device presence event outside the device channels: the
  // Devices view's badges follow it (raised: offline; cleared: the device informed again).
  if (alarm.alarm_identifier === OFFLINE_ALARM && alarm.device_id !== null) {
    if (event === 'App\\Events\\AlarmCleared') deviceList.notePresence(alarm.device_id, true);
    else if (event !== 'App\\Events\\AlarmAcknowledged' && alarm.cleared_at === null)
      deviceList.notePresence(alarm.device_id, false);
  }
  // The user's preferences decided, per event, whether it may ring (`notify`).
  notifyAlarm(event, alarm, (data as { notify?: unknown }).notify);
}

// Filters: the severity counters in the header are toggles, plus a device id and free text.
let filterDirty = false;
const selectedSeverities = new Set<Severity>();

function currentFilter(): AlarmFilter {
  const device = $<HTMLInputElement>('filter-device');
  const raw = device.value.trim();
  const valid = raw === '' || /^[1-9]\d{0,9}$/.test(raw);
  device.setAttribute('aria-invalid', String(!valid));
  return {
    severities: selectedSeverities,
    deviceId: valid && raw !== '' ? Number(raw) : null,
    text: $<HTMLInputElement>('filter-text').value,
  };
}

function changeFilter(): void {
  filterDirty = true;
  requestFrame();
}

function buildCounters(): void {
  const group = $('counters');
  for (const s of SEVERITIES) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `count sev-${s}`;
    button.dataset.severity = s;
    button.setAttribute('aria-pressed', 'false');
    const n = document.createElement('span');
    n.id = `count-${s}`;
    n.className = 'n';
    n.textContent = '0';
    button.append(n, ` ${s}`);
    button.title =
      s === 'Cleared' ? 'Cleared alarms; show only these' : `Active ${s} alarms; show only these`;
    button.addEventListener('click', () => {
      if (selectedSeverities.has(s)) selectedSeverities.delete(s);
      else selectedSeverities.add(s);
      button.setAttribute('aria-pressed', String(selectedSeverities.has(s)));
      changeFilter();
    });
    group.append(button);
  }
}

async function api(
  config: ConsoleConfig,
  token: string,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(`${config.apiBase}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(init.headers ?? {}),
    },
  });
}

let current: { config: ConsoleConfig; token: string } | null = null;
let settings: SettingsPage | null = null;

/** The user API with the signed-in user's token. */
const userApi = (path: string): Promise<Response> =>
  current ? api(current.config, current.token, path) : Promise.reject(new Error('not signed in'));

const panel = new DevicePanel({
  api: userApi,
  subscribe: (channel) => pusher?.subscribe(channel) ?? null,
  unsubscribe: (channel) => pusher?.unsubscribe(channel),
});
const deviceList = new DeviceList(userApi, (id) => openDevice(id));
const campaigns = new CampaignPage(
  {
    api: userApi,
    subscribe: (channel) => pusher?.subscribe(channel) ?? null,
    unsubscribe: (channel) => pusher?.unsubscribe(channel),
  },
  (id) => openCampaign(id),
);

/** Opens a campaign in the Campaigns view and names it in the address (`#campaign=<id>`). */
function openCampaign(campaignId: string): void {
  const hash = `#campaign=${campaignId}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  showView('campaigns');
  void campaigns.open(campaignId);
}

function campaignInAddress(): string | null {
  const id = location.hash.startsWith('#campaign=') ? location.hash.slice('#campaign='.length) : '';
  return CAMPAIGN_ID.test(id) ? id : null;
}

/** Opens a device's panel and names it in the address (`#device=<id>`), so a reload keeps it open. */
function openDevice(deviceId: number): void {
  if (location.hash !== `#device=${deviceId}`) history.replaceState(null, '', `#device=${deviceId}`);
  void panel.open(deviceId);
}

function deviceInAddress(): number | null {
  const m = /^#device=([1-9]\d{0,9})$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

function showView(view: 'alarms' | 'devices' | 'campaigns'): void {
  $('alarms-view').hidden = view !== 'alarms';
  $('devices-view').hidden = view !== 'devices';
  $('campaigns-view').hidden = view !== 'campaigns';
  $('counters').hidden = view !== 'alarms';
  $('show-alarms').setAttribute('aria-pressed', String(view === 'alarms'));
  $('show-devices').setAttribute('aria-pressed', String(view === 'devices'));
  $('show-campaigns').setAttribute('aria-pressed', String(view === 'campaigns'));
  if (view === 'devices') void deviceList.reload();
  if (view === 'campaigns') void campaigns.loadList();
}

/** The header's device counts: `GET /v1/devices/summary`, then live on the tenant's channel. */
const SUMMARY_EVENT = 'App\\Events\\TenantDeviceSummary';
interface Counts {
  online: number;
  offline: number;
}
const isCounts = (s: unknown): s is Counts =>
  typeof (s as Counts | null)?.online === 'number' && typeof (s as Counts).offline === 'number';

function showSummary(counts: Counts): void {
  $('summary-online').textContent = counts.online.toLocaleString();
  $('summary-offline').textContent = counts.offline.toLocaleString();
  $('device-summary').hidden = false;
}

async function startSummary(): Promise<void> {
  const res = await userApi('/v1/devices/summary');
  if (!res.ok) return;
  const { summary } = (await res.json()) as { summary: (Counts & { tenant_id: number }) | null };
  if (summary === null) return;
  // The API's counts first; the channel's snapshot (read after them) and each change then replace them.
  showSummary(summary);
  const tenant = pusher?.subscribe(`private-tenant.${summary.tenant_id}`);
  tenant?.bind(SUMMARY_EVENT, (data: unknown) => {
    const summary = (data as { summary?: unknown } | null)?.summary;
    if (isCounts(summary)) showSummary(summary);
  });
  // The tenant's campaigns' progress goes on the same channel: the Campaigns view lists them.
  tenant?.bind(CAMPAIGN_EVENT, (data: unknown) => campaigns.noteTenantProgress(data));
}

async function acknowledge(id: string, button: HTMLButtonElement): Promise<void> {
  if (!current) return;
  button.disabled = true;
  const res = await api(current.config, current.token, `/v1/alarms/${id}/ack`, {
    method: 'POST',
    body: '{}',
  });
  if (res.ok) {
    const body = (await res.json()) as { alarm?: Alarm };
    if (isAlarm(body.alarm) && store.apply(body.alarm)) {
      viewDirty = true;
      requestFrame();
    }
  } else {
    button.disabled = false;
  }
}

/** Loads every alarm the user may see, page by page. */
async function loadAlarms(config: ConsoleConfig, token: string): Promise<Alarm[]> {
  const all: Alarm[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `/v1/alarms?state=all&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await api(config, token, query);
    if (res.status === 401) throw new Error('Your token was refused. Sign in again.');
    if (!res.ok) throw new Error(`Could not load alarms (${res.status}).`);
    const body = (await res.json()) as { alarms: Alarm[]; next_cursor: string | null };
    all.push(...body.alarms);
    cursor = body.next_cursor;
  } while (cursor);
  return all;
}

async function start(token: string): Promise<void> {
  const userId = userIdOf(token);
  if (userId === null) throw new Error('That is not a valid access token.');
  const config = (await (await fetch('./config.json')).json()) as ConsoleConfig;
  current = { config, token };
  $('who').textContent = `user #${userId}`;
  $('sign-in').hidden = true;
  $('views').hidden = false;
  showView('alarms');
  $('sign-out').hidden = false;
  $('settings-toggle').hidden = false;
  settings = new SettingsPage((path, init) => api(config, token, path, init));

  pusher = new Pusher(config.key, {
    cluster: 'mt1',
    wsHost: config.wsHost,
    wsPort: config.wsPort,
    wssPort: config.wsPort,
    forceTLS: config.forceTLS,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    channelAuthorization: {
      endpoint: config.authEndpoint,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${token}` },
    },
  });
  // Reload after a reconnect (not the first connect): the API has what was sent while we were away.
  let reloadOnConnect = false;
  pusher.connection.bind('state_change', ({ current: state }: { current: string }) => {
    setConnection(
      state === 'connected'
        ? 'live'
        : state === 'connecting' || state === 'unavailable'
          ? 'reconnecting'
          : 'offline',
    );
    if (state === 'connected' && reloadOnConnect) void reload(config, token);
  });
  pusher.connection.bind('connected', () => (reloadOnConnect = true));
  const channel = pusher.subscribe(`private-user.${userId}`);
  for (const event of EVENTS) {
    channel.bind(event, (data: unknown) => onLiveEvent(event, data));
  }
  // Subscribe first, then load: events during the load are held by the store, not lost.
  await reload(config, token);
  void startSummary();
  const device = deviceInAddress();
  if (device !== null) void panel.open(device);
  const campaign = campaignInAddress();
  if (campaign !== null) openCampaign(campaign);
}

async function reload(config: ConsoleConfig, token: string): Promise<void> {
  store.hold();
  store.load(await loadAlarms(config, token));
  viewDirty = true;
  requestFrame();
}

function showSignIn(message = ''): void {
  pusher?.disconnect();
  pusher = null;
  current = null;
  setConnection('offline');
  $('who').textContent = '';
  queue.length = 0;
  panel.close();
  campaigns.reset();
  $('sign-in').hidden = false;
  $('alarms-view').hidden = true;
  $('devices-view').hidden = true;
  $('campaigns-view').hidden = true;
  $('views').hidden = true;
  $('device-summary').hidden = true;
  $('counters').hidden = true;
  $('sign-out').hidden = true;
  $('settings-toggle').hidden = true;
  $('settings-view').hidden = true;
  settings = null;
  $('sign-in-error').textContent = message;
}

$('sign-in').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $<HTMLTextAreaElement>('token').value.trim();
  start(token).then(
    () => localStorage.setItem(TOKEN_KEY, token),
    (err: Error) => showSignIn(err.message),
  );
});
$('sign-out').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  showSignIn();
});

$('settings-toggle').addEventListener('click', () => {
  const open = $('settings-view').hidden;
  $('settings-view').hidden = !open;
  $('alarms-view').hidden = open;
  $('settings-toggle').setAttribute('aria-expanded', String(open));
  if (open) void settings?.load();
});
$('notify-enable').addEventListener('click', () => {
  void enableNotifications().then(
    (state) => ($('notify-permission').textContent = `Desktop notifications: ${state}`),
  );
});

buildCounters();
$('show-alarms').addEventListener('click', () => showView('alarms'));
$('show-devices').addEventListener('click', () => showView('devices'));
$('show-campaigns').addEventListener('click', () => showView('campaigns'));
window.addEventListener('hashchange', () => {
  const device = deviceInAddress();
  if (device === null) panel.close();
  else if (current) void panel.open(device);
  // A failing device's link (`#device=`) opens its panel beside the campaign, which stays open.
  const campaign = campaignInAddress();
  if (campaign !== null && current) openCampaign(campaign);
});
$('filter-device').addEventListener('input', changeFilter);
$('filter-text').addEventListener('input', changeFilter);
$('filter-clear').addEventListener('click', () => {
  selectedSeverities.clear();
  for (const b of $('counters').querySelectorAll('button')) b.setAttribute('aria-pressed', 'false');
  $<HTMLInputElement>('filter-device').value = '';
  $<HTMLInputElement>('filter-text').value = '';
  changeFilter();
});
$('list').addEventListener('scroll', () => {
  viewDirty = true;
  requestFrame();
});
// Home, End and Page Up/Down on the list scroll it here rather than by the browser's default action. The
// browser computes that scroll from the list's height as last painted, so a key pressed while a filter change
// or live events wait for the next frame (a storm, or right after "Clear filters") lands short: End went to the
// end of the filtered list, not of the one being drawn. The frame's pending work is applied first, so the
// keys answer over the list as it now is.
const SCROLL_KEYS: Record<string, (list: HTMLElement) => number> = {
  Home: () => 0,
  End: (list) => list.scrollHeight,
  PageUp: (list) => list.scrollTop - (list.clientHeight - ROW_HEIGHT_PX),
  PageDown: (list) => list.scrollTop + (list.clientHeight - ROW_HEIGHT_PX),
};
$('list').addEventListener('keydown', (e) => {
  const target = SCROLL_KEYS[e.key];
  const list = $('list');
  if (!target || e.target !== list || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  if (frameRequested) frame();
  list.scrollTop = target(list);
});
new ResizeObserver(() => {
  viewDirty = true;
  requestFrame();
}).observe($('list'));

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) start(saved).catch((err: Error) => showSignIn(err.message));
else showSignIn();
