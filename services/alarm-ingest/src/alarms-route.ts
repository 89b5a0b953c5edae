import { Router, type RequestHandler } from 'express';
import {
  IDEMPOTENCY_WINDOW_S,
  ROUTES,
  expressPath,
  LocalClock,
  PreferenceRules,
  TenantPreferences,
  compilePreferences,
  evaluatePreferences,
  preferenceEventOf,
  type AlarmAckResponse,
  type AlarmWire,
  type CompiledPreferences,
  type AlarmIngestBody,
} from '@alarmcast/contracts';
import {
  acknowledgeAlarm,
  findDeviceTenant,
  listVisibleAlarms,
  loadPreferenceDocuments,
  tenantExists,
  writeAlarmReport,
  type AlarmListPosition,
  type AlarmListRow,
  type PgPool,
} from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { collectorOf, requireScope, type AuthLimits, type Collector } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';
import { idempotencyKeyOf, requestHash } from './idempotency.js';
import type { OutboxDispatcher } from './outbox.js';
import { userAuth, viewerOf } from './user-auth.js';

/**
 * Where an alarm belongs, as far as it can be told before the write. A device's tenant is found by the write
 * statement itself (one round trip less per report), which is told the collector's tenant, if scoped, so
 * that it changes nothing on another tenant's device; `explainNotApplied` then says why. A device-less alarm
 * names its tenant, which is checked here.
 */
async function resolveTarget(
  pool: PgPool,
  db: DbCall,
  collector: Collector,
  body: AlarmIngestBody,
): Promise<{ tenantId: number | null; deviceId: number | null }> {
  if (body.deviceId !== undefined) return { tenantId: collector.tenantId, deviceId: body.deviceId };
  const tenantId = body.tenantId!;
  // Checked before the lookup, so a scoped token gets the same 403 for another tenant's id as for an id
  // that does not exist, and cannot probe which tenant ids exist.
  assertMayPost(collector, tenantId);
  if (!(await db(() => tenantExists(pool, tenantId))))
    throw new ApiError('unknown_tenant', `no tenant with id ${tenantId}`, { field: 'tenantId' });
  return { tenantId, deviceId: null };
}

function assertMayPost(collector: Collector, tenantId: number): void {
  if (collector.tenantId !== null && collector.tenantId !== tenantId) {
    throw new ApiError('forbidden', 'this collector token is scoped to another tenant');
  }
}

/**
 * Why a report changed nothing: no such device (or, for a tenant-scoped token, another tenant's device,
 * which gets the same answer so that a token cannot tell which device ids exist elsewhere), or nothing
 * active to clear.
 */
async function explainNotApplied(
  pool: PgPool,
  db: DbCall,
  collector: Collector,
  body: AlarmIngestBody,
  deviceId: number | null,
): Promise<ApiError> {
  if (deviceId !== null) {
    const tenantId = await db(() => findDeviceTenant(pool, deviceId));
    const hidden = collector.tenantId !== null && tenantId !== collector.tenantId;
    if (tenantId === null || hidden)
      return new ApiError('unknown_device', `no device with id ${deviceId}`, { field: 'deviceId' });
  }
  return new ApiError(
    'alarm_not_active',
    `no active alarm ${JSON.stringify(body.alarmIdentifier)} to clear on this ${deviceId === null ? 'tenant' : 'device'}`,
  );
}

/** 415 before anything is read: collectors must say they send JSON. */
export const requireJson: RequestHandler = (req, _res, next) => {
  if (!req.is('application/json')) {
    throw new ApiError('unsupported_media_type', 'send Content-Type: application/json');
  }
  next();
};

export const validationFailed = (
  what: string,
  issues: { path: PropertyKey[]; message: string }[],
): ApiError =>
  new ApiError(
    'validation_failed',
    `${what} does not match its schema`,
    issues.map((i) => ({ field: i.path.map(String).join('.') || '(body)', message: i.message })),
  );

/**
 * The alarms of a page that the user's rules would deliver now (the resolver's evaluator, with each alarm's
 * tenant's defaults and locks, for an update of the alarm as it is; lifecycle coherence aside).
 */
async function deliverableOnly(
  pool: PgPool,
  db: DbCall,
  userId: number,
  page: AlarmListRow[],
): Promise<AlarmListRow[]> {
  const alarms = page.map((row) => ({ row, alarm: JSON.parse(row.alarmJson) as AlarmWire }));
  const tenants = [...new Set(alarms.map((a) => a.alarm.tenant_id))];
  const compiled = new Map<number, CompiledPreferences>();
  for (const tenantId of tenants) {
    const docs = await db(() => loadPreferenceDocuments(pool, tenantId, [userId]));
    const tenant = docs.tenant ? TenantPreferences.parse(docs.tenant.doc) : null;
    const mine = docs.users.get(userId);
    compiled.set(tenantId, compilePreferences(tenant, mine ? PreferenceRules.parse(mine.doc) : null));
  }
  const clock = new LocalClock(new Date());
  return alarms
    .filter(
      ({ alarm }) =>
        evaluatePreferences(
          compiled.get(alarm.tenant_id)!,
          preferenceEventOf('alarm.updated', { alarm }),
          clock,
        ).outcome !== 'suppress',
    )
    .map((a) => a.row);
}

/** Alarm ids are bigints; anything else names no alarm. */
const ALARM_ID = /^[1-9]\d{0,18}$/;
const MAX_BIGINT = 9_223_372_036_854_775_807n;

/**
 * The list cursor: base64url of `{"c":<0 active | 1 cleared>,"i":"<alarm id>"}`, the position of the last
 * alarm of the page. Opaque to clients; only this module reads it.
 */
