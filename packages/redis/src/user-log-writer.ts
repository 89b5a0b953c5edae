import type { RedisConnection } from './client.js';
import { notifyHead, userBatchStart, userEventPieces } from './envelope-codec.js';
import type { RedisKeys } from './keys.js';

/**
 * Each user's event log: a Redis stream per user. Its entry ids are the user's `event_id`s (ordered per
 * user, as Redis assigns them); an entry holds the event name and its data without the id
 * (`head` = the data JSON minus its closing brace, `sep` = "," or "" before `"event_id"`), so that the
 * delivered data, `{...,"event_id":"<id>"}`, is rebuilt identically on replay by `logEntryData`.
 *
 * Retention (what a reconnecting client can resume from): at least the newest `minEvents` entries or
 * the last `minAgeS` seconds, whichever holds more, capped at `maxEvents`; a log nobody writes to
 * expires after `idleTtlS`.
 */
export interface UserLogRetention {
  /** @defaultValue 1000 */
  minEvents: number;
  /** @defaultValue 600 (10 minutes) */
  minAgeS: number;
  /** hard cap, so one flooded user cannot take Redis' memory @defaultValue 10000 */
  maxEvents: number;
  /** @defaultValue 86400 */
  idleTtlS: number;
  /**
   * How long an event's data (stored once, referenced by every recipient's log entry) is kept: a replay
   * that reaches an older entry gets a gap. At least `minAgeS`, so the time floor always holds.
   * @defaultValue 86400 (as long as an idle log lives)
   */
  eventDataTtlS: number;
}

export const DEFAULT_RETENTION: UserLogRetention = {
  minEvents: 1000,
  minAgeS: 600,
  maxEvents: 10_000,
  idleTtlS: 86_400,
  eventDataTtlS: 86_400,
};

/**
 * Appends one event to a batch of users' logs and publishes it, atomically per call. Users come in
 * ascending id order; for each one above the event's delivery mark: XADD to the user's log (its id becomes
 * the user's `event_id`) and trim it by the retention rule; then the event is published, and the mark
 * becomes the call's highest user id. A retried job thus skips everyone already served, so nobody gets an
 * event twice; being in one script, "logged", "published" and "marked" cannot come apart, and the per-user
 * order of ids is the order of publishing. (The mark is one number per event: a set of the users served,
 * as first built, held every delivery of the last DELIVERED_TTL_S in Redis' memory: measured 0.57 MB per
 * event for a 10,000-user tenant, ~500 MB at one alarm a second. The price: a user who joins between a
 * job's first attempt and its retry, with an id below the mark, does not get that event, which predates
 * them anyway.)
 *
 * Publishing, two ways (see PubSubEnvelope):
 * - per user: one `event` envelope on each user's channel, which only the edges holding that user receive;
 * - batched (when a batch channel is given): one `user-batch` envelope for the whole call on the fan-out
 *   channel every edge receives. For a large tenant this is 500 times fewer messages for Redis to publish
 *   and for the edges to read.
 *
 * Either envelope carries per-user event ids, so it is built here, from the pieces envelope-codec.ts
 * makes (the one definition of the byte layout; its test decodes what this script publishes): prefix ..
 * uid .. mid .. id .. mid2 .. id .. tail for a user's envelope, batchStart .. [uid,"id"],... .. ']}' for a
 * batch.
 *
 * Sharding: users are grouped by their shard (keys.ts RedisKeys.shards: 16 on a cluster, 1 on a single
 * Redis) and the script runs once per shard group
 * and chunk, with that shard's keys only: its delivery mark, its copy of the event's data, its users' logs
 * and channels and its `user-batch` channel all carry the shard's hash tag, so on a Redis Cluster every key
 * a call touches is in one slot (Redis refuses a script that reaches another), and publishing uses SPUBLISH
 * there (`shardedPubSub`), which stays within the shard. The same grouping runs on a single Redis (one
 * group), so both topologies run one code path; groups run concurrently (a user is in one group only, so per-user
 * order is unchanged).
 *
 * Trimming: only entries beyond the newest minEvents (XTRIM ... LIMIT len-minEvents) and older than
 * minAgeS (MINID) go; `~` trims whole stream nodes, so the floor holds and the cost stays O(1) amortized.
 *
 * Stored once: the event's name and data head go into one hash per event (KEYS[2], kept `dataTtlS`), and
 * a user's log entry holds only a reference to it (`r` = the outbox event id): ~15 bytes per delivery in
 * Redis' stream encoding instead of the ~550 of a copy of the data in every recipient's log (a
 * 10,000-user tenant at one alarm a second held ~5.5 GB); once per shard that has recipients, i.e. at most
 * `keys.shards` copies (one on a single Redis). A replay reads the data back by reference
 * (user-log.ts); a reference whose data has expired is a gap, never skipped.
 *
 * KEYS[1] the event's delivery mark on this shard (highest user id served), KEYS[2] the shard's copy of the
 * event's data
 * ARGV: 1 the shard's log key prefix, 2 the shard's pub/sub channel prefix for user channels, 3 the event's reference, 4 event
 * name, 5 data head (the data up to its closing brace, with a trailing comma when it has members),
 * 6 minEvents, 7 minAgeS, 8 maxEvents, 9 idleTtlS, 10 delivery mark TTL s, 11 data TTL s, 12-15 a user
 * envelope's constant pieces (see envelope-codec.ts userEventPieces), 16 the shard's batch channel ('' to
 * publish per user), 17 the batch envelope's start (see envelope-codec.ts userBatchStart), 18 the publish
 * command (PUBLISH or SPUBLISH), 19.. user ids (all of this shard)
 */
