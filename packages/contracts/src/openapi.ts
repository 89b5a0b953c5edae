import { z } from 'zod';
import { AlarmWire } from './alarm.js';
import { AdminStatusResponse } from './admin-status.js';
import {
  AlarmAckResponse,
  AlarmIdParams,
  AlarmListQuery,
  AlarmListResponse,
  AlarmWriteResponse,
  IdempotencyKey,
} from './alarm-api.js';
import { ALARM_BATCH_BODY_LIMIT_BYTES, AlarmBatchBody, AlarmBatchResponse } from './alarm-batch.js';
import { ERROR_CATALOGUE, ERROR_CODES, errorStatus, type ErrorCode } from './errors.js';
import {
  CAMPAIGN_BODY_LIMIT_BYTES,
  CampaignIdParams,
  CampaignListQuery,
  CampaignListResponse,
  CampaignResponse,
  CampaignWire,
  CampaignWriteResponse,
  CreateCampaignBody,
  PatchCampaignBody,
} from './campaigns.js';
import { DeviceListQuery, DeviceListResponse, DeviceResponse, DeviceSummaryResponse } from './device-api.js';
import {
  DEVICE_INFORM_BATCH_BODY_LIMIT_BYTES,
  DeviceInformBatchBody,
  DeviceInformBatchResponse,
} from './device-informs.js';
import { AlarmIngestBody, INGEST_BODY_LIMIT_BYTES } from './ingest.js';
import {
  AlarmAudienceResponse,
  PreferenceRules,
  TenantPreferences,
  TenantPreferencesResponse,
  UserPreferencesResponse,
} from './preferences.js';
import {
  ChannelAuthBody,
  ChannelAuthResponse,
  HTTP_API_LIMITS,
  PusherBatchBody,
  PusherPublishResponse,
  PusherTriggerBody,
} from './pusher-http-api.js';
import {
  DeviceIdParams,
  TaskIdParams,
  TaskListQuery,
  TaskListResponse,
  TaskReportBody,
  TaskWire,
  TaskWriteResponse,
} from './tasks.js';

/**
 * The HTTP API of alarm-ingest and ws-edge, declared once: every route with its method, path, credentials,
 * request schemas, answers and the error codes (from ERROR_CATALOGUE) it can return. The OpenAPI 3.1
 * documents the services serve at `/openapi.json` are generated from this table and the zod schemas it
 * names (`z.toJSONSchema`), never written by hand; the services register their handlers at these paths and
 * validate with these schemas, and the contract test (tests/e2e/test/openapi-contract.test.ts) sends every
 * documented request and error to the running services and checks each answer against the document, and
 * that every route a service serves is declared here.
 *
 * Adding an endpoint: one entry in ROUTES (its schemas beside the other wire shapes in this package), the
 * handler registered at `expressPath(ROUTES.x)`, and a case for it in the contract test.
 */

