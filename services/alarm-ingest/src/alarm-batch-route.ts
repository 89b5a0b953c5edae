import { Router, type RequestHandler } from 'express';
import {
  AlarmBatchBody,
  AlarmIngestBody,
  IDEMPOTENCY_WINDOW_S,
  errorStatus,
  type AlarmBatchItemResult,
} from '@alarmcast/contracts';
import { writeAlarmBatch, type AlarmBatchItem, type PgPool } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { requireJson, validationFailed } from './alarms-route.js';
import { collectorOf, requireScope } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';
import { idempotencyKeyOf, requestHash } from './idempotency.js';
import type { OutboxDispatcher } from './outbox.js';

/*
 * The per-item messages are those of POST /v1/alarms (alarms-route.ts), so that an item's answer is the one
 * the single endpoint gives for it alone; test/alarm-batch.test.ts compares the two answers item by item.
 */
const FORBIDDEN = 'this collector token is scoped to another tenant';
const notActive = (item: AlarmIngestBody): string =>
  `no active alarm ${JSON.stringify(item.alarmIdentifier)} to clear on this ${item.deviceId === undefined ? 'tenant' : 'device'}`;
const unknownTarget = (item: AlarmIngestBody): string =>
  item.deviceId === undefined ? `no tenant with id ${item.tenantId}` : `no device with id ${item.deviceId}`;

function refusal(index: number, err: ApiError): AlarmBatchItemResult {
  const error: { code: ApiError['code']; message: string; details?: unknown } = {
    code: err.code,
    message: err.message,
  };
  if (err.details !== undefined) error.details = err.details;
  return { index, status: errorStatus(err.code), error };
}

export interface AlarmBatchRouterOptions {
  pool: PgPool;
  db: DbCall;
  outbox: OutboxDispatcher;
  /** admission control for collector writes (admission.ts), after authentication, as for POST /v1/alarms */
  admission: RequestHandler;
  /** collector authentication (collector-auth.ts), one for every collector route: one token cache */
  asCollector: RequestHandler;
  /** called once per batch with the number of committed alarm changes */
  onAccepted: (changes: number) => void;
}

export function alarmBatchRouter(options: AlarmBatchRouterOptions): Router {
  const { pool, db, outbox, onAccepted } = options;
  const router = Router();
  const { asCollector } = options;

  /**
   * Up to 1,000 reports in one request: 200 `{"results":[...]}`, one result per item in request order, each
   * with the status, body or error POST /v1/alarms would have answered for it alone. Items apply in request
   * order, as if sent one after another. Whole-request errors (401, 413, 415, 400, 422 for the envelope or a
   * reused key, 503) change nothing. With an Idempotency-Key, the answer of a batch that changed something
   * is stored with its changes and replayed for 24 h.
   */
  router.post(
    '/v1/alarms/batch',
    requireJson,
    asCollector,
    requireScope('alarms'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const key = idempotencyKeyOf(req);
      const envelope = AlarmBatchBody.safeParse(req.body);
      if (!envelope.success) throw validationFailed('request body', envelope.error.issues);

      const now = new Date();
      const decided: AlarmBatchItemResult[] = [];
      const items: AlarmBatchItem[] = [];
      // What the hash covers: each item as validated (ids normalized), or as sent when it is invalid.
      const hashed: unknown[] = [];
      envelope.data.alarms.forEach((raw, index) => {
        const parsed = AlarmIngestBody.safeParse(raw);
        if (!parsed.success) {
          hashed.push(raw);
          decided.push(refusal(index, validationFailed('request body', parsed.error.issues)));
          return;
        }
        const item = parsed.data;
        hashed.push(item);
        // As in the single endpoint: checked before any lookup, so a scoped token cannot probe tenant ids.
        if (
          item.deviceId === undefined &&
          collector.tenantId !== null &&
          collector.tenantId !== item.tenantId
        ) {
          decided.push(refusal(index, new ApiError('forbidden', FORBIDDEN)));
          return;
        }
        items.push({
          index,
          deviceId: item.deviceId ?? null,
          tenantId: item.deviceId === undefined ? item.tenantId! : null,
          alarmIdentifier: item.alarmIdentifier,
          eventType: item.eventType,
          probableCause: item.probableCause,
          specificProblem: item.specificProblem,
          perceivedSeverity: item.perceivedSeverity,
          managedObjectInstance: item.managedObjectInstance,
          additionalText: item.additionalText,
          additionalInformation: item.additionalInformation,
          raisedAt: item.raisedAt ? new Date(item.raisedAt) : now,
          unknownMessage: unknownTarget(item),
          notActiveMessage: notActive(item),
        });
      });
      // Without a key and with nothing to write, the answer needs no database (a key must still be looked up:
      // it may have been used for another body).
      if (items.length === 0 && key === null) {
        res.status(200).json({ results: decided });
        return;
      }
      // `alarms` as the hashed shape keeps a batch's hash apart from any single report's.
      const hash = requestHash({ alarms: hashed });
      const result = await db(() =>
        writeAlarmBatch(
          pool,
          {
            sourceTokenId: collector.tokenId,
            scopeTenantId: collector.tenantId,
            changedAt: now,
            items,
            decided,
            forbiddenMessage: FORBIDDEN,
          },
          key === null ? null : { key, requestHash: hash, windowS: IDEMPOTENCY_WINDOW_S },
        ),
      );
      if (result.kind === 'replay') {
        if (result.requestHash !== hash) {
          throw new ApiError(
            'idempotency_key_reused',
            'this Idempotency-Key was used for a different request body within the last 24 h',
          );
        }
        res.setHeader('Idempotency-Replayed', 'true');
        res.status(result.status).type('application/json').send(result.bodyJson);
        return;
      }
      // Committed: every change's outbox event goes onto the queue in one call (or through the relay).
      outbox.dispatchMany(result.eventIds);
      if (result.eventIds.length > 0) onAccepted(result.eventIds.length);
      res.status(200).type('application/json').send(result.bodyJson);
    },
  );

  return router;
}
