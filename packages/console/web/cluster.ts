/**
 * The cluster page (platform admins only): polls `GET /v1/admin/status` every 2 s and shows the edges with
 * their connections, the resolver queue and its lag, the outbox backlog, and the edges' recent resume
 * failures and revocations. Signs in with the same token as the alarm page (localStorage).
 */
import type { AdminStatusResponse } from '@alarmcast/contracts';
import type { ConsoleConfig } from '../src/index.js';

const TOKEN_KEY = 'alarmcast.token';
const POLL_MS = 2000;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function cell(row: HTMLTableRowElement, text: string): void {
  row.insertCell().textContent = text;
}

const age = (s: number): string => (s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);
const time = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

function render(status: AdminStatusResponse): void {
  $('status').hidden = false;
  $('error').hidden = true;
  $('updated').textContent = `updated ${time(status.at)} UTC`;
  const connections = status.edges.reduce((n, e) => n + e.connections, 0);
  $('edge-count').textContent = String(status.edges.length);
  $('connection-total').textContent = `${connections} connections`;
  $('queue-waiting').textContent = String(status.queue.waiting);
  $('queue-detail').textContent =
    `waiting; ${status.queue.active} active, ${status.queue.delayed} delayed, ${status.queue.failed} failed; ` +
    `oldest waits ${age(status.queue.oldestWaitingAgeS)}`;
  $('card-queue').classList.toggle('alert', status.queue.oldestWaitingAgeS > 30);
  $('outbox-pending').textContent = String(status.outbox.pending);
  $('outbox-detail').textContent = `not broadcast yet; oldest ${age(status.outbox.oldestPendingAgeS)}`;
  $('card-outbox').classList.toggle('alert', status.outbox.oldestPendingAgeS > 60);

  const edges = $<HTMLTableElement>('edges').tBodies[0]!;
  edges.replaceChildren();
  for (const e of status.edges) {
    const row = edges.insertRow();
    row.dataset.node = e.node;
    cell(row, e.node);
    cell(row, String(e.connections));
    cell(
      row,
      Object.entries(e.subscriptions)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${kind} ${n}`)
        .join(', ') || '0',
    );
    cell(row, String(e.redisChannels));
    cell(row, e.draining ? 'draining' : 'serving');
    cell(row, `${age((status.at - e.at) / 1000)} ago`);
  }
  const recent = $<HTMLTableElement>('recent').tBodies[0]!;
  recent.replaceChildren();
  for (const r of status.recent) {
    const row = recent.insertRow();
    row.dataset.kind = r.kind;
    cell(row, `${time(r.at)} UTC`);
    cell(row, r.kind === 'resume_failed' ? 'resume failed' : 'revocation');
    cell(row, r.reason);
    cell(row, String(r.userId));
    cell(row, r.node);
  }
}

function showError(message: string): void {
  $('error').textContent = message;
  $('error').hidden = false;
}

async function start(): Promise<void> {
  const config = (await (await fetch('./config.json')).json()) as ConsoleConfig;
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) {
    $('sign-in').hidden = false;
    $('sign-in').addEventListener('submit', (event) => {
      event.preventDefault();
      localStorage.setItem(TOKEN_KEY, $<HTMLTextAreaElement>('token').value.trim());
      location.reload();
    });
    return;
  }
  const poll = async (): Promise<void> => {
    try {
      const res = await fetch(`${config.apiBase}/v1/admin/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = (await res.json()) as AdminStatusResponse | { error: { code: string; message: string } };
      if ('error' in body) {
        $('status').hidden = true;
        showError(
          res.status === 403
            ? 'This page is for platform admins only.'
            : `${body.error.code}: ${body.error.message}`,
        );
        // A wrong user stays wrong: stop asking. Anything else (401 after expiry, 503) is retried.
        if (res.status === 403) return;
      } else {
        render(body);
      }
    } catch (err) {
      showError(`the ingest did not answer: ${String(err)}`);
    }
    setTimeout(() => void poll(), POLL_MS);
  };
  await poll();
}

void start();