export const SERVICES = ['alarm-ingest', 'ws-edge'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** How a route authenticates its caller (the document's security schemes). */
export type RouteAuth = 'collectorToken' | 'userJwt' | 'pusherSignature';

export interface HeaderSpec {
  description: string;
  /** always sent (responses) or needed (requests) */
  required?: boolean;
  schema?: z.ZodType;
}

export interface ResponseSpec {
  description: string;
  /** the JSON body; none for bodiless answers */
  schema?: z.ZodType;
  /** @defaultValue 'application/json' when there is a schema */
  contentType?: string;
  headers?: Record<string, HeaderSpec>;
}

export interface RouteSpec {
  /** the services that serve it (probes and the docs are on both) */
  services: readonly ServiceName[];
  method: 'get' | 'post' | 'put' | 'patch' | 'options';
  /** OpenAPI path syntax: `/v1/alarms/{id}/ack` (see expressPath) */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  auth?: RouteAuth;
  pathParams?: z.ZodObject;
  query?: z.ZodObject;
  /** request headers the route reads (Authorization is the security scheme's) */
  headers?: Record<string, HeaderSpec>;
  body?: { schema: z.ZodType; contentTypes: readonly string[]; maxBytes: number; required?: boolean };
  responses: Record<number, ResponseSpec>;
  /** every error code it can answer; the status is the catalogue's (statusTable: 'pusher' on Pusher's API) */
  errors: readonly ErrorCode[];
  statusTable?: 'alarmcast' | 'pusher';
}

const retryAfter: HeaderSpec = {
  description: 'seconds to wait before retrying',
  required: true,
  schema: z.string().regex(/^\d+$/),
};

/** Every route can fail with a bug: a 500 with no internals. */
const ALWAYS: readonly ErrorCode[] = ['internal_error'];

/** Bodies under /v1 go through one JSON parser (and its charset check), whatever the route. */
const V1_BODY_ERRORS: readonly ErrorCode[] = ['invalid_json', 'payload_too_large', 'unsupported_media_type'];

/** What the Pusher HTTP API's two publishing routes (events, batch_events) can answer besides 200. */
const PUSHER_PUBLISH_ERRORS: readonly ErrorCode[] = [
  'not_found',
  'unauthenticated',
  'invalid_json',
  'validation_failed',
  'payload_too_large',
  'service_unavailable',
  ...ALWAYS,
];

const Health = z.object({ status: z.literal('ok') }).strict();
const IngestReadiness = z
  .object({
    status: z.enum(['ready', 'unavailable']),
    /** Postgres answers: gates readiness */
    database: z.boolean(),
    /** Redis answers: reported only, the outbox holds alarms while it is away */
    queue: z.boolean(),
  })
  .strict();
const EdgeReady = z.object({ status: z.literal('ready') }).strict();

/** The error format of every API: one code from ERROR_CATALOGUE, a message naming the field. */
export const ErrorBodySchema = (codes: readonly ErrorCode[] = ERROR_CODES) =>
  z
    .object({
      error: z
        .object({
          code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
          message: z.string(),
          details: z.unknown().optional(),
        })
        .strict(),
    })
    .strict();

/** What the console's page asks its server for (packages/console `ConsoleConfig`). */
const ConsoleConfig = z
  .object({
    key: z.string(),
    wsHost: z.string(),
    wsPort: z.number().int(),
    forceTLS: z.boolean(),
    authEndpoint: z.string(),
    apiBase: z.string(),
  })
  .strict();

/** Pusher's request signature, as query parameters (the `auth_signature` itself is the security scheme). */
const PusherSignatureQuery = z.object({
  auth_key: z.string().describe("the app's key (PUSHER_APP_KEY)"),
  auth_timestamp: z
    .string()
    .regex(/^\d+$/)
    .describe(`Unix seconds, within ${HTTP_API_LIMITS.maxClockSkewS} s of the server's clock`),
  auth_version: z.literal('1.0'),
  body_md5: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional()
    .describe('hex MD5 of the raw body; required with a body'),
});
const AppIdParams = z.object({ appId: z.string().describe('the app id (PUSHER_APP_ID)') });
const AppKeyParams = z.object({ key: z.string().describe('the app key (PUSHER_APP_KEY)') });
const WebSocketQuery = z.object({
  protocol: z
    .string()
    .regex(/^\d{1,3}$/)
    .optional()
    .describe('Pusher protocol version; only 7 is served'),
  client: z.string().optional(),
  version: z.string().optional(),
  flash: z.string().optional(),
});

const idempotencyHeaders: Record<string, HeaderSpec> = {
  'Idempotency-Key': {
    description:
      'optional, 1-255 printable ASCII: the first successful answer is stored and replayed for 24 h to the same key with the same body',
    schema: IdempotencyKey,
  },
};
const replayedHeader: Record<string, HeaderSpec> = {
  'Idempotency-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key',
    schema: z.literal('true'),
  },
};

const BOTH = SERVICES;
const INGEST = ['alarm-ingest'] as const;
const EDGE = ['ws-edge'] as const;

const docsRoutes = {
  openApiDocument: {
    services: BOTH,
    method: 'get',
    path: '/openapi.json',
    summary: "This service's OpenAPI 3.1 document",
    tag: 'documentation',
    responses: {
      200: {
        description: 'the document, generated from the zod contracts',
        schema: z.record(z.string(), z.unknown()),
      },
    },
    errors: ALWAYS,
  },
  apiDocsPage: {
    services: BOTH,
    method: 'get',
    path: '/docs',
    summary: 'The OpenAPI document rendered as a page',
    description: 'A self-contained HTML page (no scripts, no external resources).',
    tag: 'documentation',
    responses: { 200: { description: 'the page', contentType: 'text/html' } },
    errors: ALWAYS,
  },
} as const satisfies Record<string, RouteSpec>;

const probeRoutes = {
  health: {
    services: BOTH,
    method: 'get',
    path: '/healthz',
    summary: 'Liveness: the process answers',
    description:
      'Also on the internal port, with /readyz and /metrics (Prometheus text; internal port only).',
    tag: 'probes',
    responses: { 200: { description: 'alive', schema: Health } },
    errors: [],
  },
  ingestReadiness: {
    services: INGEST,
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: Postgres answers',
    tag: 'probes',
    responses: {
      200: { description: 'ready', schema: IngestReadiness },
      503: { description: 'Postgres does not answer', schema: IngestReadiness },
    },
    errors: [],
  },
  edgeReadiness: {
    services: EDGE,
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: Redis and Postgres answer, and the edge is not draining',
    tag: 'probes',
    responses: {
      200: { description: 'ready', schema: EdgeReady },
      503: {
        description: 'not ready; `details` says which of redis, database, draining',
        schema: ErrorBodySchema(['service_unavailable']),
      },
    },
    errors: [],
  },
} as const satisfies Record<string, RouteSpec>;

const collectorRoutes = {
  postAlarm: {
    services: INGEST,
    method: 'post',
    path: '/v1/alarms',
    summary: 'Report an alarm (raise, update or clear)',
    description:
      'TR-181 Device.FaultMgmt semantics: 202 `created` for a raise of an identifier not active there, 200 `updated` for a raise of an active one, 200 `cleared` for `Cleared`. The answer comes once the change and its outbox event are committed; delivery happens after.',
    tag: 'collector',
    auth: 'collectorToken',
    headers: idempotencyHeaders,
    body: {
      schema: AlarmIngestBody,
      contentTypes: ['application/json'],
      maxBytes: INGEST_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: '`updated` or `cleared`', schema: AlarmWriteResponse, headers: replayedHeader },
      202: { description: '`created`', schema: AlarmWriteResponse, headers: replayedHeader },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_idempotency_key',
      'unauthenticated',
      'insufficient_scope',
      'forbidden',
      'alarm_not_active',
      'validation_failed',
      'unknown_device',
      'unknown_tenant',
      'idempotency_key_reused',
      'rate_limited',
      'service_unavailable',
      'overloaded',
      ...ALWAYS,
    ],
  },
  postAlarmBatch: {
    services: INGEST,
    method: 'post',
    path: '/v1/alarms/batch',
    summary: 'Report up to 1,000 alarms in one request and one statement',
    description:
      'One result per item, in request order, each what POST /v1/alarms answers for that item alone (per-item errors: 403 forbidden, 409 alarm_not_active, 422 validation_failed, unknown_device, unknown_tenant).',
    tag: 'collector',
    auth: 'collectorToken',
    headers: idempotencyHeaders,
    body: {
      schema: AlarmBatchBody,
      contentTypes: ['application/json'],
      maxBytes: ALARM_BATCH_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: 'one result per item', schema: AlarmBatchResponse, headers: replayedHeader },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_idempotency_key',
      'unauthenticated',
      'insufficient_scope',
      'validation_failed',
      'idempotency_key_reused',
      'rate_limited',
      'service_unavailable',
      'overloaded',
      ...ALWAYS,
    ],
  },
} as const satisfies Record<string, RouteSpec>;

