import { z } from 'zod';
import { boundedTextSchema as text, collectorIdSchema as id } from './ingest.js';
import {
  DOWNLOAD_PHASES,
  TASK_STATES,
  isTransferCompleteFault,
  type DownloadPhase,
  type TaskState,
} from './task-state.js';

/** What a task does on the CPE: the CWMP RPCs an ACS sends, and `other` for anything else. */
export const TASK_KINDS = [
  'reboot',
  'factoryReset',
  'download',
  'upload',
  'setParameterValues',
  'getParameterValues',
  'addObject',
  'deleteObject',
  'other',
] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

/**
 * A task id is the platform's own (its ACS's task id), so a retried PUT names the same task: 1-128 of
 * `A-Z a-z 0-9 . _ : -`. Unique per tenant.
 */
export const TaskId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ : -');

/**
 * A campaign id is the platform's own too, and names the channel `private-campaign.{id}` and the tenant
 * alarm `alarmcast.campaign-failing:{id}` (TR-181 alarm identifiers are at most 64 characters), hence
 * 1-36 of `A-Z a-z 0-9 _ -` (a UUID fits). Unique across tenants.
 */
export const CampaignId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,36}$/, 'must be 1-36 characters of A-Z a-z 0-9 _ -');

/** Bounds of a task report's strings (characters). */
export const TASK_LIMITS = {
  faultString: 256,
  detail: 1024,
  targetSoftwareVersion: 64,
} as const;

/**
 * `PUT /v1/tasks/{taskId}`: the platform's latest view of one task. `deviceId`, `kind`, `requestedByUserId`,
 * `campaignId` and `targetSoftwareVersion` are fixed by the first report; later reports must repeat them
 * (or leave the optional ones out).
 */
export const TaskReportBody = z
  .object({
    deviceId: id,
    kind: z.enum(TASK_KINDS),
    state: z.enum(TASK_STATES),
    progress: z.number().int().min(0).max(100).optional(),
    /** downloads only, with state `running`: where the TR-069 download is (DOWNLOAD_PHASES) */
    phase: z.enum(DOWNLOAD_PHASES).optional(),
    requestedByUserId: id.optional(),
    campaignId: CampaignId.optional(),
    /** a CWMP fault code (0 = no fault); non-zero only with state `failed`, but see TRANSFER_COMPLETE_FAULTS */
    faultCode: z.number().int().min(0).max(99_999).optional(),
    faultString: text(TASK_LIMITS.faultString).optional(),
    detail: text(TASK_LIMITS.detail).optional(),
    /** downloads: the softwareVersion the CPE runs once the upgrade worked; an inform reporting it confirms */
    targetSoftwareVersion: text(TASK_LIMITS.targetSoftwareVersion, 1).optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.phase !== undefined && (body.kind !== 'download' || body.state !== 'running')) {
      ctx.addIssue({
        code: 'custom',
        path: ['phase'],
        message: 'phase is only for a download in state running',
      });
    }
    if (body.targetSoftwareVersion !== undefined && body.kind !== 'download') {
      ctx.addIssue({ code: 'custom', path: ['targetSoftwareVersion'], message: 'only for a download' });
    }
    const fault = body.faultCode ?? 0;
    const transferFault = body.kind === 'download' && isTransferCompleteFault(fault);
    if (fault !== 0 && body.state !== 'failed' && !transferFault) {
      ctx.addIssue({
        code: 'custom',
        path: ['faultCode'],
        message:
          'a non-zero faultCode needs state failed (a download TransferComplete fault 9010-9020 fails it)',
      });
    }
  });
export type TaskReportBody = z.infer<typeof TaskReportBody>;

/**
 * The state a report asks for once TR-069 is applied: a download's TransferComplete fault (9010-9020) ends
 * it `failed`, whatever state the platform attached to it.
 */
export function reportedTaskState(body: Pick<TaskReportBody, 'kind' | 'state' | 'faultCode'>): TaskState {
  return body.kind === 'download' && isTransferCompleteFault(body.faultCode ?? 0) ? 'failed' : body.state;
}

/** A task as clients see it (events, `GET /v1/devices/{id}/tasks`). */
export interface TaskWire {
  id: string;
  device_id: number;
  tenant_id: number;
  kind: TaskKind;
  state: TaskState;
  progress: number;
  phase: DownloadPhase | null;
  fault_code: number | null;
  fault_string: string | null;
  detail: string | null;
  requested_by: number | null;
  campaign_id: string | null;
  target_software_version: string | null;
  /** true when an inform reporting `target_software_version` made it succeed */
  confirmed_by_inform: boolean;
  created_at: string;
  updated_at: string;
}

export const TaskWire: z.ZodType<TaskWire> = z
  .object({
    id: TaskId,
    device_id: z.number().int(),
    tenant_id: z.number().int(),
    kind: z.enum(TASK_KINDS),
    state: z.enum(TASK_STATES),
    progress: z.number().int().min(0).max(100),
    phase: z.enum(DOWNLOAD_PHASES).nullable(),
    fault_code: z.number().int().nullable(),
    fault_string: z.string().nullable(),
    detail: z.string().nullable(),
    requested_by: z.number().int().nullable(),
    campaign_id: z.string().nullable(),
    target_software_version: z.string().nullable(),
    confirmed_by_inform: z.boolean(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .strict();

/** `PUT /v1/tasks/{taskId}` answers: 201 created, 200 updated, 200 replay (nothing stored or sent). */
export const TASK_WRITE_OUTCOMES = ['created', 'updated', 'replay'] as const;
export type TaskWriteOutcome = (typeof TASK_WRITE_OUTCOMES)[number];
export const TaskWriteResponse = z.object({ task: TaskWire, outcome: z.enum(TASK_WRITE_OUTCOMES) }).strict();
export type TaskWriteResponse = z.output<typeof TaskWriteResponse>;

/** `PUT /v1/tasks/{taskId}` path: the platform's task id. */
export const TaskIdParams = z.object({ taskId: TaskId.describe("the platform's task id") });
/** `GET /v1/devices/{id}/tasks` path: a device id (one the user may not see answers 404). */
export const DeviceIdParams = z.object({ id: z.string().describe('a device id') });

/** `GET /v1/devices/{id}/tasks` query: `state=open|all` (default open), `limit` 1-500 (default 100). */
export const TaskListQuery = z
  .object({
    /** @defaultValue 'open' */
    state: z.enum(['open', 'all']).default('open'),
    /** @defaultValue 100, at most 500 */
    limit: z
      .string()
      .regex(/^\d{1,3}$/, 'must be an integer from 1 to 500')
      .transform(Number)
      .pipe(z.number().int().min(1).max(500))
      .default(100),
  })
  .strict();
export type TaskListQuery = z.infer<typeof TaskListQuery>;

/** Newest first (by `updated_at`). */
export const TaskListResponse = z.object({ tasks: z.array(TaskWire) }).strict();
export type TaskListResponse = z.output<typeof TaskListResponse>;
