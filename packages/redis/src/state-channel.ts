import type { RedisConnection } from './client.js';
import { stateEventData, stateEventPieces } from './envelope-codec.js';
import type { RedisKeys } from './keys.js';

/**
 * State channels, the second delivery model (ARCHITECTURE.md "Two delivery models"): a channel per entity
 * (`private-device.{id}`, a tenant's summary on `private-tenant.{id}`, later `private-campaign.{id}`) whose
 * subscribers want its latest state, not a log of it. Any number of writers (ingest processes) hand in
 * states; Redis keeps each channel's latest one, which an edge sends every (re)subscriber as a snapshot
 * (`readStateSnapshot`, one HMGET, no Postgres), and publishes changes conflated: at most one event per
 * channel per `minIntervalMs`, carrying the latest state and the union of the fields changed since the
 * previous event. The rule is enforced here, before pub/sub, so a chatty entity floods neither Redis nor a
 * socket, and it holds across writers because one script decides for all of them:
 *
 * - write (STATE_WRITE_SCRIPT): per update, keep it if its `version` is above the stored one (a late writer
 *   never overwrites a newer state); with changes, publish now if the channel's window has passed, else add
 *   the changes to the pending union and put the channel in its shard's due set at the window's end. An
 *   update without changes (a periodic inform) only refreshes the stored state.
 * - flush (STATE_FLUSH_SCRIPT, `StateChannelFlusher`, every `flushIntervalMs` in each writer process):
 *   publishes what is due, once: the script removes it from the due set as it publishes, so any number of
 *   flushers never publish one update twice.
 *
 * Keys: the hash `stateKey(channel)` (fields `st` state, `ver` version, `ev` event name, `root` the data key of
 * the entity, `min` the interval, `chg` pending changes, `last` last publish ms, `seq` updates published) and
 * the due set `stateDue(shard)`, both with the channel's shard tag, as is its pub/sub channel: one script
 * call per shard touches one Redis Cluster slot. A state unwritten for `ttlS` expires.
 *
 * What this does not give: delivery is best effort (no log, no resume). A subscriber converges because every
 * subscribe starts with the snapshot; a state written while Redis was unreachable is lost until the next
 * write of that entity (the caller logs it); a Redis that lost its data has no snapshots until then.
 */

/** One state handed to a state channel. */
export interface StateUpdate {
  /** the Pusher channel (a state channel: keys.stateShardOf is not null) */
  channel: string;
  /** the Pusher event name */
  event: string;
  /** the key of the entity in `data` (`device`, `summary`) */
  root: string;
  /** increases with every state of this channel (a database row version, a timestamp); decimal digits */
  version: string;
  /** the entity's latest state, an object's JSON text */
  state: string;
  /** the fields that changed with this state; empty: nothing to publish, only the stored state refreshed */
  changed: readonly string[];
  /** at most one event per this many ms on the channel */
  minIntervalMs: number;
}

export interface StateWriteResult {
  /** published at once */
  published: number;
  /** conflated: added to a pending event that the flusher publishes at its window's end */
  pending: number;
  /** stored without an event (no changes) */
  stored: number;
  /** older than the stored state: ignored */
  stale: number;
}

/** A channel's current state, as an edge sends it at subscribe. */
export interface StateSnapshot {
  event: string;
  /** the event's data with `"snapshot":true` and `changed: []` */
  data: string;
  /** updates published on the channel so far: a live event with this sequence or lower is older */
  seq: number;
}