/** What every collector route but the alarms' answers besides its own errors (scopes, limits, admission). */
const COLLECTOR_ERRORS: readonly ErrorCode[] = [
  'unauthenticated',
  'insufficient_scope',
  'rate_limited',
  'service_unavailable',
  'overloaded',
];

/** What every user route answers besides its own errors (the JWT, an inactive user, limits, Postgres). */
const USER_ERRORS: readonly ErrorCode[] = [
  'unauthenticated',
  'forbidden',
  'rate_limited',
  'service_unavailable',
];

const deviceRoutes = {
  postDeviceInforms: {
    services: INGEST,
    method: 'post',
    path: '/v1/devices/informs',
    summary: "Report up to 1,000 CPE Informs (the devices' status and presence)",
    description:
      'One result per item, in request order (`informs[i]` as DeviceInformItem): 200 `changed`, `unchanged` or `duplicate` (`informedAt` not after the last inform: a retry is harmless), or a per-item 422 `validation_failed` / `unknown_device`. Whole-request errors change nothing. Needs the `informs` scope.',
    tag: 'collector',
    auth: 'collectorToken',
    body: {
      schema: DeviceInformBatchBody,
      contentTypes: ['application/json'],
      maxBytes: DEVICE_INFORM_BATCH_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: { 200: { description: 'one result per item', schema: DeviceInformBatchResponse } },
    errors: [...V1_BODY_ERRORS, 'validation_failed', ...COLLECTOR_ERRORS, ...ALWAYS],
  },
  putTask: {
    services: INGEST,
    method: 'put',
    path: '/v1/tasks/{taskId}',
    summary: "Report the platform's latest view of one CPE task",
    description:
      '201 `created` for a task id not seen before, 200 `updated`, 200 `replay` for a report that changes nothing. `deviceId`, `kind`, `requestedByUserId`, `campaignId` and `targetSoftwareVersion` are fixed by the first report. A report out of order (a terminal state left, progress going down) is refused and changes nothing. Needs the `tasks` scope.',
    tag: 'collector',
    auth: 'collectorToken',
    pathParams: TaskIdParams,
    body: {
      schema: TaskReportBody,
      contentTypes: ['application/json'],
      maxBytes: INGEST_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: '`updated` or `replay`', schema: TaskWriteResponse },
      201: { description: '`created`', schema: TaskWriteResponse },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_path',
      'validation_failed',
      'unknown_device',
      'unknown_campaign',
      'device_not_in_campaign',
      'task_conflict',
      'illegal_task_transition',
      'task_progress_regressed',
      ...COLLECTOR_ERRORS,
      ...ALWAYS,
    ],
  },
  createCampaign: {
    services: INGEST,
    method: 'post',
    path: '/v1/campaigns',
    summary: 'Create a firmware campaign over up to 100,000 devices of one tenant',
    description:
      '201 `created`; 200 `replay` for the same campaign again (same fields). Needs the `campaigns` scope; a tenant-scoped token only for its tenant.',
    tag: 'collector',
    auth: 'collectorToken',
    body: {
      schema: CreateCampaignBody,
      contentTypes: ['application/json'],
      maxBytes: CAMPAIGN_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: '`replay`', schema: CampaignWriteResponse },
      201: { description: '`created`', schema: CampaignWriteResponse },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'forbidden',
      'validation_failed',
      'unknown_tenant',
      'unknown_device',
      'campaign_exists',
      ...COLLECTOR_ERRORS,
      ...ALWAYS,
    ],
  },
  patchCampaign: {
    services: INGEST,
    method: 'patch',
    path: '/v1/campaigns/{id}',
    summary: "Change a campaign's state (running ⇄ paused, then completed or aborted)",
    description:
      '200 `updated`, or `replay` for the state it is in. 404 for a campaign of another tenant than a tenant-scoped token, as for one that does not exist. Needs the `campaigns` scope.',
    tag: 'collector',
    auth: 'collectorToken',
    pathParams: CampaignIdParams,
    body: {
      schema: PatchCampaignBody,
      contentTypes: ['application/json'],
      maxBytes: INGEST_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: { 200: { description: '`updated` or `replay`', schema: CampaignWriteResponse } },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_path',
      'not_found',
      'validation_failed',
      'illegal_campaign_transition',
      ...COLLECTOR_ERRORS,
      ...ALWAYS,
    ],
  },
} as const satisfies Record<string, RouteSpec>;

