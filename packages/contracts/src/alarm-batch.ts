import { z } from 'zod';
import { AlarmWire } from './alarm.js';
import { ALARM_WRITE_OUTCOMES, type AlarmWriteOutcome } from './alarm-api.js';
import { ERROR_CODES, type ErrorCode } from './errors.js';

/**
 * POST /v1/alarms/batch: many alarm reports in one request and one statement, for storms (a regional outage
 * makes thousands of CPEs raise the same alarm within a second). Each item is an `AlarmIngestBody`, checked
 * on its own: an item's answer is what POST /v1/alarms would have answered for it alone.
 */

/** Items per batch: enough for a storm's second from one collector, small enough for one statement. */
export const ALARM_BATCH_MAX_ITEMS = 1000;

/**
 * Upper bound of a batch body: 1 MiB. 1,000 typical reports (~300 bytes each) fit with room; a batch of
 * reports that use every TR-181 field to its limit must be split into smaller batches.
 */
export const ALARM_BATCH_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The batch's envelope, checked before any item: a strict object with 1..1000 items. The items are left
 * unknown here on purpose: each is validated as its own report, so one bad item is a per-item 422, not a
 * refusal of the whole batch.
 */
export const AlarmBatchBody = z
  .object({ alarms: z.array(z.unknown()).min(1).max(ALARM_BATCH_MAX_ITEMS) })
  .strict();
export type AlarmBatchBody = z.infer<typeof AlarmBatchBody>;

/** One item's answer, in request order (`index` is the item's position in `alarms`, from 0). */
export type AlarmBatchItemResult =
  | {
      index: number;
      /** 202 created, 200 updated or cleared: the status POST /v1/alarms would have answered */
      status: 200 | 202;
      id: string;
      alarm: AlarmWire;
      outcome: AlarmWriteOutcome;
    }
  | {
      index: number;
      /** the error's status in ERROR_CATALOGUE (403, 409 or 422) */
      status: number;
      error: { code: ErrorCode; message: string; details?: unknown };
    };

/** The answer to a batch: always 200 once the batch is accepted as a whole; one result per item. */
export interface AlarmBatchResponse {
  results: AlarmBatchItemResult[];
}
export const AlarmBatchResponse: z.ZodType<AlarmBatchResponse> = z
  .object({
    results: z.array(
      z.union([
        z
          .object({
            index: z.number().int().min(0),
            status: z.union([z.literal(200), z.literal(202)]),
            id: z.string(),
            alarm: AlarmWire,
            outcome: z.enum(ALARM_WRITE_OUTCOMES),
          })
          .strict(),
        z
          .object({
            index: z.number().int().min(0),
            status: z.number().int(),
            error: z
              .object({
                code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
                message: z.string(),
                details: z.unknown().optional(),
              })
              .strict(),
          })
          .strict(),
      ]),
    ),
  })
  .strict() as z.ZodType<AlarmBatchResponse>;
