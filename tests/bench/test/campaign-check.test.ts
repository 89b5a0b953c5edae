import { describe, expect, it } from 'vitest';
import {
  certainRanks,
  checkBroadcasts,
  feasible,
  firstCertain,
  type Broadcast,
  type DevicePlan,
} from '../src/campaign-check.js';

// bit i: CHAIN[i] = pending, queued, dispatched, running, succeeded, failed
const PENDING = 1;
const QUEUED = 2;
const DISPATCHED = 4;
const RUNNING = 8;

const counts = (c: Partial<Record<string, number>>) => ({
  pending: 0,
  queued: 0,
  dispatched: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  cancelled: 0,
  expired: 0,
  ...c,
});
const broadcast = (
  c: Partial<Record<string, number>>,
  version: number,
  updatedAt: number,
  arrivedWall: number,
) => ({ counts: counts(c), version, updatedAt, arrivedWall }) satisfies Broadcast;

/** Two devices: A queued (sent 0, acked 10) then dispatched (sent 20, acked 30); B queued at 40, acked 50. */
const devices = (): DevicePlan[] => [
  {
    terminal: 'succeeded',
    reports: [
      { rank: 1, sentWall: 0, ackWall: 10 },
      { rank: 2, sentWall: 20, ackWall: 30 },
    ],
  },
  { terminal: 'failed', reports: [{ rank: 1, sentWall: 40, ackWall: 50 }] },
];

describe('campaign broadcast checks', () => {
  it('feasible: devices with interval bounds must make up the counts exactly', () => {
    // one device anywhere pending..dispatched, one fixed queued: one pending + one dispatched is possible
    const groups = new Map([
      [PENDING | QUEUED | DISPATCHED, 1],
      [QUEUED, 1],
    ]);
    expect(feasible(groups, counts({ pending: 1, queued: 1 }))).toBe(true);
    // both ends taken but the fixed device has nowhere to go
    expect(feasible(groups, counts({ pending: 1, dispatched: 1 }))).toBe(false);
    expect(feasible(groups, counts({ queued: 1 }))).toBe(false);
    expect(feasible(new Map([[RUNNING, 2]]), counts({ running: 1, succeeded: 1 }))).toBe(false);
  });

  it('a broadcast within the acknowledged and sent reports is exact; one beyond them is not', () => {
    // read after A's dispatched was acknowledged (updated_at 30), arriving before B's report left
    expect(checkBroadcasts(devices(), [broadcast({ dispatched: 1, pending: 1 }, 2, 30, 35)], 2).inexact).toBe(
      0,
    );
    // B counted queued before its report was sent
    expect(checkBroadcasts(devices(), [broadcast({ dispatched: 1, queued: 1 }, 3, 30, 35)], 2).inexact).toBe(
      1,
    );
    // A still queued although its dispatched was acknowledged before updated_at
    expect(checkBroadcasts(devices(), [broadcast({ queued: 1, pending: 1 }, 1, 30, 35)], 2).inexact).toBe(1);
    // A's dispatched in flight at updated_at 25 (acknowledged at 30, before the broadcast arrived at 35): the
    // read may have come before its commit, so either is right
    for (const c of [
      { queued: 1, pending: 1 },
      { dispatched: 1, pending: 1 },
    ])
      expect(checkBroadcasts(devices(), [broadcast(c, c.queued ? 1 : 2, 25, 35)], 2).inexact).toBe(0);
    // counts that do not add up to the device count
    expect(checkBroadcasts(devices(), [broadcast({ dispatched: 1 }, 2, 30, 35)], 2).inexact).toBe(1);
  });

  it('the version must be the transitions the counts stand for, and never go back', () => {
    expect(
      checkBroadcasts(devices(), [broadcast({ dispatched: 1, pending: 1 }, 3, 30, 35)], 2),
    ).toMatchObject({
      versionMismatch: 1,
    });
    const back = checkBroadcasts(
      devices(),
      [
        broadcast({ dispatched: 1, queued: 1 }, 3, 55, 60),
        broadcast({ dispatched: 1, pending: 1 }, 2, 55, 61),
      ],
      2,
    );
    expect(back.nonMonotone).toBe(1);
    const again = checkBroadcasts(
      devices(),
      [
        broadcast({ dispatched: 1, queued: 1 }, 3, 55, 60),
        broadcast({ dispatched: 1, queued: 1 }, 3, 55, 61),
      ],
      2,
    );
    expect(again).toMatchObject({ inexact: 0, versionMismatch: 0, nonMonotone: 0 });
  });

  it('a report is certainly in a broadcast once its acknowledgement precedes updated_at, or the counts force it', () => {
    // updated_at 5: nothing acknowledged before it; the counts (queued 1) force A queued, B's not yet sent
    const early = broadcast({ queued: 1, pending: 1 }, 1, 5, 15);
    // updated_at 30: A dispatched acknowledged by then
    const later = broadcast({ dispatched: 1, pending: 1 }, 2, 30, 35);
    const certain = certainRanks(devices(), [early, later]);
    expect([...certain[0]!]).toEqual([1, 0]);
    expect([...certain[1]!]).toEqual([2, 0]);
    expect(firstCertain(certain, 0, 1)).toBe(0);
    expect(firstCertain(certain, 0, 2)).toBe(1);
    expect(firstCertain(certain, 1, 1)).toBe(-1);
    // in flight at updated_at and not forced by the counts (either state fits): not certain
    const open = certainRanks(devices(), [broadcast({ queued: 1, pending: 1 }, 1, 25, 26)]);
    expect([...open[0]!]).toEqual([1, 0]);
  });
});