const userRoutes = {
  adminStatus: {
    services: INGEST,
    method: 'get',
    path: '/v1/admin/status',
    summary: 'The live cluster state, for platform admins',
    description:
      "Edges (each edge's own report, written to Redis every 2 s) with their connections, the broadcast queue and its oldest job's age, the outbox backlog, and the edges' recent resume failures and revocations. 403 for any user but a platform admin.",
    tag: 'user',
    auth: 'userJwt',
    responses: { 200: { description: 'the cluster state', schema: AdminStatusResponse } },
    errors: [
      ...V1_BODY_ERRORS,
      'unauthenticated',
      'forbidden',
      'rate_limited',
      'service_unavailable',
      ...ALWAYS,
    ],
  },
  listAlarms: {
    services: INGEST,
    method: 'get',
    path: '/v1/alarms',
    summary: 'The alarms the user may see, active first, then newest first',
    description: 'Keyset-paginated: pass `next_cursor` as `cursor` for the next page; null on the last.',
    tag: 'user',
    auth: 'userJwt',
    query: AlarmListQuery,
    responses: { 200: { description: 'a page of alarms', schema: AlarmListResponse } },
    errors: [
      ...V1_BODY_ERRORS,
      'unauthenticated',
      'forbidden',
      'validation_failed',
      'rate_limited',
      'service_unavailable',
      ...ALWAYS,
    ],
  },
  acknowledgeAlarm: {
    services: INGEST,
    method: 'post',
    path: '/v1/alarms/{id}/ack',
    summary: 'Acknowledge an alarm the user may see',
    description: '404 for an alarm the user may not see, as for one that does not exist.',
    tag: 'user',
    auth: 'userJwt',
    pathParams: AlarmIdParams,
    responses: {
      200: { description: '`acknowledged`, or `already_acknowledged`', schema: AlarmAckResponse },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_path',
      'unauthenticated',
      'forbidden',
      'not_found',
      'rate_limited',
      'service_unavailable',
      ...ALWAYS,
    ],
  },
  listDevices: {
    services: INGEST,
    method: 'get',
    path: '/v1/devices',
    summary: 'The devices the user may see, with their live status, by id ascending',
    description:
      'Keyset-paginated: pass `next_cursor` as `cursor` for the next page; null on the last. `online=true|false` filters.',
    tag: 'user',
    auth: 'userJwt',
    query: DeviceListQuery,
    responses: { 200: { description: 'a page of devices', schema: DeviceListResponse } },
    errors: [...V1_BODY_ERRORS, 'validation_failed', ...USER_ERRORS, ...ALWAYS],
  },
  getDeviceSummary: {
    services: INGEST,
    method: 'get',
    path: '/v1/devices/summary',
    summary: "The user's tenant's device counts (online, offline, total), as on private-tenant.{id}",
    description: '`summary` is null for a user without a tenant.',
    tag: 'user',
    auth: 'userJwt',
    responses: { 200: { description: 'the counts', schema: DeviceSummaryResponse } },
    errors: [...V1_BODY_ERRORS, ...USER_ERRORS, ...ALWAYS],
  },
  getDevice: {
    services: INGEST,
    method: 'get',
    path: '/v1/devices/{id}',
    summary: "A device's current status",
    description: '404 for a device the user may not see, as for one that does not exist.',
    tag: 'user',
    auth: 'userJwt',
    pathParams: DeviceIdParams,
    responses: { 200: { description: 'the device', schema: DeviceResponse } },
    errors: [...V1_BODY_ERRORS, 'invalid_path', 'not_found', ...USER_ERRORS, ...ALWAYS],
  },
  listDeviceTasks: {
    services: INGEST,
    method: 'get',
    path: '/v1/devices/{id}/tasks',
    summary: "A device's tasks, newest first (by updated_at)",
    description:
      '`state=open` (default) or `all`, `limit` 1-500 (default 100). 404 for a device the user may not see, as for one that does not exist.',
    tag: 'user',
    auth: 'userJwt',
    pathParams: DeviceIdParams,
    query: TaskListQuery,
    responses: { 200: { description: "the device's tasks", schema: TaskListResponse } },
    errors: [...V1_BODY_ERRORS, 'invalid_path', 'validation_failed', 'not_found', ...USER_ERRORS, ...ALWAYS],
  },
  listCampaigns: {
    services: INGEST,
    method: 'get',
    path: '/v1/campaigns',
    summary: "The user's tenant's firmware campaigns with their counts, newest first",
    description:
      '`state` running, paused, completed, aborted or `open` (running or paused); absent: all. `limit` 1-500 (default 100). Pass `next_cursor` as `cursor` for the next page (null on the last; a cursor that names no campaign of the tenant gives an empty page). A user of no tenant gets an empty list.',
    tag: 'user',
    auth: 'userJwt',
    query: CampaignListQuery,
    responses: { 200: { description: 'a page of campaigns', schema: CampaignListResponse } },
    errors: [...V1_BODY_ERRORS, 'validation_failed', ...USER_ERRORS, ...ALWAYS],
  },
  getCampaign: {
    services: INGEST,
    method: 'get',
    path: '/v1/campaigns/{id}',
    summary: 'A campaign of the user’s tenant, its counts and up to 100 of its failed devices',
    description: "404 for another tenant's campaign, as for one that does not exist.",
    tag: 'user',
    auth: 'userJwt',
    pathParams: CampaignIdParams,
    responses: { 200: { description: 'the campaign', schema: CampaignResponse } },
    errors: [...V1_BODY_ERRORS, 'invalid_path', 'not_found', ...USER_ERRORS, ...ALWAYS],
  },
} as const satisfies Record<string, RouteSpec>;

