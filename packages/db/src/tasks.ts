import type pg from 'pg';
import {
  initialTaskState,
  transitionTask,
  type DownloadPhase,
  type TaskKind,
  type TaskMachineState,
  type TaskReportBody,
  type TaskState,
  type TaskWire,
} from '@alarmcast/contracts';
import { moveCampaignDevice, type CampaignChange, type FailurePolicy } from './campaigns.js';
import { insertRequesterEvent } from './outbox.js';
import { withTransaction, type PgPool } from './pool.js';

/**
 * Device tasks: every statement on `device_tasks`. A report is applied in one transaction that locks the
 * task row, runs contracts' state machine (`transitionTask`) on what is stored, and writes the result with
 * what follows from it: the requester's outbox event and the campaign's counts. The machine needs the
 * stored state to decide, so this is a short transaction rather than one statement; the row lock makes
 * concurrent reports of one task apply one after the other, each against the other's result.
 */

/** A row of a LEFT JOIN's optional side: every column may be null. */
type Nullable<T> = { [K in keyof T]: T[K] | null };

type TaskRow = {
  tenant_id: number;
  id: string;
  device_id: number;
  kind: TaskKind;
  state: TaskState;
  progress: number;
  phase: DownloadPhase | null;
  requested_by: number | null;
  campaign_id: string | null;
  fault_code: number | null;
  fault_string: string | null;
  detail: string | null;
  target_software_version: string | null;
  confirmed_by_inform: boolean;
  created_at: Date;
  updated_at: Date;
};

