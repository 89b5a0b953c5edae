import {
  STATE_EVENT_CATALOGUE,
  tenantChannel,
  campaignChannel,
  deviceChannel,
  type CampaignWire,
  type TaskWire,
} from '@alarmcast/contracts';
import { findCampaign, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import {
  encodeChannelEvent,
  writeCampaignSnapshot,
  writeTaskSnapshot,
  type PubSubTransport,
  type RedisKeys,
  type Redis,
  type Cluster,
} from '@alarmcast/redis';

const TASK_EVENT = STATE_EVENT_CATALOGUE['device.task'].wireName;
const CAMPAIGN_EVENT = STATE_EVENT_CATALOGUE['campaign.progress'].wireName;

export interface TaskLiveOptions {
  /** for the progress reads: the process' background pool, so a broadcast never waits behind requests */
  pool: PgPool;
  /** for the cross-process progress lock */
  redis: Redis | Cluster;
  transport: PubSubTransport;
  keys: RedisKeys;
  log: Logger;
  node: string;
  /** CAMPAIGN_PROGRESS_INTERVAL_MS */
  progressIntervalMs: number;
  /** CAMPAIGN_TASK_CONFLATE_MS */
  campaignTaskConflateMs: number;
}

/**
 * The live-state side of tasks and campaigns (ARCHITECTURE "Two delivery models"), after the commit:
 *
 * - `DeviceTaskUpdated` on `private-device.{id}` for every change, at once (a device's panel shows each step);
 * - the same on `private-campaign.{id}`, conflated per task: the first change of a task goes out at once,
 *   later ones within `campaignTaskConflateMs` are held and only the latest is sent when it ends, so a
 *   campaign of 10,000 devices reporting every phase costs its watchers one frame per device per interval;
 * - `FirmwareCampaignProgress` on `private-campaign.{id}` and `private-tenant.{tenantId}` at most once per
 *   `progressIntervalMs` per campaign across every ingest process: a process that takes the Redis lock
 *   (SET NX PX) publishes the campaign as Postgres has it then; a change made while the lock is held, here
 *   or in another process, is remembered and published once the lock has expired. So the last broadcast
 *   always carries the final counts, and each one carries counts that were committed together (`version`).
 *
 * Losing a message (Redis away) loses nothing that matters: each one carries the whole state, and the next
 * one replaces it. What is held in memory when a process stops is published by `stop`.
 */
export class TaskLivePublisher {
  private readonly heldTasks = new Map<string, { task: TaskWire; timer: NodeJS.Timeout | null }>();
  /** campaigns with an attempt running (null) or scheduled (its timer) */
  private readonly progressDue = new Map<string, NodeJS.Timeout | null>();
  private readonly progressDirty = new Set<string>();
  private stopped = false;

  constructor(private readonly o: TaskLiveOptions) {}

  /** A task change was committed. */
  taskChanged(task: TaskWire): void {
    // The device's open tasks first (its channel's snapshot), then the event: a subscriber that missed the
    // event still finds the change in the next snapshot.
    writeTaskSnapshot(this.o.redis, this.o.keys, task)
      .catch((err: unknown) => this.o.log.debug({ err, taskId: task.id }, 'task snapshot write failed'))
      .finally(() => this.publish(deviceChannel(task.device_id), TASK_EVENT, { task }));
    if (task.campaign_id !== null) this.conflateCampaignTask(task.campaign_id, task);
  }

  /** A campaign's counts or state changed (committed). */
  campaignChanged(campaignId: string): void {
    if (this.progressDue.has(campaignId)) {
      // an attempt is running or scheduled: it (or the one after it) publishes this change too
      this.progressDirty.add(campaignId);
      return;
    }
    void this.tryProgress(campaignId);
  }

  private conflateCampaignTask(campaignId: string, task: TaskWire): void {
    const key = `${task.tenant_id}:${task.id}`;
    const held = this.heldTasks.get(key);
    if (held) {
      held.task = task; // latest wins; its timer sends it
      return;
    }
    this.publish(campaignChannel(campaignId), TASK_EVENT, { task });
    if (this.o.campaignTaskConflateMs === 0) return;
    const entry: { task: TaskWire; timer: NodeJS.Timeout | null } = { task, timer: null };
    const sent = task;
    entry.timer = setTimeout(() => {
      this.heldTasks.delete(key);
      if (entry.task !== sent) this.conflateCampaignTask(campaignId, entry.task);
    }, this.o.campaignTaskConflateMs);
    entry.timer.unref();
    this.heldTasks.set(key, entry);
  }

  /**
   * One attempt: read the campaign, then take the lock and publish right away, with nothing in between to
   * wait on, so that two broadcasts (from any processes) are never closer than the interval. Without the
   * lock (another broadcast was less than an interval ago), the read is dropped and the attempt comes back
   * when the lock expires. One attempt per campaign at a time in this process (`progressDue`).
   */
  private async tryProgress(campaignId: string): Promise<void> {
    if (this.stopped) return;
    this.progressDue.set(campaignId, null);
    const interval = this.o.progressIntervalMs;
    const lock = this.o.keys.campaignProgressLock(campaignId);
    let wait: number | null = null;
    try {
      const campaign = await findCampaign(this.o.pool, campaignId);
      if (campaign) {
        const got = await this.o.redis.set(lock, this.o.node, 'PX', interval, 'NX');
        if (got === 'OK') {
          this.publishCampaign(campaign);
          // What changed after the read is published after the interval.
          wait = interval;
        } else {
          const ttl = await this.o.redis.pttl(lock);
          wait = ttl > 0 ? ttl : 1;
          this.progressDirty.add(campaignId);
        }
      }
    } catch (err) {
      // Postgres or Redis away: try again after an interval rather than flood.
      this.o.log.debug({ err, campaignId }, 'campaign progress attempt failed');
      this.progressDirty.add(campaignId);
      wait = interval;
    }
    if (wait === null) {
      this.progressDue.delete(campaignId);
      return;
    }
    const timer = setTimeout(() => {
      this.progressDue.delete(campaignId);
      if (this.progressDirty.delete(campaignId)) void this.tryProgress(campaignId);
    }, wait + 1);
    timer.unref();
    this.progressDue.set(campaignId, timer);
  }

  private async publishProgress(campaignId: string): Promise<void> {
    const campaign = await findCampaign(this.o.pool, campaignId);
    if (campaign) this.publishCampaign(campaign);
  }

  /** Publishes one campaign's progress now (also used by the tests through `campaignChanged`). */
  private publishCampaign(campaign: CampaignWire): void {
    writeCampaignSnapshot(this.o.redis, this.o.keys, campaign).catch((err: unknown) =>
      this.o.log.debug({ err, campaignId: campaign.id }, 'campaign snapshot write failed'),
    );
    const data = { campaign };
    this.publish(campaignChannel(campaign.id), CAMPAIGN_EVENT, data);
    this.publish(tenantChannel(campaign.tenant_id), CAMPAIGN_EVENT, data);
  }

  private publish(channel: string, event: string, data: unknown): void {
    const message = encodeChannelEvent({ node: this.o.node, channel, event, data: JSON.stringify(data) });
    this.o.transport.publish(this.o.keys.pubsubChannel(channel), message).catch((err: unknown) => {
      this.o.log.debug({ err, channel }, 'live publish failed');
    });
  }

  /** Sends what is held (conflated task changes, due progress) and stops the timers. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [key, held] of this.heldTasks) {
      if (held.timer) clearTimeout(held.timer);
      this.heldTasks.delete(key);
      if (held.task.campaign_id !== null)
        this.publish(campaignChannel(held.task.campaign_id), TASK_EVENT, { task: held.task });
    }
    const due = [...this.progressDue.keys()].filter((id) => this.progressDirty.has(id));
    for (const timer of this.progressDue.values()) if (timer) clearTimeout(timer);
    this.progressDue.clear();
    this.progressDirty.clear();
    await Promise.all(due.map((id) => this.publishProgress(id).catch(() => undefined)));
  }
}
