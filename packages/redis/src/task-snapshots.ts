import { STATE_EVENT_CATALOGUE, parseChannel, type CampaignWire, type TaskWire } from '@alarmcast/contracts';
import type { RedisConnection } from './client.js';
import type { RedisKeys } from './keys.js';

/**
 * The task side of the state channels' snapshots (state-channel.ts keeps one state per channel: the device's
 * status, the tenant's summary). A device channel's snapshot also holds the device's open tasks, and a
 * campaign channel's is the campaign's last progress: written here by the ingest after each commit, read by
 * the edge at every (re)subscribe and sent as `DeviceTaskUpdated` / `FirmwareCampaignProgress` with
 * `"snapshot": true`. A finished task leaves the hash; the keys expire `ttlS` after their last write.
 *
 * A live update in flight while a snapshot is read can reach the socket after it and be older: clients keep,
 * per task, the one with the latest `updated_at` (per campaign, the highest `version`).
 */

/** @defaultValue 7 days: a task or campaign nobody reports on for a week is not shown as open any more */
export const TASK_SNAPSHOT_TTL_S = 7 * 24 * 3600;

const taskField = (t: TaskWire): string => `${t.tenant_id}:${t.id}`;
const isOpen = (t: TaskWire): boolean =>
  t.state === 'queued' || t.state === 'dispatched' || t.state === 'running';

/** Records a task change in its device's open tasks (removed once it is finished). */
export async function writeTaskSnapshot(
  redis: RedisConnection,
  keys: RedisKeys,
  task: TaskWire,
): Promise<void> {
  const key = keys.deviceOpenTasks(task.device_id);
  if (isOpen(task)) {
    await redis
      .multi()
      .hset(key, taskField(task), JSON.stringify(task))
      .expire(key, TASK_SNAPSHOT_TTL_S)
      .exec();
  } else {
    await redis.hdel(key, taskField(task));
  }
}

/** Records a campaign's last broadcast progress. */
export async function writeCampaignSnapshot(
  redis: RedisConnection,
  keys: RedisKeys,
  campaign: CampaignWire,
): Promise<void> {
  await redis.set(keys.campaignState(campaign.id), JSON.stringify(campaign), 'EX', TASK_SNAPSHOT_TTL_S);
}

/**
 * The task events a (re)subscriber of `channel` gets after the channel's state snapshot: a device's open
 * tasks, oldest change first; a campaign's progress; nothing for other channels.
 */
export async function readTaskSnapshots(
  redis: RedisConnection,
  keys: RedisKeys,
  channel: string,
): Promise<{ event: string; data: string }[]> {
  const parsed = parseChannel(channel);
  if (parsed?.kind === 'device') {
    const tasks = (await redis.hvals(keys.deviceOpenTasks(parsed.deviceId))).map(
      (t) => JSON.parse(t) as TaskWire,
    );
    tasks.sort((a, b) => (a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : 0));
    const event = STATE_EVENT_CATALOGUE['device.task'].wireName;
    return tasks.map((task) => ({ event, data: JSON.stringify({ task, snapshot: true }) }));
  }
  if (parsed?.kind === 'campaign') {
    const campaign = await redis.get(keys.campaignState(parsed.campaignId));
    if (campaign === null) return [];
    const event = STATE_EVENT_CATALOGUE['campaign.progress'].wireName;
    return [{ event, data: `{"campaign":${campaign},"snapshot":true}` }];
  }
  return [];
}
