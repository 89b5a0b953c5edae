/**
 * The `campaign` scenario's load: the platform reporting one firmware campaign's tasks with PUT
 * /v1/tasks/{taskId} at a set rate, and the accounting of what the sockets receive.
 *
 * Every device has one download task (`${campaignId}-${deviceId}`) reported through the TR-069 phases:
 * queued, dispatched, running (downloading 10 %, 50 %, applying, rebooting, verifying), then succeeded, or,
 * for every 20th device, failed with a TransferComplete fault code 9010-9020 (the CPE's TransferComplete,
 * the last message of a download). Devices go in waves of `ratePerS × STEP_GAP_S`: each wave's devices all
 * report a phase, then all the next, so a device's reports are STEP_GAP_S apart and the campaign always has
 * devices at several states. A device's next report is sent once its previous one was answered (as a
 * platform's per-task queue would), so the reports of one task never race; the offered rate is the
 * schedule, `sent` is when each really left.
 */
import http from 'node:http';
import { percentiles, sendJson, type Percentiles } from './load.js';
import { round } from './proc-stats.js';
import type { Broadcast, DevicePlan } from './campaign-check.js';
import type { CampaignFrame } from './campaign-watchers.js';

/** Seconds between two reports of one device. */
export const STEP_GAP_S = 2;

interface Step {
  state: 'queued' | 'dispatched' | 'running' | 'succeeded';
  phase?: 'downloading' | 'applying' | 'rebooting' | 'verifying';
  progress: number;
  /** the device's rank on the campaign chain once applied (campaign-check.ts) */
  rank: number;
}
export const STEPS: readonly Step[] = [
  { state: 'queued', progress: 0, rank: 1 },
  { state: 'dispatched', progress: 0, rank: 2 },
  { state: 'running', phase: 'downloading', progress: 10, rank: 3 },
  { state: 'running', phase: 'downloading', progress: 50, rank: 3 },
  { state: 'running', phase: 'applying', progress: 70, rank: 3 },
  { state: 'running', phase: 'rebooting', progress: 80, rank: 3 },
  { state: 'running', phase: 'verifying', progress: 90, rank: 3 },
  { state: 'succeeded', progress: 100, rank: 4 },
];
/** Every FAIL_EVERY-th device ends failed instead. */
export const FAIL_EVERY = 20;
export const fails = (deviceIndex: number): boolean => deviceIndex % FAIL_EVERY === FAIL_EVERY - 1;

export interface CampaignPlan {
  ingestUrl: string;
  /** a collector token with scope `tasks` */
  token: string;
  campaignId: string;
  deviceIds: readonly number[];
  ratePerS: number;
  /** reports sent in the first warmupS seconds are checked but left out of the latency figures */
  warmupS: number;
}

/** One report as the wire will show it: the key device-channel frames are matched by. */
const keyOf = (taskId: string, state: string, progress: number) => `${taskId}|${state}|${progress}`;

/**
 * The accounting of one run; `onDeviceFrame` / `onCampaignFrame` get every socket's frames while it lasts.
 * `sampled` campaign sockets also time the per-device changes on the campaign channel (all of them count
 * theirs): parsing 200 sockets × 500 frames/s in the harness would measure the harness.
 */
export class CampaignAccount {
  /** report key → when it was sent (performance.now()), whether it is measured, whether it was applied */
  readonly sent = new Map<string, { at: number; measured: boolean; applied: boolean }>();
  /** the measured reports that moved the campaign's counts: device index, rank reached, acknowledged (Date.now()) */
  readonly moves: { device: number; rank: number; ackWall: number }[] = [];
  readonly deviceLatencies: number[] = [];
  deviceReceived = 0;
  deviceDuplicates = 0;
  deviceStray = 0;
  readonly seenOnDevice = new Set<string>();
  /** per campaign socket: the progress broadcasts, in arrival order (snapshots left out) */
  readonly broadcasts: Broadcast[][] = [];
  readonly campaignTaskFrames: number[] = [];
  readonly campaignTaskLatencies: number[] = [];
  snapshots = 0;

  onDeviceFrame = (f: CampaignFrame): void => {
    if (f.event !== 'App\\Events\\DeviceTaskUpdated') return; // the status snapshot on subscribe
    const data = f.data() as { task: { id: string; state: string; progress: number }; snapshot?: boolean };
    if (data.snapshot) {
      this.snapshots++;
      return;
    }
    const key = keyOf(data.task.id, data.task.state, data.task.progress);
    const sent = this.sent.get(key);
    if (!sent) {
      this.deviceStray++;
      return;
    }
    if (this.seenOnDevice.has(key)) {
      this.deviceDuplicates++;
      return;
    }
    this.seenOnDevice.add(key);
    if (sent.measured) {
      this.deviceReceived++;
      this.deviceLatencies.push(f.at - sent.at);
    }
  };

  campaignSocket(index: number, sampled: boolean): (f: CampaignFrame) => void {
    const list: Broadcast[] = [];
    this.broadcasts[index] = list;
    this.campaignTaskFrames[index] = 0;
    return (f) => {
      if (f.event === 'App\\Events\\FirmwareCampaignProgress') {
        const data = f.data() as {
          campaign: { counts: Record<string, number>; version: number; updated_at: string };
          snapshot?: boolean;
        };
        if (data.snapshot) {
          this.snapshots++;
          return;
        }
        list.push({
          counts: data.campaign.counts,
          version: data.campaign.version,
          updatedAt: Date.parse(data.campaign.updated_at),
          arrivedWall: f.wallAt,
        });
      } else if (f.event === 'App\\Events\\DeviceTaskUpdated') {
        this.campaignTaskFrames[index]!++;
        if (!sampled) return;
        const data = f.data() as {
          task: { id: string; state: string; progress: number };
          snapshot?: boolean;
        };
        const sent = data.snapshot
          ? undefined
          : this.sent.get(keyOf(data.task.id, data.task.state, data.task.progress));
        if (sent?.measured) this.campaignTaskLatencies.push(f.at - sent.at);
      }
    };
  }
}

