import { Router, type RequestHandler } from 'express';
import { ROUTES, expressPath, type DeviceSummaryResponse } from '@alarmcast/contracts';
import { findVisibleDevice, listVisibleDevices, tenantDeviceCounts, type PgPool } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { validationFailed } from './alarms-route.js';
import type { DbCall } from './db-breaker.js';
import { viewerOf } from './user-auth.js';

/** Device ids are Postgres integers; anything else names no device. */
const DEVICE_ID = /^[1-9]\d{0,9}$/;
const MAX_INT = 2_147_483_647;

/**
 * The list cursor: base64url of `{"i":<last device id>}`, the position of the page's last device. Opaque to
 * clients; only this module reads it.
 */
const encodeCursor = (lastId: number): string =>
  Buffer.from(JSON.stringify({ i: lastId })).toString('base64url');

function decodeCursor(cursor: string): number {
  try {
    const { i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { i?: unknown };
    if (typeof i === 'number' && Number.isInteger(i) && i >= 1 && i <= MAX_INT) return i;
  } catch {
    // fall through: not base64url JSON
  }
  throw new ApiError('validation_failed', 'query string does not match its schema', [
    { field: 'cursor', message: 'not a cursor returned by this API' },
  ]);
}

export interface DeviceReadsRouterOptions {
  pool: PgPool;
  db: DbCall;
  /** user authentication (user-auth.ts), the one the alarm API uses: same limits */
  asUser: RequestHandler;
}

/**
 * The user API's device reads: the devices a user may see (their tenant's and those shared with them, the
 * rule of packages/db access.ts, as for alarms) with their live status. A device the user may not see is
 * answered as one that does not exist (404), so device ids cannot be enumerated.
 */
export function deviceReadsRouter({ pool, db, asUser }: DeviceReadsRouterOptions): Router {
  const router = Router();

  router.get(expressPath(ROUTES.listDevices), asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const parsed = ROUTES.listDevices.query.safeParse(req.query);
    if (!parsed.success) throw validationFailed('query string', parsed.error.issues);
    const q = parsed.data;
    const rows = await db(() =>
      listVisibleDevices(pool, viewer, {
        online: q.online,
        limit: q.limit,
        afterId: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
      }),
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const next = rows.length > q.limit && last ? encodeCursor(last.id) : null;
    // Already wire JSON, built in SQL from the one field list: DeviceListResponse assembled as text.
    res
      .type('application/json')
      .send(`{"devices":[${page.map((d) => d.deviceJson).join(',')}],"next_cursor":${JSON.stringify(next)}}`);
  });

  router.get(expressPath(ROUTES.getDeviceSummary), asUser, async (_req, res) => {
    const { tenantId } = viewerOf(res);
    let answer: DeviceSummaryResponse = { summary: null };
    if (tenantId !== null) {
      const counts = (await db(() => tenantDeviceCounts(pool, [tenantId]))).get(tenantId)!;
      answer = { summary: { tenant_id: tenantId, ...counts, counted_at: new Date().toISOString() } };
    }
    res.status(200).json(answer);
  });

  router.get(expressPath(ROUTES.getDevice), asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const id = String(req.params.id);
    if (!DEVICE_ID.test(id) || Number(id) > MAX_INT) throw new ApiError('not_found', 'no such device');
    const device = await db(() => findVisibleDevice(pool, viewer, Number(id)));
    if (device === null) throw new ApiError('not_found', 'no such device');
    res.type('application/json').send(`{"device":${device}}`);
  });

  return router;
}
