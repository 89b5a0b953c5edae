/**
 * The Socket.IO peer's device status feed, for the `informs` and `campaign` scenarios. Both systems share alarmcast's ingest,
 * which stores each device's latest status in Redis and publishes its conflated changes on the device's
 * state pub/sub channel (packages/redis state-channel.ts). An alarmcast edge subscribes to the channels its
 * sockets hold; Socket.IO has no such thing (its Redis adapter sends every room's messages to every node),
 * so the peer's idiomatic equivalent is one process that takes every device change and emits it to the
 * device's room through `@socket.io/redis-emitter`, as its resolver does for alarms.
 *
 *   node --conditions=source --import tsx tests/bench/src/peer/socketio-state-bridge.ts
 *   env: REDIS_URL, REDIS_PREFIX, BRIDGE_PORT (its /healthz)
 */
import { createServer } from 'node:http';
import { Emitter } from '@socket.io/redis-emitter';
import { RedisKeys, createRedis, decodeEnvelope } from '@alarmcast/redis';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`socketio-state-bridge: ${name} is required`);
  return value;
};
const redisUrl = env('REDIS_URL');
const keys = new RedisKeys(env('REDIS_PREFIX'));
const pub = createRedis(redisUrl, { name: `peer-bridge-${process.pid}:emit` });
const sub = createRedis(redisUrl, { name: `peer-bridge-${process.pid}:sub` });
const emitter = new Emitter(pub, { key: `${keys.prefix}:socket.io` });

// Every shard's device state channels, and the campaign channels (`campaign`: DeviceTaskUpdated and
// FirmwareCampaignProgress; a campaign id of digits only is on a shard, any other is not). A pattern
// subscription of its own (the transport has none, and this is the peer, not alarmcast): it is what
// Socket.IO's adapter does too.
const patterns = [
  ...Array.from({ length: keys.shards }, (_, s) => `${keys.stateChannelPrefix(s)}private-device.*`),
  ...Array.from({ length: keys.shards }, (_, s) => `${keys.stateChannelPrefix(s)}private-campaign.*`),
  `${keys.prefix}:ch:private-campaign.*`,
];
let forwarded = 0;
let dropped = 0;
sub.on('pmessage', (_pattern: string, _channel: string, message: string) => {
  const envelope = decodeEnvelope(message);
  const m =
    envelope?.type === 'event'
      ? /^private-(device|campaign)\.([A-Za-z0-9_-]+)$/.exec(envelope.channel)
      : undefined;
  if (!envelope || envelope.type !== 'event' || !m) {
    dropped++;
    return;
  }
  emitter.to(`${m[1]}:${m[2]}`).emit(envelope.event, JSON.parse(envelope.data) as unknown);
  forwarded++;
});
await sub.psubscribe(...patterns);

const health = createServer((req, res) => {
  const ok = req.url === '/healthz';
  res
    .writeHead(ok ? 200 : 404, { 'content-type': 'application/json' })
    .end(ok ? JSON.stringify({ status: 'ok', forwarded, dropped }) : '');
});
await new Promise<void>((resolve, reject) => {
  health.once('error', reject);
  health.listen(Number(env('BRIDGE_PORT')), env('HOST', '127.0.0.1'), resolve);
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    health.close();
    sub.disconnect();
    pub.disconnect();
    process.exit(0);
  });
}
