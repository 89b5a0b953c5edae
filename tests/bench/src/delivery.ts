/**
 * What every benchmark client (the lean Pusher client, pusher-js, the Socket.IO peer's client) reports for
 * each event frame it receives, so the harness measures all of them the same way.
 */
export interface Delivery {
  /** the event name as the client saw it (`WIRE_EVENTS`, e.g. `App\Events\AlarmCreated`) */
  event: string;
  /** the event's data, parsed */
  data: { alarm: { id: string; alarm_identifier: string; [k: string]: unknown }; event_id?: string };
  /** arrival time, `performance.now()` of the harness process, taken as early as the client allows */
  at: number;
}

/** One connected benchmark socket, subscribed to its user's events. */
export interface BenchSocket {
  userId: number;
  close: () => void;
}

/**
 * Connects one socket for `userId` (authorized with `jwt`), resolves once it is subscribed and ready to
 * receive, and calls `onDelivery` for every event frame it gets afterwards.
 */
export type ConnectUser = (
  userId: number,
  jwt: string,
  onDelivery: (d: Delivery) => void,
) => Promise<BenchSocket>;
