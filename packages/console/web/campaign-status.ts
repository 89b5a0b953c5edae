/**
 * Firmware campaigns as the console shows them: one campaign's counts, state and failing devices (the
 * campaign view), and the tenant's campaigns seen since the page opened (the campaigns list), built from
 * `GET /v1/campaigns/{id}`, `FirmwareCampaignProgress` (on `private-campaign.{id}`, whose subscribe starts
 * with the last one as a snapshot, and on `private-tenant.{id}`) and the per-device `DeviceTaskUpdated` on
 * `private-campaign.{id}` (ARCHITECTURE.md "Phase 3 events"). No DOM here, so the rules are tested without a
 * browser.
 */
// Type-only: the page's bundle gets no code from contracts, only the shape (as alarm-store.ts).
import type { CampaignCounts, CampaignResponse, CampaignWire } from '@alarmcast/contracts';
import { latestFirst, type Task } from './device-tasks.js';

export type Campaign = CampaignWire;
export type FailingDevice = CampaignResponse['failing_devices'][number];

export const CAMPAIGN_EVENT = 'App\\Events\\FirmwareCampaignProgress';

/** A campaign id as the API accepts it (`#campaign=<id>`, the id field). */
export const CAMPAIGN_ID = /^[A-Za-z0-9_-]{1,36}$/;

/** The campaign view lists this many failing devices, the latest failure first (as the API gives them). */
export const FAILING_SHOWN = 100;

/** The count columns in the order of the state machine (`pending`: no task reported yet). */
export const COUNT_KEYS = [
  'pending',
  'queued',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'expired',
] as const satisfies readonly (keyof CampaignCounts)[];

/** Devices whose task ended, whichever way. */
const FINISHED_KEYS = ['succeeded', 'failed', 'cancelled', 'expired'] as const;

export function isCampaign(x: unknown): x is Campaign {
  if (typeof x !== 'object' || x === null) return false;
  const c = x as Record<string, unknown>;
  const counts = c.counts as Record<string, unknown> | null | undefined;
  return (
    typeof c.id === 'string' &&
    typeof c.tenant_id === 'number' &&
    typeof c.name === 'string' &&
    typeof c.target_version === 'string' &&
    typeof c.state === 'string' &&
    typeof c.device_count === 'number' &&
    typeof c.version === 'number' &&
    typeof c.failing === 'boolean' &&
    typeof c.updated_at === 'string' &&
    typeof counts === 'object' &&
    counts !== null &&
    COUNT_KEYS.every((k) => typeof counts[k] === 'number')
  );
}

/** `data` of `App\Events\FirmwareCampaignProgress`. */
export function isCampaignEvent(x: unknown): x is { campaign: Campaign; snapshot?: boolean } {
  return typeof x === 'object' && x !== null && isCampaign((x as { campaign?: unknown }).campaign);
}

/**
 * Whether `next` is a later view of the campaign than `held`: more transitions counted (`version`), or as
 * many and a later change (a state change by PATCH moves `updated_at`, not `version`). The snapshot, the
 * live events and the API's answer can arrive in any order; an older one never replaces a newer one.
 */
export function isLaterCampaign(next: Campaign, held: Campaign | null | undefined): boolean {
  if (!held) return true;
  if (next.version !== held.version) return next.version > held.version;
  return next.updated_at > held.updated_at;
}

/** Devices finished (succeeded, failed, cancelled or expired) and their share of the campaign, 0-100. */
export function campaignProgress(c: Campaign): { finished: number; percent: number } {
  const finished = FINISHED_KEYS.reduce((n, k) => n + c.counts[k], 0);
  const percent = c.device_count === 0 ? 100 : Math.floor((finished * 100) / c.device_count);
  return { finished, percent };
}

/** One campaign: its latest state and its failing devices. */
export class CampaignView {
  campaign: Campaign | null = null;
  /** per device, its latest task seen (from the API's failing list or the channel) */
  private readonly devices = new Map<number, FailingDevice & { failed: boolean }>();

  constructor(readonly campaignId: string) {}

  /** A progress event or the API's campaign; returns whether anything shown changed. */
  applyCampaign(c: Campaign): boolean {
    if (c.id !== this.campaignId || !isLaterCampaign(c, this.campaign)) return false;
    this.campaign = c;
    return true;
  }

  /** The API's failing devices (`GET /v1/campaigns/{id}`): what the channel said since wins where newer. */
  seedFailing(list: readonly FailingDevice[]): boolean {
    let changed = false;
    for (const f of list) changed = this.note({ ...f, failed: true }) || changed;
    return changed;
  }

  /**
   * A device's task changed (`DeviceTaskUpdated` on the campaign's channel): a failed one lists the device,
   * any later task of it (a retry under a new task id) takes it off the list.
   */
  applyTask(t: Task): boolean {
    if (t.campaign_id !== this.campaignId) return false;
    return this.note({
      device_id: t.device_id,
      task_id: t.id,
      fault_code: t.fault_code,
      fault_string: t.fault_string,
      updated_at: t.updated_at,
      failed: t.state === 'failed',
    });
  }

  private note(entry: FailingDevice & { failed: boolean }): boolean {
    const held = this.devices.get(entry.device_id);
    if (held && held.updated_at >= entry.updated_at) return false;
    this.devices.set(entry.device_id, entry);
    return entry.failed || held?.failed === true;
  }

  /** The failing devices, the latest failure first, at most FAILING_SHOWN. */
  get failing(): FailingDevice[] {
    return [...this.devices.values()]
      .filter((d) => d.failed)
      .sort((a, b) => latestFirst(a.updated_at, b.updated_at))
      .slice(0, FAILING_SHOWN)
      .map(({ failed: _, ...d }) => d);
  }
}

/**
 * The tenant's campaigns: what `GET /v1/campaigns` gave (its newest 100), each `FirmwareCampaignProgress` on
 * `private-tenant.{id}` since the page opened, and each campaign opened; the later copy of each wins.
 */
export class CampaignList {
  private readonly byId = new Map<string, Campaign>();

  apply(c: Campaign): boolean {
    if (!isLaterCampaign(c, this.byId.get(c.id))) return false;
    this.byId.set(c.id, c);
    return true;
  }

  /** Running and paused first, then the most recently changed first. */
  get campaigns(): Campaign[] {
    const active = (c: Campaign) => (c.state === 'running' || c.state === 'paused' ? 0 : 1);
    return [...this.byId.values()].sort(
      (a, b) => active(a) - active(b) || latestFirst(a.updated_at, b.updated_at),
    );
  }

  /** Sign-out: the next user may be of another tenant. */
  clear(): void {
    this.byId.clear();
  }

  get size(): number {
    return this.byId.size;
  }
}
