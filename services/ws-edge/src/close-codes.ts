/**
 * Pusher Channels error and close codes, the one place the edge names them. pusher-js acts on a close code's
 * range (`getCloseAction` in its protocol module), so the range is the contract, not the number:
 * - 4000-4099: the client must not reconnect (misconfiguration: wrong key, unsupported protocol);
 * - 4100-4199: reconnect after backing off (this node is overloaded or this socket cannot keep up);
 * - 4200-4299: reconnect now (server restarts, stale connection);
 * - 4300-4399: any other error; pusher-js treats a close with these as a refusal and does not reconnect.
 * The same numbers go in `pusher:error` frames, which clients only report (they never act on them).
 */
export const PUSHER_CODES = {
  /** wss only; never sent by us (TLS ends at the load balancer) */
  sslOnly: 4000,
  appDoesNotExist: 4001,
  appDisabled: 4003,
  overConnectionQuota: 4004,
  pathNotFound: 4005,
  invalidVersionFormat: 4006,
  unsupportedProtocolVersion: 4007,
  noProtocolVersion: 4008,
  /**
   * also what Reverb sends (as `pusher:error`, socket left open) for a subscription with a bad signature; as
   * a close code: the user's access was revoked (deactivated or deleted), so pusher-js must not reconnect
   */
  unauthorized: 4009,
  overCapacity: 4100,
  /** generic "reconnect now"; Reverb also uses it in `pusher:error` for a frame it cannot parse */
  reconnect: 4200,
  pongNotReceived: 4201,
  closedAfterInactivity: 4202,
  /**
   * alarmcast: the JWT a subscription was authorized with expired; pusher-js reconnects at once and
   * authorizes again with the token the application holds now (revocation.ts)
   */
  tokenExpired: 4203,
  /** a client event refused: rate limit exceeded, or not accepted on that channel (Pusher, Reverb) */
  clientEventRejected: 4301,
} as const;
export type PusherCode = (typeof PUSHER_CODES)[keyof typeof PUSHER_CODES];

/** Close reasons are at most 123 bytes (RFC 6455); these stay well under. */
export const CLOSE_REASONS = {
  appDoesNotExist: 'Application does not exist',
  pathNotFound: 'Path not found',
  invalidVersionFormat: 'Invalid version string format',
  unsupportedProtocolVersion: 'Unsupported protocol version',
  slowConsumer: 'Client is not reading fast enough, reconnect later',
  subscribeFailed: 'Could not subscribe, reconnect later',
  shuttingDown: 'Server shutting down, reconnect',
  pongNotReceived: 'Pong reply not received',
} as const;
