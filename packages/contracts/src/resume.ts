/**
 * Resume after reconnect, an extension of `pusher:subscribe` that legacy clients simply do not use.
 *
 * A client that has seen events on `private-user.{id}` adds the last `event_id` it saw to the subscribe
 * data: `{"event":"pusher:subscribe","data":{"channel":"private-user.7","auth":"...","last_event_id":"<id>"}}`.
 * After `pusher_internal:subscription_succeeded` the edge sends every event of the user's log after that
 * id, in order, then the live ones, with no duplicate and no gap. It trusts the position only when that
 * very entry is still in the user's log (the log's identity is its entries: a recreated log, a replica or
 * another Redis does not hold it). Otherwise it sends RESUME_FAILED_EVENT on the channel first, then what
 * the log still holds after the position (if anything), then live events; the client must reload its state
 * through the API.
 */
export const RESUME_FIELD = 'last_event_id';
export const RESUME_FAILED_EVENT = 'alarmcast:resume_failed';

export interface ResumeFailedData {
  /**
   * the id resumed after: the one the client sent, or, when the edge resumes an open socket by itself after
   * losing Redis for a while, the last one it sent that socket
   */
  last_event_id: string;
  /**
   * `log_expired` no log; `log_trimmed` older than the oldest kept, entries were dropped; `log_recreated`
   * older than a log that never dropped any (Redis restarted empty and later events recreated it);
   * `unknown_position` not an entry of this log although it reaches that far, or newer than anything in it
   * (forged, clock went back, another Redis, failover to a replica that lacked it); `too_many_events` more
   * to replay than one resume sends; `event_expired` the data of an event to replay is gone;
   * `invalid_event_id` not a `<ms>-<seq>` id.
   */
  reason:
    | 'log_trimmed'
    | 'log_expired'
    | 'log_recreated'
    | 'unknown_position'
    | 'too_many_events'
    | 'event_expired'
    | 'invalid_event_id';
}
