import type pg from 'pg';
import {
  CAMPAIGN_COUNT_KEYS,
  campaignFailingAlarmIdentifier,
  campaignTransitionAllowed,
  isFinalCampaignState,
  type CampaignState,
  type CampaignWire,
  type CreateCampaignBody,
  type TaskState,
} from '@alarmcast/contracts';
import { writeAlarmReport } from './alarm-writes.js';
import { withTransaction, type PgPool } from './pool.js';

/**
 * Firmware campaigns: creation with their devices, state changes, reads, and the one place their counts
 * change (`moveCampaignDevice`, called by every task transition inside its transaction). The counts are
 * columns of the campaign's CAMPAIGN_COUNT_SHARDS count rows, changed by ±1 under a row's lock and summed
 * when read (16 rows): exact, and never a recount of the campaign's devices.
 */

/** How many count rows a campaign has (device id mod this): concurrent transitions of different devices
 * mostly touch different rows instead of queueing on one (each holds its row until its commit). */
export const CAMPAIGN_COUNT_SHARDS = 16;

/** A campaign with its counts summed over its shard rows, as one consistent snapshot (one statement);
 * `shards`: where the rows come from (the move's statement gives its own moved row with the others). */
const CAMPAIGN_SELECT = (where: string, shards = 'campaign_count_shards'): string => `
  SELECT c.*, GREATEST(c.updated_at, s.counts_at) AS updated_at, ${CAMPAIGN_COUNT_KEYS.map((k) => `s.${k}`).join(', ')}, s.version
    FROM firmware_campaigns c
    CROSS JOIN LATERAL (
      SELECT ${CAMPAIGN_COUNT_KEYS.map((k) => `COALESCE(sum(${k}), 0)::int AS ${k}`).join(', ')},
             COALESCE(sum(version), 0)::bigint AS version, max(updated_at) AS counts_at
        FROM ${shards} sh WHERE sh.campaign_id = c.id) s
   WHERE ${where}`;

type CampaignRow = {
  id: string;
  tenant_id: number;
  name: string;
  target_version: string;
  state: CampaignState;
  failure_threshold_percent: number | null;
  device_count: number;
  version: string;
  failing: boolean;
  created_at: Date;
  updated_at: Date;
} & Record<(typeof CAMPAIGN_COUNT_KEYS)[number], number>;

