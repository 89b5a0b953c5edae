import type { AlarmWire } from './wire.js';
import type { PerceivedSeverity } from './ingest.js';

/** The columns of an alarm row that clients see (as the Prisma client returns them). */
export interface AlarmRow {
  id: bigint;
  tenantId: number;
  deviceId: number | null;
  alarmIdentifier: string;
  eventType: string;
  probableCause: string;
  specificProblem: string;
  perceivedSeverity: PerceivedSeverity;
  managedObjectInstance: string | null;
  additionalText: string | null;
  additionalInformation: string | null;
  raisedAt: Date;
  changedAt: Date;
  clearedAt: Date | null;
  acknowledgedAt: Date | null;
}

/** An alarm row in the snake_case shape of the wire contract. */
export function toAlarmWire(a: AlarmRow): AlarmWire {
  return {
    id: a.id.toString(),
    tenant_id: a.tenantId,
    device_id: a.deviceId,
    alarm_identifier: a.alarmIdentifier,
    event_type: a.eventType,
    probable_cause: a.probableCause,
    specific_problem: a.specificProblem,
    perceived_severity: a.perceivedSeverity,
    managed_object_instance: a.managedObjectInstance,
    additional_text: a.additionalText,
    additional_information: a.additionalInformation,
    raised_at: a.raisedAt.toISOString(),
    changed_at: a.changedAt.toISOString(),
    cleared_at: a.clearedAt?.toISOString() ?? null,
    acknowledged_at: a.acknowledgedAt?.toISOString() ?? null,
  };
}
