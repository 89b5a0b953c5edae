import { z } from 'zod';
import { AlarmWire } from './alarm.js';
import { CampaignWire } from './campaigns.js';
import { TaskWire } from './tasks.js';
import type { JobName } from './jobs.js';

/**
 * Every kind of event alarmcast broadcasts, one entry each: the outbox `kind` (the key), the name
 * clients hear, the schema of its `data`, who receives it and through which job. The ingest writes the
 * kind into the outbox with the change; the resolver looks the kind up here to know what to send and to
 * whom; the wire types are derived from here. A new kind of alarm event is one entry here, one route in
 * ingest that writes it, and nothing in the resolver or the edge unless it needs a new audience.
 *
 * Names are Laravel's (the event's class name), so existing Echo listeners such as
 * `.listen('AlarmCreated', ...)` keep working: Echo prefixes `App\Events\` to names without a leading dot.
 */
export interface EventDefinition {
  /** the Pusher event name clients bind to */
  wireName: string;
  /** the event's `data` before the per-user `event_id` is added at delivery */
  data: z.ZodType;
  /**
   * Who gets it. `tenant-and-shares`: every active user of the event's tenant and every active user with an
   * explicit share of its device (device-less: the tenant's users), each on `private-user.{id}` through
   * their event log (reliable, resumable).
   *
   * `requester`: the one user the event names (a task's `requested_by`), on `private-user.{id}` through their
   * event log like an alarm, if they are still active and may still see the device.
   */
  audience: 'tenant-and-shares' | 'requester';
  /** the job (JOB_CATALOGUE) that fans it out */
  job: JobName;
  /** when it happens, for the README and the reader */
  doc: string;
}

/** `data` of every alarm event: the alarm as it is after the change. */
export const AlarmEventData = z.object({ alarm: AlarmWire }).strict();
export type AlarmEventData = z.infer<typeof AlarmEventData>;

const alarmEvent = (wireName: string, doc: string) =>
  ({
    wireName,
    data: AlarmEventData,
    audience: 'tenant-and-shares',
    job: 'BroadcastAlarmToTenant',
    doc,
  }) as const satisfies EventDefinition;

export const EVENT_CATALOGUE = {
  'alarm.created': alarmEvent(
    'App\\Events\\AlarmCreated',
    'a raise of an identifier not active on the device (device-less: in the tenant)',
  ),
  'alarm.updated': alarmEvent('App\\Events\\AlarmUpdated', 'a raise of an identifier already active there'),
  'alarm.cleared': alarmEvent('App\\Events\\AlarmCleared', 'a Cleared report for an active identifier'),
  'alarm.acknowledged': alarmEvent('App\\Events\\AlarmAcknowledged', 'a user acknowledged the alarm'),

  'task.updated': {
    wireName: 'App\\Events\\DeviceTaskUpdated',
    data: z.object({ task: TaskWire }).strict(),
    audience: 'requester',
    job: 'BroadcastAlarmToTenant',
    doc: "a task's state or progress changed: the copy for the user who requested it (reliable, resumable)",
  },
} as const satisfies Record<string, EventDefinition>;

/**
 * Events of the live-state model (ARCHITECTURE "Two delivery models"): published straight onto the
 * channels named here after the commit, to whoever holds them, never through a user's log and never
 * through the outbox. A subscriber that missed one converges on the next (each carries the whole state).
 */
export interface StateEventDefinition {
  wireName: string;
  data: z.ZodType;
  /** the channels it goes on, as ARCHITECTURE names them */
  channels: readonly string[];
  doc: string;
}

export const STATE_EVENT_CATALOGUE = {
  'task.progress': {
    wireName: 'App\\Events\\DeviceTaskUpdated',
    data: z.object({ task: TaskWire, snapshot: z.literal(true).optional() }).strict(),
    channels: ['private-device.{deviceId}', 'private-campaign.{campaignId}'],
    doc: 'a task changed (conflated per task on the campaign channel); the open tasks of a device are part of its snapshot',
  },
  'campaign.progress': {
    wireName: 'App\\Events\\FirmwareCampaignProgress',
    data: z.object({ campaign: CampaignWire, snapshot: z.literal(true).optional() }).strict(),
    channels: ['private-campaign.{campaignId}', 'private-tenant.{tenantId}'],
    doc: "a campaign's counts or state changed: at most once a second per campaign, the last one with the final counts",
  },
} as const satisfies Record<string, StateEventDefinition>;

export type OutboxKind = keyof typeof EVENT_CATALOGUE;

/** The catalogue entry of an outbox kind, or undefined for a kind this version does not know. */
export function eventDefinition(kind: string): EventDefinition | undefined {
  return Object.hasOwn(EVENT_CATALOGUE, kind) ? EVENT_CATALOGUE[kind as OutboxKind] : undefined;
}

/** Outbox kind → wire name. */
export const OUTBOX_KINDS = Object.fromEntries(
  Object.entries(EVENT_CATALOGUE).map(([kind, def]) => [kind, def.wireName]),
) as { [K in OutboxKind]: (typeof EVENT_CATALOGUE)[K]['wireName'] };

/** The wire names by short name, for code that listens to one (tests, the SDK, the bench). */
export const WIRE_EVENTS = {
  alarmCreated: EVENT_CATALOGUE['alarm.created'].wireName,
  alarmUpdated: EVENT_CATALOGUE['alarm.updated'].wireName,
  alarmCleared: EVENT_CATALOGUE['alarm.cleared'].wireName,
  alarmAcknowledged: EVENT_CATALOGUE['alarm.acknowledged'].wireName,
  deviceTaskUpdated: EVENT_CATALOGUE['task.updated'].wireName,
  firmwareCampaignProgress: STATE_EVENT_CATALOGUE['campaign.progress'].wireName,
} as const;
export type WireEventName = (typeof WIRE_EVENTS)[keyof typeof WIRE_EVENTS];
