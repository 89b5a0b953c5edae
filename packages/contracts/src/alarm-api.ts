import { z } from 'zod';
import { PERCEIVED_SEVERITIES } from './ingest.js';
import { AlarmWire } from './alarm.js';

/**
 * How long the first answer to a request with an `Idempotency-Key` is replayed: a collector retrying within a
 * day gets the same answer and changes nothing; after that the key is forgotten (and its row pruned).
 */
export const IDEMPOTENCY_WINDOW_S = 24 * 3600;

/** `Idempotency-Key`: 1-255 printable ASCII characters (as Stripe and the IETF draft allow, spaces included). */
export const IdempotencyKey = z
  .string()
  .regex(/^[\x20-\x7e]{1,255}$/, 'use 1-255 printable ASCII characters');

/** What a POST /v1/alarms did: 202 for created, 200 for updated and cleared. */
export type AlarmWriteOutcome = 'created' | 'updated' | 'cleared';

export interface AlarmWriteResponse {
  id: string;
  alarm: AlarmWire;
  outcome: AlarmWriteOutcome;
}
export const ALARM_WRITE_OUTCOMES = ['created', 'updated', 'cleared'] as const;
export const AlarmWriteResponse: z.ZodType<AlarmWriteResponse> = z
  .object({ id: z.string(), alarm: AlarmWire, outcome: z.enum(ALARM_WRITE_OUTCOMES) })
  .strict();

/** POST /v1/alarms/{id}/ack always answers 200; `already_acknowledged` when someone acked it before. */
export interface AlarmAckResponse {
  id: string;
  alarm: AlarmWire;
  outcome: 'acknowledged' | 'already_acknowledged';
}
export const AlarmAckResponse: z.ZodType<AlarmAckResponse> = z
  .object({ id: z.string(), alarm: AlarmWire, outcome: z.enum(['acknowledged', 'already_acknowledged']) })
  .strict();

/** POST /v1/alarms/{id}/ack: the alarm id, a bigint in decimal. */
export const AlarmIdParams = z.object({ id: z.string().regex(/^[1-9]\d{0,18}$/, 'must be an alarm id') });

export const ALARM_STATES = ['active', 'cleared', 'all'] as const;
export type AlarmState = (typeof ALARM_STATES)[number];

/** Query strings carry ids as decimal text. */
export const queryId = z
  .string()
  .regex(/^[1-9]\d{0,9}$/, 'must be a positive integer')
  .transform(Number)
  .pipe(z.number().max(2_147_483_647));

/** A page size in a query string: 1 to 500, 100 when absent (the user APIs' lists). */
export const queryLimit = z
  .string()
  .regex(/^\d{1,3}$/, 'must be an integer from 1 to 500')
  .transform(Number)
  .pipe(z.number().int().min(1).max(500))
  .default(100);

/** GET /v1/alarms query string (every value a string, as the `simple` query parser gives them). */
export const AlarmListQuery = z
  .object({
    /** @defaultValue 'all' */
    state: z.enum(ALARM_STATES).default('all'),
    /** comma-separated severities, e.g. `Critical,Major` */
    severity: z
      .string()
      .transform((s) => s.split(',').map((v) => v.trim()))
      .pipe(z.array(z.enum(PERCEIVED_SEVERITIES)).min(1))
      .optional(),
    deviceId: queryId.optional(),
    /** @defaultValue 100, at most 500 */
    limit: queryLimit,
    /**
     * `true`: only the alarms the caller's notification rules would deliver (deliver or deliver_silent) if
     * they changed now; a page may then hold fewer than `limit` alarms (follow `next_cursor`)
     */
    deliverable: z.enum(['true', 'false']).optional(),
    /** `next_cursor` of the previous page */
    cursor: z.string().min(1).max(200).optional(),
  })
  .strict();
export type AlarmListQuery = z.infer<typeof AlarmListQuery>;

/** Active alarms first, then newest first; `next_cursor` is null on the last page. */
export interface AlarmListResponse {
  alarms: AlarmWire[];
  next_cursor: string | null;
}
export const AlarmListResponse: z.ZodType<AlarmListResponse> = z
  .object({ alarms: z.array(AlarmWire), next_cursor: z.string().nullable() })
  .strict();
