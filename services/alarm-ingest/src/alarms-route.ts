import { Router } from 'express';
import { AlarmIngestBody, toAlarmWire, type AlarmEventData } from '@alarmcast/contracts';
import {
  findDeviceTenant,
  insertAlarmWithEvent,
  tenantExists,
  type NewAlarm,
  type PgPool,
} from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { collectorOf, type Collector } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';
import type { OutboxDispatcher } from './outbox.js';

/** Where an alarm belongs, after checking that the collector may post there. */
async function resolveTarget(
  pool: PgPool,
  db: DbCall,
  collector: Collector,
  body: AlarmIngestBody,
): Promise<{ tenantId: number; deviceId: number | null }> {
  if (body.deviceId !== undefined) {
    const deviceId = body.deviceId;
    const tenantId = await db(() => findDeviceTenant(pool, deviceId));
    if (tenantId === null)
      throw new ApiError(422, 'unknown_device', `no device with id ${deviceId}`, { field: 'deviceId' });
    assertMayPost(collector, tenantId);
    return { tenantId, deviceId };
  }
  const tenantId = body.tenantId!;
  // Checked before the lookup, so a scoped token cannot probe which tenant ids exist.
  assertMayPost(collector, tenantId);
  if (!(await db(() => tenantExists(pool, tenantId))))
    throw new ApiError(422, 'unknown_tenant', `no tenant with id ${tenantId}`, { field: 'tenantId' });
  return { tenantId, deviceId: null };
}

function assertMayPost(collector: Collector, tenantId: number): void {
  if (collector.tenantId !== null && collector.tenantId !== tenantId) {
    throw new ApiError(403, 'forbidden', 'this collector token is scoped to another tenant');
  }
}

export function alarmsRouter(
  pool: PgPool,
  db: DbCall,
  outbox: OutboxDispatcher,
  onAccepted: () => void,
): Router {
  const router = Router();

  router.post('/v1/alarms', async (req, res) => {
    const parsed = AlarmIngestBody.safeParse(req.body);
    if (!parsed.success) {
      throw new ApiError(
        422,
        'validation_failed',
        'request body does not match the alarm schema',
        parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message })),
      );
    }
    const body = parsed.data;
    const collector = collectorOf(res);
    const { tenantId, deviceId } = await resolveTarget(pool, db, collector, body);
    const now = new Date();
    const raisedAt = body.raisedAt ? new Date(body.raisedAt) : now;

    const alarm: NewAlarm = {
      tenantId,
      deviceId,
      alarmIdentifier: body.alarmIdentifier,
      eventType: body.eventType,
      probableCause: body.probableCause,
      specificProblem: body.specificProblem,
      perceivedSeverity: body.perceivedSeverity,
      managedObjectInstance: body.managedObjectInstance ?? null,
      additionalText: body.additionalText ?? null,
      additionalInformation: body.additionalInformation ?? null,
      raisedAt,
      changedAt: now,
      clearedAt: body.perceivedSeverity === 'Cleared' ? now : null,
      sourceTokenId: collector.tokenId,
    };
    // The wire form is built here from the same values; the statement fills in the id it assigns.
    const data: AlarmEventData = { alarm: toAlarmWire({ ...alarm, id: 0n, acknowledgedAt: null }) };
    // The alarm and its outbox event commit together: a committed alarm always has an event to broadcast.
    const { alarmId, eventId } = await db(() => insertAlarmWithEvent(pool, alarm, 'alarm.created', data));
    data.alarm.id = alarmId;
    outbox.dispatch(eventId);
    onAccepted();
    res.status(202).json({ id: alarmId, alarm: data.alarm });
  });

  return router;
}
