import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DOWNLOAD_PHASES,
  TASK_STATES,
  TERMINAL_TASK_STATES,
  TaskReportBody,
  initialTaskState,
  isTerminalTaskState,
  reportedTaskState,
  transitionTask,
  type TaskMachineState,
  type TaskReport,
  type TaskState,
} from '../src/index.js';

const at = (state: TaskState, progress = 0): TaskMachineState => ({ state, progress, phase: null });
const ORDER: TaskState[] = ['queued', 'dispatched', 'running'];

describe('task state machine: every pair of states', () => {
  // The table the module comment states: forward (skips allowed) from a non-terminal state, the same state
  // is a replay, back or out of a terminal state is illegal.
  for (const from of TASK_STATES) {
    for (const to of TASK_STATES) {
      const expected =
        from === to
          ? 'replay'
          : isTerminalTaskState(from)
            ? 'illegal_transition'
            : isTerminalTaskState(to) || ORDER.indexOf(to) > ORDER.indexOf(from)
              ? 'applied'
              : 'illegal_transition';
      it(`${from} → ${to} is ${expected}`, () => {
        const result = transitionTask(at(from), { state: to });
        expect(result.kind).toBe(expected);
        if (result.kind === 'illegal_transition')
          expect(result).toEqual({ kind: 'illegal_transition', from, to });
        if (result.kind === 'applied') expect(result.next.state).toBe(to);
      });
    }
  }

  it('keeps progress monotone and sets succeeded to 100', () => {
    expect(transitionTask(at('running', 40), { state: 'running', progress: 60 })).toEqual({
      kind: 'applied',
      next: { state: 'running', progress: 60, phase: null },
    });
    expect(transitionTask(at('running', 60), { state: 'running', progress: 40 })).toEqual({
      kind: 'progress_regressed',
      from: 60,
      to: 40,
    });
    expect(transitionTask(at('running', 60), { state: 'running', progress: 60 })).toEqual({ kind: 'replay' });
    expect(transitionTask(at('running', 60), { state: 'running' })).toEqual({ kind: 'replay' });
    expect(transitionTask(at('running', 60), { state: 'failed' })).toEqual({
      kind: 'applied',
      next: { state: 'failed', progress: 60, phase: null },
    });
    expect(transitionTask(at('running', 60), { state: 'succeeded', progress: 10 })).toEqual({
      kind: 'applied',
      next: { state: 'succeeded', progress: 100, phase: null },
    });
    // a terminal state is final whatever else the report says
    expect(transitionTask(at('failed', 60), { state: 'failed', progress: 90 })).toEqual({ kind: 'replay' });
  });

  it('maps download phases to progress floors, in order', () => {
    let s = initialTaskState({ state: 'dispatched' });
    const steps: TaskReport[] = [
      { state: 'running', phase: 'downloading' },
      { state: 'running', phase: 'downloading', progress: 45 },
      { state: 'running', phase: 'applying' },
      { state: 'running', phase: 'rebooting' },
      { state: 'running', phase: 'verifying' },
    ];
    const seen: number[] = [];
    for (const step of steps) {
      const r = transitionTask(s, step);
      expect(r.kind).toBe('applied');
      if (r.kind === 'applied') s = r.next;
      seen.push(s.progress);
    }
    expect(seen).toEqual([10, 45, 70, 80, 90]);
    expect(s.phase).toBe('verifying');
    expect(transitionTask(s, { state: 'running', phase: 'downloading' }).kind).toBe('progress_regressed');
    expect(transitionTask(s, { state: 'running', phase: 'verifying' })).toEqual({ kind: 'replay' });
  });

  it('ends a download failed on a TransferComplete fault 9010-9020', () => {
    const body = (faultCode: number, state = 'running') =>
      TaskReportBody.safeParse({ deviceId: 1, kind: 'download', state, faultCode });
    for (const code of [9010, 9015, 9020]) {
      const parsed = body(code);
      expect(parsed.success).toBe(true);
      if (parsed.success) expect(reportedTaskState(parsed.data)).toBe('failed');
    }
    expect(body(9009).success).toBe(false);
    expect(body(9021).success).toBe(false);
    expect(body(9002, 'failed').success).toBe(true);
    // only downloads have TransferComplete
    expect(
      TaskReportBody.safeParse({ deviceId: 1, kind: 'reboot', state: 'running', faultCode: 9010 }).success,
    ).toBe(false);
  });
});