const DELIVER_SCRIPT = `
local logPrefix, chPrefix, ref, event, dataHead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local minEvents, minAgeS, maxEvents = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local idleTtl, deliveredTtl, dataTtl = ARGV[9], ARGV[10], ARGV[11]
local envStart, envAfterUser, envAfterId, envEnd = ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local batchChannel, batchStart, publish = ARGV[16], ARGV[17], ARGV[18]
local silentAfterId, silentBatchStart = ARGV[19], ARGV[20]
local batched = batchChannel ~= ''
local firstUser = 21
local mark = tonumber(redis.call('GET', KEYS[1]) or '0')
-- Users come in ascending order (of their absolute value: a negative id is a silent recipient): when the
-- last is served, the whole call is (a retry, or an earlier event that a later event's job delivered
-- already), at the cost of one GET.
if #ARGV < firstUser or math.abs(tonumber(ARGV[#ARGV])) <= mark then
  return 0
end
local now = redis.call('TIME')
local cutoff = tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - minAgeS * 1000) .. '-0'
local delivered, entries, silentEntries = 0, {}, {}
for i = firstUser, #ARGV do
  local n = tonumber(ARGV[i])
  local silent = n < 0
  if silent then n = -n end
  if n > mark then
    local uid = tostring(n)
    if delivered == 0 then
      -- The event's data, once for all its recipients; every log entry below only names it.
      redis.call('HSET', KEYS[2], 'e', event, 'h', dataHead)
      redis.call('EXPIRE', KEYS[2], dataTtl)
    end
    local log = logPrefix .. uid
    local id
    -- notify is the default; only a silent delivery costs a field in the entry
    if silent then
      id = redis.call('XADD', log, 'MAXLEN', '~', maxEvents, '*', 'r', ref, 'n', '0')
    else
      id = redis.call('XADD', log, 'MAXLEN', '~', maxEvents, '*', 'r', ref)
    end
    local len = redis.call('XLEN', log)
    if len > minEvents then
      redis.call('XTRIM', log, 'MINID', '~', cutoff, 'LIMIT', len - minEvents)
    end
    redis.call('EXPIRE', log, idleTtl)
    if batched then
      local list = entries
      if silent then list = silentEntries end
      list[#list + 1] = '[' .. uid .. ',"' .. id .. '"]'
    else
      local afterId = envAfterId
      if silent then afterId = silentAfterId end
      redis.call(publish, chPrefix .. uid, envStart .. uid .. envAfterUser .. id .. afterId .. id .. envEnd)
    end
    delivered = delivered + 1
  end
end
if batched then
  if #entries > 0 then
    redis.call(publish, batchChannel, batchStart .. table.concat(entries, ',') .. ']}')
  end
  if #silentEntries > 0 then
    redis.call(publish, batchChannel, silentBatchStart .. table.concat(silentEntries, ',') .. ']}')
  end
end
redis.call('SET', KEYS[1], tostring(math.abs(tonumber(ARGV[#ARGV]))), 'EX', deliveredTtl)
return delivered
`;

/**
 * Users per script call: bounds how long one call holds Redis and the size of a batch message (a
 * 10,000-user tenant is 20 calls).
 */
const CHUNK = 500;

/** The script as ioredis defines it (EVALSHA, falling back to EVAL once per connection). */
type DeliverCommand = (markKey: string, dataKey: string, ...args: (string | number)[]) => Promise<number>;

