/**
 * Resume after reconnect, an extension of `pusher:subscribe` that legacy clients simply do not use.
 *
 * A client that has seen events on `private-user.{id}` adds the last `event_id` it saw to the subscribe
 * data: `{"event":"pusher:subscribe","data":{"channel":"private-user.7","auth":"...","last_event_id":"<id>"}}`.
 * After `pusher_internal:subscription_succeeded` the edge sends every event of the user's log after that
 * id, in order, then the live ones, with no duplicate and no gap. If it cannot prove continuity (the log
 * was trimmed past that id or expired), it sends RESUME_FAILED_EVENT on the channel instead of the missing
 * events, and the client must reload its state through the API.
 */
export const RESUME_FIELD = 'last_event_id';
export const RESUME_FAILED_EVENT = 'alarmcast:resume_failed';

export interface ResumeFailedData {
  /** the id the client asked to resume after */
  last_event_id: string;
  reason: 'log_trimmed' | 'log_expired' | 'too_many_events' | 'event_expired' | 'invalid_event_id';
}
