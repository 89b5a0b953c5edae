/**
 * The Campaigns view: the tenant's campaigns heard of since the page opened (`FirmwareCampaignProgress` on
 * `private-tenant.{id}`, handed in by main.ts), a field to open one by its id, and the open campaign
 * (`#campaign=<id>` in the address): its state, live counts per state, a progress bar and its failing
 * devices. While a campaign is open it subscribes to `private-campaign.{id}`: the edge sends the last
 * progress first (`"snapshot": true`), then each one (at most one a second) and each device's task change
 * (conflated), so the view never polls. Subscribe first, then `GET /v1/campaigns/{id}`, so nothing falls
 * between the two; the later copy wins (campaign-status.ts).
 */
import {
  CAMPAIGN_ID,
  CAMPAIGN_EVENT,
  COUNT_KEYS,
  CampaignList,
  CampaignView,
  campaignProgress,
  isCampaign,
  isCampaignEvent,
  type Campaign,
  type FailingDevice,
} from './campaign-status.js';
import { TASK_EVENT, faultText, isTaskEvent } from './device-tasks.js';
import type { PanelHost } from './device-panel.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export class CampaignPage {
  private readonly list = new CampaignList();
  private view: CampaignView | null = null;
  private channel: string | null = null;

  constructor(
    private readonly host: PanelHost,
    /** opens a campaign and names it in the address */
    private readonly openCampaign: (id: string) => void,
  ) {
    $('campaign-open').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = $<HTMLInputElement>('campaign-id').value.trim();
      const valid = CAMPAIGN_ID.test(id);
      $('campaign-id').setAttribute('aria-invalid', String(!valid));
      if (valid) this.openCampaign(id);
    });
    $('campaign-close').addEventListener('click', () => {
      if (location.hash.startsWith('#campaign=')) history.replaceState(null, '', location.pathname);
      this.close();
    });
    this.drawList();
  }

  get openCampaignId(): string | null {
    return this.view?.campaignId ?? null;
  }

  /** A `FirmwareCampaignProgress` from the tenant's channel. */
  noteTenantProgress(data: unknown): void {
    if (!isCampaignEvent(data)) return;
    if (this.list.apply(data.campaign)) this.drawList();
    if (this.view?.applyCampaign(data.campaign)) this.drawCampaign();
  }

  async open(campaignId: string): Promise<void> {
    if (this.view?.campaignId === campaignId) return;
    this.close();
    const view = new CampaignView(campaignId);
    this.view = view;
    const detail = $('campaign-detail');
    detail.hidden = false;
    detail.dataset.campaignId = campaignId;
    detail.dataset.state = 'loading';
    $('campaign-error').textContent = '';
    this.drawCampaign();

    this.channel = `private-campaign.${campaignId}`;
    const channel = this.host.subscribe(this.channel);
    channel?.bind(CAMPAIGN_EVENT, (data) => {
      if (this.view !== view) return;
      if (!isCampaignEvent(data)) {
        console.warn('alarmcast: dropped a malformed campaign event', data);
        return;
      }
      const changed = view.applyCampaign(data.campaign);
      this.list.apply(data.campaign);
      if (changed || detail.dataset.state !== 'live') {
        detail.dataset.state = 'live';
        this.drawCampaign();
        this.drawList();
      }
    });
    channel?.bind(TASK_EVENT, (data) => {
      if (this.view !== view || !isTaskEvent(data)) return;
      if (view.applyTask(data.task)) this.drawFailing();
    });
    channel?.bind('pusher:subscription_error', () => {
      if (this.view === view) this.refuse();
    });

    const res = await this.host.api(`/v1/campaigns/${encodeURIComponent(campaignId)}`);
    if (this.view !== view) return;
    if (res.status === 404) {
      this.refuse();
      return;
    }
    if (!res.ok) {
      $('campaign-error').textContent = `Could not load the campaign (${res.status}).`;
      return;
    }
    const body = (await res.json()) as { campaign?: unknown; failing_devices?: FailingDevice[] };
    if (this.view !== view) return;
    if (isCampaign(body.campaign)) {
      view.applyCampaign(body.campaign);
      this.list.apply(body.campaign);
    }
    view.seedFailing(body.failing_devices ?? []);
    if (detail.dataset.state === 'loading') detail.dataset.state = 'loaded';
    this.drawCampaign();
    this.drawList();
  }

  /**
   * The tenant's campaigns, newest first (`GET /v1/campaigns`, the first 100), merged into the list that
   * `FirmwareCampaignProgress` on the tenant's channel keeps current (newer copies win, whatever the order).
   */
  async loadList(): Promise<void> {
    const res = await this.host.api('/v1/campaigns?limit=100');
    if (!res.ok) return;
    const body = (await res.json()) as { campaigns?: unknown[] };
    let changed = false;
    for (const c of body.campaigns ?? []) if (isCampaign(c) && this.list.apply(c)) changed = true;
    if (changed) this.drawList();
  }

  /** Sign-out: closes the campaign and forgets the list (the next user may be of another tenant). */
  reset(): void {
    this.close();
    this.list.clear();
    this.drawList();
  }

  close(): void {
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    this.view = null;
    const detail = $('campaign-detail');
    detail.hidden = true;
    delete detail.dataset.campaignId;
  }

  /** Not found or not allowed (another tenant's): one answer for both, as the API gives. */
  private refuse(): void {
    if (this.channel) this.host.unsubscribe(this.channel);
    this.channel = null;
    if (this.view) this.view.campaign = null;
    $('campaign-detail').dataset.state = 'refused';
    $('campaign-error').textContent = 'No such campaign, or you may not see it.';
    this.drawCampaign();
  }

  private drawCampaign(): void {
    const c = this.view?.campaign ?? null;
    $('campaign-title').textContent = c ? c.name : `Campaign ${this.view?.campaignId ?? ''}`;
    $('campaign-facts').hidden = c === null;
    if (c === null) {
      $('campaign-failing-section').hidden = true;
      return;
    }
    const state = $('campaign-state');
    state.dataset.state = c.state;
    state.textContent = c.state;
    $('campaign-meta').textContent =
      `${c.id} · to ${c.target_version} · ${c.device_count.toLocaleString()} devices` +
      (c.failure_threshold_percent === null ? '' : ` · failure threshold ${c.failure_threshold_percent} %`);
    $('campaign-failing-flag').hidden = !c.failing;
    const { finished, percent } = campaignProgress(c);
    const bar = $<HTMLProgressElement>('campaign-bar');
    bar.max = Math.max(1, c.device_count);
    bar.value = finished;
    bar.setAttribute('aria-label', `${percent} % of the devices finished`);
    $('campaign-percent').textContent =
      `${finished.toLocaleString()} of ${c.device_count.toLocaleString()} finished (${percent} %)`;
    for (const k of COUNT_KEYS) $(`campaign-count-${k}`).textContent = c.counts[k].toLocaleString();
    this.drawFailing();
  }

  private drawFailing(): void {
    const view = this.view;
    const c = view?.campaign ?? null;
    $('campaign-failing-section').hidden = c === null;
    if (!view || c === null) return;
    const failing = view.failing;
    $('campaign-failing').replaceChildren(...failing.map((f) => failingRow(f)));
    $('campaign-failing-empty').hidden = failing.length > 0;
    $('campaign-failing-summary').textContent =
      c.counts.failed > failing.length
        ? `The latest ${failing.length} of ${c.counts.failed.toLocaleString()} failed devices.`
        : '';
  }

  private drawList(): void {
    const rows = this.list.campaigns.map((c) => campaignRow(c, this.openCampaign));
    $('campaign-rows').replaceChildren(...rows);
    $('campaigns-empty').hidden = rows.length > 0;
  }
}

