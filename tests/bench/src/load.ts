/**
 * Driving a system under test: connecting one socket per user, POSTing alarms at a set rate as collectors
 * do, and accounting for every delivery (latency from just before the POST was sent to the frame's arrival,
 * and exactness: every expected delivery, none twice, none to anyone else).
 */
import http from 'node:http';
import { signUserJwt } from '@alarmcast/auth';
import { WIRE_EVENTS } from '@alarmcast/contracts';
import { JWT_SECRET } from '@alarmcast/e2e/stack';
import type { BenchSocket, ConnectUser, Delivery } from './delivery.js';
import type { BenchWorld } from './bench-world.js';
import { round } from './proc-stats.js';

/** Receives every delivery of every socket; the harness points it at the run in progress. */
export type DeliverySink = (userId: number, d: Delivery) => void;

/** Connects a socket for each user, `parallel` handshakes at a time. */
export async function connectAll(
  connect: ConnectUser,
  userIds: readonly number[],
  sink: DeliverySink,
  parallel = 100,
): Promise<BenchSocket[]> {
  const sockets: BenchSocket[] = [];
  let next = 0;
  const lane = async () => {
    while (next < userIds.length) {
      const userId = userIds[next++]!;
      const jwt = await signUserJwt(JWT_SECRET, userId);
      sockets.push(await connect(userId, jwt, (d) => sink(userId, d)));
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return sockets;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  label: string;
  ratePerS: number;
  warmupS: number;
  durationS: number;
  alarmsSent: number;
  /** answered 202 by the ingest; only these are owed to anybody */
  alarmsAcked: number;
  /** non-202 answers or failed requests, by status ("error" for no answer) */
  postFailures: Record<string, number>;
  deliveries: {
    expected: number;
    received: number;
    missing: number;
    duplicates: number;
    unexpected: number;
  };
  /** every expected delivery arrived, none twice, none elsewhere, every POST acknowledged */
  exact: boolean;
  /**
   * every acknowledged alarm reached each of its recipients once and nobody else (POSTs refused with 503
   * allowed): what overload must never break
   */
  acceptedDeliveredExactly: boolean;
  /** POST sent → frame received, per delivery, over the measured (non-warm-up) alarms */
  latencyMs: Percentiles;
  /** POST sent → frame received at the alarm's last recipient */
  lastRecipientMs: Percentiles;
  /** POST sent → 202 received */
  ackMs: Percentiles;
  /** the first POST → the last delivery of the run (warm-up included): how long a burst took to deliver */
  firstPostToLastDeliveryMs: number;
  /** measured alarms acknowledged, and their deliveries, per second of the measured window */
  sustained: { alarmsPerS: number; deliveriesPerS: number };
  /** the latency distribution, 100 points (for the chart) */
  latencyCdf: number[];
  /**
   * the slowest last-recipient latency among the alarms sent in each tenth of the measured window: shows
   * whether a tail is a start-up effect, a one-off stall or spread over the run
   */
  worstPerTenthMs: number[];
}

interface AlarmRecord {
  sentAt: number;
  measured: boolean;
  expected: ReadonlySet<number> | null;
  got: Set<number>;
  last: number;
}

/** The value under which a share `p` (0–1] of the sorted values lie (nearest rank); NaN for none. */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! : NaN;
}

export function percentiles(xs: Float64Array | number[]): Percentiles {
  const s = Float64Array.from(xs).sort();
  const at = (p: number) => round(quantile(s, p), 1);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

export interface LoadOptions {
  label: string;
  world: BenchWorld;
  ingestUrl: string;
  ratePerS: number;
  durationS: number;
  /** seconds at the same rate before the measured window, checked for exactness but not timed */
  warmupS: number;
  /** how long to wait for deliveries still owed after the last POST @defaultValue 10 */
  drainS?: number;
  /** devices to raise alarms on, in turn @defaultValue every device */
  deviceIds?: readonly number[];
  /**
   * POST through /v1/alarms/batch, this many alarms per request (each request at the time its first alarm is
   * due); without it, one POST /v1/alarms per alarm
   */
  batch?: number;
  /** called with the run's sink before the first POST; the harness routes socket deliveries to it */
  attach: (sink: DeliverySink) => void;
}

/** A unique prefix per run, so a straggler from an earlier run is never taken for this run's delivery. */
let runCounter = 0;

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const run = `r${process.pid}x${++runCounter}`;
  const devices = o.deviceIds ?? o.world.deviceIds;
  const alarms = new Map<string, AlarmRecord>();
  const latencies: number[] = [];
  let received = 0;
  let duplicates = 0;
  let unexpected = 0;
  let expected = 0;
  let measuredFrom = Infinity;
  let lastMeasuredDelivery = 0;
  let measuredDeliveries = 0;
  let firstPostAt = Infinity;
  let lastDeliveryAt = -Infinity;

  o.attach((userId, d) => {
    const alarm = alarms.get(d.data.alarm.alarm_identifier);
    if (!alarm || d.event !== WIRE_EVENTS.alarmCreated || !alarm.expected?.has(userId)) {
      unexpected++;
      return;
    }
    if (alarm.got.has(userId)) {
      duplicates++;
      return;
    }
    alarm.got.add(userId);
    received++;
    lastDeliveryAt = Math.max(lastDeliveryAt, d.at);
    const ms = d.at - alarm.sentAt;
    alarm.last = Math.max(alarm.last, ms);
    if (alarm.measured) {
      latencies.push(ms);
      measuredDeliveries++;
      lastMeasuredDelivery = d.at;
    }
  });

  const total = Math.round((o.warmupS + o.durationS) * o.ratePerS);
  const warm = Math.round(o.warmupS * o.ratePerS);
  const acks: number[] = [];
  const postFailures: Record<string, number> = {};
  let acked = 0;
  let ackedMeasured = 0;
  const posts: Promise<void>[] = [];
  const start = performance.now();
  const progress = setInterval(() => {
    const t = (performance.now() - start) / 1000;
    process.stderr.write(
      `\r[${o.label}] ${t.toFixed(0).padStart(3)}s sent ${alarms.size}/${total} acked ${acked} ` +
        `delivered ${received}/${expected} dup ${duplicates} unexpected ${unexpected}   `,
    );
  }, 1000);

  const onAnswer = (record: AlarmRecord, status: number | string) => {
    if (status === 202) {
      acked++;
      expected += record.expected!.size;
      if (record.measured) {
        ackedMeasured++;
        acks.push(performance.now() - record.sentAt);
      }
    } else {
      postFailures[status] = (postFailures[status] ?? 0) + 1;
      record.expected = null;
    }
  };
  const perRequest = o.batch ?? 1;
  for (let i = 0; i < total; i += perRequest) {
    const due = start + (i * 1000) / o.ratePerS;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const items: { ident: string; deviceId: number; record: AlarmRecord }[] = [];
    for (let j = i; j < Math.min(total, i + perRequest); j++) {
      const ident = `${run}-${j}`;
      const deviceId = devices[j % devices.length]!;
      const record: AlarmRecord = {
        sentAt: performance.now(),
        measured: j >= warm,
        // Matched against deliveries at once (one may beat the 202); counted as owed only once acknowledged.
        expected: o.world.recipientsOf(deviceId),
        got: new Set(),
        last: 0,
      };
      if (record.measured) measuredFrom = Math.min(measuredFrom, record.sentAt);
      alarms.set(ident, record);
      items.push({ ident, deviceId, record });
    }
    firstPostAt = Math.min(firstPostAt, items[0]!.record.sentAt);
    posts.push(
      o.batch === undefined
        ? postAlarm(o.ingestUrl, o.world.collectorToken, items[0]!.deviceId, items[0]!.ident).then((status) =>
            onAnswer(items[0]!.record, status),
          )
        : postBatch(o.ingestUrl, o.world.collectorToken, items).then((statuses) =>
            items.forEach((item, k) => onAnswer(item.record, statuses[k]!)),
          ),
    );
  }
  await Promise.all(posts);
  const drainUntil = performance.now() + (o.drainS ?? 10) * 1000;
  while (received < expected && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  // A little longer, for duplicates or strays that would arrive after the last expected delivery.
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(progress);
  process.stderr.write('\n');
  o.attach(() => {});

  const measured = [...alarms.values()].filter((a) => a.measured && a.expected);
  const lastPerAlarm = measured.map((a) => a.last);
  const tenth = Math.max(1, Math.ceil(measured.length / 10));
  const worstPerTenthMs = Array.from({ length: Math.ceil(measured.length / tenth) }, (_, k) =>
    round(Math.max(...lastPerAlarm.slice(k * tenth, (k + 1) * tenth)), 0),
  );
  const window = Math.max(1e-3, (lastMeasuredDelivery - measuredFrom) / 1000);
  const sorted = Float64Array.from(latencies).sort();
  return {
    label: o.label,
    ratePerS: o.ratePerS,
    warmupS: o.warmupS,
    durationS: o.durationS,
    alarmsSent: total,
    alarmsAcked: acked,
    postFailures,
    deliveries: { expected, received, missing: expected - received, duplicates, unexpected },
    exact: received === expected && duplicates === 0 && unexpected === 0 && acked === total,
    acceptedDeliveredExactly: received === expected && duplicates === 0 && unexpected === 0,
    latencyMs: percentiles(sorted),
    lastRecipientMs: percentiles(lastPerAlarm),
    ackMs: percentiles(acks),
    firstPostToLastDeliveryMs: received > 0 ? round(lastDeliveryAt - firstPostAt, 0) : NaN,
    sustained: {
      alarmsPerS: round(ackedMeasured / window, 1),
      deliveriesPerS: round(measuredDeliveries / window, 0),
    },
    worstPerTenthMs,
    latencyCdf: Array.from({ length: 100 }, (_, k) => round(quantile(sorted, (k + 1) / 100), 2)),
  };
}

/**
 * Keep-alive connections to the ingest, as a collector fleet behind a proxy would hold. node:http rather
 * than fetch: fetch's web streams and abort signals cost the harness (which shares the cores with the
 * system under test) several times more CPU per request.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

const alarmBody = (deviceId: number, ident: string) => ({
  deviceId,
  alarmIdentifier: ident,
  eventType: 'Communications Alarm',
  probableCause: 'Loss of signal',
  specificProblem: 'bench',
  perceivedSeverity: 'Major',
});

/**
 * Sends `body` as JSON with a collector token (every scenario's requests to the ingest); the status and the
 * answer's text, or for no answer "error <cause>" ("error ECONNRESET", "error timeout"), so a failed run
 * says what failed.
 */
export function sendJson(
  method: 'POST' | 'PUT',
  url: string,
  token: string,
  body: string,
  via: http.Agent = agent,
  retried = false,
): Promise<{ status: number | string; text: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method,
        agent: via,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 'error', text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', () => resolve({ status: 'error', text: '' }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The keep-alive race: the ingest closed a connection it found idle (keepAliveTimeout) as this
      // request went out on it. In that race the server has read nothing, so sending again cannot
      // duplicate; node's docs suggest this retry (`reusedSocket`), as HTTP clients commonly do. The
      // ingest does not crash in a benchmark, the one other way to get a reset on a reused socket.
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        resolve(sendJson(method, url, token, body, via, true));
        return;
      }
      resolve({ status: `error ${err.code ?? err.message}`, text: '' });
    });
    // A run must end by itself: a request with no answer in 30 s counts as failed.
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

const post = (url: string, token: string, body: string) => sendJson('POST', url, token, body);

async function postAlarm(
  ingestUrl: string,
  token: string,
  deviceId: number,
  ident: string,
): Promise<number | string> {
  return (await post(`${ingestUrl}/v1/alarms`, token, JSON.stringify(alarmBody(deviceId, ident)))).status;
}

/** One POST /v1/alarms/batch; each item's status (the whole request's, if it was refused as a whole). */
async function postBatch(
  ingestUrl: string,
  token: string,
  items: readonly { deviceId: number; ident: string }[],
): Promise<(number | string)[]> {
  const body = JSON.stringify({ alarms: items.map((i) => alarmBody(i.deviceId, i.ident)) });
  const { status, text } = await post(`${ingestUrl}/v1/alarms/batch`, token, body);
  if (status !== 200) return items.map(() => status);
  const { results } = JSON.parse(text) as { results: { index: number; status: number }[] };
  const byIndex = new Map(results.map((r) => [r.index, r.status]));
  return items.map((_, k) => byIndex.get(k) ?? 'missing');
}
