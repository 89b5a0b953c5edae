import { Router, type Request, type RequestHandler, type Response } from 'express';
import {
  LocalClock,
  PreferenceRules,
  ROUTES,
  TenantPreferences,
  compilePreferences,
  effectiveAsJson,
  evaluatePreferences,
  expressPath,
  lockedSettingsIn,
  preferenceEventOf,
  preferencesEtag,
  type AlarmAudienceResponse,
  type AlarmWire,
  type Decision,
  type TenantPreferencesResponse,
  type UserPreferencesResponse,
} from '@alarmcast/contracts';
import {
  findUserProfile,
  loadAlarmAudienceUsers,
  loadPreferenceDocuments,
  readTenantPreferences,
  readUserPreferences,
  tenantExists,
  writeTenantPreferences,
  writeUserPreferences,
  type PgPool,
  type UserProfile,
  type VersionedWrite,
} from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { requireJson, validationFailed } from './alarms-route.js';
import type { DbCall } from './db-breaker.js';
import { viewerOf } from './user-auth.js';

/**
 * The preferences API: a user's own rules, a tenant's defaults and locks (tenant admins), and an alarm's
 * audience (who it reached, and the rule that decided, for tenant admins). Documents are versioned: GET
 * answers an `ETag`; PUT must send it back in `If-Match` (or `*` to overwrite whatever is there), and gets
 * 412 when someone changed the document since, 428 without `If-Match`.
 */

export interface PreferencesRouterOptions {
  pool: PgPool;
  db: DbCall;
  /** user authentication (user-auth.ts), shared with the alarm API */
  asUser: RequestHandler;
}

const TENANT_ID = /^[1-9]\d{0,9}$/;
const ALARM_ID = /^[1-9]\d{0,18}$/;
const MAX_BIGINT = 9_223_372_036_854_775_807n;

/** `If-Match` → the version it names, or '*'; 428 without one, 412 for one that names no version of ours. */
function expectedVersion(req: Request, current: () => Promise<number>): Promise<number | '*'> | number | '*' {
  const header = req.get('if-match');
  if (header === undefined)
    throw new ApiError('precondition_required', 'send If-Match: the ETag of the document you read, or *');
  const value = header.trim();
  if (value === '*') return '*';
  const m = /^"(\d{1,9})"$/.exec(value);
  if (!m)
    return current().then((version) => {
      throw preconditionFailed(version);
    });
  return Number(m[1]);
}

const preconditionFailed = (version: number): ApiError =>
  new ApiError(
    'precondition_failed',
    `If-Match does not match the current version (${preferencesEtag(version)}): read the document again`,
    { field: 'If-Match', current: preferencesEtag(version) },
  );

function written(result: VersionedWrite): number {
  if (result.kind === 'conflict') throw preconditionFailed(result.version);
  return result.version;
}

/** The caller may administer `tenantId`'s preferences and audiences: its tenant admin, or a platform admin. */
function mayAdminister(profile: UserProfile, tenantId: number): boolean {
  return (
    profile.role === 'platform_admin' || (profile.role === 'tenant_admin' && profile.tenantId === tenantId)
  );
}

