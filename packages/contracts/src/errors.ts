/**
 * Every stable error code of alarmcast's HTTP APIs, with its HTTP status: the one table (the README's error
 * tables list the same). Bodies are `{ "error": { "code", "message", "details"? } }`; clients branch on the code,
 * never on the message. `pusherStatus` is the status where Pusher's own HTTP API (which ws-edge serves for
 * Laravel's broadcasters) dictates another one than ours; WebSocket close and `pusher:error` codes are
 * Pusher's and live in services/ws-edge `close-codes.ts`.
 */
export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, doc: 'the body is not valid JSON, or could not be read' },
  invalid_idempotency_key: { status: 400, doc: 'an Idempotency-Key that is not 1-255 printable ASCII' },
  unauthenticated: { status: 401, doc: 'missing, malformed, unknown or revoked credentials' },
  forbidden: { status: 403, doc: 'authenticated, but not allowed to do this' },
  insufficient_scope: {
    status: 403,
    doc: 'the collector token lacks the scope this route needs (details.scope names it; see COLLECTOR_SCOPES)',
  },
  invalid_path: {
    status: 400,
    doc: 'a request path that cannot be decoded (a malformed percent-escape such as %E0%A4%A)',
  },
  not_found: { status: 404, doc: 'no such route or resource, or one the caller may not see' },
  alarm_not_active: {
    status: 409,
    doc: 'a Cleared report for an alarm identifier that is not active (unknown or already cleared)',
  },
  illegal_task_transition: {
    status: 409,
    doc: 'a task report that leaves a terminal state or goes back to an earlier one (out of order); the message and details name both states; nothing changed',
  },
  task_progress_regressed: {
    status: 409,
    doc: 'a task report whose progress (or download phase) is below the stored one (out of order); nothing changed',
  },
  task_conflict: {
    status: 409,
    doc: 'a task report whose deviceId, kind, requestedByUserId, campaignId or targetSoftwareVersion differs from the task first reported under that id',
  },
  campaign_exists: { status: 409, doc: 'a campaign with that id exists already (with other fields)' },
  illegal_campaign_transition: {
    status: 409,
    doc: 'a campaign state change out of a final state (completed, aborted); the message names both states',
  },
  precondition_failed: {
    status: 412,
    doc: 'If-Match names a version that is no longer current (someone changed it since): read it again, reapply',
  },
  precondition_required: {
    status: 428,
    doc: 'a versioned document (preferences) must be written with If-Match: its ETag, or * to overwrite',
  },
  payload_too_large: { status: 413, doc: 'the body (or a part of it) is over its limit' },
  unsupported_media_type: { status: 415, doc: 'not application/json, or a charset other than UTF-8' },
  validation_failed: {
    status: 422,
    // Pusher's HTTP API answers a malformed event with 400 (Reverb: 422); publishers written for Pusher
    // expect Pusher's.
    pusherStatus: 400,
    doc: 'the request does not match its schema; details name the fields',
  },
  preference_locked: {
    status: 422,
    doc: 'a preference the tenant locks: details name the settings; only a tenant admin can change them',
  },
  unknown_device: { status: 422, doc: 'the referenced device does not exist' },
  unknown_tenant: { status: 422, doc: 'the referenced tenant does not exist' },
  unknown_campaign: { status: 422, doc: 'the referenced campaign does not exist (or is of another tenant)' },
  device_not_in_campaign: {
    status: 422,
    doc: "a task's campaignId names a campaign its device is not part of",
  },
  idempotency_key_reused: {
    status: 422,
    doc: 'an Idempotency-Key reused, within its window, for a request with a different body',
  },
  rate_limited: {
    status: 429,
    doc: 'too many requests (or failed authentications) from one client, token or user; Retry-After says when',
  },
  internal_error: { status: 500, doc: 'a bug: logged, no internals in the answer' },
  service_unavailable: { status: 503, doc: 'a dependency is down; Retry-After says when to retry' },
  overloaded: {
    status: 503,
    doc: 'more offered than the service can do now (admission control); nothing was changed, Retry-After says when',
  },
} as const satisfies Record<string, { status: number; pusherStatus?: number; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/** The HTTP status of a code, on alarmcast's APIs or (`pusher`) on the Pusher HTTP API. */
export function errorStatus(code: ErrorCode, api: 'alarmcast' | 'pusher' = 'alarmcast'): number {
  const entry: { status: number; pusherStatus?: number } = ERROR_CATALOGUE[code];
  return api === 'pusher' ? (entry.pusherStatus ?? entry.status) : entry.status;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}
