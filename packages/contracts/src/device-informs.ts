import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from './errors.js';

/**
 * POST /v1/devices/informs: a collector's batch of CWMP Inform summaries (TR-069 §3.7.1.5), one item per
 * Inform a CPE sent. What alarmcast keeps of them is the device's status (device-status.ts); an item is
 * answered on its own, so one bad item never fails the batch.
 */

/** Items per batch: 1,000, the same bound as POST /v1/alarms/batch (one statement per batch). */
export const DEVICE_INFORM_BATCH_MAX_ITEMS = 1000;
/** Upper bound of a batch body: 2 MiB (1,000 informs with a dozen parameters each fit; split bigger ones). */
export const DEVICE_INFORM_BATCH_BODY_LIMIT_BYTES = 2 * 1024 * 1024;
/** Event codes per inform (TR-069 EventStruct array; a CPE sends a handful). */
export const DEVICE_INFORM_MAX_EVENT_CODES = 64;
/** Length of one event code (TR-069 EventCode is string(64), e.g. "2 PERIODIC", "M Reboot"). */
export const DEVICE_INFORM_EVENT_CODE_MAX_CHARS = 64;
/** Entries of `parameters` per inform: the changed values a collector forwards, not a whole data model. */
export const DEVICE_INFORM_MAX_PARAMETERS = 64;
/** Length of a parameter path (TR-069 ParameterName is string(256)). */
export const DEVICE_PARAMETER_PATH_MAX_CHARS = 256;
/** Length of a parameter value as kept (longer values belong in the ACS, not in a live status). */
export const DEVICE_PARAMETER_VALUE_MAX_CHARS = 1024;
/**
 * Parameters kept per device (the latest value of each path informed). An inform that would take the kept
 * set past this replaces it with the inform's own parameters, so the kept set stays bounded.
 */
export const DEVICE_KEPT_PARAMETERS_MAX = 256;
/** Bounds of `periodicInformInterval` in seconds (TR-069 PeriodicInformInterval, min 1; here at most 7 days). */
export const DEVICE_INFORM_INTERVAL_MIN_S = 1;
export const DEVICE_INFORM_INTERVAL_MAX_S = 7 * 24 * 3600;
/** Length of softwareVersion / hardwareVersion (TR-181 DeviceInfo.SoftwareVersion is string(64)). */
export const DEVICE_VERSION_MAX_CHARS = 64;

/**
 * How far `informedAt` may be ahead of the server's clock: informs of a device apply in informedAt order, so
 * one from the far future would make every later real one a `duplicate`. Collectors should send the time they
 * received the Inform (a CPE's own clock may be anything before NTP).
 */
export const DEVICE_INFORM_MAX_FUTURE_S = 300;

/** Event codes that mean the device (re)booted: its `last_boot_at` becomes the inform's `informedAt`. */
export const BOOT_EVENT_CODES: readonly string[] = ['0 BOOTSTRAP', '1 BOOT'];

const deviceId = z.union([
  z.number().int().positive().max(2_147_483_647),
  z
    .string()
    .regex(/^[1-9]\d{0,9}$/, 'must be a positive integer')
    .transform(Number)
    .pipe(z.number().max(2_147_483_647)),
]);

const noNul = (max: number, min = 0) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((v) => !v.includes('\u0000'), 'must not contain NUL (\\u0000)');

/** A TR-069/TR-181 parameter path: `Device.` (TR-181) or `InternetGatewayDevice.` (TR-098) and then names. */
const PARAMETER_PATH = /^(Device|InternetGatewayDevice)\.[A-Za-z0-9_.-]*$/;

/** CWMP values travel as strings; numbers and booleans are kept as their text. */
const parameterValue = z
  .union([noNul(DEVICE_PARAMETER_VALUE_MAX_CHARS), z.number(), z.boolean()])
  .transform((v) => (typeof v === 'string' ? v : String(v)))
  .pipe(z.string().max(DEVICE_PARAMETER_VALUE_MAX_CHARS));