function encodeCursor(p: AlarmListPosition): string {
  return Buffer.from(JSON.stringify({ c: p.cleared ? 1 : 0, i: p.id })).toString('base64url');
}

function decodeCursor(cursor: string): AlarmListPosition {
  try {
    const { c, i } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      c?: unknown;
      i?: unknown;
    };
    if ((c === 0 || c === 1) && typeof i === 'string' && ALARM_ID.test(i) && BigInt(i) <= MAX_BIGINT) {
      return { cleared: c === 1, id: i };
    }
  } catch {
    // fall through: not base64url JSON
  }
  throw new ApiError('validation_failed', 'query string does not match its schema', [
    { field: 'cursor', message: 'not a cursor returned by this API' },
  ]);
}

export interface AlarmsRouterOptions {
  pool: PgPool;
  db: DbCall;
  outbox: OutboxDispatcher;
  jwtSecret: string;
  /** collector authentication (collector-auth.ts), one for every collector route: one token cache */
  asCollector: RequestHandler;
  /** the user API per user, and failed authentications per client IP */
  userLimits: AuthLimits;
  /** called once per committed alarm change (created, updated, cleared) */
  onAccepted: () => void;
  /** admission control for collector writes (admission.ts), after authentication */
  admission: RequestHandler;
}

export function alarmsRouter(options: AlarmsRouterOptions): Router {
  const { pool, db, outbox, jwtSecret, onAccepted } = options;
  const router = Router();
  const { asCollector } = options;
  const asUser = userAuth(pool, db, jwtSecret, options.userLimits);

  /**
   * A collector's alarm report. 202 `created`; 200 `updated` (the identifier was active) or `cleared`;
   * 409 alarm_not_active for a Cleared report with nothing to clear. With an Idempotency-Key, the first
   * successful answer is replayed for 24 h (errors are not stored: nothing was changed, a retry runs anew).
   */
  router.post(
    expressPath(ROUTES.postAlarm),
    requireJson,
    asCollector,
    requireScope('alarms'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const key = idempotencyKeyOf(req);
      const parsed = ROUTES.postAlarm.body.schema.safeParse(req.body);
      if (!parsed.success) throw validationFailed('request body', parsed.error.issues);
      const body = parsed.data;
      const { tenantId, deviceId } = await resolveTarget(pool, db, collector, body);
      const now = new Date();
      const hash = key === null ? null : requestHash(body);

      const result = await db(() =>
        writeAlarmReport(
          pool,
          {
            ...body,
            tenantId,
            deviceId,
            raisedAt: body.raisedAt ? new Date(body.raisedAt) : now,
            changedAt: now,
            sourceTokenId: collector.tokenId,
          },
          key === null || hash === null ? null : { key, requestHash: hash, windowS: IDEMPOTENCY_WINDOW_S },
        ),
      );
      switch (result.kind) {
        case 'not_applied':
          throw await explainNotApplied(pool, db, collector, body, deviceId);
        case 'replay':
          if (result.requestHash !== hash) {
            throw new ApiError(
              'idempotency_key_reused',
              'this Idempotency-Key was used for a different request body within the last 24 h',
            );
          }
          res.setHeader('Idempotency-Replayed', 'true');
          res.status(result.status).type('application/json').send(result.bodyJson);
          return;
        case 'applied':
          // The change and its outbox event are committed; delivery happens after, or through the relay.
          outbox.dispatch(result.eventId, { alarmId: (JSON.parse(result.bodyJson) as { id: string }).id });
          onAccepted();
          res.status(result.status).type('application/json').send(result.bodyJson);
          return;
      }
    },
  );

  /** Acknowledge an alarm the user may see; 404 for any other id, so existence is not revealed. */
  router.post(expressPath(ROUTES.acknowledgeAlarm), asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const id = String(req.params.id);
    if (!ALARM_ID.test(id) || BigInt(id) > MAX_BIGINT) throw new ApiError('not_found', 'no such alarm');
    const result = await db(() => acknowledgeAlarm(pool, viewer, id, new Date()));
    if (result.kind === 'not_found') throw new ApiError('not_found', 'no such alarm');
    if (result.kind === 'acknowledged') outbox.dispatch(result.eventId, { alarmId: id });
    const answer: AlarmAckResponse = {
      id,
      alarm: JSON.parse(result.alarmJson) as AlarmAckResponse['alarm'],
      outcome: result.kind,
    };
    res.status(200).json(answer);
  });

  /** The alarms the user may see, active first then newest, keyset-paginated. */
  router.get(expressPath(ROUTES.listAlarms), asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const parsed = ROUTES.listAlarms.query.safeParse(req.query);
    if (!parsed.success) throw validationFailed('query string', parsed.error.issues);
    const q = parsed.data;
    const rows = await db(() =>
      listVisibleAlarms(pool, viewer, {
        state: q.state,
        severities: q.severity,
        deviceId: q.deviceId,
        limit: q.limit,
        after: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
      }),
    );
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const next = rows.length > q.limit && last ? encodeCursor(last.position) : null;
    // Preferences never hide alarms from the API; this filter only answers "what would my rules deliver".
    const shown = q.deliverable === 'true' ? await deliverableOnly(pool, db, viewer.userId, page) : page;
    // The alarms are already wire JSON (built in SQL from the one field list), so they are not parsed and
    // serialized again: the answer is AlarmListResponse, assembled as text.
    res
      .type('application/json')
      .send(`{"alarms":[${shown.map((a) => a.alarmJson).join(',')}],"next_cursor":${JSON.stringify(next)}}`);
  });

  return router;
}
