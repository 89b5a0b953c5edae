import { describe, expect, it } from 'vitest';
import {
  DeviceTasks,
  FINISHED_SHOWN,
  faultText,
  isLaterTask,
  isTaskEvent,
  taskStatusText,
  type Task,
} from '../web/device-tasks.js';

const at = (s: number) => new Date(Date.UTC(2026, 11, 2, 5, 0, s)).toISOString();
const task = (over: Partial<Task> = {}): Task => ({
  id: 't1',
  device_id: 7,
  tenant_id: 1,
  kind: 'download',
  state: 'queued',
  progress: 0,
  phase: null,
  fault_code: null,
  fault_string: null,
  detail: null,
  requested_by: null,
  campaign_id: null,
  target_software_version: null,
  confirmed_by_inform: false,
  created_at: at(0),
  updated_at: at(0),
  ...over,
});

describe('DeviceTasks', () => {
  it('lists open tasks oldest first and moves a task to the finished list when it ends', () => {
    const tasks = new DeviceTasks(7);
    expect(tasks.apply(task({ id: 'b', created_at: at(2), updated_at: at(2) }))).toBe(true);
    expect(tasks.apply(task({ id: 'a' }))).toBe(true);
    expect(tasks.open.map((t) => t.id)).toEqual(['a', 'b']);
    tasks.apply(task({ id: 'a', state: 'running', phase: 'downloading', progress: 40, updated_at: at(3) }));
    expect(tasks.open[0]).toMatchObject({ id: 'a', state: 'running', progress: 40 });
    tasks.apply(task({ id: 'a', state: 'failed', fault_code: 9010, progress: 40, updated_at: at(4) }));
    expect(tasks.open.map((t) => t.id)).toEqual(['b']);
    expect(tasks.finished).toMatchObject([{ id: 'a', state: 'failed', fault_code: 9010 }]);
  });

  it('keeps the later view of a task whatever order the copies arrive in, and never reopens a finished one', () => {
    const tasks = new DeviceTasks(7);
    tasks.apply(task({ state: 'running', progress: 50, updated_at: at(5) }));
    // an older copy (a snapshot read before the update, the API racing the channel): ignored
    expect(tasks.apply(task({ state: 'queued', updated_at: at(1) }))).toBe(false);
    expect(tasks.open[0]!.progress).toBe(50);
    // the same copy again: nothing shown changes
    expect(tasks.apply(task({ state: 'running', progress: 50, updated_at: at(5) }))).toBe(false);
    tasks.apply(task({ state: 'succeeded', progress: 100, updated_at: at(6) }));
    // an open copy with a later timestamp cannot reopen it: terminal states are final
    expect(tasks.apply(task({ state: 'running', progress: 60, updated_at: at(7) }))).toBe(false);
    expect(tasks.open).toEqual([]);
    expect(tasks.finished[0]!.state).toBe('succeeded');
  });

  it("ignores another device's tasks", () => {
    const tasks = new DeviceTasks(7);
    expect(tasks.apply(task({ device_id: 8 }))).toBe(false);
    expect(tasks.open).toEqual([]);
  });

  it(`shows at most ${FINISHED_SHOWN} finished tasks, the latest first`, () => {
    const tasks = new DeviceTasks(7);
    for (let i = 0; i < FINISHED_SHOWN + 5; i++)
      tasks.apply(task({ id: `r${i}`, kind: 'reboot', state: 'succeeded', updated_at: at(i) }));
    expect(tasks.finished).toHaveLength(FINISHED_SHOWN);
    expect(tasks.finished[0]!.id).toBe(`r${FINISHED_SHOWN + 4}`);
  });

  it('at the same instant, the later state or the higher progress wins', () => {
    const held = task({ state: 'running', progress: 10, updated_at: at(1) });
    expect(isLaterTask(task({ state: 'running', progress: 20, updated_at: at(1) }), held)).toBe(true);
    expect(isLaterTask(task({ state: 'failed', progress: 10, updated_at: at(1) }), held)).toBe(true);
    expect(isLaterTask(task({ state: 'dispatched', progress: 10, updated_at: at(1) }), held)).toBe(false);
  });
});

describe('task texts', () => {
  it('names the state, phase and progress, and the fault', () => {
    expect(taskStatusText(task({ state: 'running', phase: 'applying', progress: 70 }))).toBe(
      'running · applying · 70 %',
    );
    expect(taskStatusText(task())).toBe('queued · 0 %');
    expect(faultText(task({ fault_code: 9010, fault_string: 'Download failure' }))).toBe(
      'fault 9010: Download failure',
    );
    expect(faultText(task({ fault_code: 0, fault_string: 'timed out' }))).toBe('fault timed out');
    expect(faultText(task({ fault_code: 0 }))).toBeNull();
  });
});

describe('isTaskEvent', () => {
  it('accepts the contract shape and refuses anything else', () => {
    expect(isTaskEvent({ task: task() })).toBe(true);
    expect(isTaskEvent({ task: task(), snapshot: true })).toBe(true);
    for (const bad of [
      null,
      {},
      { task: { ...task(), state: 'done' } },
      { task: { ...task(), progress: '5' } },
      { task: { ...task(), device_id: '7' } },
      { task: task(), snapshot: 'yes' },
    ])
      expect(isTaskEvent(bad)).toBe(false);
  });
});
