import type { PreferenceRules, TenantPreferences } from '@alarmcast/contracts';
import { recipientsSql } from './access.js';
import { alarmWireSql } from './alarm-wire-sql.js';
import type { PgPool } from './pool.js';

/**
 * Notification preferences in Postgres: a user's rules (`user_preferences`) and a tenant's defaults and locks
 * (`tenant_preferences`), each one JSON document with a version that every write bumps (the API's ETag, and
 * how the resolver knows its compiled copy is stale), and per alarm who received it (`alarm_audiences`,
 * written by the resolver with the broadcast mark: outbox.ts). Documents are validated by contracts before
 * they get here. A version is never reused for a user or tenant, whoever writes the table: a document
 * deleted by hand and re-created must continue past the old version, not restart at 1, or the resolver's
 * compiled copy (and a client's ETag) would take the new document for the old one.
 */

export interface StoredDocument<T> {
  /** 0 when nothing was ever stored (the document is then empty / the defaults) */
  version: number;
  doc: T;
}

/**
 * What a conditional write found: `written` with the new version, or `conflict` with the version that is
 * current (the caller answers 412).
 */
export type VersionedWrite = { kind: 'written'; version: number } | { kind: 'conflict'; version: number };

async function readDocument<T>(pool: PgPool, table: string, key: string, id: number) {
  const { rows } = await pool.query<{ version: number; rules: T }>({
    name: `read_${table}`,
    text: `SELECT version, rules FROM ${table} WHERE ${key} = $1`,
    values: [id],
  });
  return rows[0] ? { version: rows[0].version, doc: rows[0].rules } : null;
}

/**
 * Replaces a document if its version is still `expected` (0: none stored yet), or whatever it is when
 * `expected` is '*'. One statement: two writers with the same expected version cannot both win.
 */
async function writeDocument(
  pool: PgPool,
  table: string,
  key: string,
  id: number,
  doc: unknown,
  expected: number | '*',
): Promise<VersionedWrite> {
  const json = JSON.stringify(doc);
  const statement =
    expected === '*'
      ? {
          name: `write_${table}_any`,
          text: `INSERT INTO ${table} (${key}, rules, version) VALUES ($1, $2::jsonb, 1)
                 ON CONFLICT (${key}) DO UPDATE SET rules = EXCLUDED.rules, version = ${table}.version + 1,
                   updated_at = now()
                 RETURNING version`,
          values: [id, json],
        }
      : expected === 0
        ? {
            name: `create_${table}`,
            text: `INSERT INTO ${table} (${key}, rules, version) VALUES ($1, $2::jsonb, 1)
                   ON CONFLICT (${key}) DO NOTHING RETURNING version`,
            values: [id, json],
          }
        : {
            name: `update_${table}_if`,
            text: `UPDATE ${table} SET rules = $2::jsonb, version = version + 1, updated_at = now()
                    WHERE ${key} = $1 AND version = $3 RETURNING version`,
            values: [id, json, expected],
          };
  const { rows } = await pool.query<{ version: number }>(statement);
  if (rows[0]) return { kind: 'written', version: rows[0].version };
  const current = await readDocument(pool, table, key, id);
  return { kind: 'conflict', version: current?.version ?? 0 };
}

export const readUserPreferences = (pool: PgPool, userId: number) =>
  readDocument<PreferenceRules>(pool, 'user_preferences', 'user_id', userId);

export const readTenantPreferences = (pool: PgPool, tenantId: number) =>
  readDocument<TenantPreferences>(pool, 'tenant_preferences', 'tenant_id', tenantId);

export const writeUserPreferences = (
  pool: PgPool,
  userId: number,
  doc: PreferenceRules,
  expected: number | '*',
) => writeDocument(pool, 'user_preferences', 'user_id', userId, doc, expected);

export const writeTenantPreferences = (
  pool: PgPool,
  tenantId: number,
  doc: TenantPreferences,
  expected: number | '*',
) => writeDocument(pool, 'tenant_preferences', 'tenant_id', tenantId, doc, expected);

/**
 * The documents the resolver's cache lacks or holds at an old version, in one round trip (primary-key
 * lookups): a tenant's (when `tenantId` is given) and those of `userIds`. A user missing from the map has
 * no preferences.
 */