// KEYS[1] the shard's due set. ARGV: 1 the shard's state key prefix, 2 its pub/sub channel prefix, 3 PUBLISH
// or SPUBLISH, 4-8 the envelope pieces (envelope-codec.ts stateEventPieces), 9 the state TTL s, then 7 per
// update: channel, event, root, min interval ms, version, state, changes (comma-separated, '' for none).
const STATE_WRITE_SCRIPT = `
local statePrefix, chPrefix, publish = ARGV[1], ARGV[2], ARGV[3]
local pStart, pAfterChannel, pAfterEvent, pAfterSeq, pEnd = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local ttl = ARGV[9]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local published, pending, stored, stale = 0, 0, 0, 0
for i = 10, #ARGV, 7 do
  local channel, event, root, minMs = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local version, state, changes = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local key = statePrefix .. channel
  local cur = redis.call('HMGET', key, 'ver', 'last', 'chg', 'seq')
  if cur[1] and tonumber(cur[1]) >= tonumber(version) then
    stale = stale + 1
  else
    redis.call('HSET', key, 'ver', version, 'st', state, 'ev', event, 'root', root, 'min', minMs)
    if changes == '' then
      stored = stored + 1
    else
      -- the union of the pending changes and these, in first-seen order
      local union, seen = {}, {}
      for name in string.gmatch((cur[3] or '') .. ',' .. changes, '[^,]+') do
        if not seen[name] then
          seen[name] = true
          union[#union + 1] = name
        end
      end
      local last = tonumber(cur[2] or '0')
      if now - last >= minMs then
        local seq = tonumber(cur[4] or '0') + 1
        local data = '{"' .. root .. '":' .. state .. ',"changed":["' .. table.concat(union, '","') .. '"]}'
        redis.call(publish, chPrefix .. channel, pStart .. channel .. pAfterChannel .. cjson.encode(event) ..
          pAfterEvent .. seq .. pAfterSeq .. cjson.encode(data) .. pEnd)
        redis.call('HSET', key, 'last', now, 'seq', seq, 'chg', '')
        redis.call('ZREM', KEYS[1], channel)
        published = published + 1
      else
        redis.call('HSET', key, 'chg', table.concat(union, ','))
        redis.call('ZADD', KEYS[1], last + minMs, channel)
        pending = pending + 1
      end
    end
    redis.call('EXPIRE', key, ttl)
  end
end
return {published, pending, stored, stale}
`;

// KEYS[1] the shard's due set. ARGV: 1 state key prefix, 2 pub/sub channel prefix, 3 publish command,
// 4-8 envelope pieces, 9 at most this many channels per call.
const STATE_FLUSH_SCRIPT = `
local statePrefix, chPrefix, publish = ARGV[1], ARGV[2], ARGV[3]
local pStart, pAfterChannel, pAfterEvent, pAfterSeq, pEnd = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[9]))
local published = 0
for _, channel in ipairs(due) do
  local key = statePrefix .. channel
  local h = redis.call('HMGET', key, 'st', 'ev', 'root', 'chg', 'seq')
  if h[1] and h[4] and h[4] ~= '' then
    local seq = tonumber(h[5] or '0') + 1
    local union = {}
    for name in string.gmatch(h[4], '[^,]+') do union[#union + 1] = name end
    local data = '{"' .. h[3] .. '":' .. h[1] .. ',"changed":["' .. table.concat(union, '","') .. '"]}'
    redis.call(publish, chPrefix .. channel, pStart .. channel .. pAfterChannel .. cjson.encode(h[2]) ..
      pAfterEvent .. seq .. pAfterSeq .. cjson.encode(data) .. pEnd)
    redis.call('HSET', key, 'last', now, 'seq', seq, 'chg', '')
    published = published + 1
  end
  redis.call('ZREM', KEYS[1], channel)
end
return published
`;

type ScriptCommand = (dueKey: string, ...args: (string | number)[]) => Promise<unknown>;

/** Change names travel comma-separated and unescaped through the script: plain identifiers only. */
const CHANGE_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const ROOT = /^[a-z][a-z0-9_]{0,63}$/;
/** Updates per script call: bounds how long one call holds Redis. */
const CHUNK = 200;

export interface StateChannelOptions {
  /** publisher id carried in envelopes */
  node: string;
  /**
   * A channel's state unwritten this long expires (its snapshot is gone until the next write).
   * @defaultValue 30 days
   */
  ttlS?: number;
  /** @defaultValue true on a Redis Cluster connection (SPUBLISH), false on a single Redis */
  shardedPubSub?: boolean;
}

/** Defines both scripts on a connection (once per connection; ioredis uses EVALSHA). */
function defineScripts(redis: RedisConnection): { write: ScriptCommand; flush: ScriptCommand } {
  const named = redis as unknown as {
    alarmcastStateWrite?: ScriptCommand;
    alarmcastStateFlush?: ScriptCommand;
  };
  if (!named.alarmcastStateWrite) {
    redis.defineCommand('alarmcastStateWrite', { numberOfKeys: 1, lua: STATE_WRITE_SCRIPT });
    redis.defineCommand('alarmcastStateFlush', { numberOfKeys: 1, lua: STATE_FLUSH_SCRIPT });
  }
  return {
    write: named.alarmcastStateWrite!.bind(redis),
    flush: named.alarmcastStateFlush!.bind(redis),
  };
}

