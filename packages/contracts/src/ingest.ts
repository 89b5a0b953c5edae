import { z } from 'zod';

/** X.733 perceived severities as TR-181 Device.FaultMgmt uses them; `Cleared` clears an alarm. */
export const PERCEIVED_SEVERITIES = [
  'Critical',
  'Major',
  'Minor',
  'Warning',
  'Indeterminate',
  'Cleared',
] as const;
export type PerceivedSeverity = (typeof PERCEIVED_SEVERITIES)[number];

/** Collectors send ids as JSON numbers; some (CWMP gateways written in PHP) send numeric strings. */
const id = z.union([
  z.number().int().positive().max(2_147_483_647),
  z
    .string()
    .regex(/^[1-9]\d{0,9}$/, 'must be a positive integer')
    .transform(Number)
    .pipe(z.number().max(2_147_483_647)),
]);

/**
 * Text as TR-181 defines it, up to `max` characters. NUL is refused here: PostgreSQL cannot store it in
 * text, and no CPE has a reason to send it.
 */
const text = (max: number, min = 0) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((v) => !v.includes('\u0000'), 'must not contain NUL (\\u0000)');

/** Length limits are TR-181's (Device.FaultMgmt.CurrentAlarm.{i}.*), so nothing a device can report is refused. */
export const AlarmIngestBody = z
  .object({
    deviceId: id.optional(),
    tenantId: id.optional(),
    alarmIdentifier: text(64, 1),
    eventType: text(64, 1),
    probableCause: text(64, 1),
    specificProblem: text(128),
    perceivedSeverity: z.enum(PERCEIVED_SEVERITIES),
    managedObjectInstance: text(512).optional(),
    additionalText: text(256).optional(),
    additionalInformation: text(256).optional(),
    raisedAt: z.iso.datetime({ offset: true }).optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.deviceId === undefined) === (body.tenantId === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: body.deviceId === undefined ? ['deviceId'] : ['tenantId'],
        message: 'give exactly one of deviceId (a device alarm) or tenantId (a device-less alarm)',
      });
    }
  });
export type AlarmIngestBody = z.infer<typeof AlarmIngestBody>;

/** Upper bound of a POST body; TR-181's field limits add up to well under this. */
export const INGEST_BODY_LIMIT_BYTES = 16 * 1024;

/** The id and bounded-text rules above, for the other collector bodies (tasks, campaigns). */
export { id as collectorIdSchema, text as boundedTextSchema };
