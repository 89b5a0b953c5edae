import type { RedisConnection } from './client.js';
import type { RedisKeys } from './keys.js';
import { notifyHead, userCopyData } from './envelope-codec.js';

/** The data a client receives for a log entry: the event's data with its `event_id` added. */
export function logEntryData(eventId: string, head: string, sep: string): string {
  return userCopyData(head + sep, eventId);
}

/** One event read back from a user's log. */
export interface LoggedEvent {
  eventId: string;
  event: string;
  /** exactly the `data` string that was delivered live */
  data: string;
}

/**
 * Why a replay cannot be trusted to be complete:
 * - `log_expired`: the user has no log (idle past `idleTtlS`, or Redis lost it and nothing was written since);
 * - `log_trimmed`: the position is older than the oldest entry kept, and this log has dropped entries;
 * - `log_recreated`: the position is older than the oldest entry and this log never dropped one, so it
 *   cannot come from this log: the log was recreated (Redis restarted empty, the key was lost) after it;
 * - `unknown_position`: the position is not an entry of this log although the log reaches that far, or it
 *   is newer than anything the log ever held: forged, from another Redis, a clock that went back, or a
 *   failover to a replica that had not received the last writes;
 * - `too_many_events`: the position is fine but more than `limit` events follow it;
 * - `event_expired`: the data of an event to replay is gone (see resolveEntries).
 */
export type LogGap =
  'log_trimmed' | 'log_expired' | 'log_recreated' | 'unknown_position' | 'too_many_events' | 'event_expired';

/**
 * The position of a log that held no entry: everything the log holds later came after it, so a replay
 * from here is the whole log (complete unless the log has dropped entries since). Not a stream id, so it
 * never means this when a client sends it (`0-0` from a client stays a position no log holds).
 */
export const LOG_START = 'start';

/**
 * Where a subscriber without a position stands: the id of the user's newest log entry, or LOG_START when
 * the log holds none. The edge reads it right after SUBSCRIBE is live, so that if its subscriber
 * connection is lost later, it can replay what it missed from the log instead of missing it silently.
 */
export async function readUserLogTail(
  redis: RedisConnection,
  keys: RedisKeys,
  userId: number,
): Promise<string> {
  const newest = (await redis.xrevrange(keys.userLog(userId), '+', '-', 'COUNT', 1)) as [string, string[]][];
  return newest[0]?.[0] ?? LOG_START;
}

/** What XINFO STREAM says about a log, as far as judging a resume position needs it. */
interface LogShape {
  /** oldest entry kept, or null when the stream is empty */
  oldest: string | null;
  /** the highest id this stream ever generated, kept or not */
  lastGenerated: string;
  /** entries were removed (trimmed) since the stream was created: Redis counts every entry ever added */
  trimmed: boolean;
}

/**
 * The events of a user's log after `afterId`, oldest first, for a client resuming from its last seen
 * event, and `gap` when continuity cannot be proven (see LogGap); the client must then reload its state
 * (through the API) instead of trusting the replay. `events` are what the log holds after `afterId` either
 * way (at most `limit`), so the edge can still send them after saying the replay is incomplete.
 *
 * The log's identity is its entries themselves, in place of an epoch stored beside the log: a position is
 * trusted only when the entry `afterId` is still in this very stream, read atomically with what follows it
 * (one MULTI), because then every later entry is contiguous in the same stream. A log that was recreated
 * (Redis restarted empty), taken over by a replica that lacked the last writes, or that lives on another
 * Redis does not hold the client's entry, whatever its ids look like; a per-log epoch counter would miss
 * the replica case (the replica carries the same epoch). The `event_id` wire format stays `<ms>-<seq>`.
 */
export async function readUserLogAfter(
  redis: RedisConnection,
  keys: RedisKeys,
  userId: number,
  afterId: string,
  limit = 10_000,
): Promise<{ events: LoggedEvent[]; gap: LogGap | null }> {
  const fromStart = afterId === LOG_START;
  // Not an id Redis could have generated (the edge refuses these before asking): nothing to look up.
  if (!fromStart && parseStreamId(afterId).length === 0) return { events: [], gap: 'unknown_position' };
  const key = keys.userLog(userId);
  const replies = await redis
    .multi()
    .xrange(key, fromStart ? '0-0' : afterId, fromStart ? '0-0' : afterId)
    .xrange(key, fromStart ? '-' : `(${afterId}`, '+', 'COUNT', limit + 1)
    .xinfo('STREAM', key)
    .exec();
  // EXEC answers each command's error in place; XINFO fails for a key that does not exist (expired).
  const [anchor, after, info] = (replies ?? []).map(([err, reply]) => (err ? null : reply));
  const shape = info ? logShape(info as unknown[]) : null;
  const entries = (after ?? []) as [string, string[]][];
  const found = Array.isArray(anchor) && anchor.length > 0;
  // From LOG_START, a log that does not exist has nothing to replay, and one that exists is judged only by
  // whether it dropped entries.
  const judged = shape ? judgePosition(afterId, found, shape) : 'log_expired';
  const position = fromStart ? (shape?.trimmed ? 'log_trimmed' : null) : judged;
  const gap = position ?? (entries.length > limit ? 'too_many_events' : null);
  const shard = keys.shardOf(userId);
  const { events, complete } = await resolveEntries(redis, keys, shard, entries.slice(0, limit));
  return { events, gap: gap ?? (complete ? null : 'event_expired') };
}