export function toTaskWire(r: TaskRow): TaskWire {
  return {
    id: r.id,
    device_id: r.device_id,
    tenant_id: r.tenant_id,
    kind: r.kind,
    state: r.state,
    progress: r.progress,
    phase: r.phase,
    fault_code: r.fault_code,
    fault_string: r.fault_string,
    detail: r.detail,
    requested_by: r.requested_by,
    campaign_id: r.campaign_id,
    target_software_version: r.target_software_version,
    confirmed_by_inform: r.confirmed_by_inform,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

/** A report as the ingest validated it: `body.state` already the TR-069 outcome (contracts `reportedTaskState`). */
export interface TaskReportWrite {
  taskId: string;
  body: TaskReportBody;
  /** a tenant-scoped token's tenant: the device must be of it; null for a platform-wide token */
  tokenTenantId: number | null;
  sourceTokenId: number;
  policy: FailurePolicy;
}

export type TaskWriteResult =
  | {
      kind: 'applied';
      outcome: 'created' | 'updated';
      task: TaskWire;
      /** outbox events to dispatch after the commit (the requester's copy, a threshold alarm) */
      eventIds: string[];
      /** the campaign after this transition moved one of its devices, if it did */
      campaign: CampaignChange | null;
    }
  | { kind: 'replay'; task: TaskWire }
  | { kind: 'unknown_device' }
  | { kind: 'unknown_campaign' }
  | { kind: 'device_not_in_campaign' }
  /** the report contradicts a field fixed by the task's first report */
  | { kind: 'conflict'; field: string; stored: unknown }
  | { kind: 'illegal_transition'; from: TaskState; to: TaskState; task: TaskWire }
  | { kind: 'progress_regressed'; from: number; to: number; task: TaskWire };

/** Fields the first report fixes: [body field, column]. */
const FIXED: [keyof TaskReportBody, keyof TaskRow][] = [
  ['deviceId', 'device_id'],
  ['kind', 'kind'],
  ['requestedByUserId', 'requested_by'],
  ['campaignId', 'campaign_id'],
  ['targetSoftwareVersion', 'target_software_version'],
];

/** Applies one task report (see the module comment). */
export async function writeTaskReport(pool: PgPool, w: TaskReportWrite): Promise<TaskWriteResult> {
  return withTransaction(pool, (c) => applyReport(c, w));
}

async function applyReport(c: pg.PoolClient, w: TaskReportWrite): Promise<TaskWriteResult> {
  const { body } = w;
  // The device's tenant and its task row, locked, in one round trip (a report's transaction is a few
  // short statements, and on a busy ingest each round trip waits for its event loop: fewer is faster).
  const { rows } = await c.query<{ device_tenant_id: number } & Nullable<TaskRow>>({
    name: 'task_load',
    text: `SELECT d.tenant_id AS device_tenant_id, t.*
             FROM cpe_devices d
             LEFT JOIN LATERAL (SELECT * FROM device_tasks
                                 WHERE tenant_id = d.tenant_id AND id = $3 FOR UPDATE) t ON true
            WHERE d.id = $1 AND ($2::int IS NULL OR d.tenant_id = $2)`,
    values: [body.deviceId, w.tokenTenantId, w.taskId],
  });
  const loaded = rows[0];
  if (loaded === undefined) return { kind: 'unknown_device' };
  const tenantId = loaded.device_tenant_id;

  let stored = loaded.id === null ? undefined : (loaded as TaskRow);
  if (!stored) {
    if (body.campaignId !== undefined) {
      const member = await c.query<{ member: boolean }>({
        name: 'task_campaign_member',
        text: `SELECT EXISTS (SELECT 1 FROM campaign_devices WHERE campaign_id = c.id AND device_id = $3) AS member
                 FROM firmware_campaigns c WHERE c.id = $1 AND c.tenant_id = $2`,
        values: [body.campaignId, tenantId, body.deviceId],
      });
      if (!member.rows[0]) return { kind: 'unknown_campaign' };
      if (!member.rows[0].member) return { kind: 'device_not_in_campaign' };
    }
    const first = initialTaskState(body);
    // Two first reports of one task at once: one inserts, the other finds the row and goes on as an update.
    const inserted = await c.query<TaskRow>({
      name: 'task_insert',
      text: `INSERT INTO device_tasks (tenant_id, id, device_id, kind, state, progress, phase, requested_by,
               campaign_id, fault_code, fault_string, detail, target_software_version, source_token_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (tenant_id, id) DO NOTHING RETURNING *`,
      values: [
        tenantId,
        w.taskId,
        body.deviceId,
        body.kind,
        first.state,
        first.progress,
        first.phase,
        body.requestedByUserId ?? null,
        body.campaignId ?? null,
        faultOf(body),
        body.faultString ?? null,
        body.detail ?? null,
        body.targetSoftwareVersion ?? null,
        w.sourceTokenId,
      ],
    });
    if (inserted.rows[0]) return finish(c, w, null, inserted.rows[0], true);
    stored = await lockTask(c, tenantId, w.taskId);
  }
  const row = stored!;
  for (const [field, column] of FIXED) {
    const given = body[field];
    const have = row[column];
    // Optional fields may be left out of later reports; given, they must match.
    if ((given !== undefined || field === 'deviceId' || field === 'kind') && given !== (have ?? undefined)) {
      return { kind: 'conflict', field, stored: have };
    }
  }
  return transitionStored(c, w, row, body);
}

function faultOf(body: Pick<TaskReportBody, 'faultCode'>): number | null {
  return body.faultCode === undefined || body.faultCode === 0 ? null : body.faultCode;
}

async function lockTask(c: pg.PoolClient, tenantId: number, taskId: string): Promise<TaskRow | undefined> {
  const { rows } = await c.query<TaskRow>({
    name: 'task_lock',
    text: 'SELECT * FROM device_tasks WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
    values: [tenantId, taskId],
  });
  return rows[0];
}

/** Runs the machine on a locked row and stores its result. */
async function transitionStored(
  c: pg.PoolClient,
  w: Pick<TaskReportWrite, 'policy' | 'sourceTokenId'>,
  row: TaskRow,
  report: Pick<TaskReportBody, 'state' | 'progress' | 'phase' | 'faultCode' | 'faultString' | 'detail'>,
  confirmedByInform = false,
): Promise<TaskWriteResult> {
  const current: TaskMachineState = { state: row.state, progress: row.progress, phase: row.phase };
  const t = transitionTask(current, report);
  switch (t.kind) {
    case 'replay':
      return { kind: 'replay', task: toTaskWire(row) };
    case 'illegal_transition':
      return { ...t, task: toTaskWire(row) };
    case 'progress_regressed':
      return { ...t, task: toTaskWire(row) };
    case 'applied': {
      const { rows } = await c.query<TaskRow>({
        name: 'task_update',
        text: `UPDATE device_tasks SET state = $3, progress = $4, phase = $5,
                 fault_code = COALESCE($6, fault_code), fault_string = COALESCE($7, fault_string),
                 detail = COALESCE($8, detail), confirmed_by_inform = confirmed_by_inform OR $9,
                 updated_at = now()
               WHERE tenant_id = $1 AND id = $2 RETURNING *`,
        values: [
          row.tenant_id,
          row.id,
          t.next.state,
          t.next.progress,
          t.next.phase,
          faultOf(report),
          report.faultString ?? null,
          report.detail ?? null,
          confirmedByInform,
        ],
      });
      return finish(c, w, row, rows[0]!, false);
    }
  }
}

/** What follows an applied change, in its transaction: the requester's event and the campaign's counts. */
async function finish(
  c: pg.PoolClient,
  w: Pick<TaskReportWrite, 'policy' | 'sourceTokenId'>,
  before: TaskRow | null,
  after: TaskRow,
  created: boolean,
): Promise<TaskWriteResult> {
  const task = toTaskWire(after);
  const eventIds: string[] = [];
  if (after.requested_by !== null) {
    eventIds.push(
      await insertRequesterEvent(c, {
        tenantId: after.tenant_id,
        deviceId: after.device_id,
        recipientUserId: after.requested_by,
        kind: 'task.updated',
        payload: { task },
      }),
    );
  }
  let campaign: CampaignChange | null = null;
  if (after.campaign_id !== null && before?.state !== after.state) {
    campaign = await moveCampaignDevice(
      c,
      {
        campaignId: after.campaign_id,
        deviceId: after.device_id,
        taskId: after.id,
        to: after.state,
        created,
      },
      w.policy,
      w.sourceTokenId,
    );
    if (campaign) eventIds.push(...campaign.eventIds);
  }
  return { kind: 'applied', outcome: created ? 'created' : 'updated', task, eventIds, campaign };
}

/**
 * An inform reported `softwareVersion`: every open download of that device whose target it is succeeds
 * (`confirmed_by_inform`), through the same machine and the same campaign bookkeeping as a report. The
 * device status write calls it for informs that carry a software version. Returns each applied change.
 */
export async function confirmDownloadsByInform(
  pool: PgPool,
  deviceId: number,
  softwareVersion: string,
  policy: FailurePolicy,
): Promise<Extract<TaskWriteResult, { kind: 'applied' }>[]> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<TaskRow>({
      name: 'task_open_downloads_for_version',
      text: `SELECT * FROM device_tasks
              WHERE device_id = $1 AND kind = 'download' AND target_software_version = $2
                AND state IN ('queued', 'dispatched', 'running')
              ORDER BY tenant_id, id FOR UPDATE`,
      values: [deviceId, softwareVersion],
    });
    const applied: Extract<TaskWriteResult, { kind: 'applied' }>[] = [];
    for (const row of rows) {
      const r = await transitionStored(c, { policy, sourceTokenId: 0 }, row, { state: 'succeeded' }, true);
      if (r.kind === 'applied') applied.push(r);
    }
    return applied;
  });
}

/** `GET /v1/devices/{id}/tasks`: a device's tasks (open ones only unless `all`), newest change first. */
export async function listDeviceTasks(
  pool: PgPool,
  deviceId: number,
  options: { openOnly: boolean; limit: number },
): Promise<TaskWire[]> {
  const { rows } = await pool.query<TaskRow>({
    name: options.openOnly ? 'list_open_device_tasks' : 'list_device_tasks',
    text: `SELECT * FROM device_tasks WHERE device_id = $1
             ${options.openOnly ? "AND state IN ('queued', 'dispatched', 'running')" : ''}
            ORDER BY updated_at DESC, id LIMIT $2`,
    values: [deviceId, options.limit],
  });
  return rows.map(toTaskWire);
}
