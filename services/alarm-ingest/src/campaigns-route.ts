import { Router, type RequestHandler } from 'express';
import {
  CampaignId,
  ROUTES,
  expressPath,
  type CampaignListResponse,
  type CampaignResponse,
  type CampaignState,
  type CampaignWriteResponse,
  type CampaignWire,
} from '@alarmcast/contracts';
import {
  createCampaign,
  findCampaign,
  listCampaigns,
  listFailingDevices,
  setCampaignState,
  type FailurePolicy,
  type PgPool,
} from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { requireJson, validationFailed } from './alarms-route.js';
import { collectorOf, requireScope } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';
import type { OutboxDispatcher } from './outbox.js';
import type { TaskLivePublisher } from './task-live.js';
import { viewerOf } from './user-auth.js';

export interface CampaignsRouterOptions {
  pool: PgPool;
  db: DbCall;
  outbox: OutboxDispatcher;
  live: TaskLivePublisher;
  policy: FailurePolicy;
  asCollector: RequestHandler;
  asUser: RequestHandler;
  admission: RequestHandler;
}

/** How many failed devices `GET /v1/campaigns/{id}` lists (the latest). */
export const CAMPAIGN_FAILING_DEVICES_LISTED = 100;

function campaignIdOf(raw: unknown): string {
  const id = CampaignId.safeParse(String(raw));
  // An id that cannot exist names no campaign.
  if (!id.success) throw new ApiError('not_found', 'no such campaign');
  return id.data;
}

/**
 * Firmware campaigns: `POST /v1/campaigns` and `PATCH /v1/campaigns/{id}` for collectors (the platform's
 * application), `GET /v1/campaigns/{id}` for the users of the campaign's tenant.
 */
export function campaignsRouter(options: CampaignsRouterOptions): Router {
  const { pool, db, outbox, live, policy } = options;
  const router = Router();

  router.post(
    expressPath(ROUTES.createCampaign),
    requireJson,
    options.asCollector,
    requireScope('campaigns'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const parsed = ROUTES.createCampaign.body.schema.safeParse(req.body);
      if (!parsed.success) throw validationFailed('request body', parsed.error.issues);
      const body = parsed.data;
      if (collector.tenantId !== null && collector.tenantId !== body.tenantId)
        throw new ApiError('forbidden', 'this collector token is scoped to another tenant');
      const result = await db(() => createCampaign(pool, body, collector.tokenId));
      switch (result.kind) {
        case 'unknown_tenant':
          throw new ApiError('unknown_tenant', `no tenant with id ${body.tenantId}`, [
            { field: 'tenantId', message: 'no such tenant' },
          ]);
        case 'unknown_devices':
          throw new ApiError(
            'unknown_device',
            `${result.deviceIds.length === 20 ? 'at least 20' : result.deviceIds.length} of deviceIds are not devices of tenant ${body.tenantId}`,
            result.deviceIds.map((id) => ({ field: 'deviceIds', message: `no device ${id} in this tenant` })),
          );
        case 'exists':
          throw new ApiError(
            'campaign_exists',
            `campaign ${body.campaignId} exists already with other fields`,
          );
        case 'replay':
          res
            .status(200)
            .json({ campaign: result.campaign, outcome: 'replay' } satisfies CampaignWriteResponse);
          return;
        case 'created':
          live.campaignChanged(result.campaign.id);
          res
            .status(201)
            .json({ campaign: result.campaign, outcome: 'created' } satisfies CampaignWriteResponse);
          return;
      }
    },
  );

  router.patch(
    expressPath(ROUTES.patchCampaign),
    requireJson,
    options.asCollector,
    requireScope('campaigns'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const id = campaignIdOf(req.params.id);
      const parsed = ROUTES.patchCampaign.body.schema.safeParse(req.body);
      if (!parsed.success) throw validationFailed('request body', parsed.error.issues);
      const to = parsed.data.state;
      const result = await db(() =>
        setCampaignState(pool, id, collector.tenantId, to, collector.tokenId, policy),
      );
      switch (result.kind) {
        case 'not_found':
          throw new ApiError('not_found', 'no such campaign');
        case 'illegal_transition':
          throw new ApiError(
            'illegal_campaign_transition',
            `campaign ${id} is ${result.from}: ${result.from} → ${result.to} is not allowed`,
            { from: result.from, to: result.to },
          );
        case 'replay':
          res
            .status(200)
            .json({ campaign: result.campaign, outcome: 'replay' } satisfies CampaignWriteResponse);
          return;
        case 'applied':
          for (const e of result.change.eventIds) outbox.dispatch(e);
          live.campaignChanged(id);
          res
            .status(200)
            .json({ campaign: result.change.campaign, outcome: 'updated' } satisfies CampaignWriteResponse);
          return;
      }
    },
  );

  router.get(expressPath(ROUTES.listCampaigns), options.asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const parsed = ROUTES.listCampaigns.query.safeParse(req.query);
    if (!parsed.success) throw validationFailed('query string', parsed.error.issues);
    const q = parsed.data;
    const states: CampaignState[] | undefined =
      q.state === 'open' ? ['running', 'paused'] : q.state === undefined ? undefined : [q.state];
    // A user of no tenant (a platform user) sees no campaign, as for GET /v1/campaigns/{id}.
    const rows =
      viewer.tenantId === null
        ? []
        : await db(() =>
            listCampaigns(pool, viewer.tenantId!, { states, limit: q.limit + 1, after: q.cursor }),
          );
    const page = rows.slice(0, q.limit);
    const next = rows.length > q.limit ? page[page.length - 1]!.id : null;
    res.json({ campaigns: page, next_cursor: next } satisfies CampaignListResponse);
  });

  router.get(expressPath(ROUTES.getCampaign), options.asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const id = campaignIdOf(req.params.id);
    const campaign: CampaignWire | null = await db(() => findCampaign(pool, id));
    // Another tenant's campaign answers as one that does not exist.
    if (!campaign || viewer.tenantId !== campaign.tenant_id)
      throw new ApiError('not_found', 'no such campaign');
    const failing = await db(() => listFailingDevices(pool, id, CAMPAIGN_FAILING_DEVICES_LISTED));
    res.json({ campaign, failing_devices: failing } satisfies CampaignResponse);
  });

  return router;
}
