/**
 * The task state machine, one pure function that every writer applies (the ingest's `PUT /v1/tasks/{id}`,
 * the inform-driven confirmation of downloads) and that the property tests drive: what the platform reports
 * is never stored as-is, it is the machine's result from the stored state and the report.
 *
 *   queued → dispatched → running → succeeded | failed | cancelled | expired
 *
 * - A report may skip states (the platform need not report every step: a reboot goes dispatched → succeeded),
 *   but never goes back: a state earlier than the stored one is an out-of-order report (a `running` that
 *   arrives after `succeeded`, an old `queued` after `dispatched`) and is refused, not applied.
 * - Terminal states (succeeded, failed, cancelled, expired) are final; a different state afterwards is refused.
 * - Progress (0-100) never goes down, within a state or across states; a report that would lower it is
 *   refused. `succeeded` sets it to 100. For downloads, the TR-069 phase sets a floor (DOWNLOAD_PHASES).
 * - A replay of the current state (same state, no higher progress, no later phase; for a terminal state,
 *   the same state whatever else it says) changes nothing and is answered as a replay: 200, no event.
 */

export const TASK_STATES = [
  'queued',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'expired',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TERMINAL_TASK_STATES = ['succeeded', 'failed', 'cancelled', 'expired'] as const;
export type TerminalTaskState = (typeof TERMINAL_TASK_STATES)[number];

export const isTerminalTaskState = (s: TaskState): s is TerminalTaskState =>
  (TERMINAL_TASK_STATES as readonly string[]).includes(s);

/** Order along the machine: every terminal state is one step after `running`. */
const RANK: Record<TaskState, number> = {
  queued: 0,
  dispatched: 1,
  running: 2,
  succeeded: 3,
  failed: 3,
  cancelled: 3,
  expired: 3,
};

/**
 * The phases of a TR-069 download (firmware upgrade) while it is `running`, in order, each with the
 * progress it stands for at least: the ACS sent Download (dispatched), the CPE fetches the image
 * (downloading), writes it (applying), reboots into it (rebooting), and the ACS waits for the inform that
 * reports the new version (verifying). `progress` within `downloading` may be reported in between; the
 * phases of other kinds of task are not modelled (their `progress` is whatever the platform reports).
 */
export const DOWNLOAD_PHASES = ['downloading', 'applying', 'rebooting', 'verifying'] as const;
export type DownloadPhase = (typeof DOWNLOAD_PHASES)[number];
export const DOWNLOAD_PHASE_PROGRESS: Record<DownloadPhase, number> = {
  downloading: 10,
  applying: 70,
  rebooting: 80,
  verifying: 90,
};

/**
 * TransferComplete fault codes of TR-069 (CWMP, Annex A.3.3.1): a download that ends with one of these failed.
 * 9010 download failure, 9011 upload failure, 9012 server authentication failure, 9013 unsupported transfer
 * protocol, 9014-9020 the later download faults (join multicast group, contact file server, access file,
 * complete download, file corrupted, file authentication, window).
 */
export const TRANSFER_COMPLETE_FAULTS = { min: 9010, max: 9020 } as const;
export const isTransferCompleteFault = (code: number): boolean =>
  code >= TRANSFER_COMPLETE_FAULTS.min && code <= TRANSFER_COMPLETE_FAULTS.max;

/** What the machine keeps of a task. */
export interface TaskMachineState {
  state: TaskState;
  progress: number;
  phase: DownloadPhase | null;
}

/** One report, as the machine reads it (the body's other fields are stored alongside). */
export interface TaskReport {
  state: TaskState;
  progress?: number | undefined;
  phase?: DownloadPhase | undefined;
}

export type TaskTransition =
  /** a new or changed state: store `next`, broadcast */
  | { kind: 'applied'; next: TaskMachineState }
  /** the current state again: answer 200, store and broadcast nothing */
  | { kind: 'replay' }
  /** a terminal state left, or an earlier state than the current one (an out-of-order report) */
  | { kind: 'illegal_transition'; from: TaskState; to: TaskState }
  /** the report would lower the progress (or go back a download phase) */
  | { kind: 'progress_regressed'; from: number; to: number };

const phaseRank = (p: DownloadPhase | null): number => (p === null ? -1 : DOWNLOAD_PHASES.indexOf(p));

/** The progress a state and phase stand for at least. */
function progressFloor(state: TaskState, phase: DownloadPhase | null): number {
  if (state === 'succeeded') return 100;
  return phase === null ? 0 : DOWNLOAD_PHASE_PROGRESS[phase];
}

/** The first report of a task (no stored state): any state may be the first one seen. */
export function initialTaskState(report: TaskReport): TaskMachineState {
  const phase = report.state === 'running' ? (report.phase ?? null) : null;
  return {
    state: report.state,
    progress: Math.max(report.progress ?? 0, progressFloor(report.state, phase)),
    phase,
  };
}

/** The machine: what a report does to the stored state. Pure; see the module comment for the rules. */
export function transitionTask(current: TaskMachineState, report: TaskReport): TaskTransition {
  const { state: from } = current;
  const to = report.state;
  if (isTerminalTaskState(from)) {
    return from === to ? { kind: 'replay' } : { kind: 'illegal_transition', from, to };
  }
  if (RANK[to] < RANK[from]) return { kind: 'illegal_transition', from, to };

  // A phase only means something while running; a later state leaves it behind.
  const phase = to === 'running' ? (report.phase ?? (from === 'running' ? current.phase : null)) : null;
  if (to === 'running' && from === 'running' && phaseRank(phase) < phaseRank(current.phase)) {
    return {
      kind: 'progress_regressed',
      from: current.progress,
      to: progressFloor(to, phase),
    };
  }
  if (report.progress !== undefined && report.progress < current.progress && to !== 'succeeded') {
    return { kind: 'progress_regressed', from: current.progress, to: report.progress };
  }
  const progress = Math.max(current.progress, report.progress ?? 0, progressFloor(to, phase));
  if (to === from && progress === current.progress && phase === current.phase) return { kind: 'replay' };
  return { kind: 'applied', next: { state: to, progress, phase } };
}