export async function loadPreferenceDocuments(
  pool: PgPool,
  tenantId: number | null,
  userIds: readonly number[],
): Promise<{
  tenant: StoredDocument<TenantPreferences> | null;
  users: Map<number, StoredDocument<PreferenceRules>>;
}> {
  const { rows } = await pool.query<{ user_id: number | null; version: number; rules: unknown }>({
    name: 'load_preference_documents',
    text: `SELECT NULL::int AS user_id, version, rules FROM tenant_preferences WHERE tenant_id = $1
           UNION ALL
           SELECT user_id, version, rules FROM user_preferences WHERE user_id = ANY($2::int[])`,
    values: [tenantId, userIds],
  });
  let tenant: StoredDocument<TenantPreferences> | null = null;
  const users = new Map<number, StoredDocument<PreferenceRules>>();
  for (const r of rows) {
    if (r.user_id === null) tenant = { version: r.version, doc: r.rules as TenantPreferences };
    else users.set(r.user_id, { version: r.version, doc: r.rules as PreferenceRules });
  }
  return { tenant, users };
}

/** A non-plain decision recorded for the audience: [outcome, rule, source]. */
export type RecordedDecision = [outcome: string, rule: string, source: string];

export interface AlarmAudienceRecord {
  tenantId: number;
  /** users who received at least one event of the alarm */
  received: number[];
  /** the outbox event whose decisions are recorded */
  lastEventId: string;
  /** that event's decisions other than a plain delivery (`deliver` by rule `default`), by user id */
  decisions: Record<string, RecordedDecision>;
}

/** What the resolver recorded for an alarm, or null when none of its events was broadcast yet. */
export async function readAlarmAudience(pool: PgPool, alarmId: string): Promise<AlarmAudienceRecord | null> {
  const { rows } = await pool.query<{
    tenant_id: number;
    received: number[];
    last_event_id: string;
    decisions: Record<string, RecordedDecision>;
  }>({
    name: 'read_alarm_audience',
    text: `SELECT tenant_id, received, last_event_id::text, decisions FROM alarm_audiences WHERE alarm_id = $1`,
    values: [alarmId],
  });
  const r = rows[0];
  return r
    ? { tenantId: r.tenant_id, received: r.received, lastEventId: r.last_event_id, decisions: r.decisions }
    : null;
}

/** A user as the preferences API needs them: who they are and what they may administer. */
export interface UserProfile {
  id: number;
  tenantId: number | null;
  role: 'platform_admin' | 'tenant_admin' | 'operator' | 'viewer';
  email: string;
  name: string;
}

export async function findUserProfile(pool: PgPool, userId: number): Promise<UserProfile | null> {
  const { rows } = await pool.query<{
    id: number;
    tenant_id: number | null;
    role: UserProfile['role'];
    email: string;
    name: string;
  }>({
    name: 'find_user_profile',
    text: 'SELECT id, tenant_id, role::text AS role, email, name FROM users WHERE id = $1 AND active',
    values: [userId],
  });
  const r = rows[0];
  return r ? { id: r.id, tenantId: r.tenant_id, role: r.role, email: r.email, name: r.name } : null;
}

/**
 * An alarm's audience for GET /v1/alarms/{id}/audience: the alarm's tenant and device, and every user who
 * may see it now (access.ts rule) or received one of its events, by id.
 */
export async function loadAlarmAudienceUsers(
  pool: PgPool,
  alarmId: string,
): Promise<{
  alarm: { tenantId: number; json: string };
  record: AlarmAudienceRecord | null;
  users: { id: number; email: string; name: string; active: boolean }[];
} | null> {
  const { rows } = await pool.query<{
    tenant_id: number;
    alarm: string;
    received: number[] | null;
    last_event_id: string | null;
    decisions: Record<string, RecordedDecision> | null;
    users: { id: number; email: string; name: string; active: boolean }[];
  }>({
    name: 'load_alarm_audience_users',
    text: `SELECT a.tenant_id, ${alarmWireSql('a')}::text AS alarm, au.received, au.last_event_id::text,
                  au.decisions,
                  COALESCE((SELECT json_agg(json_build_object('id', u.id, 'email', u.email, 'name', u.name,
                                                             'active', u.active) ORDER BY u.id)
                              FROM users u
                             WHERE u.id IN (${recipientsSql('a')})
                                OR u.id = ANY(COALESCE(au.received, '{}'))), '[]') AS users
             FROM alarms a LEFT JOIN alarm_audiences au ON au.alarm_id = a.id
            WHERE a.id = $1`,
    values: [alarmId],
  });
  const r = rows[0];
  if (!r) return null;
  return {
    alarm: { tenantId: r.tenant_id, json: r.alarm },
    record:
      r.last_event_id === null
        ? null
        : {
            tenantId: r.tenant_id,
            received: r.received ?? [],
            lastEventId: r.last_event_id,
            decisions: r.decisions ?? {},
          },
    users: r.users,
  };
}