const etagHeaders: Record<string, HeaderSpec> = {
  ETag: {
    description: 'the version of the document (`"<version>"`): send it back in If-Match to change it',
    required: true,
    schema: z.string().regex(/^"\d+"$/),
  },
};
const ifMatchHeader: Record<string, HeaderSpec> = {
  'If-Match': {
    description:
      'required: the ETag of the document as read (412 if it changed since), or `*` to overwrite whatever is there',
    required: true,
  },
};
const TenantIdParams = z.object({ id: z.string().describe('a tenant id') });

const preferenceRoutes = {
  getMyPreferences: {
    services: INGEST,
    method: 'get',
    path: '/v1/me/preferences',
    summary: "The user's notification rules, the tenant's on top, and what is in force",
    tag: 'preferences',
    auth: 'userJwt',
    responses: {
      200: { description: 'the document', schema: UserPreferencesResponse, headers: etagHeaders },
    },
    errors: [...V1_BODY_ERRORS, ...USER_ERRORS, ...ALWAYS],
  },
  putMyPreferences: {
    services: INGEST,
    method: 'put',
    path: '/v1/me/preferences',
    summary: "Replace the user's notification rules",
    description:
      'Versioned: `If-Match` with the ETag read (412 `precondition_failed` when it changed since, 428 `precondition_required` without one). A setting the tenant locks is refused (422 `preference_locked`).',
    tag: 'preferences',
    auth: 'userJwt',
    headers: ifMatchHeader,
    body: {
      schema: PreferenceRules,
      contentTypes: ['application/json'],
      maxBytes: INGEST_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: 'the document as stored', schema: UserPreferencesResponse, headers: etagHeaders },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'validation_failed',
      'preference_locked',
      'precondition_failed',
      'precondition_required',
      ...USER_ERRORS,
      ...ALWAYS,
    ],
  },
  getTenantPreferences: {
    services: INGEST,
    method: 'get',
    path: '/v1/tenants/{id}/preferences',
    summary: "A tenant's default rules, locks and critical bypass (its admins, platform admins)",
    description:
      '403 for a user who may not administer the tenant; 404 for a platform admin naming a tenant that does not exist.',
    tag: 'preferences',
    auth: 'userJwt',
    pathParams: TenantIdParams,
    responses: {
      200: { description: 'the document', schema: TenantPreferencesResponse, headers: etagHeaders },
    },
    errors: [...V1_BODY_ERRORS, 'invalid_path', 'not_found', ...USER_ERRORS, ...ALWAYS],
  },
  putTenantPreferences: {
    services: INGEST,
    method: 'put',
    path: '/v1/tenants/{id}/preferences',
    summary: "Replace a tenant's default rules, locks and critical bypass",
    description: 'Versioned as PUT /v1/me/preferences.',
    tag: 'preferences',
    auth: 'userJwt',
    pathParams: TenantIdParams,
    headers: ifMatchHeader,
    body: {
      schema: TenantPreferences,
      contentTypes: ['application/json'],
      maxBytes: INGEST_BODY_LIMIT_BYTES,
      required: true,
    },
    responses: {
      200: { description: 'the document as stored', schema: TenantPreferencesResponse, headers: etagHeaders },
    },
    errors: [
      ...V1_BODY_ERRORS,
      'invalid_path',
      'not_found',
      'validation_failed',
      'precondition_failed',
      'precondition_required',
      ...USER_ERRORS,
      ...ALWAYS,
    ],
  },
  getAlarmAudience: {
    services: INGEST,
    method: 'get',
    path: '/v1/alarms/{id}/audience',
    summary:
      'Who an alarm reached, what decided for each user, and what their rules decide now (tenant admins)',
    description:
      "403 for a user of the alarm's tenant who is not its admin; 404 for an alarm of another tenant, as for one that does not exist.",
    tag: 'preferences',
    auth: 'userJwt',
    pathParams: AlarmIdParams,
    responses: { 200: { description: 'the audience', schema: AlarmAudienceResponse } },
    errors: [...V1_BODY_ERRORS, 'invalid_path', 'not_found', ...USER_ERRORS, ...ALWAYS],
  },
} as const satisfies Record<string, RouteSpec>;

