/**
 * One device's tasks as its panel shows them: the open ones (queued, dispatched, running) each with a progress
 * bar, and the recently finished ones (with the fault of a failed one), built from `DeviceTaskUpdated` on the
 * device's channel (its snapshot carries the open tasks) and `GET /v1/devices/{id}/tasks` (ARCHITECTURE.md
 * "Phase 3 events"). No DOM here, so the rules are tested without a browser.
 */
// Type-only: the page's bundle gets no code from contracts, only the shape (as alarm-store.ts).
import type { TaskState, TaskWire } from '@alarmcast/contracts';

export type Task = TaskWire;

/** `data` of `App\Events\DeviceTaskUpdated` on `private-device.{id}` and `private-campaign.{id}`. */
export interface TaskEvent {
  task: Task;
  /** one of the device's open tasks, sent after the status snapshot on every (re)subscribe */
  snapshot?: boolean;
}

export const TASK_EVENT = 'App\\Events\\DeviceTaskUpdated';

/** The panel lists this many finished tasks, newest first. */
export const FINISHED_SHOWN = 10;
/** Finished tasks kept in memory (beyond this only their ids, so a late open copy is still refused). */
const FINISHED_KEPT = 100;

const OPEN: readonly TaskState[] = ['queued', 'dispatched', 'running'];
const STATES: readonly TaskState[] = [...OPEN, 'succeeded', 'failed', 'cancelled', 'expired'];
export const isOpenTask = (t: Pick<Task, 'state'>) => OPEN.includes(t.state);
/** Order along the state machine: every terminal state is one step after `running`. */
const rank = (s: TaskState) => Math.min(STATES.indexOf(s), 3);

const nullable = (v: unknown, type: 'string' | 'number') => v === null || typeof v === type;

/** Sort comparator on ISO timestamps (or any strings), the latest first. */
export const latestFirst = (a: string, b: string): number => (a < b ? 1 : a > b ? -1 : 0);

/** A task is applied only when it has the fields the panel reads, with their types; anything else is dropped. */
export function isTask(x: unknown): x is Task {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Record<string, unknown>;
  return (
    typeof t.id === 'string' &&
    typeof t.device_id === 'number' &&
    typeof t.kind === 'string' &&
    STATES.includes(t.state as TaskState) &&
    typeof t.progress === 'number' &&
    nullable(t.phase, 'string') &&
    nullable(t.fault_code, 'number') &&
    nullable(t.fault_string, 'string') &&
    nullable(t.campaign_id, 'string') &&
    typeof t.updated_at === 'string' &&
    typeof t.created_at === 'string'
  );
}

export function isTaskEvent(x: unknown): x is TaskEvent {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  return isTask(e.task) && (e.snapshot === undefined || typeof e.snapshot === 'boolean');
}

/**
 * Whether `next` is a later view of the task than `held`. Events of one task can arrive out of order (a
 * snapshot read while an update was in flight, the API's answer racing the channel), so the later
 * `updated_at` wins; at the same instant, the later state or the higher progress. A finished task never
 * reopens: terminal states are final on the server too.
 */
export function isLaterTask(next: Task, held: Task | undefined): boolean {
  if (!held) return true;
  if (!isOpenTask(held) && isOpenTask(next)) return false;
  if (next.updated_at !== held.updated_at) return next.updated_at > held.updated_at;
  if (rank(next.state) !== rank(held.state)) return rank(next.state) > rank(held.state);
  return next.progress > held.progress;
}

export class DeviceTasks {
  private readonly tasks = new Map<string, Task>();
  /** ids of finished tasks dropped from `tasks` (memory bound) */
  private readonly forgotten = new Set<string>();

  constructor(readonly deviceId: number) {}

  /** Applies one task (event, snapshot or API); returns whether anything shown changed. */
  apply(task: Task): boolean {
    if (task.device_id !== this.deviceId || this.forgotten.has(task.id)) return false;
    const held = this.tasks.get(task.id);
    if (!isLaterTask(task, held)) return false;
    this.tasks.set(task.id, task);
    if (!isOpenTask(task)) this.trimFinished();
    return true;
  }

  /** The open tasks, oldest first (the order they were created in). */
  get open(): Task[] {
    return [...this.tasks.values()]
      .filter(isOpenTask)
      .sort((a, b) => latestFirst(b.created_at, a.created_at));
  }

  /** The finished tasks, the most recently finished first, at most FINISHED_SHOWN. */
  get finished(): Task[] {
    return this.finishedNewestFirst().slice(0, FINISHED_SHOWN);
  }

  private finishedNewestFirst(): Task[] {
    return [...this.tasks.values()]
      .filter((t) => !isOpenTask(t))
      .sort((a, b) => latestFirst(a.updated_at, b.updated_at));
  }

  private trimFinished(): void {
    const finished = this.finishedNewestFirst();
    for (const t of finished.slice(FINISHED_KEPT)) {
      this.tasks.delete(t.id);
      this.forgotten.add(t.id);
    }
  }
}

/** How the panel names a task kind. */
const KIND_LABELS: Record<string, string> = {
  reboot: 'Reboot',
  factoryReset: 'Factory reset',
  download: 'Download',
  upload: 'Upload',
  setParameterValues: 'Set parameters',
  getParameterValues: 'Get parameters',
  addObject: 'Add object',
  deleteObject: 'Delete object',
  other: 'Task',
};
export const kindLabel = (kind: string) => KIND_LABELS[kind] ?? kind;

/** `running · downloading · 40 %`: the line under a task's name. */
export function taskStatusText(t: Task): string {
  return [t.state, t.phase, `${t.progress} %`].filter((p) => p !== null && p !== '').join(' · ');
}

/** `fault 9010: Download failure`, or null when the task carries no fault. */
export function faultText(t: Pick<Task, 'fault_code' | 'fault_string'>): string | null {
  const code = t.fault_code !== null && t.fault_code !== 0 ? String(t.fault_code) : null;
  const text = t.fault_string !== null && t.fault_string !== '' ? t.fault_string : null;
  if (code === null && text === null) return null;
  return `fault ${[code, text].filter((p) => p !== null).join(': ')}`;
}
