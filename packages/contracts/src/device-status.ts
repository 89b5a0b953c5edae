import { z } from 'zod';

/**
 * A device's live status as clients see it (`DeviceStatusChanged`, the device APIs), defined once: each
 * wire field with its table (`d` = cpe_devices, `s` = device_status), column and rendering. The zod schema
 * and the SQL that builds the same JSON inside a statement (packages/db `deviceStatusWireSql`) both derive
 * from this list. Renderings as in alarm.ts; `bigint` (uptime) renders as a JSON number (≤ 2^32), `json`
 * as the stored object, `texts` as an array of strings.
 */
export const DEVICE_STATUS_WIRE_FIELDS = [
  { wire: 'id', table: 'd', column: 'id', render: 'int', nullable: false },
  { wire: 'tenant_id', table: 'd', column: 'tenant_id', render: 'int', nullable: false },
  { wire: 'name', table: 'd', column: 'name', render: 'text', nullable: true },
  { wire: 'oui', table: 'd', column: 'oui', render: 'text', nullable: false },
  { wire: 'product_class', table: 'd', column: 'product_class', render: 'text', nullable: false },
  { wire: 'serial_number', table: 'd', column: 'serial_number', render: 'text', nullable: false },
  { wire: 'online', table: 's', column: 'online', render: 'bool', nullable: false },
  { wire: 'last_inform_at', table: 's', column: 'last_inform_at', render: 'time', nullable: true },
  { wire: 'last_boot_at', table: 's', column: 'last_boot_at', render: 'time', nullable: true },
  { wire: 'software_version', table: 's', column: 'software_version', render: 'text', nullable: true },
  { wire: 'hardware_version', table: 's', column: 'hardware_version', render: 'text', nullable: true },
  { wire: 'uptime_s', table: 's', column: 'uptime_s', render: 'int', nullable: true },
  {
    wire: 'periodic_inform_interval_s',
    table: 's',
    column: 'periodic_inform_interval_s',
    render: 'int',
    nullable: true,
  },
  { wire: 'offline_at', table: 's', column: 'offline_at', render: 'time', nullable: true },
  { wire: 'status_changed_at', table: 's', column: 'status_changed_at', render: 'time', nullable: true },
  { wire: 'last_event_codes', table: 's', column: 'last_event_codes', render: 'texts', nullable: false },
  { wire: 'parameters', table: 's', column: 'parameters', render: 'json', nullable: false },
] as const;

/**
 * The fields whose change is an event (`changed` names them). `last_inform_at`, `uptime_s`, `offline_at`
 * and `last_event_codes` move with every inform and are kept, but alone they are not a change: a periodic
 * inform with nothing new is not an event.
 */
export const DEVICE_STATUS_CHANGE_FIELDS = [
  'online',
  'last_boot_at',
  'software_version',
  'hardware_version',
  'periodic_inform_interval_s',
  'parameters',
] as const;
export type DeviceStatusChangeField = (typeof DEVICE_STATUS_CHANGE_FIELDS)[number];

export const DeviceStatusWire = z
  .object({
    id: z.number().int(),
    tenant_id: z.number().int(),
    name: z.string().nullable(),
    oui: z.string(),
    product_class: z.string(),
    serial_number: z.string(),
    online: z.boolean(),
    last_inform_at: z.iso.datetime().nullable(),
    last_boot_at: z.iso.datetime().nullable(),
    software_version: z.string().nullable(),
    hardware_version: z.string().nullable(),
    uptime_s: z.number().int().nullable(),
    periodic_inform_interval_s: z.number().int().nullable(),
    /** the presence deadline: offline if no inform arrives before it */
    offline_at: z.iso.datetime().nullable(),
    /** when a change field last changed */
    status_changed_at: z.iso.datetime().nullable(),
    last_event_codes: z.array(z.string()),
    parameters: z.record(z.string(), z.string()),
  })
  .strict();
export type DeviceStatusWire = z.infer<typeof DeviceStatusWire>;

/** `data` of `App\Events\DeviceStatusChanged` on `private-device.{id}`. */
export const DeviceStatusEventData = z
  .object({
    device: DeviceStatusWire,
    /** the change fields changed since the previous event (union over what was conflated); [] in a snapshot */
    changed: z.array(z.enum(DEVICE_STATUS_CHANGE_FIELDS)),
    /** present (true) on the copy sent at subscribe: the current state, not a change */
    snapshot: z.literal(true).optional(),
  })
  .strict();
export type DeviceStatusEventData = z.infer<typeof DeviceStatusEventData>;

/** A tenant's device counts. */
export const TenantDeviceSummaryWire = z
  .object({
    tenant_id: z.number().int(),
    online: z.number().int().min(0),
    offline: z.number().int().min(0),
    total: z.number().int().min(0),
    /** when the counts were taken (ISO 8601) */
    counted_at: z.iso.datetime(),
  })
  .strict();
export type TenantDeviceSummaryWire = z.infer<typeof TenantDeviceSummaryWire>;

/** `data` of `App\Events\TenantDeviceSummary` on `private-tenant.{id}`. */
export const TenantDeviceSummaryEventData = z
  .object({
    summary: TenantDeviceSummaryWire,
    changed: z.array(z.enum(['online', 'offline', 'total'])),
    snapshot: z.literal(true).optional(),
  })
  .strict();
export type TenantDeviceSummaryEventData = z.infer<typeof TenantDeviceSummaryEventData>;

/** The stable identifier of the alarm raised when a device goes offline (and cleared by its next inform). */
export const DEVICE_OFFLINE_ALARM = {
  alarmIdentifier: 'alarmcast.device-offline',
  eventType: 'Communications Alarm',
  probableCause: 'Loss Of Signal',
  specificProblem: 'No inform within the presence deadline',
  perceivedSeverity: 'Major',
  managedObjectInstance: 'Device.ManagementServer.',
} as const;