const consoleRoutes = {
  consoleRoot: {
    services: INGEST,
    method: 'get',
    path: '/',
    summary: 'Redirect to the operator console',
    tag: 'console',
    responses: {
      302: {
        description: 'to /console/',
        headers: { Location: { description: '/console/', required: true } },
      },
    },
    errors: ALWAYS,
  },
  consoleNoSlash: {
    services: INGEST,
    method: 'get',
    path: '/console',
    summary: 'Redirect to the operator console',
    tag: 'console',
    responses: {
      302: {
        description: 'to /console/',
        headers: { Location: { description: '/console/', required: true } },
      },
    },
    errors: ALWAYS,
  },
  consolePage: {
    services: INGEST,
    method: 'get',
    path: '/console/',
    summary: 'The operator console page (its assets are under /console/assets/)',
    tag: 'console',
    responses: { 200: { description: 'the page', contentType: 'text/html' } },
    errors: ALWAYS,
  },
  consoleConfig: {
    services: INGEST,
    method: 'get',
    path: '/console/config.json',
    summary: "Where the console's page finds the edge and the API",
    tag: 'console',
    responses: { 200: { description: 'the configuration', schema: ConsoleConfig } },
    errors: ALWAYS,
  },
} as const satisfies Record<string, RouteSpec>;

const edgeRoutes = {
  channelAuth: {
    services: EDGE,
    method: 'post',
    path: '/broadcasting/auth',
    summary: 'Authorize a subscription to a private channel (pusher-js channelAuthorization)',
    description:
      'Signs `socket_id:channel_name:channel_data` for a user who may read the channel: `private-user.{id}` (that user only) or `private-tenant.{id}` (its members).',
    tag: 'pusher',
    auth: 'userJwt',
    body: {
      schema: ChannelAuthBody,
      contentTypes: ['application/x-www-form-urlencoded', 'application/json'],
      maxBytes: 4096,
      required: true,
    },
    responses: {
      200: { description: 'the signature pusher-js expects', schema: ChannelAuthResponse },
    },
    errors: [
      'unsupported_media_type',
      'invalid_json',
      'payload_too_large',
      'unauthenticated',
      'validation_failed',
      'forbidden',
      'rate_limited',
      'service_unavailable',
      ...ALWAYS,
    ],
  },
  channelAuthPreflight: {
    services: EDGE,
    method: 'options',
    path: '/broadcasting/auth',
    summary: 'CORS preflight for /broadcasting/auth',
    description: 'Allow-* headers only for an Origin in EDGE_CORS_ORIGINS.',
    tag: 'pusher',
    responses: { 204: { description: 'no content' } },
    errors: ALWAYS,
  },
  pusherTrigger: {
    services: EDGE,
    method: 'post',
    path: '/apps/{appId}/events',
    summary: "Publish an event (Pusher's HTTP API)",
    description:
      'Signed as Pusher signs: `auth_signature` = hex HMAC-SHA256 with the app secret of `POST\\n/apps/{appId}/events\\n<the other query parameters, keys lower-cased and sorted, k=v&...>`. Statuses follow Pusher (a malformed event is 400).',
    tag: 'pusher',
    auth: 'pusherSignature',
    pathParams: AppIdParams,
    query: PusherSignatureQuery,
    body: {
      schema: PusherTriggerBody,
      contentTypes: ['application/json'],
      maxBytes: HTTP_API_LIMITS.maxBodyBytes,
      required: true,
    },
    responses: { 200: { description: 'published', schema: PusherPublishResponse } },
    errors: PUSHER_PUBLISH_ERRORS,
    statusTable: 'pusher',
  },
  pusherBatch: {
    services: EDGE,
    method: 'post',
    path: '/apps/{appId}/batch_events',
    summary: "Publish up to 10 events (Pusher's HTTP API)",
    description: 'Signed as POST /apps/{appId}/events.',
    tag: 'pusher',
    auth: 'pusherSignature',
    pathParams: AppIdParams,
    query: PusherSignatureQuery,
    body: {
      schema: PusherBatchBody,
      contentTypes: ['application/json'],
      maxBytes: HTTP_API_LIMITS.maxBodyBytes,
      required: true,
    },
    responses: { 200: { description: 'published', schema: PusherPublishResponse } },
    errors: PUSHER_PUBLISH_ERRORS,
    statusTable: 'pusher',
  },
  pusherWebSocket: {
    services: EDGE,
    method: 'get',
    path: '/app/{key}',
    summary: 'The Pusher protocol v7 WebSocket',
    description:
      'An HTTP upgrade to a WebSocket speaking Pusher protocol v7 (`pusher:connection_established` first). A wrong key or protocol is told in `pusher:error` and a close code (4001, 4006, 4007), over connection caps 4004; while draining the upgrade answers 503.',
    tag: 'pusher',
    pathParams: AppKeyParams,
    query: WebSocketQuery,
    headers: {
      Upgrade: { description: '`websocket`', required: true, schema: z.literal('websocket') },
    },
    responses: {
      101: { description: 'switched to the WebSocket protocol' },
      503: { description: 'the edge is draining (shutting down): reconnect to another' },
    },
    errors: [],
  },
} as const satisfies Record<string, RouteSpec>;

