import { z } from 'zod';
import { queryLimit } from './alarm-api.js';
import { DeviceStatusWire, TenantDeviceSummaryWire } from './device-status.js';

/** GET /v1/devices query string (every value a string, as the `simple` query parser gives them). */
export const DeviceListQuery = z
  .object({
    /** only devices that are online (`true`) or offline (`false`); absent: both */
    online: z
      .enum(['true', 'false'], 'must be true or false')
      .transform((v) => v === 'true')
      .optional(),
    /** @defaultValue 100, at most 500 */
    limit: queryLimit,
    /** `next_cursor` of the previous page */
    cursor: z.string().min(1).max(200).optional(),
  })
  .strict();
export type DeviceListQuery = z.infer<typeof DeviceListQuery>;

/** The devices the user may see, by id ascending; `next_cursor` is null on the last page. */
export const DeviceListResponse = z
  .object({ devices: z.array(DeviceStatusWire), next_cursor: z.string().nullable() })
  .strict();
export type DeviceListResponse = z.output<typeof DeviceListResponse>;

/**
 * GET /v1/devices/{id}: the device's current status, the `device` object of `DeviceStatusChanged`. The
 * server keeps no history of status changes (only `status_changed_at`, the last one's time): the console
 * lists the changes it sees live.
 */
export const DeviceResponse = z.object({ device: DeviceStatusWire }).strict();
export type DeviceResponse = z.output<typeof DeviceResponse>;

/** GET /v1/devices/summary: the user's tenant's counts, as on `private-tenant.{id}`; null without a tenant. */
export const DeviceSummaryResponse = z.object({ summary: TenantDeviceSummaryWire.nullable() }).strict();
export type DeviceSummaryResponse = z.output<typeof DeviceSummaryResponse>;
