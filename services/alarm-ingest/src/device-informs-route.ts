import { Router, type RequestHandler } from 'express';
import {
  BOOT_EVENT_CODES,
  DEVICE_INFORM_MAX_FUTURE_S,
  DeviceInformItem,
  ROUTES,
  errorStatus,
  expressPath,
  type DeviceInformItemResult,
} from '@alarmcast/contracts';
import { writeInformBatch, type InformWrite, type PgPool, type PresencePolicy } from '@alarmcast/db';
import { collectorOf, requireScope } from './collector-auth.js';
import { requireJson, validationFailed } from './alarms-route.js';
import type { DbCall } from './db-breaker.js';
import type { DeviceStatePublisher } from './device-state.js';
import type { OutboxDispatcher } from './outbox.js';

export interface DeviceInformsRouterOptions {
  pool: PgPool;
  db: DbCall;
  outbox: OutboxDispatcher;
  admission: RequestHandler;
  asCollector: RequestHandler;
  presence: Pick<PresencePolicy, 'intervals' | 'graceS'>;
  states: DeviceStatePublisher;
  /** called once per batch with the number of informs written (changed or unchanged) */
  onAccepted: (informs: number) => void;
  /**
   * Devices whose softwareVersion changed with this batch (committed), with the new version: the task side
   * confirms the downloads that targeted it (tasks-route.ts `confirmDownloads`).
   */
  onSoftwareVersions?: (changes: { deviceId: number; softwareVersion: string }[]) => void;
}

export function deviceInformsRouter(options: DeviceInformsRouterOptions): Router {
  const { pool, db, outbox, states } = options;
  const router = Router();

  /**
   * Up to 1,000 informs: 200 `{"results":[...]}`, one per item in request order (`changed`, `unchanged`,
   * `duplicate`, or a 422 `validation_failed` / `unknown_device`). Whole-request errors (401, 403
   * insufficient_scope, 413, 415, 400, 422 for the envelope, 503) change nothing. Retrying a batch is
   * harmless: an inform not after the device's last one is a `duplicate`.
   */
  router.post(
    expressPath(ROUTES.postDeviceInforms),
    requireJson,
    options.asCollector,
    requireScope('informs'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const envelope = ROUTES.postDeviceInforms.body.schema.safeParse(req.body);
      if (!envelope.success) throw validationFailed('request body', envelope.error.issues);
      const decided: DeviceInformItemResult[] = [];
      const latest = Date.now() + DEVICE_INFORM_MAX_FUTURE_S * 1000;
      const items: InformWrite[] = [];
      envelope.data.informs.forEach((raw, index) => {
        const parsed = DeviceInformItem.safeParse(raw);
        if (!parsed.success) {
          const err = validationFailed(`informs[${index}]`, parsed.error.issues);
          const first = parsed.error.issues[0];
          const field = first?.path.map(String).join('.') || '(item)';
          decided.push({
            index,
            status: errorStatus('validation_failed'),
            error: {
              code: err.code,
              message: `${err.message}: ${field}: ${first?.message ?? 'invalid'}`,
              details: err.details,
            },
          });
          return;
        }
        const i = parsed.data;
        const informedAt = new Date(i.informedAt);
        if (informedAt.getTime() > latest) {
          const message = `informedAt is more than ${DEVICE_INFORM_MAX_FUTURE_S} s ahead of the server's clock`;
          decided.push({
            index,
            status: errorStatus('validation_failed'),
            error: {
              code: 'validation_failed',
              message: `informs[${index}] does not match its schema: informedAt: ${message}`,
              details: [{ field: 'informedAt', message }],
            },
          });
          return;
        }
        items.push({
          index,
          deviceId: i.deviceId,
          informedAt,
          bootAt: i.eventCodes.some((c) => BOOT_EVENT_CODES.includes(c)) ? informedAt : null,
          eventCodes: i.eventCodes,
          periodicInformIntervalS: i.periodicInformInterval,
          softwareVersion: i.softwareVersion ?? null,
          hardwareVersion: i.hardwareVersion ?? null,
          uptimeS: i.uptimeS ?? null,
          parameters: i.parameters ?? null,
        });
      });
      if (items.length === 0) {
        res.status(200).json({ results: decided });
        return;
      }
      const result = await db(() =>
        writeInformBatch(pool, {
          scopeTenantId: collector.tenantId,
          policy: options.presence,
          items,
          decided,
        }),
      );
      // Committed. The offline alarms cleared go the reliable way; the statuses to their state channels,
      // best effort (a failure is logged there; the next change of the device carries its full state).
      outbox.dispatchMany(result.eventIds);
      states.publish(result.states);
      const upgraded = result.states.filter((st) => st.changed.includes('software_version'));
      if (upgraded.length > 0 && options.onSoftwareVersions) {
        const changes = upgraded.flatMap((st) => {
          const v = (JSON.parse(st.state) as { software_version?: unknown }).software_version;
          return typeof v === 'string' ? [{ deviceId: st.deviceId, softwareVersion: v }] : [];
        });
        if (changes.length > 0) options.onSoftwareVersions(changes);
      }
      options.onAccepted(result.states.length);
      res.status(200).type('application/json').send(result.bodyJson);
    },
  );
  return router;
}