/** A random report: any state, sometimes a progress, sometimes a download phase while running. */
const reportArb: fc.Arbitrary<TaskReport> = fc
  .record({
    state: fc.constantFrom(...TASK_STATES),
    progress: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    phase: fc.option(fc.constantFrom(...DOWNLOAD_PHASES), { nil: undefined }),
  })
  .map((r) => ({ ...r, phase: r.state === 'running' ? r.phase : undefined }));

const apply = (reports: TaskReport[]): { state: TaskMachineState | null; applied: TaskMachineState[] } => {
  let state: TaskMachineState | null = null;
  const applied: TaskMachineState[] = [];
  for (const r of reports) {
    if (state === null) {
      state = initialTaskState(r);
      applied.push(state);
      continue;
    }
    const t = transitionTask(state, r);
    if (t.kind === 'applied') {
      state = t.next;
      applied.push(state);
    }
  }
  return { state, applied };
};

const rank = (s: TaskState): number => (isTerminalTaskState(s) ? 3 : ORDER.indexOf(s));

describe('task state machine: properties over random report orders', () => {
  it('never goes back, never leaves a terminal state, never lowers progress', () => {
    fc.assert(
      fc.property(fc.array(reportArb, { minLength: 1, maxLength: 30 }), (reports) => {
        const { applied } = apply(reports);
        for (let i = 1; i < applied.length; i++) {
          const [a, b] = [applied[i - 1]!, applied[i]!];
          expect(isTerminalTaskState(a.state)).toBe(false);
          expect(rank(b.state)).toBeGreaterThanOrEqual(rank(a.state));
          expect(b.progress).toBeGreaterThanOrEqual(a.progress);
          expect(b).not.toEqual(a); // an applied report always changes something: replays are not applied
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('the in-order delivery of a shuffled lifecycle ends where the lifecycle ends', () => {
    // A task's true history (queued, dispatched, running with rising progress, one terminal state), reported
    // in any order with duplicates: whatever arrives, the stored state never passes the truth and, once the
    // terminal report arrives, is that terminal state.
    const lifecycle = fc
      .tuple(
        fc.uniqueArray(fc.integer({ min: 1, max: 99 }), { maxLength: 5 }),
        fc.constantFrom(...TERMINAL_TASK_STATES),
      )
      .map(([ps, end]) => {
        const truth: TaskReport[] = [{ state: 'queued' }, { state: 'dispatched' }];
        for (const p of [...ps].sort((a, b) => a - b)) truth.push({ state: 'running', progress: p });
        truth.push({ state: end });
        return truth;
      });
    fc.assert(
      fc.property(
        lifecycle.chain((truth) =>
          fc.tuple(fc.constant(truth), fc.shuffledSubarray(truth.concat(truth), { minLength: 1 })),
        ),
        ([truth, arrivals]) => {
          const { state } = apply(arrivals);
          const end = truth[truth.length - 1]!.state;
          if (arrivals.some((r) => r.state === end)) {
            // the terminal report came: nothing before or after it can overwrite it...
            const terminalSeen = arrivals.findIndex((r) => isTerminalTaskState(r.state));
            expect(state!.state).toBe(arrivals[terminalSeen]!.state);
          } else {
            expect(isTerminalTaskState(state!.state)).toBe(false);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('applying a sequence twice changes nothing the second time (replays are no-ops)', () => {
    fc.assert(
      fc.property(fc.array(reportArb, { minLength: 1, maxLength: 20 }), (reports) => {
        const once = apply(reports).state!;
        const last = reports[reports.length - 1]!;
        const again = transitionTask(once, last);
        expect(again.kind === 'applied').toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