function logShape(info: unknown[]): LogShape {
  const field = (name: string): unknown => info[info.indexOf(name) + 1];
  const first = field('first-entry') as [string, string[]] | null;
  return {
    oldest: first ? first[0] : null,
    lastGenerated: String(field('last-generated-id')),
    trimmed: Number(field('entries-added')) > Number(field('length')),
  };
}

/**
 * Whether the log can prove it holds everything after `afterId` (null) or why not. `found`: the entry
 * `afterId` itself is in the log.
 */
function judgePosition(afterId: string, found: boolean, log: LogShape): LogGap | null {
  if (found) return null;
  if (compareStreamIds(afterId, log.lastGenerated) > 0) return 'unknown_position';
  // Trimming removes the oldest entries only. Before the oldest kept: if some were removed, the client's
  // entry may be among them (when it is exactly the last one removed this reports a gap it did not have:
  // the safe side); if none ever were, the log began after the client's position.
  const beforeOldest = log.oldest === null || compareStreamIds(afterId, log.oldest) < 0;
  if (beforeOldest) return log.trimmed ? 'log_trimmed' : 'log_recreated';
  return 'unknown_position';
}

/**
 * Log entries → the events they name. An entry holds a reference (`r`, the event id) to the event's data,
 * stored once per shard (user-log-writer.ts): the copy of the user's shard, in the slot of the user's log, so
 * the data of every distinct reference is read in one round trip on a cluster too. An
 * entry whose data has expired makes the replay incomplete (`complete: false`): it is reported, never
 * skipped. Entries written before data was stored once carry it themselves (`event`, `head`, `sep`). The
 * copy gets the recipient's `"notify"` flag from the entry (`n=0`: false; absent: true), as it had live.
 */
async function resolveEntries(
  redis: RedisConnection,
  keys: RedisKeys,
  shard: number,
  entries: [string, string[]][],
): Promise<{ events: LoggedEvent[]; complete: boolean }> {
  const get = (fields: string[], name: string): string | undefined => {
    const i = fields.indexOf(name);
    return i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
  };
  const refs = [...new Set(entries.map(([, f]) => get(f, 'r')).filter((r) => r !== undefined))];
  const data = new Map<string, { event: string; head: string }>();
  if (refs.length > 0) {
    const pipeline = redis.pipeline();
    for (const ref of refs) pipeline.hmget(keys.eventData(ref, shard), 'e', 'h');
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([err, reply], i) => {
      const [event, head] = (err ? [] : reply) as (string | null)[];
      if (event != null && head != null) data.set(refs[i]!, { event, head });
    });
  }
  const events: LoggedEvent[] = [];
  for (const [eventId, fields] of entries) {
    const ref = get(fields, 'r');
    if (ref === undefined) {
      const event = get(fields, 'event') ?? '';
      events.push({
        eventId,
        event,
        data: logEntryData(eventId, get(fields, 'head') ?? '', get(fields, 'sep') ?? ''),
      });
      continue;
    }
    const stored = data.get(ref);
    if (!stored) return { events, complete: false };
    // The recipient's notify flag lives in their entry (`n=0`: silent), not in the shared data.
    const notify = get(fields, 'n') !== '0';
    events.push({
      eventId,
      event: stored.event,
      data: userCopyData(notifyHead(stored.head, notify), eventId),
    });
  }
  return { events, complete: true };
}

/** Orders Redis stream ids (`<ms>-<seq>`); malformed ids sort first. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = parseStreamId(a);
  const [bm = 0n, bs = 0n] = parseStreamId(b);
  return am < bm ? -1 : am > bm ? 1 : as < bs ? -1 : as > bs ? 1 : 0;
}

const U64_MAX = 2n ** 64n - 1n;

/**
 * `<ms>-<seq>` as two bigints, or an empty array for anything else, including parts above 2^64-1 that Redis
 * would refuse as a stream id.
 */
export function parseStreamId(id: string): [bigint, bigint] | [] {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  if (!m) return [];
  const ms = BigInt(m[1]!);
  const seq = BigInt(m[2]!);
  return ms > U64_MAX || seq > U64_MAX ? [] : [ms, seq];
}
