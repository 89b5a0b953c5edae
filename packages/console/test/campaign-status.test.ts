import { describe, expect, it } from 'vitest';
import {
  CampaignList,
  CampaignView,
  FAILING_SHOWN,
  campaignProgress,
  isCampaignEvent,
  type Campaign,
} from '../web/campaign-status.js';
import type { Task } from '../web/device-tasks.js';

const at = (s: number) => new Date(Date.UTC(2026, 11, 2, 5, 0, s)).toISOString();
const counts = (over: Partial<Campaign['counts']> = {}): Campaign['counts'] => ({
  pending: 10,
  queued: 0,
  dispatched: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  cancelled: 0,
  expired: 0,
  ...over,
});
const campaign = (over: Partial<Campaign> = {}): Campaign => ({
  id: 'fw-1',
  tenant_id: 1,
  name: 'to 2.0',
  target_version: '2.0',
  state: 'running',
  failure_threshold_percent: 10,
  device_count: 10,
  counts: counts(),
  version: 0,
  failing: false,
  created_at: at(0),
  updated_at: at(0),
  ...over,
});
const task = (over: Partial<Task> = {}): Task => ({
  id: 't1',
  device_id: 7,
  tenant_id: 1,
  kind: 'download',
  state: 'running',
  progress: 10,
  phase: 'downloading',
  fault_code: null,
  fault_string: null,
  detail: null,
  requested_by: null,
  campaign_id: 'fw-1',
  target_software_version: null,
  confirmed_by_inform: false,
  created_at: at(0),
  updated_at: at(1),
  ...over,
});

describe('CampaignView', () => {
  it('keeps the latest counts whatever order the API, the snapshot and live events arrive in', () => {
    const view = new CampaignView('fw-1');
    expect(view.applyCampaign(campaign({ version: 3, counts: counts({ pending: 7, running: 3 }) }))).toBe(
      true,
    );
    // the API's answer, read before those transitions: older, ignored
    expect(view.applyCampaign(campaign({ version: 1 }))).toBe(false);
    expect(view.campaign!.counts.running).toBe(3);
    // a PATCH changes the state, not the version: the later updated_at wins
    expect(view.applyCampaign(campaign({ version: 3, state: 'paused', updated_at: at(9) }))).toBe(true);
    expect(view.campaign!.state).toBe('paused');
    // another campaign's event
    expect(view.applyCampaign(campaign({ id: 'fw-2', version: 99 }))).toBe(false);
  });

  it('lists failing devices from the API and the channel, latest first, and drops a device whose retry runs', () => {
    const view = new CampaignView('fw-1');
    view.seedFailing([
      { device_id: 1, task_id: 'a', fault_code: 9010, fault_string: 'x', updated_at: at(2) },
    ]);
    expect(
      view.applyTask(task({ device_id: 2, id: 'b', state: 'failed', fault_code: 9011, updated_at: at(3) })),
    ).toBe(true);
    expect(view.failing.map((f) => [f.device_id, f.fault_code])).toEqual([
      [2, 9011],
      [1, 9010],
    ]);
    // a running task of a device not failing changes nothing shown
    expect(view.applyTask(task({ device_id: 3, id: 'c' }))).toBe(false);
    // device 1 is retried under a new task id: off the list
    expect(view.applyTask(task({ device_id: 1, id: 'a2', state: 'queued', updated_at: at(4) }))).toBe(true);
    expect(view.failing.map((f) => f.device_id)).toEqual([2]);
    // the API's (older) failing entry of device 1, read before the retry, does not put it back
    view.seedFailing([
      { device_id: 1, task_id: 'a', fault_code: 9010, fault_string: 'x', updated_at: at(2) },
    ]);
    expect(view.failing.map((f) => f.device_id)).toEqual([2]);
    // a task of another campaign
    expect(
      view.applyTask(task({ device_id: 5, campaign_id: 'fw-2', state: 'failed', updated_at: at(9) })),
    ).toBe(false);
  });

  it(`lists at most ${FAILING_SHOWN} failing devices`, () => {
    const view = new CampaignView('fw-1');
    for (let i = 0; i < FAILING_SHOWN + 5; i++)
      view.applyTask(task({ device_id: i + 1, id: `t${i}`, state: 'failed', updated_at: at(i) }));
    expect(view.failing).toHaveLength(FAILING_SHOWN);
    expect(view.failing[0]!.device_id).toBe(FAILING_SHOWN + 5);
  });
});

describe('campaignProgress', () => {
  it('counts every finished device, whichever way it ended', () => {
    expect(
      campaignProgress(
        campaign({ counts: counts({ pending: 4, running: 1, succeeded: 3, failed: 1, expired: 1 }) }),
      ),
    ).toEqual({ finished: 5, percent: 50 });
    expect(
      campaignProgress(campaign({ device_count: 3, counts: counts({ pending: 1, succeeded: 2 }) })),
    ).toEqual({
      finished: 2,
      percent: 66,
    });
  });
});

describe('CampaignList', () => {
  it('lists running and paused campaigns first, then the latest changed, each once at its latest', () => {
    const list = new CampaignList();
    list.apply(campaign({ id: 'done', state: 'completed', updated_at: at(9) }));
    list.apply(campaign({ id: 'old', updated_at: at(1) }));
    list.apply(campaign({ id: 'new', state: 'paused', updated_at: at(5) }));
    expect(list.apply(campaign({ id: 'old', version: 2, updated_at: at(2) }))).toBe(true);
    expect(list.apply(campaign({ id: 'old', version: 1, updated_at: at(8) }))).toBe(false);
    expect(list.campaigns.map((c) => c.id)).toEqual(['new', 'old', 'done']);
    expect(list.size).toBe(3);
    list.clear();
    expect(list.campaigns).toEqual([]);
  });
});

describe('isCampaignEvent', () => {
  it('accepts the contract shape and refuses anything else', () => {
    expect(isCampaignEvent({ campaign: campaign() })).toBe(true);
    expect(isCampaignEvent({ campaign: campaign(), snapshot: true })).toBe(true);
    const { failed: _, ...missing } = counts();
    for (const bad of [
      null,
      {},
      { campaign: { ...campaign(), version: '1' } },
      { campaign: { ...campaign(), counts: missing } },
    ])
      expect(isCampaignEvent(bad)).toBe(false);
  });
});
