import type { PerceivedSeverity } from './ingest.js';

/**
 * Event names as Laravel broadcasts them (the class name), so existing Echo listeners such as
 * `.listen('AlarmCreated', ...)` keep working: Echo prefixes `App\Events\` to names without a leading dot.
 */
export const WIRE_EVENTS = {
  alarmCreated: 'App\\Events\\AlarmCreated',
  alarmUpdated: 'App\\Events\\AlarmUpdated',
  alarmCleared: 'App\\Events\\AlarmCleared',
  alarmAcknowledged: 'App\\Events\\AlarmAcknowledged',
} as const;
export type WireEventName = (typeof WIRE_EVENTS)[keyof typeof WIRE_EVENTS];

/**
 * The outbox `kind` of each event, mapped to its wire name. Each carries the alarm as it is after the change:
 * created by a raise, updated by a raise of an identifier already active on the device (or, device-less, in
 * the tenant), cleared by a `Cleared` report, acknowledged by a user.
 */
export const OUTBOX_KINDS = {
  'alarm.created': WIRE_EVENTS.alarmCreated,
  'alarm.updated': WIRE_EVENTS.alarmUpdated,
  'alarm.cleared': WIRE_EVENTS.alarmCleared,
  'alarm.acknowledged': WIRE_EVENTS.alarmAcknowledged,
} as const;
export type OutboxKind = keyof typeof OUTBOX_KINDS;

/** An alarm as clients see it: snake_case, ids as JSON numbers (alarm ids as strings: they are bigints). */
export interface AlarmWire {
  id: string;
  tenant_id: number;
  device_id: number | null;
  alarm_identifier: string;
  event_type: string;
  probable_cause: string;
  specific_problem: string;
  perceived_severity: PerceivedSeverity;
  managed_object_instance: string | null;
  additional_text: string | null;
  additional_information: string | null;
  raised_at: string;
  changed_at: string;
  cleared_at: string | null;
  acknowledged_at: string | null;
}

/** `data` of an alarm event, before the per-user `event_id` is added at delivery. */
export interface AlarmEventData {
  alarm: AlarmWire;
}
