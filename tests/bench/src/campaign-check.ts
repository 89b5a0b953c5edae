/**
 * The `campaign` scenario's checks of the aggregate broadcasts (`FirmwareCampaignProgress`), against what the
 * harness itself sent and had acknowledged. Pure functions over recorded times, so they are unit-tested
 * (test/campaign-check.test.ts) apart from any run.
 *
 * Every device of the campaign follows one plan of reports, each report moving it at most one state up the
 * chain pending → queued → dispatched → running → succeeded | failed (its terminal is its plan's); its
 * reports are sent one after the other (the next once the previous was answered). So a device's state at any
 * moment is a prefix of its plan, and a broadcast's counts can be checked against the harness' clocks:
 *
 * - lower bound: every report acknowledged (wall clock) no later than the broadcast's `updated_at` is in it.
 *   `updated_at` is the start (Postgres `now()`) of a transition the broadcast's read saw committed, so such a
 *   report committed before that transition started, and thus before the read;
 * - upper bound: no report sent after the broadcast arrived is in it;
 * - so each device's state in the broadcast lies between the two; the counts are exact iff some choice of a
 *   state per device within its bounds gives exactly those counts (Hall's condition over the state subsets,
 *   `feasible`), the counts add up to the device count, and `version` (the transitions applied) equals the
 *   sum over devices of their rank on the chain (each transition moves one device one state up);
 * - successive broadcasts are monotone: `version` never goes down (the same version is the same counts),
 *   and the devices at or past each state are never fewer.
 */

/** The chain's states, in rank order; succeeded and failed share the last rank. */
export const CHAIN = ['pending', 'queued', 'dispatched', 'running', 'succeeded', 'failed'] as const;
export type ChainState = (typeof CHAIN)[number];
export const rankOf = (s: ChainState): number => Math.min(CHAIN.indexOf(s), 4);

export interface SentReport {
  /** the device's rank once this report is applied (0-4) */
  rank: number;
  /** `Date.now()` when it was sent */
  sentWall: number;
  /** `Date.now()` when its acknowledgement (2xx) arrived; null: not (yet) acknowledged, or refused */
  ackWall: number | null;
}

export interface DevicePlan {
  /** the terminal state of the plan */
  terminal: 'succeeded' | 'failed';
  /** the reports sent so far, in order */
  reports: SentReport[];
}

export type Counts = Record<string, number>;

export interface Broadcast {
  counts: Counts;
  version: number;
  /** the campaign's `updated_at` (ms) */
  updatedAt: number;
  /** `Date.now()` at the subscriber when it arrived */
  arrivedWall: number;
}

const stateAt = (rank: number, terminal: DevicePlan['terminal']): ChainState =>
  rank < 4 ? CHAIN[rank]! : terminal;

/**
 * Whether the devices, each in one of the states of its bitmask (bit i: CHAIN[i]), can make up exactly
 * `counts`. Hall's theorem: for every set S of states, the devices that can only be in S are at most the
 * counts of S (the totals being equal, that gives a perfect assignment).
 */
export function feasible(groups: ReadonlyMap<number, number>, counts: Counts): boolean {
  const c = CHAIN.map((s) => counts[s] ?? 0);
  const total = [...groups.values()].reduce((a, b) => a + b, 0);
  if (c.reduce((a, b) => a + b, 0) !== total) return false;
  for (let set = 1; set < 1 << CHAIN.length; set++) {
    let capacity = 0;
    for (let i = 0; i < CHAIN.length; i++) if (set & (1 << i)) capacity += c[i]!;
    let need = 0;
    for (const [mask, n] of groups) if ((mask & ~set) === 0) need += n;
    if (need > capacity) return false;
  }
  return true;
}

/** The devices' possible states for a broadcast: bitmask → number of devices. */
export function boundsOf(devices: readonly DevicePlan[], b: Broadcast): Map<number, number> {
  const groups = new Map<number, number>();
  for (const d of devices) {
    const { mask } = boundOf(d, b);
    groups.set(mask, (groups.get(mask) ?? 0) + 1);
  }
  return groups;
}

/** One device's bounds in a broadcast: its lowest possible rank and its possible states (bitmask). */
function boundOf(d: DevicePlan, b: Broadcast): { lo: number; mask: number } {
  let lo = 0;
  let hi = 0;
  for (const r of d.reports) {
    if (r.sentWall <= b.arrivedWall) hi = Math.max(hi, r.rank);
    if (r.ackWall !== null && r.ackWall <= b.updatedAt) lo = Math.max(lo, r.rank);
  }
  let mask = 0;
  for (let k = lo; k <= Math.max(lo, hi); k++) mask |= 1 << CHAIN.indexOf(stateAt(k, d.terminal));
  return { lo, mask };
}