export interface UserLogWriterOptions {
  retention: UserLogRetention;
  /** how long "event E was delivered to user U" is remembered (must outlast job retries) */
  deliveredTtlS: number;
  /** publisher id carried in envelopes */
  node: string;
  /**
   * An event for at least this many users of one shard is published to them as `user-batch` envelopes on
   * that shard's fan-out channel instead of one envelope per user. @defaultValue 10
   */
  batchMinRecipients?: number;
  /**
   * Publish with SPUBLISH (sharded pub/sub, which a Redis Cluster keeps within the shard owning the
   * channel; the edges' transport must be ShardedPubSub) instead of PUBLISH.
   * @defaultValue true on a Redis Cluster connection, false on a single Redis
   */
  shardedPubSub?: boolean;
}

export class UserLogWriter {
  private readonly run: DeliverCommand;
  private readonly publish: 'PUBLISH' | 'SPUBLISH';

  constructor(
    redis: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly options: UserLogWriterOptions,
  ) {
    redis.defineCommand('alarmcastDeliver', { numberOfKeys: 2, lua: DELIVER_SCRIPT });
    const command = (redis as unknown as { alarmcastDeliver: DeliverCommand }).alarmcastDeliver;
    this.run = command.bind(redis);
    this.publish = (options.shardedPubSub ?? redis.isCluster) ? 'SPUBLISH' : 'PUBLISH';
  }

  /**
   * Sends `event` with `dataJson` (an object's JSON text) to every user in `userIds`, each once per
   * `eventId` however often this is called, with `"notify":true` in their copy, or `false` for the users in
   * `silent` (who must be in `userIds`). Returns how many users got it in this call.
   */
  async appendAndPublish(
    eventId: string,
    event: string,
    dataJson: string,
    userIds: readonly number[],
    silent?: ReadonlySet<number>,
  ): Promise<number> {
    const body = dataJson.trimEnd();
    if (!body.startsWith('{') || !body.endsWith('}')) throw new Error('event data must be a JSON object');
    const head = body.slice(0, -1);
    const sep = /^\{\s*$/.test(head) ? '' : ',';
    const { retention, node } = this.options;
    // The envelope pieces each carry the event's data: each is built once per event, and only if a call
    // reads it (per user or batched, with or without silent recipients).
    const made: { user?: string[]; silentUser?: string[]; batch?: string; silentBatch?: string } = {};
    const userPieces = () =>
      (made.user ??= userEventPieces(node, event, notifyHead(head + sep, true), eventId));
    const silentUserPieces = () =>
      (made.silentUser ??= userEventPieces(node, event, notifyHead(head + sep, false), eventId));
    const batchStart = () =>
      (made.batch ??= userBatchStart(node, event, notifyHead(head + sep, true), eventId));
    const silentBatchStart = () =>
      (made.silentBatch ??= userBatchStart(node, event, notifyHead(head + sep, false), eventId));
    const ttls = [
      retention.minEvents,
      retention.minAgeS,
      retention.maxEvents,
      retention.idleTtlS,
      this.options.deliveredTtlS,
      Math.max(retention.eventDataTtlS, retention.minAgeS),
    ];
    // The delivery mark relies on ascending ids, across chunks and across attempts.
    const ascending = [...new Set(userIds)].sort((x, y) => x - y);
    const batchMin = this.options.batchMinRecipients ?? 10;
    const publish = this.publish;
    const groups = new Map<number, number[]>();
    for (const uid of ascending) {
      const shard = this.keys.shardOf(uid);
      const group = groups.get(shard);
      const arg = silent?.has(uid) ? -uid : uid;
      if (group) group.push(arg);
      else groups.set(shard, [arg]);
    }
    const perShard = await Promise.all(
      [...groups].map(async ([shard, users]) => {
        // Decided per shard: a batch goes to every edge, so it pays off only for enough users of one shard.
        const batched = users.length >= batchMin;
        const anySilent = users.some((u) => u < 0);
        const args = [
          this.keys.userLogPrefix(shard),
          this.keys.userChannelPrefix(shard),
          eventId,
          event,
          head + sep,
          ...ttls,
          // Only the pieces this call's way of publishing reads: unused ones were most of the bytes a call
          // sent Redis (five copies of the data where two do).
          ...(batched ? ['', '', '', ''] : userPieces()),
          batched ? this.keys.userBatchChannel(shard) : '',
          batched ? batchStart() : '',
          publish,
          !batched && anySilent ? silentUserPieces()[2]! : '',
          batched && anySilent ? silentBatchStart() : '',
        ];
        const markKey = this.keys.deliveredTo(eventId, shard);
        const dataKey = this.keys.eventData(eventId, shard);
        let delivered = 0;
        for (let i = 0; i < users.length; i += CHUNK) {
          delivered += await this.run(markKey, dataKey, ...args, ...users.slice(i, i + CHUNK));
        }
        return delivered;
      }),
    );
    const delivered = perShard.reduce((sum, n) => sum + n, 0);
    return delivered;
  }
}