/** Every route of both services, in the order the documents (and /docs) show them. */
export const ROUTES = {
  ...collectorRoutes,
  ...deviceRoutes,
  ...userRoutes,
  ...preferenceRoutes,
  ...edgeRoutes,
  ...consoleRoutes,
  ...probeRoutes,
  ...docsRoutes,
} as const satisfies Record<string, RouteSpec>;
export type RouteId = keyof typeof ROUTES;

/** Express' path syntax for a declared path: `/v1/alarms/{id}/ack` → `/v1/alarms/:id/ack`. */
export function expressPath(route: Pick<RouteSpec, 'path'>): string {
  return route.path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}

/** The HTTP status of each declared error code of a route, grouped. */
export function errorStatuses(route: RouteSpec): Map<number, ErrorCode[]> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of route.errors) {
    const status = errorStatus(code, route.statusTable ?? 'alarmcast');
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return byStatus;
}

// ---- generation ------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** Named schemas: shown once under components.schemas and referenced from the operations. */
const COMPONENTS = {
  requests: {
    AlarmIngestBody,
    AlarmBatchBody,
    DeviceInformBatchBody,
    TaskReportBody,
    CreateCampaignBody,
    PatchCampaignBody,
    PreferenceRules,
    TenantPreferences,
    ChannelAuthBody,
    PusherTriggerBody,
    PusherBatchBody,
  },
  responses: {
    AlarmWire,
    AlarmWriteResponse,
    AlarmBatchResponse,
    AlarmListResponse,
    AlarmAckResponse,
    DeviceInformBatchResponse,
    DeviceListResponse,
    DeviceResponse,
    DeviceSummaryResponse,
    TaskWire,
    TaskWriteResponse,
    TaskListResponse,
    CampaignWire,
    CampaignWriteResponse,
    CampaignResponse,
    UserPreferencesResponse,
    TenantPreferencesResponse,
    AlarmAudienceResponse,
    ChannelAuthResponse,
    PusherPublishResponse,
    ErrorBody: ErrorBodySchema(),
  },
} as const;

const REF = (id: string): string => `#/components/schemas/${id}`;

function strip(schema: Json): Json {
  const { $schema: _s, $id: _dollarId, id: _id, ...rest } = schema;
  return rest;
}

