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

/** Length limits are TR-181's (Device.FaultMgmt.CurrentAlarm.{i}.*), so nothing a device can report is refused. */
export const AlarmIngestBody = z
  .object({
    deviceId: id.optional(),
    tenantId: id.optional(),
    alarmIdentifier: z.string().min(1).max(64),
    eventType: z.string().min(1).max(64),
    probableCause: z.string().min(1).max(64),
    specificProblem: z.string().max(128),
    perceivedSeverity: z.enum(PERCEIVED_SEVERITIES),
    managedObjectInstance: z.string().max(512).optional(),
    additionalText: z.string().max(256).optional(),
    additionalInformation: z.string().max(256).optional(),
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
