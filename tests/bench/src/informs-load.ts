/**
 * The `informs` scenario's load: a collector fleet posting CWMP Inform summaries to POST
 * /v1/devices/informs in batches, as an ACS front-end does (every collector flushes what it received in
 * the last second, at most 1,000 informs a request), and the accounting of what the watchers receive.
 *
 * Three kinds of inform:
 *  - periodic (`2 PERIODIC`, nothing new): the bulk of the traffic; must cost little and send nothing;
 *  - value change (`4 VALUE CHANGE` with one changed parameter), a share of the periodic ones: a
 *    `DeviceStatusChanged` to whoever watches the device;
 *  - the flapping devices' boots (`1 BOOT`): each flapper informs once, falls silent until the presence
 *    detector declares it offline at its deadline, and boots again a few seconds later.
 * Latency is POST sent → frame received, matched by the frame's `last_inform_at` (each inform's
 * `informedAt` is unique per device); offline detection delay is the deadline (last inform + k × interval
 * + grace) → the offline frame's arrival, in wall-clock time.
 */
import http from 'node:http';
import { percentiles, sendJson, type Percentiles } from './load.js';
import { round } from './proc-stats.js';
import type { StatusFrame } from './device-watchers.js';

/** What the world's presence settings make of a flapper's silence (tenant overrides set by the world). */
export interface Presence {
  intervals: number;
  graceS: number;
  /** the flappers' periodicInformInterval */
  flapperIntervalS: number;
}

export interface InformsPlan {
  ingestUrl: string;
  /** one token per collector (scope `informs`) */
  collectorTokens: readonly string[];
  /** devices informing periodically, in turn */
  periodicDevices: readonly number[];
  /** devices that flap; each must be watched for the detection delay to be measured */
  flappers: readonly number[];
  watched: ReadonlySet<number>;
  presence: Presence;
  /** flapper cycle: boot, silence past the deadline, boot again */
  flapPeriodS: number;
  /** periodic informs per second (flappers come on top) */
  ratePerS: number;
  durationS: number;
  warmupS: number;
  /** share of periodic informs carrying a changed parameter */
  valueChangeShare: number;
  /** how often each collector flushes @defaultValue 1000 */
  flushMs?: number;
}

export interface InformsRunResult {
  ratePerS: number;
  durationS: number;
  informsSent: number;
  /** items answered 200 (changed / unchanged / duplicate) */
  informsAccepted: number;
  outcomes: Record<string, number>;
  /** per-item and per-request failures by status ("error": no answer) */
  failures: Record<string, number>;
  /** accepted informs per second of the measured window */
  ingestedPerS: number;
  batches: number;
  /** POST sent → answer, per batch (measured window) */
  batchAnswerMs: Percentiles;
  /** status changes on watched devices POSTed in the measured window, and how many of them reached their watcher */
  changes: { expected: number; received: number };
  /** POST sent → DeviceStatusChanged frame at the watcher */
  deliveryMs: Percentiles;
  /** flapper deadlines passed in the measured window, and offline frames received for them */
  offline: { expected: number; received: number; late: number };
  /** deadline → offline frame at the watcher */
  offlineDetectionMs: Percentiles;
  /** frames that match nothing this run sent (snapshots excluded) */
  strayFrames: number;
  snapshots: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

const post = (url: string, token: string, body: string) => sendJson('POST', url, token, body, agent);

interface Item {
  deviceId: number;
  informedAt: string;
  eventCodes: string[];
  periodicInformInterval: number;
  softwareVersion: string;
  hardwareVersion: string;
  uptimeS: number;
  parameters?: Record<string, string>;
}

interface PendingChange {
  sentAt: number;
  measured: boolean;
}

/**
 * The accounting of one run; `onFrame` is given every watcher's frames while the run lasts. Kept apart from
 * the POSTing so that two systems watching the same devices can be accounted for side by side.
 */
export class InformsAccount {
  /** `${deviceId} ${informedAt}` of each change POSTed to a watched device */
  readonly pending = new Map<string, PendingChange>();
  readonly latencies: number[] = [];
  changesExpected = 0;
  changesReceived = 0;
  /** flapper → wall-clock deadline (ms) of its last boot, and whether it was measured */
  readonly deadlines = new Map<number, { deadline: number; measured: boolean; seen: boolean }>();
  readonly detection: number[] = [];
  offlineExpected = 0;
  offlineReceived = 0;
  offlineLate = 0;
  stray = 0;
  snapshots = 0;

