/**
 * Stable error codes of alarmcast's HTTP APIs, in bodies `{ "error": { "code", "message", "details"? } }`.
 * Clients branch on the code, never on the message.
 */
export const ERROR_CODES = [
  'invalid_json',
  'validation_failed',
  'unsupported_media_type',
  'payload_too_large',
  'unauthenticated',
  'forbidden',
  'unknown_device',
  'unknown_tenant',
  'not_found',
  /** a Cleared report for an alarm identifier that is not active (unknown or already cleared) */
  'alarm_not_active',
  /** an Idempotency-Key reused, within its window, for a request with a different body */
  'idempotency_key_reused',
  /** an Idempotency-Key header that is not 1-255 printable ASCII characters */
  'invalid_idempotency_key',
  /** a request path that cannot be decoded (a malformed percent-escape such as `%E0%A4%A`) */
  'invalid_path',
  /** too many requests (or failed authentications) from one client, token or user; `Retry-After` says when */
  'rate_limited',
  'service_unavailable',
  'internal_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}
