import PusherModule from 'pusher-js';
import type { ConsoleConfig } from '../src/index.js';
import { AlarmStore, type Alarm } from './alarm-store.js';

// pusher-js' typings declare a default export that NodeNext resolution sees as the module object.
const Pusher = PusherModule as unknown as typeof PusherModule.default;
type Pusher = InstanceType<typeof Pusher>;

const TOKEN_KEY = 'alarmcast.token';
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

function render(freshId?: string): void {
  const rows = store.sorted();
  const body = $('alarms').querySelector('tbody')!;
  body.replaceChildren(
    ...rows.map((a) => {
      const tr = document.createElement('tr');
      tr.dataset.alarmId = a.id;
      tr.dataset.severity = a.perceived_severity;
      tr.className = [a.cleared_at ? 'cleared' : 'active', a.id === freshId ? 'fresh' : ''].join(' ').trim();
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
      const problem = span('problem', a.specific_problem || a.probable_cause);
      const detail = span('detail', ` ${a.alarm_identifier} · ${a.event_type} · ${a.probable_cause}`);
      const state = a.cleared_at ? 'cleared' : a.acknowledged_at ? 'acknowledged' : 'active';
      const ackCell = cell();
      if (!a.cleared_at && !a.acknowledged_at) {
        const button = document.createElement('button');
        button.textContent = 'Acknowledge';
        button.addEventListener('click', () => void acknowledge(a.id, button));
        ackCell.append(button);
      }
      tr.append(
        cell(span(`sev ${a.perceived_severity}`, a.perceived_severity)),
        cell(problem, detail),
        cell(a.device_id === null ? '— (account)' : `#${a.device_id}`),
        cell(`#${a.tenant_id}`),
        cell(new Date(a.raised_at).toLocaleString()),
        cell(span('state', state)),
        ackCell,
      );
      return tr;
    }),
  );
  const active = rows.filter((a) => !a.cleared_at).length;
  $('summary').textContent = `${active} active, ${rows.length - active} cleared`;
  $('empty').hidden = rows.length > 0;
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

async function acknowledge(id: string, button: HTMLButtonElement): Promise<void> {
  if (!current) return;
  button.disabled = true;
  const res = await api(current.config, current.token, `/v1/alarms/${id}/ack`, {
    method: 'POST',
    body: '{}',
  });
  if (res.ok) {
    const body = (await res.json()) as { alarm?: Alarm };
    if (body.alarm && store.apply(body.alarm)) render();
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
  $('alarms-view').hidden = false;
  $('sign-out').hidden = false;

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
    channel.bind(event, (data: { alarm: Alarm }) => {
      if (store.apply(data.alarm)) render(data.alarm.id);
    });
  }
  // Subscribe first, then load: events during the load are held by the store, not lost.
  await reload(config, token);
}

async function reload(config: ConsoleConfig, token: string): Promise<void> {
  store.hold();
  store.load(await loadAlarms(config, token));
  render();
}

function showSignIn(message = ''): void {
  pusher?.disconnect();
  pusher = null;
  current = null;
  setConnection('offline');
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('alarms-view').hidden = true;
  $('sign-out').hidden = true;
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

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) start(saved).catch((err: Error) => showSignIn(err.message));
else showSignIn();