  onFrame = (f: StatusFrame): void => {
    if (f.data.snapshot) {
      this.snapshots++;
      return;
    }
    const device = f.data.device;
    if (device.online === false) {
      const d = this.deadlines.get(f.deviceId);
      if (!d || d.seen) {
        this.stray++;
        return;
      }
      d.seen = true;
      if (d.measured) {
        this.offlineReceived++;
        // The server's own deadline (arrival of the last inform + k × interval + grace) when the frame
        // states it, else the harness's (from the inform's send time: a little earlier, so never kinder).
        const stated = typeof device.offline_at === 'string' ? Date.parse(device.offline_at) : NaN;
        this.detection.push(f.wallAt - (Number.isFinite(stated) ? stated : d.deadline));
      }
      return;
    }
    const key = `${f.deviceId} ${String(device.last_inform_at)}`;
    const change = this.pending.get(key);
    if (!change) {
      this.stray++;
      return;
    }
    this.pending.delete(key);
    if (change.measured) {
      this.changesReceived++;
      this.latencies.push(f.at - change.sentAt);
    }
  };
}

/** Runs one load step; `account` receives the watchers' frames (the caller routes them). */
export async function runInforms(plan: InformsPlan, account: InformsAccount): Promise<InformsRunResult> {
  const flushMs = plan.flushMs ?? 1000;
  const collectors = plan.collectorTokens.length;
  const tickMs = flushMs / collectors;
  const outcomes: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const answerMs: number[] = [];
  let sent = 0;
  let accepted = 0;
  let acceptedMeasured = 0;
  let batches = 0;
  let cursor = 0;
  let changeSeq = 0;
  let debt = 0;
  const flapStart = new Map<number, number>();
  const start = performance.now();
  const measuredFrom = start + plan.warmupS * 1000;
  const end = measuredFrom + plan.durationS * 1000;
  const posts: Promise<void>[] = [];
  // Every flapper boots once per flapPeriodS, phases spread evenly over the period.
  plan.flappers.forEach((id, i) =>
    flapStart.set(id, start + (i / plan.flappers.length) * plan.flapPeriodS * 1000),
  );
  const { intervals, graceS, flapperIntervalS } = plan.presence;
  const deadlineAfterMs = (intervals * flapperIntervalS + graceS) * 1000;

  const progress = setInterval(() => {
    const t = (performance.now() - start) / 1000;
    process.stderr.write(
      `\r[informs ${plan.ratePerS}/s] ${t.toFixed(0).padStart(3)}s sent ${sent} accepted ${accepted} ` +
        `changes ${account.changesReceived}/${account.changesExpected} offline ${account.offlineReceived}/${account.offlineExpected}   `,
    );
  }, 1000);

  for (let tick = 0; ; tick++) {
    const due = start + tick * tickMs;
    if (due >= end) break;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const now = performance.now();
    // By schedule, not by the moment the timer fired: a flush due in the window is measured even if it ran
    // a millisecond early (the loop does not sleep for less than that).
    const measured = due >= measuredFrom;
    const wall = Date.now();
    const items: Item[] = [];
    const changes: { key: string }[] = [];
    // This collector's share of the periodic informs since its last flush.
    debt += (plan.ratePerS * tickMs) / 1000;
    const count = Math.floor(debt);
    debt -= count;
    for (let k = 0; k < count; k++) {
      const deviceId = plan.periodicDevices[cursor++ % plan.periodicDevices.length]!;
      // A device informs at most once per flush, so this is unique per device: frames are matched by it.
      const informedAt = new Date(wall).toISOString();
      const change = (changeSeq + k) % Math.round(1 / plan.valueChangeShare) === 0;
      const item: Item = {
        deviceId,
        informedAt,
        eventCodes: change ? ['2 PERIODIC', '4 VALUE CHANGE'] : ['2 PERIODIC'],
        periodicInformInterval: 300,
        softwareVersion: '1.0.0',
        hardwareVersion: 'HW1',
        uptimeS: 259_200 + Math.floor(now / 1000),
        ...(change ? { parameters: { 'Device.WiFi.Radio.1.Channel': String(changeSeq + k) } } : {}),
      };
      items.push(item);
      if (change && plan.watched.has(deviceId)) changes.push({ key: `${deviceId} ${informedAt}` });
    }
    changeSeq += count;
    // The flappers whose boot is due, in this collector's flush.
    for (const [deviceId, at] of flapStart) {
      if (at > now) continue;
      flapStart.set(deviceId, at + plan.flapPeriodS * 1000);
      const informedAt = new Date(wall).toISOString();
      items.push({
        deviceId,
        informedAt,
        eventCodes: ['1 BOOT'],
        periodicInformInterval: flapperIntervalS,
        softwareVersion: '1.0.0',
        hardwareVersion: 'HW1',
        uptimeS: 5,
      });
      if (plan.watched.has(deviceId)) changes.push({ key: `${deviceId} ${informedAt}` });
      const previous = account.deadlines.get(deviceId);
      if (previous && previous.measured && !previous.seen) account.offlineLate++;
      const deadline = Date.parse(informedAt) + deadlineAfterMs;
      // Measured if watched, and the deadline falls in the measured window, before the run stops booting it.
      const counted = measured && plan.watched.has(deviceId) && deadline < Date.now() + (end - now);
      account.deadlines.set(deviceId, { deadline, measured: counted, seen: false });
      if (counted) account.offlineExpected++;
    }
    if (items.length === 0) continue;
    const token = plan.collectorTokens[tick % collectors]!;
    for (let i = 0; i < items.length; i += 1000) {
      const batch = items.slice(i, i + 1000);
      const sentAt = performance.now();
      for (const c of changes) {
        account.pending.set(c.key, { sentAt, measured });
        if (measured) account.changesExpected++;
      }
      changes.length = 0;
      sent += batch.length;
      batches++;
      posts.push(
        post(`${plan.ingestUrl}/v1/devices/informs`, token, JSON.stringify({ informs: batch })).then(
          ({ status, text }) => {
            if (measured) answerMs.push(performance.now() - sentAt);
            if (status !== 200) {
              failures[status] = (failures[status] ?? 0) + batch.length;
              return;
            }
            const { results } = JSON.parse(text) as {
              results: { status: number; outcome?: string; error?: { code: string } }[];
            };
            for (const r of results) {
              if (r.status === 200) {
                accepted++;
                if (measured) acceptedMeasured++;
                outcomes[r.outcome ?? '?'] = (outcomes[r.outcome ?? '?'] ?? 0) + 1;
              } else {
                const why = `${r.status} ${r.error?.code ?? ''}`.trim();
                failures[why] = (failures[why] ?? 0) + 1;
              }
            }
          },
        ),
      );
    }
  }
  await Promise.all(posts);
  // Deliveries still owed, and the offline deadlines of the last boots, get time to arrive.
  const drainUntil = performance.now() + (deadlineAfterMs + 8000);
  while (
    performance.now() < drainUntil &&
    (account.changesReceived < account.changesExpected || account.offlineReceived < account.offlineExpected)
  )
    await new Promise((r) => setTimeout(r, 50));
  clearInterval(progress);
  process.stderr.write('\n');
  return {
    ratePerS: plan.ratePerS,
    durationS: plan.durationS,
    informsSent: sent,
    informsAccepted: accepted,
    outcomes,
    failures,
    ingestedPerS: round(acceptedMeasured / plan.durationS, 1),
    batches,
    batchAnswerMs: percentiles(answerMs),
    changes: { expected: account.changesExpected, received: account.changesReceived },
    deliveryMs: percentiles(account.latencies),
    offline: {
      expected: account.offlineExpected,
      received: account.offlineReceived,
      late: account.offlineLate,
    },
    offlineDetectionMs: percentiles(account.detection),
    strayFrames: account.stray,
    snapshots: account.snapshots,
  };
}
