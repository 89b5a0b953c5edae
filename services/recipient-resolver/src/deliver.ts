import type { Redis, RedisKeys } from '@alarmcast/redis';
import { userChannel } from '@alarmcast/contracts';

/**
 * Delivers one event to a batch of users, atomically per call. For each user not yet in the event's
 * "delivered" set: append the event to the user's bounded log (a stream: its entry id becomes the user's
 * `event_id`, ordered per user), then publish a PubSubEnvelope on the user's channel. The set makes a
 * retried job skip users already served, so nobody gets an event twice; being in one script, "logged" and
 * "published" cannot come apart.
 *
 * The envelope is built here with cjson (it must carry the per-user event id) and is checked against the
 * PubSubEnvelope schema in the tests. Log and channel keys are computed inside the script, which is fine on
 * one Redis (and on a Redis Cluster only if they shared a slot; the cluster variant would run per user).
 *
 * KEYS[1] delivered set
 * ARGV: 1 log key prefix, 2 pub/sub channel prefix for user channels, 3 event name, 4 data head (the event
 * data JSON without its closing brace), 5 separator before `"event_id"`, 6 log max length, 7 delivered TTL
 * seconds, 8 node id, 9.. user ids
 */
const DELIVER_SCRIPT = `
local logPrefix, chPrefix, event, head, sep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen, ttl, node = ARGV[6], ARGV[7], ARGV[8]
local delivered = 0
for i = 9, #ARGV do
  local uid = ARGV[i]
  if redis.call('SADD', KEYS[1], uid) == 1 then
    local id = redis.call('XADD', logPrefix .. uid, 'MAXLEN', '~', maxlen, '*', 'event', event, 'data', head)
    local channel = 'private-user.' .. uid
    redis.call('PUBLISH', chPrefix .. uid, cjson.encode({
      v = 1, node = node, type = 'event', channel = channel, event = event,
      data = head .. sep .. '"event_id":"' .. id .. '"}', eventId = id }))
    delivered = delivered + 1
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
return delivered
`;

/** Users per script call: bounds how long one call holds Redis (a 10,000-user tenant is 20 calls). */
const CHUNK = 500;

/** The script as ioredis defines it (EVALSHA, falling back to EVAL once per connection). */
type DeliverCommand = (setKey: string, ...args: (string | number)[]) => Promise<number>;

export interface DeliverOptions {
  logMaxEvents: number;
  deliveredTtlS: number;
  node: string;
}

export class EventDeliverer {
  private readonly run: DeliverCommand;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    private readonly options: DeliverOptions,
  ) {
    redis.defineCommand('alarmcastDeliver', { numberOfKeys: 1, lua: DELIVER_SCRIPT });
    const command = (redis as unknown as { alarmcastDeliver: DeliverCommand }).alarmcastDeliver;
    this.run = command.bind(redis);
  }

  /**
   * Sends `event` with `dataJson` (an object's JSON text) to every user in `userIds`, each once per
   * `eventId` however often this is called. Returns how many users got it in this call.
   */
  async deliver(
    eventId: string,
    event: string,
    dataJson: string,
    userIds: readonly number[],
  ): Promise<number> {
    const body = dataJson.trimEnd();
    if (!body.startsWith('{') || !body.endsWith('}')) throw new Error('event data must be a JSON object');
    const head = body.slice(0, -1);
    const sep = /^\{\s*$/.test(head) ? '' : ',';
    const fixed = [
      this.keys.userLogPrefix,
      this.keys.pubsubChannel(userChannel('')),
      event,
      head,
      sep,
      this.options.logMaxEvents,
      this.options.deliveredTtlS,
      this.options.node,
    ];
    const setKey = this.keys.deliveredTo(eventId);
    let delivered = 0;
    for (let i = 0; i < userIds.length; i += CHUNK) {
      delivered += await this.run(setKey, ...fixed, ...userIds.slice(i, i + CHUNK));
    }
    return delivered;
  }
}
