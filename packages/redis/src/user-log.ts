import type { RedisConnection } from './client.js';
import type { RedisKeys } from './keys.js';
import { userCopyData } from './envelope-codec.js';

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

/** Why a replay cannot be trusted to be complete. */
export type LogGap = 'log_trimmed' | 'log_expired' | 'too_many_events' | 'event_expired';

/**
 * The events of a user's log after `afterId`, oldest first, for a client resuming from its last seen
 * event. `gap` says why, when continuity cannot be proven: entries after `afterId` were trimmed away, the log
 * has expired, or there are more than `limit` to replay. The client must then reload its state (through
 * the API) instead of trusting the replay.
 */
export async function readUserLogAfter(
  redis: RedisConnection,
  keys: RedisKeys,
  userId: number,
  afterId: string,
  limit = 10_000,
): Promise<{ events: LoggedEvent[]; gap: LogGap | null }> {
  const key = keys.userLog(userId);
  const [entries, info] = await Promise.all([
    redis.xrange(key, `(${afterId}`, '+', 'COUNT', limit + 1),
    redis.call('XINFO', 'STREAM', key).then(
      (reply) => reply as unknown[],
      () => null, // no such key: the log expired (or never existed)
    ),
  ]);
  if (!info) return { events: [], gap: 'log_expired' };
  const field = (name: string): unknown => info[info.indexOf(name) + 1];
  // Trimming removes the oldest entries, and Redis counts every entry ever added: if some were removed and
  // the client's position is before the oldest one kept, it may have missed a removed one. (When its
  // position is exactly the last removed entry this reports a gap it did not have: the safe side.)
  const trimmed = Number(field('entries-added')) > Number(field('length'));
  const firstEntry = field('first-entry') as [string, string[]] | null;
  const oldestKept = firstEntry ? firstEntry[0] : null;
  const lastGenerated = String(field('last-generated-id'));
  const before = oldestKept
    ? compareStreamIds(afterId, oldestKept) < 0
    : compareStreamIds(afterId, lastGenerated) < 0;
  const gap: LogGap | null =
    trimmed && before ? 'log_trimmed' : entries.length > limit ? 'too_many_events' : null;
  const shard = keys.shardOf(userId);
  const { events, complete } = await resolveEntries(redis, keys, shard, entries.slice(0, limit));
  return { events, gap: gap ?? (complete ? null : 'event_expired') };
}

/**
 * Log entries → the events they name. An entry holds a reference (`r`, the event id) to the event's data,
 * stored once per shard (user-log-writer.ts): the copy of the user's shard, in the slot of the user's log, so
 * the data of every distinct reference is read in one round trip on a cluster too. An
 * entry whose data has expired makes the replay incomplete (`complete: false`): it is reported, never
 * skipped. Entries written before data was stored once carry it themselves (`event`, `head`, `sep`).
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
    events.push({ eventId, event: stored.event, data: userCopyData(stored.head, eventId) });
  }
  return { events, complete: true };
}

/** Orders Redis stream ids (`<ms>-<seq>`); malformed ids sort first. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = parseStreamId(a);
  const [bm = 0n, bs = 0n] = parseStreamId(b);
  return am < bm ? -1 : am > bm ? 1 : as < bs ? -1 : as > bs ? 1 : 0;
}

/** `<ms>-<seq>` as two bigints, or an empty array for anything else. */
export function parseStreamId(id: string): [bigint, bigint] | [] {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return m ? [BigInt(m[1]!), BigInt(m[2]!)] : [];
}