/** The writers' side: hands states to their channels (see this module's comment for the rules). */
export class StateChannelWriter {
  private readonly scripts: { write: ScriptCommand; flush: ScriptCommand };
  private readonly publish: 'PUBLISH' | 'SPUBLISH';
  private readonly pieces: string[];
  private readonly ttlS: number;

  constructor(
    redis: RedisConnection,
    private readonly keys: RedisKeys,
    options: StateChannelOptions,
  ) {
    this.scripts = defineScripts(redis);
    this.publish = (options.shardedPubSub ?? redis.isCluster) ? 'SPUBLISH' : 'PUBLISH';
    const p = stateEventPieces(options.node);
    this.pieces = [p.start, p.afterChannel, p.afterEvent, p.afterSeq, p.end];
    this.ttlS = options.ttlS ?? 30 * 86_400;
  }

  /** Stores every update and publishes or conflates its changes; one script call per shard and chunk. */
  async write(updates: readonly StateUpdate[]): Promise<StateWriteResult> {
    const byShard = new Map<number, (string | number)[][]>();
    for (const u of updates) {
      const shard = this.keys.stateShardOf(u.channel);
      if (shard === null) throw new Error(`not a state channel: ${u.channel}`);
      if (!ROOT.test(u.root)) throw new Error(`invalid state root ${JSON.stringify(u.root)}`);
      if (!/^\d{1,18}$/.test(u.version))
        throw new Error(`invalid state version ${JSON.stringify(u.version)}`);
      for (const c of u.changed) if (!CHANGE_NAME.test(c)) throw new Error(`invalid change name ${c}`);
      const args = [u.channel, u.event, u.root, u.minIntervalMs, u.version, u.state, u.changed.join(',')];
      const list = byShard.get(shard);
      if (list) list.push(args);
      else byShard.set(shard, [args]);
    }
    const total: StateWriteResult = { published: 0, pending: 0, stored: 0, stale: 0 };
    await Promise.all(
      [...byShard].map(async ([shard, list]) => {
        for (let i = 0; i < list.length; i += CHUNK) {
          const [published, pending, stored, stale] = (await this.scripts.write(
            this.keys.stateDue(shard),
            ...this.shardArgs(shard),
            this.ttlS,
            ...list.slice(i, i + CHUNK).flat(),
          )) as number[];
          total.published += published!;
          total.pending += pending!;
          total.stored += stored!;
          total.stale += stale!;
        }
      }),
    );
    return total;
  }

  /** Publishes the conflated updates that are due, on every shard; returns how many. */
  async flushDue(limitPerShard = 500): Promise<number> {
    const counts = await Promise.all(
      Array.from({ length: this.keys.shards }, (_, shard) =>
        this.scripts.flush(this.keys.stateDue(shard), ...this.shardArgs(shard), limitPerShard),
      ),
    );
    return (counts as number[]).reduce((a, b) => a + b, 0);
  }

  private shardArgs(shard: number): string[] {
    return [
      this.keys.stateKeyPrefix(shard),
      this.keys.stateChannelPrefix(shard),
      this.publish,
      ...this.pieces,
    ];
  }
}

/**
 * Runs `writer.flushDue()` every `intervalMs` (a pending update goes out at most this late after its window
 * ends). Every writer process runs one; the script makes them share the work without repeats.
 */
export class StateChannelFlusher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly writer: StateChannelWriter,
    private readonly options: { intervalMs: number; onError: (err: unknown) => void },
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.writer
        .flushDue()
        .then(
          () => undefined,
          (err: unknown) => this.options.onError(err),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

/**
 * A state channel's current state for a new subscriber, or null when none is stored (never written, or
 * expired). One HMGET on the channel's own key: no Postgres, whatever the number of subscribers.
 */
export async function readStateSnapshot(
  redis: RedisConnection,
  keys: RedisKeys,
  channel: string,
): Promise<StateSnapshot | null> {
  const [state, event, root, seq] = await redis.hmget(keys.stateKey(channel), 'st', 'ev', 'root', 'seq');
  if (!state || !event || !root) return null;
  return { event, data: stateEventData(root, state, [], true), seq: Number(seq ?? '0') };
}
