/**
 * The device list: the devices the user may see (`GET /v1/devices`, a page of 100 at a time, "Load more" for
 * the next), filtered by presence. Each row opens the device panel, which is where status is live; the list
 * shows the status as of its load (Refresh reloads it), except presence: the page has no per-device event on
 * the tenant's channel (it carries only counts), but it does get the offline alarm on the user's channel, so
 * a listed device's badge goes offline when its `alarmcast.device-offline` is raised and online when it is
 * cleared (the device informed again), live (`notePresence`, called by main.ts).
 */
import type { DeviceStatus } from './device-status.js';

export type ListedDevice = DeviceStatus & { name: string | null; serial_number: string };

const PAGE = 100;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export class DeviceList {
  private cursor: string | null = null;
  private loading = 0;

  constructor(
    private readonly api: (path: string) => Promise<Response>,
    private readonly openDevice: (id: number) => void,
  ) {
    $('devices-filter').addEventListener('change', () => void this.reload());
    $('devices-refresh').addEventListener('click', () => void this.reload());
    $('devices-more').addEventListener('click', () => void this.loadPage());
  }

  async reload(): Promise<void> {
    this.cursor = null;
    $('device-rows').replaceChildren();
    await this.loadPage();
  }

  private async loadPage(): Promise<void> {
    const attempt = ++this.loading;
    const filter = $<HTMLSelectElement>('devices-filter').value;
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (filter === 'online' || filter === 'offline') query.set('online', String(filter === 'online'));
    if (this.cursor) query.set('cursor', this.cursor);
    const res = await this.api(`/v1/devices?${query}`);
    if (attempt !== this.loading) return;
    if (!res.ok) {
      $('devices-summary').textContent = `Could not load devices (${res.status}).`;
      return;
    }
    const body = (await res.json()) as { devices: ListedDevice[]; next_cursor: string | null };
    if (attempt !== this.loading) return;
    $('device-rows').append(...body.devices.map((d) => this.rowOf(d)));
    this.cursor = body.next_cursor;
    $('devices-more').hidden = this.cursor === null;
    const shown = $('device-rows').childElementCount;
    $('devices-summary').textContent =
      shown === 0 ? 'No devices.' : `${shown.toLocaleString()} shown${this.cursor ? ', more to load' : ''}`;
  }

  /** A listed device went offline or came back online; true when a row shows it. */
  notePresence(deviceId: number, online: boolean): boolean {
    const badge = $('device-rows').querySelector<HTMLElement>(
      `tr[data-device-id="${deviceId}"] .presence-badge`,
    );
    if (!badge) return false;
    badge.dataset.online = String(online);
    badge.textContent = online ? 'online' : 'offline';
    return true;
  }

  private rowOf(d: ListedDevice): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.deviceId = String(d.id);
    const cell = (...children: (Node | string)[]) => {
      const td = document.createElement('td');
      td.append(...children);
      return td;
    };
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'link';
    open.textContent = d.name ?? d.serial_number;
    open.setAttribute('aria-label', `Open device ${d.name ?? d.serial_number}`);
    open.addEventListener('click', () => this.openDevice(d.id));
    const badge = document.createElement('span');
    badge.className = 'presence-badge';
    badge.dataset.online = String(d.online);
    badge.textContent = d.online ? 'online' : 'offline';
    tr.append(
      cell(open),
      cell(d.serial_number),
      cell(badge),
      cell(d.last_inform_at ? new Date(d.last_inform_at).toLocaleString() : '—'),
      cell(d.software_version ?? '—'),
    );
    return tr;
  }
}
