import { z } from 'zod';
import { AlarmWire } from './alarm.js';
import { DeviceStatusEventData, TenantDeviceSummaryEventData } from './device-status.js';
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
   */
  audience: 'tenant-and-shares';
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
} as const satisfies Record<string, EventDefinition>;

export type OutboxKind = keyof typeof EVENT_CATALOGUE;

/** The catalogue entry of an outbox kind, or undefined for a kind this version does not know. */
export function eventDefinition(kind: string): EventDefinition | undefined {
  return Object.hasOwn(EVENT_CATALOGUE, kind) ? EVENT_CATALOGUE[kind as OutboxKind] : undefined;
}

/** Outbox kind → wire name. */
export const OUTBOX_KINDS = Object.fromEntries(
  Object.entries(EVENT_CATALOGUE).map(([kind, def]) => [kind, def.wireName]),
) as { [K in OutboxKind]: (typeof EVENT_CATALOGUE)[K]['wireName'] };

/**
 * The second half of the catalogue: events of the live-state delivery model (ARCHITECTURE.md "Two delivery
 * models"). They go through no outbox, job or user log: each is the latest state of one entity on one
 * channel, kept in Redis (packages/redis `state-channel.ts`) so that every (re)subscribe first gets it with
 * `"snapshot": true`, and conflated to at most one event per entity per `minIntervalMs` (latest state, the
 * union of `changed`). `root` is the key of the entity in `data`.
 */
export interface StateEventDefinition {
  wireName: string;
  data: z.ZodType;
  /** the channel name of an entity id */
  channel: (id: number) => string;
  root: string;
  /** who may subscribe, for the README and the reader */
  audience: string;
  doc: string;
}

export const STATE_EVENT_CATALOGUE = {
  'device.status': {
    wireName: 'App\\Events\\DeviceStatusChanged',
    data: DeviceStatusEventData,
    channel: (id: number) => `private-device.${id}`,
    root: 'device',
    audience: "active users who may see the device: its tenant's members and its share holders",
    doc: 'a device came online, went offline, booted, or changed versions, interval or parameters (DEVICE_STATUS_MIN_INTERVAL_MS)',
  },
  'tenant.device-summary': {
    wireName: 'App\\Events\\TenantDeviceSummary',
    data: TenantDeviceSummaryEventData,
    channel: (id: number) => `private-tenant.${id}`,
    root: 'summary',
    audience: "the tenant's active members",
    doc: "the tenant's online/offline device counts changed (at most once per TENANT_SUMMARY_INTERVAL_MS)",
  },
} as const satisfies Record<string, StateEventDefinition>;
export type StateEventKind = keyof typeof STATE_EVENT_CATALOGUE;

/** The wire names by short name, for code that listens to one (tests, the SDK, the bench). */
export const WIRE_EVENTS = {
  alarmCreated: EVENT_CATALOGUE['alarm.created'].wireName,
  alarmUpdated: EVENT_CATALOGUE['alarm.updated'].wireName,
  alarmCleared: EVENT_CATALOGUE['alarm.cleared'].wireName,
  alarmAcknowledged: EVENT_CATALOGUE['alarm.acknowledged'].wireName,
  deviceStatusChanged: STATE_EVENT_CATALOGUE['device.status'].wireName,
  tenantDeviceSummary: STATE_EVENT_CATALOGUE['tenant.device-summary'].wireName,
} as const;
export type WireEventName = (typeof WIRE_EVENTS)[keyof typeof WIRE_EVENTS];