function cell(...children: (Node | string)[]): HTMLTableCellElement {
  const td = document.createElement('td');
  td.append(...children);
  return td;
}

function campaignRow(c: Campaign, open: (id: string) => void): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.campaignId = c.id;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'link';
  button.textContent = c.name;
  button.setAttribute('aria-label', `Open campaign ${c.name}`);
  button.addEventListener('click', () => open(c.id));
  const state = document.createElement('span');
  state.className = 'campaign-state';
  state.dataset.state = c.state;
  state.textContent = c.state;
  const { finished, percent } = campaignProgress(c);
  const bar = document.createElement('progress');
  bar.max = Math.max(1, c.device_count);
  bar.value = finished;
  bar.setAttribute('aria-label', `${c.name}: ${percent} % finished`);
  const flag = document.createElement('span');
  flag.className = 'campaign-failing';
  flag.textContent = c.failing ? ' failing' : '';
  tr.append(
    cell(button),
    cell(c.id),
    cell(state, flag),
    cell(bar, ` ${percent} %`),
    cell(`${c.counts.succeeded.toLocaleString()} / ${c.counts.failed.toLocaleString()}`),
  );
  return tr;
}

function failingRow(f: FailingDevice): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.deviceId = String(f.device_id);
  const link = document.createElement('a');
  link.href = `#device=${f.device_id}`;
  link.textContent = `#${f.device_id}`;
  link.setAttribute('aria-label', `Open device #${f.device_id}`);
  const fault = document.createElement('span');
  fault.className = 'failing-fault';
  fault.textContent = faultText(f) ?? 'failed';
  tr.append(cell(link), cell(f.task_id), cell(fault), cell(new Date(f.updated_at).toLocaleString()));
  return tr;
}