/**
 * JSON Schema (2020-12, OpenAPI 3.1's dialect) of a zod schema: requests as their input (what a client
 * sends, before transforms and defaults), answers as their output. Used inline (parameters, headers, error
 * bodies); the named schemas of COMPONENTS are generated once, in componentSchemas.
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  return strip(z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Json);
}

function componentSchemas(): { schemas: Record<string, Json>; names: Map<z.ZodType, string> } {
  const names = new Map<z.ZodType, string>();
  const schemas: Record<string, Json> = {};
  for (const io of ['input', 'output'] as const) {
    const group = io === 'input' ? COMPONENTS.requests : COMPONENTS.responses;
    const registry = z.registry<{ id: string }>();
    for (const [id, s] of Object.entries(group)) {
      registry.add(s as z.ZodType, { id });
      names.set(s as z.ZodType, id);
    }
    const out = z.toJSONSchema(registry, { io, uri: REF, unrepresentable: 'any', target: 'draft-2020-12' });
    for (const [id, s] of Object.entries(out.schemas)) schemas[id] = strip(s as Json);
  }
  return { schemas, names };
}

function schemaOrRef(schema: z.ZodType, io: 'input' | 'output', names: Map<z.ZodType, string>): Json {
  const id = names.get(schema);
  return id ? { $ref: REF(id) } : jsonSchema(schema, io);
}

function parameters(route: RouteSpec): Json[] {
  const out: Json[] = [];
  const add = (where: 'path' | 'query', shape: z.ZodObject | undefined): void => {
    for (const [name, s] of Object.entries(shape?.shape ?? {})) {
      const field = s as z.ZodType;
      const schema = jsonSchema(field, 'input');
      const { description, ...rest } = schema;
      const optional = field.safeParse(undefined).success;
      out.push({
        name,
        in: where,
        required: where === 'path' || !optional,
        ...(typeof description === 'string' ? { description } : {}),
        schema: rest,
      });
    }
  };
  add('path', route.pathParams);
  add('query', route.query);
  for (const [name, h] of Object.entries(route.headers ?? {})) {
    out.push({
      name,
      in: 'header',
      required: h.required ?? false,
      description: h.description,
      schema: h.schema ? jsonSchema(h.schema, 'input') : { type: 'string' },
    });
  }
  return out;
}

function headerObjects(headers: Record<string, HeaderSpec> | undefined): Json | undefined {
  if (!headers) return undefined;
  return Object.fromEntries(
    Object.entries(headers).map(([name, h]) => [
      name,
      {
        description: h.description,
        required: h.required ?? false,
        schema: h.schema ? jsonSchema(h.schema, 'output') : { type: 'string' },
      },
    ]),
  );
}

function responses(route: RouteSpec, names: Map<z.ZodType, string>): Json {
  const out: Json = {};
  for (const [status, r] of Object.entries(route.responses)) {
    const entry: Json = { description: r.description };
    if (r.schema)
      entry.content = {
        [r.contentType ?? 'application/json']: { schema: schemaOrRef(r.schema, 'output', names) },
      };
    else if (r.contentType) entry.content = { [r.contentType]: { schema: { type: 'string' } } };
    const headers = headerObjects(r.headers);
    if (headers) entry.headers = headers;
    out[status] = entry;
  }
  for (const [status, codes] of errorStatuses(route)) {
    if (out[status] !== undefined)
      throw new Error(`${route.method} ${route.path}: ${status} is both an answer and an error`);
    const headers = status === 429 || status === 503 ? { 'Retry-After': retryAfter } : undefined;
    out[status] = {
      description: codes.map((c) => `\`${c}\`: ${ERROR_CATALOGUE[c].doc}`).join('; '),
      content: { 'application/json': { schema: jsonSchema(ErrorBodySchema(codes), 'output') } },
      ...(headers ? { headers: headerObjects(headers) } : {}),
    };
  }
  return out;
}

const TAGS: Record<string, string> = {
  collector:
    'CPE collectors and the platform report alarms, informs, tasks and campaigns (collector tokens, by scope)',
  user: 'Operators read and acknowledge their alarms, read tasks and campaigns (user JWTs)',
  preferences: "Notification preferences: users, tenant defaults and locks, an alarm's audience (user JWTs)",
  pusher: "The Pusher protocol endpoints: channel authorization, Pusher's HTTP API, the WebSocket",
  console: 'The operator console page',
  probes: 'Liveness and readiness',
  documentation: 'This document',
};

/** The OpenAPI 3.1 document of one service, generated from ROUTES and the zod contracts. */
export function openApiDocument(service: ServiceName, options: { version?: string } = {}): Json {
  const { schemas, names } = componentSchemas();
  const paths: Record<string, Json> = {};
  const tags = new Set<string>();
  const usedSchemes = new Set<RouteAuth>();
  for (const [operationId, route] of Object.entries(ROUTES) as [string, RouteSpec][]) {
    if (!route.services.includes(service)) continue;
    tags.add(route.tag);
    if (route.auth) usedSchemes.add(route.auth);
    const params = parameters(route);
    const op: Json = {
      operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      security: route.auth ? [{ [route.auth]: [] }] : [],
      ...(params.length > 0 ? { parameters: params } : {}),
    };
    if (route.body) {
      op.requestBody = {
        required: route.body.required ?? false,
        description: `at most ${route.body.maxBytes} bytes`,
        content: Object.fromEntries(
          route.body.contentTypes.map((t) => [
            t,
            { schema: schemaOrRef(route.body!.schema, 'input', names) },
          ]),
        ),
      };
    }
    op.responses = responses(route, names);
    paths[route.path] = { ...paths[route.path], [route.method]: op };
  }
  // Only the components this service's operations use (the linter refuses unused ones).
  const text = JSON.stringify(paths);
  const used = new Set<string>();
  const visit = (json: string): void => {
    for (const m of json.matchAll(/#\/components\/schemas\/([A-Za-z0-9]+)/g)) {
      if (!used.has(m[1]!)) {
        used.add(m[1]!);
        visit(JSON.stringify(schemas[m[1]!]));
      }
    }
  };
  visit(text);
  const allSchemes: Record<RouteAuth, Json> = {
    collectorToken: {
      type: 'http',
      scheme: 'bearer',
      description: 'a collector token (`pnpm -s cli token create`); tenant-scoped or platform-wide',
    },
    userJwt: {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'an HS256 user JWT (JWT_SECRET; `pnpm -s cli jwt`), `sub` = user id, `exp` required',
    },
    pusherSignature: {
      type: 'apiKey',
      in: 'query',
      name: 'auth_signature',
      description:
        "Pusher's request signature (HMAC-SHA256 with PUSHER_APP_SECRET), with auth_key, auth_timestamp, auth_version and body_md5",
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: `alarmcast ${service}`,
      version: options.version ?? '0.1.0',
      description:
        service === 'alarm-ingest'
          ? 'The collector API (alarms, device informs, tasks, firmware campaigns), the user API (alarms, devices, tasks, campaigns, notification preferences, the admin status), probes and the operator console. Errors are `{"error":{"code","message","details"?}}` with a code from one catalogue.'
          : "ws-edge's HTTP endpoints: channel authorization, the publishing half of Pusher's HTTP API, the Pusher WebSocket, probes.",
    },
    servers: [{ url: '/', description: 'this service' }],
    tags: [...tags].map((name) => ({ name, description: TAGS[name] ?? name })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).filter(([id]) => used.has(id))),
      securitySchemes: Object.fromEntries([...usedSchemes].map((s) => [s, allSchemes[s]])),
    },
  };
}