export function toCampaignWire(r: CampaignRow): CampaignWire {
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    name: r.name,
    target_version: r.target_version,
    state: r.state,
    failure_threshold_percent: r.failure_threshold_percent,
    device_count: r.device_count,
    counts: Object.fromEntries(CAMPAIGN_COUNT_KEYS.map((k) => [k, r[k]])) as CampaignWire['counts'],
    version: Number(r.version),
    failing: r.failing,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/** How the threshold alarm reads a campaign's failure rate (see `failureCrossed`). */
export interface FailurePolicy {
  /**
   * At least min(this, the campaign's device count) devices must have finished (succeeded or failed) before
   * the rate counts, so that the first failure of a large campaign is not a 100 % failure rate.
   * @defaultValue 20 (CAMPAIGN_FAILURE_MIN_SAMPLE in the ingest)
   */
  minSample: number;
}

/**
 * Whether a campaign's failure rate is past its threshold: failed / (succeeded + failed) > threshold %,
 * once the minimum sample finished. Never for a campaign without a threshold or in a final state.
 */
export function failureCrossed(c: CampaignWire, policy: FailurePolicy): boolean {
  if (c.failure_threshold_percent === null || isFinalCampaignState(c.state)) return false;
  const finished = c.counts.succeeded + c.counts.failed;
  if (finished === 0 || finished < Math.min(policy.minSample, c.device_count)) return false;
  return (c.counts.failed / finished) * 100 > c.failure_threshold_percent;
}

export type CreateCampaignResult =
  | { kind: 'created'; campaign: CampaignWire }
  /** the same campaign again (a retried POST): nothing changed */
  | { kind: 'replay'; campaign: CampaignWire }
  /** another campaign holds that id */
  | { kind: 'exists' }
  | { kind: 'unknown_tenant' }
  /** these device ids are not devices of the tenant (the first 20) */
  | { kind: 'unknown_devices'; deviceIds: number[] };

/**
 * Creates a campaign with its devices in one transaction: one INSERT of the campaign, one of its devices
 * (`unnest` of the id array, whatever its size, joined to the tenant's devices so that another tenant's
 * device is not taken). All or nothing.
 */
export async function createCampaign(
  pool: PgPool,
  body: CreateCampaignBody,
  sourceTokenId: number,
): Promise<CreateCampaignResult> {
  return withTransaction<CreateCampaignResult>(pool, async (c) => {
    const tenant = await c.query({ text: 'SELECT 1 FROM tenants WHERE id = $1', values: [body.tenantId] });
    if (tenant.rowCount === 0) return { kind: 'unknown_tenant' };
    const inserted = await c.query<CampaignRow>({
      text: `INSERT INTO firmware_campaigns (id, tenant_id, name, target_version, state,
               failure_threshold_percent, device_count, source_token_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING RETURNING id`,
      values: [
        body.campaignId,
        body.tenantId,
        body.name,
        body.targetVersion,
        body.state,
        body.failureThresholdPercent ?? null,
        body.deviceIds.length,
        sourceTokenId,
      ],
    });
    if (!inserted.rows[0]) {
      const existing = await c.query<CampaignRow>({
        text: CAMPAIGN_SELECT('c.id = $1'),
        values: [body.campaignId],
      });
      const e = existing.rows[0];
      const same =
        e !== undefined &&
        e.tenant_id === body.tenantId &&
        e.name === body.name &&
        e.target_version === body.targetVersion &&
        e.device_count === body.deviceIds.length;
      return same ? { kind: 'replay', campaign: toCampaignWire(e) } : { kind: 'exists' };
    }
    const added = await c.query({
      text: `INSERT INTO campaign_devices (campaign_id, device_id)
             SELECT $1, d.id FROM cpe_devices d
              WHERE d.id = ANY($2::int[]) AND d.tenant_id = $3`,
      values: [body.campaignId, body.deviceIds, body.tenantId],
    });
    if ((added.rowCount ?? 0) !== body.deviceIds.length) {
      const missing = await c.query<{ id: number }>({
        text: `SELECT x.id FROM unnest($1::int[]) AS x(id)
                WHERE NOT EXISTS (SELECT 1 FROM cpe_devices d WHERE d.id = x.id AND d.tenant_id = $2)
                LIMIT 20`,
        values: [body.deviceIds, body.tenantId],
      });
      throw new UnknownDevices(missing.rows.map((r) => r.id));
    }
    // Every shard row, each with its devices pending.
    await c.query({
      text: `INSERT INTO campaign_count_shards (campaign_id, shard, pending)
             SELECT $1, g.s, (SELECT count(*) FROM unnest($2::int[]) AS x(id) WHERE x.id % $3 = g.s)
               FROM generate_series(0, $3 - 1) AS g(s)`,
      values: [body.campaignId, body.deviceIds, CAMPAIGN_COUNT_SHARDS],
    });
    const row = await c.query<CampaignRow>({ text: CAMPAIGN_SELECT('c.id = $1'), values: [body.campaignId] });
    return { kind: 'created', campaign: toCampaignWire(row.rows[0]!) };
  }).catch((err: unknown) => {
    // thrown to roll the campaign back
    if (err instanceof UnknownDevices) return { kind: 'unknown_devices', deviceIds: err.deviceIds };
    throw err;
  });
}

class UnknownDevices extends Error {
  constructor(readonly deviceIds: number[]) {
    super('unknown devices');
  }
}

/** A campaign, for a viewer of `tenantId` (null: none, i.e. a platform user sees no campaign). */
export async function findCampaign(pool: PgPool, campaignId: string): Promise<CampaignWire | null> {
  const { rows } = await pool.query<CampaignRow>({
    name: 'find_campaign',
    text: CAMPAIGN_SELECT('c.id = $1'),
    values: [campaignId],
  });
  return rows[0] ? toCampaignWire(rows[0]) : null;
}

/**
 * A page of a tenant's campaigns, newest first (`created_at`, then id, descending), after the campaign
 * `after` (the previous page's last; a campaign of another tenant or none gives an empty page).
 * `states`: only those (absent: all). One statement; the counts come from each campaign's 16 count rows.
 */
export async function listCampaigns(
  pool: PgPool,
  tenantId: number,
  options: { states?: readonly CampaignState[]; limit: number; after?: string },
): Promise<CampaignWire[]> {
  const { rows } = await pool.query<CampaignRow>({
    name: 'list_campaigns',
    text: `${CAMPAIGN_SELECT(`c.tenant_id = $1
        AND ($2::text[] IS NULL OR c.state::text = ANY($2))
        AND ($4::text IS NULL OR (c.created_at, c.id) <
             (SELECT a.created_at, a.id FROM firmware_campaigns a WHERE a.id = $4 AND a.tenant_id = $1))`)}
      ORDER BY c.created_at DESC, c.id DESC LIMIT $3`,
    values: [tenantId, options.states ?? null, options.limit, options.after ?? null],
  });
  return rows.map(toCampaignWire);
}

/**
 * The tenants of campaigns (ids not found are missing from the map), for the edge's channel authorization
 * of `private-campaign.{id}` and its re-checks: one primary-key lookup per campaign.
 */
export async function findCampaignTenants(
  pool: PgPool,
  campaignIds: readonly string[],
): Promise<Map<string, number>> {
  const tenants = new Map<string, number>();
  if (campaignIds.length === 0) return tenants;
  const { rows } = await pool.query<{ id: string; tenant_id: number }>({
    name: 'find_campaign_tenants',
    text: 'SELECT id, tenant_id FROM firmware_campaigns WHERE id = ANY($1::text[])',
    values: [campaignIds],
  });
  for (const r of rows) tenants.set(r.id, r.tenant_id);
  return tenants;
}

/** The latest failed tasks of a campaign (the devices its view lists as failing), newest first. */
export async function listFailingDevices(
  pool: PgPool,
  campaignId: string,
  limit: number,
): Promise<
  {
    device_id: number;
    task_id: string;
    fault_code: number | null;
    fault_string: string | null;
    updated_at: string;
  }[]
> {
  const { rows } = await pool.query<{
    device_id: number;
    task_id: string;
    fault_code: number | null;
    fault_string: string | null;
    updated_at: Date;
  }>({
    name: 'list_failing_devices',
    text: `SELECT cd.device_id, t.id AS task_id, t.fault_code, t.fault_string, t.updated_at
             FROM campaign_devices cd
             JOIN firmware_campaigns c ON c.id = cd.campaign_id
             JOIN device_tasks t ON t.tenant_id = c.tenant_id AND t.id = cd.task_id
            WHERE cd.campaign_id = $1 AND cd.state = 'failed'
            ORDER BY t.updated_at DESC LIMIT $2`,
    values: [campaignId, limit],
  });
  return rows.map((r) => ({ ...r, updated_at: r.updated_at.toISOString() }));
}

/** What a change to a campaign did, for the caller to broadcast after the commit. */
export interface CampaignChange {
  campaign: CampaignWire;
  /** outbox events written with it (the threshold alarm raised or cleared), to dispatch */
  eventIds: string[];
}

/**
 * The threshold alarm of a campaign, raised or cleared in the caller's transaction through the normal
 * alarm statement (a device-less alarm of the campaign's tenant): its outbox event goes to every member.
 */
async function writeFailingAlarm(
  client: pg.PoolClient,
  c: CampaignWire,
  raise: boolean,
  sourceTokenId: number,
): Promise<string[]> {
  const now = new Date();
  const finished = c.counts.succeeded + c.counts.failed;
  const result = await writeAlarmReport(
    client,
    {
      tenantId: c.tenant_id,
      deviceId: null,
      alarmIdentifier: campaignFailingAlarmIdentifier(c.id),
      eventType: 'Processing Error Alarm',
      probableCause: 'Software Download Failure',
      specificProblem: `firmware campaign failure rate over ${c.failure_threshold_percent} %`,
      perceivedSeverity: raise ? 'Major' : 'Cleared',
      additionalText: `campaign ${c.id} (${c.name}) to ${c.target_version}`.slice(0, 256),
      additionalInformation: JSON.stringify({
        campaign_id: c.id,
        failed: c.counts.failed,
        succeeded: c.counts.succeeded,
        failure_percent: finished === 0 ? 0 : Math.round((c.counts.failed / finished) * 1000) / 10,
        threshold_percent: c.failure_threshold_percent,
      }).slice(0, 256),
      raisedAt: now,
      changedAt: now,
      sourceTokenId,
    },
    null,
  );
  return result.kind === 'applied' ? [result.eventId] : [];
}

/** Sets `failing` (and writes the alarm) when the rule and the flag disagree; returns the alarm's events. */
async function reconcileFailing(
  client: pg.PoolClient,
  campaign: CampaignWire,
  policy: FailurePolicy,
  sourceTokenId: number,
): Promise<{ campaign: CampaignWire; eventIds: string[] }> {
  const should = failureCrossed(campaign, policy);
  // Once raised, the alarm stays until the campaign ends (the platform pauses the rollout; a few successes
  // afterwards must not clear what operators are acting on), so only a final state clears it.
  const next = campaign.failing ? !isFinalCampaignState(campaign.state) : should;
  if (next === campaign.failing) return { campaign, eventIds: [] };
  // Of concurrent transitions that all see the rule and the flag disagree, the first to set the flag writes the
  // alarm; the others find it set (the UPDATE waits for the first's commit, then re-reads the row).
  const flipped = await client.query({
    name: 'campaign_set_failing',
    text: 'UPDATE firmware_campaigns SET failing = $2, updated_at = now() WHERE id = $1 AND failing <> $2',
    values: [campaign.id, next],
  });
  if (flipped.rowCount === 0) return { campaign, eventIds: [] };
  const updated = { ...campaign, failing: next };
  return { campaign: updated, eventIds: await writeFailingAlarm(client, updated, next, sourceTokenId) };
}

/** A task transition of a campaign's device, for `moveCampaignDevice`. */
export interface CampaignDeviceMove {
  campaignId: string;
  deviceId: number;
  taskId: string;
  /** the task's new state */
  to: TaskState;
  /** the task was created by this report: it takes the device over from any earlier task (a retry) */
  created: boolean;
}

/** `count = count - (it is the old state) + (it is the new state)` for every count column. */
const MOVE_COUNTS = CAMPAIGN_COUNT_KEYS.map(
  (k) => `"${k}" = s."${k}" - (t.from_state = '${k}')::int + ($4 = '${k}')::int`,
).join(',\n               ');

const MOVED_AND_OTHER_SHARDS = `(SELECT * FROM campaign_count_shards WHERE campaign_id = $1 AND shard <> $6
                                  UNION ALL SELECT * FROM moved)`;

/**
 * One statement (one round trip: the count row it locks is held only until the caller's COMMIT) that moves
 * a campaign's device with its task's transition, in the caller's transaction:
 *
 * - `member` locks the device's `campaign_devices` row (MATERIALIZED: a CTE of its own, evaluated once,
 *   so the lock is taken before the UPDATE below reads the row) and reads its task and state;
 * - `took`: a device follows its latest task, so a new task (a retry) takes it over from its old one, whose
 *   later reports then no longer move it; the row gets the task and its state;
 * - `moved`: when the device's state changed, its count row (device id mod CAMPAIGN_COUNT_SHARDS) gets
 *   -1/+1 on the two counts and `version` + 1 under its row lock, so concurrent transitions from any number
 *   of ingest processes never lose an update and the sums stay exact, while devices of different rows do
 *   not wait for each other;
 * - the campaign with its counts: every other row as committed when the statement began, plus the row it
 *   moved. The threshold alarm is then reconciled on them (a crossing made by two concurrent transitions is
 *   seen by the next one).
 *
 * Returns null when the device did not move (not a member, another task has it, or its state is unchanged).
 */
export async function moveCampaignDevice(
  client: pg.PoolClient,
  move: CampaignDeviceMove,
  policy: FailurePolicy,
  sourceTokenId: number,
): Promise<CampaignChange | null> {
  // Counts are only ever named from the contracts' closed list, never from input.
  if (!CAMPAIGN_COUNT_KEYS.includes(move.to)) throw new Error(`not a campaign count: ${move.to}`);
  const { rows } = await client.query<CampaignRow>({
    name: 'campaign_move_device',
    text: `WITH member AS MATERIALIZED (
             SELECT task_id, COALESCE(state, 'pending') AS from_state FROM campaign_devices
              WHERE campaign_id = $1 AND device_id = $2 FOR UPDATE),
           took AS (
             UPDATE campaign_devices d SET task_id = $3, state = $4
               FROM member m
              WHERE d.campaign_id = $1 AND d.device_id = $2 AND ($5 OR m.task_id = $3 OR m.task_id IS NULL)
             RETURNING m.from_state),
           moved AS (
             UPDATE campaign_count_shards s SET
               ${MOVE_COUNTS},
               version = s.version + 1, updated_at = now()
               FROM took t
              WHERE s.campaign_id = $1 AND s.shard = $6 AND t.from_state <> $4
             RETURNING s.*)
           ${CAMPAIGN_SELECT('c.id = $1 AND EXISTS (SELECT 1 FROM moved)', MOVED_AND_OTHER_SHARDS)}`,
    values: [
      move.campaignId,
      move.deviceId,
      move.taskId,
      move.to,
      move.created,
      move.deviceId % CAMPAIGN_COUNT_SHARDS,
    ],
  });
  if (!rows[0]) return null;
  return reconcileFailing(client, toCampaignWire(rows[0]), policy, sourceTokenId);
}

export type CampaignStateResult =
  | { kind: 'applied'; change: CampaignChange }
  | { kind: 'replay'; campaign: CampaignWire }
  | { kind: 'illegal_transition'; from: CampaignState; to: CampaignState }
  | { kind: 'not_found' };

/**
 * `PATCH /v1/campaigns/{id}`: a state change under the campaign's row lock. Completing or aborting it
 * clears the threshold alarm in the same transaction. `tenantId` (a scoped token's) must be the campaign's.
 */
export async function setCampaignState(
  pool: PgPool,
  campaignId: string,
  tenantId: number | null,
  to: CampaignState,
  sourceTokenId: number,
  policy: FailurePolicy,
): Promise<CampaignStateResult> {
  return withTransaction(pool, async (c) => {
    const locked = await c.query({
      text: `SELECT 1 FROM firmware_campaigns WHERE id = $1 AND ($2::int IS NULL OR tenant_id = $2) FOR UPDATE`,
      values: [campaignId, tenantId],
    });
    if (locked.rowCount === 0) return { kind: 'not_found' };
    const { rows } = await c.query<CampaignRow>({ text: CAMPAIGN_SELECT('c.id = $1'), values: [campaignId] });
    const row = rows[0];
    if (!row) return { kind: 'not_found' };
    if (row.state === to) return { kind: 'replay', campaign: toCampaignWire(row) };
    if (!campaignTransitionAllowed(row.state, to)) return { kind: 'illegal_transition', from: row.state, to };
    await c.query({
      text: `UPDATE firmware_campaigns SET state = $2, updated_at = now() WHERE id = $1`,
      values: [campaignId, to],
    });
    const updated = await c.query<CampaignRow>({ text: CAMPAIGN_SELECT('c.id = $1'), values: [campaignId] });
    return {
      kind: 'applied',
      change: await reconcileFailing(c, toCampaignWire(updated.rows[0]!), policy, sourceTokenId),
    };
  });
}
