import { checkPubSubEnvelope, type ChannelEventEnvelope, type PubSubEnvelope } from '@alarmcast/contracts';

/**
 * The byte layout of pub/sub envelopes (contracts' PubSubEnvelope), defined once. Envelopes are written
 * three ways: whole by `encodeChannelEvent` (HTTP API, client events), and piece by piece by the delivery
 * script (user-log-writer.ts), which only concatenates the pieces made here with ids it learns inside
 * Redis. They are read by `decodeEnvelope` (the edge). The test `envelope-codec.test.ts` runs the script
 * and decodes what it published with `decodeEnvelope`, so writer and reader cannot disagree.
 *
 * Why pieces: every copy of an event differs only in the user id and that user's event id, so escaping
 * the rest once per event (instead of cjson-encoding per user inside Redis, a quarter of Redis' CPU for a
 * 10,000-user tenant) makes the per-user cost a few string concatenations.
 */

/**
 * The `data` a user receives for one copy of an event: the event's data up to its closing brace
 * (`dataHead`, already ending in `,` when it has members) followed by that user's `event_id`. Event ids are
 * stream ids (`<ms>-<seq>`), which need no escaping.
 */
export const userCopyData = (dataHead: string, eventId: string): string =>
  `${dataHead}"event_id":"${eventId}"}`;

/**
 * The data head of one recipient's copy: the event's shared head (stored once) plus the recipient's
 * `"notify"` flag (their preferences: `false` = in the feed, no sound or desktop notification). The flag is
 * the only per-recipient part of the data besides the event id, so it is added here, at delivery and at
 * replay, never stored with the data.
 */
export const notifyHead = (dataHead: string, notify: boolean): string =>
  `${dataHead}"notify":${notify ? 'true' : 'false'},`;

/**
 * A user copy's `data` as the inside of a JSON string literal (escaped, without quotes), split where the
 * event id goes: `"` + before + eventId + after + `"` is `JSON.stringify(userCopyData(dataHead, eventId))`.
 * Envelopes and the edge's Pusher frames both carry the data as a JSON string, so both are made from this.
 */
export function escapedUserCopy(dataHead: string): [before: string, after: string] {
  // Escape a marker in the id's place and cut there (the last one: the head could hold one too).
  const marker = '\\u0000';
  const escaped = JSON.stringify(userCopyData(dataHead, '\u0000')).slice(1, -1);
  const at = escaped.lastIndexOf(marker);
  return [escaped.slice(0, at), escaped.slice(at + marker.length)];
}

/** The envelope's `source` member (the outbox event id, for log correlation), or nothing. */
const sourceMember = (source: string | undefined): string =>
  source === undefined ? '' : `"source":${JSON.stringify(source)},`;

/** A whole `event` envelope, for publishers that have it in hand. */
export function encodeChannelEvent(envelope: Omit<ChannelEventEnvelope, 'v' | 'type'>): string {
  const { node, ...rest } = envelope;
  const full: ChannelEventEnvelope = { v: 1, node, type: 'event', ...rest };
  return JSON.stringify(full);
}

/**
 * The four constant pieces of a user's `event` envelope on `private-user.{id}`:
 * `start + userId + afterUser + eventId + afterId + eventId + end` is the envelope of `userId`'s copy,
 * whose `data` is `userCopyData(dataHead, eventId)`.
 */
export function userEventPieces(
  node: string,
  event: string,
  dataHead: string,
  source?: string,
): [string, string, string, string] {
  const q = (s: string) => JSON.stringify(s);
  const [before, after] = escapedUserCopy(dataHead);
  return [
    `{"v":1,"node":${q(node)},${sourceMember(source)}"type":"event","event":${q(event)},"channel":"private-user.`,
    '","eventId":"',
    `","data":"${before}`,
    `${after}"}`,
  ];
}

/** The constant start of a `user-batch` envelope; the script appends `[uid,"eventId"],...` and `]}`. */
export function userBatchStart(node: string, event: string, dataHead: string, source?: string): string {
  const q = (s: string) => JSON.stringify(s);
  return `{"v":1,"node":${q(node)},${sourceMember(source)}"type":"user-batch","event":${q(event)},"dataHead":${q(dataHead)},"users":[`;
}

/** A pub/sub message as an envelope, or null for anything malformed (logged and dropped by the caller). */
export function decodeEnvelope(message: string): PubSubEnvelope | null {
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    return null;
  }
  return checkPubSubEnvelope(json);
}

/** What a state-channel script (state-channel.ts) publishes: the `event` envelope around its pieces. */
export interface StateEventPieces {
  /** then the Pusher channel name */
  start: string;
  /** then the JSON-quoted event name */
  afterChannel: string;
  /** then the update's sequence number (its `eventId`) */
  afterEvent: string;
  /** then the data as a JSON string literal (quoted and escaped) */
  afterSeq: string;
  end: string;
}

/**
 * `start + channel + afterChannel + JSON(event) + afterEvent + seq + afterSeq + JSON(data) + end` is the
 * `event` envelope of a state channel's update; `eventId` carries the update's sequence number on that
 * channel, which the edge compares with its snapshot's.
 */
export function stateEventPieces(node: string): StateEventPieces {
  return {
    start: `{"v":1,"node":${JSON.stringify(node)},"type":"event","channel":"`,
    afterChannel: '","event":',
    afterEvent: ',"eventId":"',
    afterSeq: '","data":',
    end: '}',
  };
}

/**
 * A state event's `data`, as the state script builds it: `{"<root>":<state>,"changed":[...]}`, plus
 * `"snapshot":true` on the copy an edge sends at subscribe. `state` is an object's JSON text; change names
 * are plain identifiers (checked by the writer), so they need no escaping.
 */
export function stateEventData(
  root: string,
  state: string,
  changed: readonly string[],
  snapshot = false,
): string {
  const names = changed.map((c) => `"${c}"`).join(',');
  return `{"${root}":${state},"changed":[${names}]${snapshot ? ',"snapshot":true' : ''}}`;
}