export interface CampaignRunResult {
  ratePerS: number;
  reports: number;
  /** from the first send to the last answer */
  runS: number;
  scheduleS: number;
  /** reports per second: offered (the schedule), sent, accepted (201/200 updated) over the run */
  offeredPerS: number;
  sentPerS: number;
  acceptedPerS: number;
  outcomes: Record<string, number>;
  failures: Record<string, number>;
  /** how late reports left against the schedule (a device's previous answer not in yet, or the loop) */
  sendLagMs: Percentiles;
  answerMs: Percentiles;
}

/** Sends every device's reports on the schedule; fills `devices` (for the checks) and `account.sent`. */
export async function runReports(
  plan: CampaignPlan,
  account: CampaignAccount,
  devices: DevicePlan[],
): Promise<CampaignRunResult> {
  const n = plan.deviceIds.length;
  const wave = Math.max(1, Math.round(plan.ratePerS * STEP_GAP_S));
  // The schedule: wave by wave, each wave's devices through every step.
  const schedule: { device: number; step: number }[] = [];
  for (let from = 0; from < n; from += wave)
    for (let step = 0; step < STEPS.length; step++)
      for (let device = from; device < Math.min(n, from + wave); device++) schedule.push({ device, step });
  for (let i = 0; i < n; i++) devices[i] = { terminal: fails(i) ? 'failed' : 'succeeded', reports: [] };

  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const outcomes: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const lag: number[] = [];
  const answers: number[] = [];
  const chains: Promise<boolean>[] = Array.from({ length: n }, () => Promise.resolve(true));
  let sent = 0;
  let accepted = 0;
  let lastAnswer = 0;
  const start = performance.now();
  const measuredFrom = start + plan.warmupS * 1000;
  const scheduleS = schedule.length / plan.ratePerS;

  const send = async (device: number, step: number, due: number): Promise<boolean> => {
    const deviceId = plan.deviceIds[device]!;
    const taskId = `${plan.campaignId}-${deviceId}`;
    const s = STEPS[step]!;
    const failing = step === STEPS.length - 1 && fails(device);
    const body = failing
      ? { state: 'failed', progress: 90, faultCode: 9010 + (device % 11), faultString: 'Download failure' }
      : { state: s.state, progress: s.progress, ...(s.phase ? { phase: s.phase } : {}) };
    const report = {
      deviceId,
      kind: 'download',
      campaignId: plan.campaignId,
      targetSoftwareVersion: '2.0.0',
      ...body,
    };
    const at = performance.now();
    const measured = due >= measuredFrom;
    if (measured) lag.push(at - due);
    const entry = { at, measured, applied: false };
    account.sent.set(keyOf(taskId, body.state, body.progress), entry);
    const record = { rank: s.rank, sentWall: Date.now(), ackWall: null as number | null };
    devices[device]!.reports.push(record);
    sent++;
    // PUT is idempotent by the task's id: sendJson's one resend after a keep-alive reset is safe too.
    const { status, text } = await sendJson(
      'PUT',
      `${plan.ingestUrl}/v1/tasks/${taskId}`,
      plan.token,
      JSON.stringify(report),
      agent,
    );
    lastAnswer = performance.now();
    if (measured) answers.push(lastAnswer - at);
    if (status === 200 || status === 201) {
      record.ackWall = Date.now();
      const outcome = (JSON.parse(text) as { outcome?: string }).outcome ?? '?';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (outcome === 'created' || outcome === 'updated') {
        accepted++;
        entry.applied = true;
        // The first report of a state moves a count; progress within running does not.
        if (measured && (step === 0 || STEPS[step - 1]!.rank < s.rank))
          account.moves.push({ device, rank: s.rank, ackWall: record.ackWall });
      }
      return true;
    }
    let code = '';
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
    } catch {
      // not JSON
    }
    const why = `${status} ${code}`.trim();
    failures[why] = (failures[why] ?? 0) + 1;
    // A refused report leaves the task where it was: its later reports would only be refused too.
    return false;
  };

  const progress = setInterval(() => {
    const t = (performance.now() - start) / 1000;
    process.stderr.write(
      `\r[campaign ${plan.ratePerS}/s] ${t.toFixed(0).padStart(3)}s sent ${sent}/${schedule.length} accepted ${accepted} ` +
        `device frames ${account.deviceReceived}   `,
    );
  }, 1000);
  for (let j = 0; j < schedule.length;) {
    const now = performance.now();
    // Everything due by now leaves in this pass (each device's report after its previous one's answer).
    for (; j < schedule.length && start + (j / plan.ratePerS) * 1000 <= now; j++) {
      const { device, step } = schedule[j]!;
      const due = start + (j / plan.ratePerS) * 1000;
      chains[device] = chains[device]!.then((ok) => (ok ? send(device, step, due) : false));
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(chains);
  clearInterval(progress);
  process.stderr.write('\n');
  agent.destroy();
  const runS = (lastAnswer - start) / 1000;
  return {
    ratePerS: plan.ratePerS,
    reports: schedule.length,
    runS: round(runS, 1),
    scheduleS: round(scheduleS, 1),
    offeredPerS: plan.ratePerS,
    sentPerS: round(sent / Math.max(runS, scheduleS), 1),
    acceptedPerS: round(accepted / Math.max(runS, scheduleS), 1),
    outcomes,
    failures,
    sendLagMs: percentiles(lag),
    answerMs: percentiles(answers),
  };
}