export function preferencesRouter(options: PreferencesRouterOptions): Router {
  const { pool, db, asUser } = options;
  const router = Router();

  const profileOf = async (res: Response): Promise<UserProfile> => {
    const profile = await db(() => findUserProfile(pool, viewerOf(res).userId));
    if (!profile) throw new ApiError('forbidden', 'this user is unknown or inactive');
    return profile;
  };

  async function userAnswer(userId: number, tenantId: number | null): Promise<UserPreferencesResponse> {
    const [mine, tenant] = await db(() =>
      Promise.all([
        readUserPreferences(pool, userId),
        tenantId === null ? Promise.resolve(null) : readTenantPreferences(pool, tenantId),
      ]),
    );
    const tenantDoc = tenant ? TenantPreferences.parse(tenant.doc) : null;
    const rules = mine ? PreferenceRules.parse(mine.doc) : {};
    return {
      user_id: userId,
      tenant_id: tenantId,
      version: mine?.version ?? 0,
      preferences: rules,
      tenant: tenantDoc,
      effective: effectiveAsJson(compilePreferences(tenantDoc, rules)),
    };
  }

  async function tenantAnswer(tenantId: number): Promise<TenantPreferencesResponse> {
    const stored = await db(() => readTenantPreferences(pool, tenantId));
    return {
      tenant_id: tenantId,
      version: stored?.version ?? 0,
      preferences: TenantPreferences.parse(stored?.doc ?? {}),
    };
  }

  const send = (res: Response, status: number, version: number, body: unknown): void => {
    res.setHeader('ETag', preferencesEtag(version));
    res.setHeader('Cache-Control', 'no-store');
    res.status(status).json(body);
  };

  router.get(expressPath(ROUTES.getMyPreferences), asUser, async (_req, res) => {
    const viewer = viewerOf(res);
    const answer = await userAnswer(viewer.userId, viewer.tenantId);
    send(res, 200, answer.version, answer);
  });

  router.put(expressPath(ROUTES.putMyPreferences), requireJson, asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const parsed = ROUTES.putMyPreferences.body.schema.safeParse(req.body);
    if (!parsed.success) throw validationFailed('preferences', parsed.error.issues);
    const tenant =
      viewer.tenantId === null ? null : await db(() => readTenantPreferences(pool, viewer.tenantId!));
    const locked = lockedSettingsIn(parsed.data, tenant ? TenantPreferences.parse(tenant.doc) : null);
    if (locked.length > 0)
      throw new ApiError(
        'preference_locked',
        `your tenant locks ${locked.join(', ')}: leave ${locked.length > 1 ? 'them' : 'it'} out`,
        locked.map((field) => ({ field, message: 'locked by your tenant' })),
      );
    const expected = await expectedVersion(
      req,
      async () => (await db(() => readUserPreferences(pool, viewer.userId)))?.version ?? 0,
    );
    written(await db(() => writeUserPreferences(pool, viewer.userId, parsed.data, expected)));
    const answer = await userAnswer(viewer.userId, viewer.tenantId);
    send(res, 200, answer.version, answer);
  });

  /** A tenant id of the path that the caller may administer (403 otherwise; 404 when there is no such tenant). */
  async function administeredTenant(req: Request, res: Response): Promise<number> {
    const id = String(req.params.id);
    const profile = await profileOf(res);
    const tenantId = TENANT_ID.test(id) && Number(id) <= 2_147_483_647 ? Number(id) : null;
    if (tenantId === null || !mayAdminister(profile, tenantId)) {
      if (profile.role === 'platform_admin') throw new ApiError('not_found', 'no such tenant');
      throw new ApiError('forbidden', "only this tenant's admins may read or change its preferences");
    }
    if (!(await db(() => tenantExists(pool, tenantId)))) throw new ApiError('not_found', 'no such tenant');
    return tenantId;
  }

  router.get(expressPath(ROUTES.getTenantPreferences), asUser, async (req, res) => {
    const tenantId = await administeredTenant(req, res);
    const answer = await tenantAnswer(tenantId);
    send(res, 200, answer.version, answer);
  });

  router.put(expressPath(ROUTES.putTenantPreferences), requireJson, asUser, async (req, res) => {
    const tenantId = await administeredTenant(req, res);
    const parsed = ROUTES.putTenantPreferences.body.schema.safeParse(req.body);
    if (!parsed.success) throw validationFailed('tenant preferences', parsed.error.issues);
    const expected = await expectedVersion(
      req,
      async () => (await db(() => readTenantPreferences(pool, tenantId)))?.version ?? 0,
    );
    written(await db(() => writeTenantPreferences(pool, tenantId, parsed.data, expected)));
    const answer = await tenantAnswer(tenantId);
    send(res, 200, answer.version, answer);
  });

  /**
   * Every user the alarm reached or not: who may see it now or received one of its events, with what the
   * resolver decided for them at its latest event (and why), and what their rules decide now.
   */
  router.get(expressPath(ROUTES.getAlarmAudience), asUser, async (req, res) => {
    const profile = await profileOf(res);
    const id = String(req.params.id);
    if (!ALARM_ID.test(id) || BigInt(id) > MAX_BIGINT) throw new ApiError('not_found', 'no such alarm');
    const loaded = await db(() => loadAlarmAudienceUsers(pool, id));
    // Someone who may not administer the alarm's tenant cannot tell it from an alarm that does not exist.
    if (!loaded || !mayAdminister(profile, loaded.alarm.tenantId)) {
      if (loaded && profile.tenantId === loaded.alarm.tenantId)
        throw new ApiError('forbidden', "only the tenant's admins may read an alarm's audience");
      throw new ApiError('not_found', 'no such alarm');
    }
    const { alarm, record, users } = loaded;
    const wire = JSON.parse(alarm.json) as AlarmWire;
    const docs = await db(() =>
      loadPreferenceDocuments(
        pool,
        alarm.tenantId,
        users.map((u) => u.id),
      ),
    );
    const tenant = docs.tenant ? TenantPreferences.parse(docs.tenant.doc) : null;
    const received = new Set(record?.received ?? []);
    const clock = new LocalClock(new Date());
    const subject = preferenceEventOf('alarm.updated', { alarm: wire });
    const audience = users.map((u) => {
      const recorded = record?.decisions[u.id];
      // The resolver records its Decisions as tuples of the same strings (db outbox.ts, alarm_audiences).
      const last: Decision | null = recorded
        ? ({ outcome: recorded[0], rule: recorded[1], source: recorded[2] } as Decision)
        : received.has(u.id)
          ? { outcome: 'deliver', rule: 'default', source: 'system' }
          : null;
      const rules = docs.users.get(u.id);
      const now = evaluatePreferences(
        compilePreferences(tenant, rules ? PreferenceRules.parse(rules.doc) : null),
        subject,
        clock,
        received.has(u.id),
      );
      return {
        user_id: u.id,
        email: u.email,
        name: u.name,
        active: u.active,
        received: received.has(u.id),
        last_event: last,
        now,
      };
    });
    res.json({
      alarm_id: id,
      tenant_id: alarm.tenantId,
      last_event_id: record?.lastEventId ?? null,
      audience,
    } satisfies AlarmAudienceResponse);
  });

  return router;
}
