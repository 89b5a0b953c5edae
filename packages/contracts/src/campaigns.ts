import { z } from 'zod';
import { boundedTextSchema as text, collectorIdSchema as id } from './ingest.js';
import { queryLimit } from './alarm-api.js';
import { CampaignId, TaskId } from './tasks.js';
import type { TaskState } from './task-state.js';

/** At most this many devices per campaign (`POST /v1/campaigns` `deviceIds`). */
export const CAMPAIGN_MAX_DEVICES = 100_000;
/** The body limit of `POST /v1/campaigns`: 100,000 ids of up to 10 digits and their commas fit. */
export const CAMPAIGN_BODY_LIMIT_BYTES = 2 * 1024 * 1024;

/**
 * A campaign's states. It starts `running` (or `paused`); `running` ⇄ `paused`; either ends `completed`
 * or `aborted`, which are final. Tasks keep being counted whatever the state: the platform rolls out, the
 * campaign is its report.
 */
export const CAMPAIGN_STATES = ['running', 'paused', 'completed', 'aborted'] as const;
export type CampaignState = (typeof CAMPAIGN_STATES)[number];
export const isFinalCampaignState = (s: CampaignState): boolean => s === 'completed' || s === 'aborted';

/** Whether a campaign may go from `from` to `to` (the same state is a replay, answered without a change). */
export function campaignTransitionAllowed(from: CampaignState, to: CampaignState): boolean {
  return !isFinalCampaignState(from) && from !== to;
}

export const CreateCampaignBody = z
  .object({
    campaignId: CampaignId,
    tenantId: id,
    name: text(128, 1),
    targetVersion: text(64, 1),
    deviceIds: z
      .array(id)
      .min(1)
      .max(CAMPAIGN_MAX_DEVICES)
      .superRefine((ids, ctx) => {
        const seen = new Set<number>();
        for (const [i, d] of ids.entries()) {
          if (seen.has(d)) {
            ctx.addIssue({ code: 'custom', path: [i], message: `device ${d} is listed twice` });
            return;
          }
          seen.add(d);
        }
      }),
    /** raise `alarmcast.campaign-failing:{id}` once this share of finished devices failed; absent: never */
    failureThresholdPercent: z.number().min(0).max(100).optional(),
    /** @defaultValue 'running' */
    state: z.enum(['running', 'paused']).default('running'),
  })
  .strict();
export type CreateCampaignBody = z.infer<typeof CreateCampaignBody>;

export const PatchCampaignBody = z.object({ state: z.enum(CAMPAIGN_STATES) }).strict();
export type PatchCampaignBody = z.infer<typeof PatchCampaignBody>;

/**
 * Devices per state of their campaign task: `pending` have no task reported yet; the others are in that
 * task state. A device follows its latest task in the campaign (a retry with a new task id replaces the
 * old one). The counts add up to `device_count`.
 */
export type CampaignCounts = { pending: number } & Record<TaskState, number>;

/** The columns of the counts, in wire order. */
export const CAMPAIGN_COUNT_KEYS = [
  'pending',
  'queued',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'expired',
] as const satisfies readonly (keyof CampaignCounts)[];

export interface CampaignWire {
  id: string;
  tenant_id: number;
  name: string;
  target_version: string;
  state: CampaignState;
  failure_threshold_percent: number | null;
  device_count: number;
  counts: CampaignCounts;
  /** how many task transitions the counts include: grows by one with each, so two views compare */
  version: number;
  /** true while the threshold alarm is raised */
  failing: boolean;
  created_at: string;
  updated_at: string;
}

const count = z.number().int().min(0);
export const CampaignWire: z.ZodType<CampaignWire> = z
  .object({
    id: CampaignId,
    tenant_id: z.number().int(),
    name: z.string(),
    target_version: z.string(),
    state: z.enum(CAMPAIGN_STATES),
    failure_threshold_percent: z.number().nullable(),
    device_count: count,
    counts: z
      .object(Object.fromEntries(CAMPAIGN_COUNT_KEYS.map((k) => [k, count])))
      .strict() as unknown as z.ZodType<CampaignCounts>,
    version: count,
    failing: z.boolean(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .strict();

/** `GET /v1/campaigns/{id}`: the campaign and up to 100 of its failed devices' tasks, latest first. */
export const CampaignResponse = z
  .object({
    campaign: CampaignWire,
    failing_devices: z.array(
      z
        .object({
          device_id: z.number().int(),
          task_id: TaskId,
          fault_code: z.number().int().nullable(),
          fault_string: z.string().nullable(),
          updated_at: z.iso.datetime(),
        })
        .strict(),
    ),
  })
  .strict();
export type CampaignResponse = z.output<typeof CampaignResponse>;

/**
 * `POST /v1/campaigns` (201 `created`, 200 `replay`: the same campaign again) and `PATCH /v1/campaigns/{id}`
 * (200 `updated`, or `replay` for the state it is in).
 */
export const CAMPAIGN_WRITE_OUTCOMES = ['created', 'updated', 'replay'] as const;
export const CampaignWriteResponse = z
  .object({ campaign: CampaignWire, outcome: z.enum(CAMPAIGN_WRITE_OUTCOMES) })
  .strict();
export type CampaignWriteResponse = z.output<typeof CampaignWriteResponse>;

/**
 * `GET /v1/campaigns` query: the user's tenant's campaigns, newest first (by `created_at`, then id);
 * `state` one of CAMPAIGN_STATES or `open` (running or paused), absent: all; `limit` 1-500 (default 100);
 * `cursor` the previous page's `next_cursor`.
 */
export const CampaignListQuery = z
  .object({
    state: z
      .enum([...CAMPAIGN_STATES, 'open'], 'must be running, paused, completed, aborted or open')
      .optional(),
    /** @defaultValue 100, at most 500 */
    limit: queryLimit,
    cursor: CampaignId.optional(),
  })
  .strict();
export type CampaignListQuery = z.infer<typeof CampaignListQuery>;

/** `next_cursor` is null on the last page (it is the page's last campaign id otherwise). */
export const CampaignListResponse = z
  .object({ campaigns: z.array(CampaignWire), next_cursor: z.string().nullable() })
  .strict();
export type CampaignListResponse = z.output<typeof CampaignListResponse>;

/** `/v1/campaigns/{id}` path: a campaign id (one that cannot exist answers 404). */
export const CampaignIdParams = z.object({ id: z.string().describe('a campaign id') });

/** The alarm identifier of a campaign's threshold alarm (device-less, in the campaign's tenant). */
export const campaignFailingAlarmIdentifier = (campaignId: string): string =>
  `alarmcast.campaign-failing:${campaignId}`;