export interface ExactnessResult {
  broadcasts: number;
  /** broadcasts whose counts no assignment within the bounds explains, or that do not add up */
  inexact: number;
  /** broadcasts whose version is not the sum of the devices' ranks */
  versionMismatch: number;
  /** broadcasts after which a count of devices at or past some state went down, or the version did not grow */
  nonMonotone: number;
  /** the first problems found, for the report */
  examples: string[];
}

/** Checks every broadcast one subscriber received (in arrival order; snapshots left out). */
export function checkBroadcasts(
  devices: readonly DevicePlan[],
  broadcasts: readonly Broadcast[],
  deviceCount: number,
): ExactnessResult {
  const out: ExactnessResult = {
    broadcasts: broadcasts.length,
    inexact: 0,
    versionMismatch: 0,
    nonMonotone: 0,
    examples: [],
  };
  const note = (s: string) => void (out.examples.length < 5 && out.examples.push(s));
  let previous: Broadcast | null = null;
  for (const b of broadcasts) {
    const c = (s: string) => b.counts[s] ?? 0;
    const sum = Object.values(b.counts).reduce((a, x) => a + x, 0);
    const others = sum - CHAIN.reduce((a, s) => a + c(s), 0);
    if (sum !== deviceCount || others !== 0 || !feasible(boundsOf(devices, b), b.counts)) {
      out.inexact++;
      note(`version ${b.version}: counts ${JSON.stringify(b.counts)} not explained by the reports`);
    }
    const ranks = CHAIN.reduce((a, s) => a + c(s) * rankOf(s), 0);
    if (ranks !== b.version) {
      out.versionMismatch++;
      note(`version ${b.version} but the counts add up to ${ranks} transitions`);
    }
    if (previous) {
      const atOrPast = (x: Broadcast, k: number) =>
        CHAIN.filter((s) => rankOf(s) >= k).reduce((a, s) => a + (x.counts[s] ?? 0), 0);
      const down =
        [1, 2, 3, 4].some((k) => atOrPast(b, k) < atOrPast(previous!, k)) ||
        c('succeeded') < (previous.counts.succeeded ?? 0) ||
        c('failed') < (previous.counts.failed ?? 0);
      // The same version again (a progress-only change, or a retry of the publish) must be the same counts.
      const same = b.version === previous.version;
      const changed = same && JSON.stringify(b.counts) !== JSON.stringify(previous.counts);
      if (down || b.version < previous.version || changed) {
        out.nonMonotone++;
        note(`version ${previous.version} → ${b.version}: not monotone`);
      }
    }
    previous = b;
  }
  return out;
}

/**
 * For each broadcast, the rank each device has certainly reached in it: its bounds' lower end, or more when
 * the counts leave no other choice (a device that could still be below rank k is placed there, and the
 * counts are then impossible: e.g. the last `running` reports before a quiet spell, acknowledged after the
 * broadcast's `updated_at`, are certainly in it when it counts nobody left `dispatched`).
 */
export function certainRanks(devices: readonly DevicePlan[], broadcasts: readonly Broadcast[]): Uint8Array[] {
  return broadcasts.map((b) => {
    const masks = new Int32Array(devices.length);
    const los = new Uint8Array(devices.length);
    const groups = new Map<number, number>();
    devices.forEach((d, i) => {
      const { lo, mask } = boundOf(d, b);
      masks[i] = mask;
      los[i] = lo;
      groups.set(mask, (groups.get(mask) ?? 0) + 1);
    });
    // certain(mask, k): no device of that mask can be below rank k.
    const certain = new Map<number, number>();
    for (const mask of groups.keys()) {
      let reached = 0;
      for (let k = 1; k <= 4; k++) {
        const below = CHAIN.reduce((m, s, i) => (rankOf(s) < k ? m | (1 << i) : m), 0) & mask;
        if (below !== 0) {
          const tried = new Map(groups);
          tried.set(mask, tried.get(mask)! - 1);
          tried.set(below, (tried.get(below) ?? 0) + 1);
          if (feasible(tried, b.counts)) break;
        }
        reached = k;
      }
      certain.set(mask, reached);
    }
    const out = new Uint8Array(devices.length);
    for (let i = 0; i < devices.length; i++) out[i] = Math.max(los[i]!, certain.get(masks[i]!)!);
    return out;
  });
}

/** The index of the first broadcast that certainly has `device` at `rank` or past it; -1: none. */
export function firstCertain(certain: readonly Uint8Array[], device: number, rank: number): number {
  return certain.findIndex((ranks) => ranks[device]! >= rank);
}