/** One item of a batch. */
export const DeviceInformItem = z
  .object({
    deviceId,
    /** when the CPE sent the Inform (ISO 8601 with offset); informs of a device apply in this order */
    informedAt: z.iso.datetime({ offset: true }),
    eventCodes: z
      .array(noNul(DEVICE_INFORM_EVENT_CODE_MAX_CHARS, 1))
      .min(1)
      .max(DEVICE_INFORM_MAX_EVENT_CODES),
    /** the CPE's PeriodicInformInterval in seconds: presence is judged against it */
    periodicInformInterval: z
      .number()
      .int()
      .min(DEVICE_INFORM_INTERVAL_MIN_S)
      .max(DEVICE_INFORM_INTERVAL_MAX_S),
    softwareVersion: noNul(DEVICE_VERSION_MAX_CHARS).optional(),
    hardwareVersion: noNul(DEVICE_VERSION_MAX_CHARS).optional(),
    /** DeviceInfo.UpTime, seconds since boot (unsignedInt) */
    uptimeS: z.number().int().min(0).max(4_294_967_295).optional(),
    /** changed TR-181 values, path → value */
    parameters: z
      .record(
        z
          .string()
          .max(DEVICE_PARAMETER_PATH_MAX_CHARS)
          .regex(PARAMETER_PATH, 'must be a TR-181 path such as Device.WiFi.Radio.1.Channel'),
        parameterValue,
      )
      .refine(
        (p) => Object.keys(p).length <= DEVICE_INFORM_MAX_PARAMETERS,
        `at most ${DEVICE_INFORM_MAX_PARAMETERS} parameters per inform`,
      )
      .optional(),
  })
  .strict();
export type DeviceInformItem = z.infer<typeof DeviceInformItem>;

/** The envelope, checked before any item; items are validated one by one (a bad one is a per-item 422). */
export const DeviceInformBatchBody = z
  .object({ informs: z.array(z.unknown()).min(1).max(DEVICE_INFORM_BATCH_MAX_ITEMS) })
  .strict();

/**
 * What an inform did:
 * - `changed`: something besides the time changed (came online, booted, new versions, interval or
 *   parameters): a `DeviceStatusChanged` follows on `private-device.{id}`;
 * - `unchanged`: a periodic inform with nothing new: the deadline and last inform move, nothing is sent;
 * - `duplicate`: `informedAt` is not after the device's last inform (a retry, or a late copy): nothing changed.
 */
export const DEVICE_INFORM_OUTCOMES = ['changed', 'unchanged', 'duplicate'] as const;
export type DeviceInformOutcome = (typeof DEVICE_INFORM_OUTCOMES)[number];

/** One item's answer, in request order (`index` is the item's position in `informs`, from 0). */
export const DeviceInformItemResult = z.union([
  z
    .object({
      index: z.number().int().min(0),
      status: z.literal(200),
      device_id: z.number().int(),
      outcome: z.enum(DEVICE_INFORM_OUTCOMES),
      /** the status fields that changed (`changed` only) */
      changed: z.array(z.string()),
      online: z.boolean(),
    })
    .strict(),
  z
    .object({
      index: z.number().int().min(0),
      /** the error's status in ERROR_CATALOGUE (422) */
      status: z.number().int(),
      error: z
        .object({
          code: z.enum(ERROR_CODES as unknown as [ErrorCode, ...ErrorCode[]]),
          message: z.string(),
          details: z.unknown().optional(),
        })
        .strict(),
    })
    .strict(),
]);
export type DeviceInformItemResult = z.output<typeof DeviceInformItemResult>;

/** Always 200 once the batch is accepted as a whole; one result per item. */
export const DeviceInformBatchResponse = z.object({ results: z.array(DeviceInformItemResult) }).strict();
export type DeviceInformBatchResponse = z.output<typeof DeviceInformBatchResponse>;
