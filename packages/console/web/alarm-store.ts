// Type-only: the page's bundle gets no code (and no zod) from contracts, only the shape, so the console's copy of
// the alarm's fields can never drift from what the API and the live events send.
import type { AlarmWire, PerceivedSeverity } from '@alarmcast/contracts';

/** An alarm as the API and the live events carry it (snake_case wire shape). */
export type Alarm = AlarmWire;
export type Severity = PerceivedSeverity;

/** Every severity, in display order; `Cleared` is what a cleared alarm carries. */
export const SEVERITIES = [
  'Critical',
  'Major',
  'Minor',
  'Warning',
  'Indeterminate',
  'Cleared',
] as const satisfies readonly Severity[];

const SEVERITY_RANK: Record<Severity, number> = {
  Critical: 0,
  Major: 1,
  Minor: 2,
  Warning: 3,
  Indeterminate: 4,
  Cleared: 5,
};

/** What the list shows: every condition given must hold. */
export interface AlarmFilter {
  /** only these severities; empty: all */
  severities: ReadonlySet<Severity>;
  /** only this device's alarms; null: any (device-less ones included) */
  deviceId: number | null;
  /**
   * case-insensitive substring of identifier, probable cause, specific problem, additional text or
   * information, device name or serial number
   */
  text: string;
}

export const NO_FILTER: AlarmFilter = { severities: new Set(), deviceId: null, text: '' };

/** An alarm with what ordering and filtering need, computed once per version instead of once per comparison. */
interface Entry {
  alarm: Alarm;
  cleared: number;
  rank: number;
  version: string;
  /** lower-cased text the free-text filter searches */
  haystack: string;
}

function entryOf(alarm: Alarm): Entry {
  return {
    alarm,
    cleared: alarm.cleared_at === null ? 0 : 1,
    rank: SEVERITY_RANK[alarm.perceived_severity],
    version: version(alarm),
    haystack: [
      alarm.alarm_identifier,
      alarm.probable_cause,
      alarm.specific_problem,
      alarm.additional_text ?? '',
      alarm.additional_information ?? '',
      alarm.device_name ?? '',
      alarm.device_serial_number ?? '',
    ]
      .join('\n')
      .toLowerCase(),
  };
}

/** Active before cleared, then by severity, then newest first (ids break ties, so the order is total). */
function compare(a: Entry, b: Entry): number {
  if (a === b) return 0;
  if (a.cleared !== b.cleared) return a.cleared - b.cleared;
  if (a.rank !== b.rank) return a.rank - b.rank;
  const ra = a.alarm.raised_at;
  const rb = b.alarm.raised_at;
  if (ra !== rb) return ra < rb ? 1 : -1;
  // Ids are decimal bigints without leading zeros: the longer is the larger, equal lengths compare as text.
  const ia = a.alarm.id;
  const ib = b.alarm.id;
  if (ia.length !== ib.length) return ib.length - ia.length;
  return ia < ib ? 1 : ia > ib ? -1 : 0;
}

/** First index whose entry does not sort before `e` (binary search: O(log n) comparisons). */
function lowerBound(list: Entry[], e: Entry): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(list[mid]!, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(list: Entry[], e: Entry): void {
  list.splice(lowerBound(list, e), 0, e);
}

function removeSorted(list: Entry[], e: Entry): void {
  const i = lowerBound(list, e);
  if (list[i] === e) list.splice(i, 1);
}

export type SeverityCounts = Record<Severity, number>;

/**
 * The alarms on screen. The page loads the current list first and then applies live events; events that
 * arrive while the list is loading are held and applied after it, and an older version of an alarm never
 * replaces a newer one, so the order of arrival cannot lose a change.
 *
 * Built for storms (tens of thousands of alarms, hundreds of changes a second): an index by id finds an alarm's
 * current version in O(1), and the sorted list (and the filtered view, when a filter is set) is kept in order by
 * binary search, so an event costs O(log n) comparisons and one array splice, never a re-sort; the counts per
 * severity are kept as events are applied.
 */
export class AlarmStore {
  private readonly byId = new Map<string, Entry>();
  private all: Entry[] = [];
  /** the filtered view in the same order; the same array as `all` when no filter is set */
  private view: Entry[] = this.all;
  private filter: AlarmFilter = NO_FILTER;
  private readonly counts: SeverityCounts = zeroCounts();
  private pending: Alarm[] | null = [];

  /** Replaces the content with a freshly loaded list, then applies what arrived meanwhile. */
  load(list: Alarm[]): void {
    this.byId.clear();
    for (const a of list) {
      const current = this.byId.get(a.id);
      if (!current || current.version <= version(a)) this.byId.set(a.id, entryOf(a));
    }
    // One sort per load; from here on every change is placed by binary search.
    this.all = [...this.byId.values()].sort(compare);
    Object.assign(this.counts, zeroCounts());
    for (const e of this.all) this.counts[countKey(e)]++;
    this.rebuildView();
    const held = this.pending ?? [];
    this.pending = null;
    for (const a of held) this.apply(a);
  }

  /** Starts holding events again (before a reload). */
  hold(): void {
    this.pending ??= [];
  }

  /** Whether events are being held for a load in progress. */
  get loading(): boolean {
    return this.pending !== null;
  }

  /** Applies one alarm version from a live event; returns whether the content changed. */
  apply(alarm: Alarm): boolean {
    if (this.pending) {
      this.pending.push(alarm);
      return false;
    }
    const current = this.byId.get(alarm.id);
    const next = entryOf(alarm);
    if (current) {
      if (current.version > next.version) return false;
      removeSorted(this.all, current);
      if (this.view !== this.all && this.matches(current)) removeSorted(this.view, current);
      this.counts[countKey(current)]--;
    }
    this.byId.set(alarm.id, next);
    insertSorted(this.all, next);
    if (this.view !== this.all && this.matches(next)) insertSorted(this.view, next);
    this.counts[countKey(next)]++;
    return true;
  }

  /** Every alarm, active before cleared, then by severity, then newest first. */
  sorted(): Alarm[] {
    return this.all.map((e) => e.alarm);
  }

  get size(): number {
    return this.all.length;
  }

  /** Active alarms per severity, and cleared alarms under `Cleared`. */
  severityCounts(): Readonly<SeverityCounts> {
    return this.counts;
  }

  get activeCount(): number {
    return this.all.length - this.counts.Cleared;
  }

  setFilter(filter: AlarmFilter): void {
    this.filter = { ...filter, text: filter.text.trim().toLowerCase() };
    this.rebuildView();
  }

  /** Whether a filter is set (the view may then hold fewer alarms than the store). */
  get filtered(): boolean {
    return this.view !== this.all;
  }

  /** How many alarms pass the filter. */
  get viewSize(): number {
    return this.view.length;
  }

  /** The alarms at positions [start, end) of the filtered, sorted view: what a virtualized list renders. */
  slice(start: number, end: number): Alarm[] {
    return this.view.slice(start, end).map((e) => e.alarm);
  }

  /** Position of the alarm with this id in the filtered view, or -1 (O(log n)). */
  indexOf(id: string): number {
    const e = this.byId.get(id);
    if (!e) return -1;
    const i = lowerBound(this.view, e);
    return this.view[i] === e ? i : -1;
  }

  private rebuildView(): void {
    const f = this.filter;
    const none = f.severities.size === 0 && f.deviceId === null && f.text === '';
    this.view = none ? this.all : this.all.filter((e) => this.matches(e));
  }

  private matches(e: Entry): boolean {
    const f = this.filter;
    return (
      (f.severities.size === 0 || f.severities.has(e.alarm.perceived_severity)) &&
      (f.deviceId === null || e.alarm.device_id === f.deviceId) &&
      (f.text === '' || e.haystack.includes(f.text))
    );
  }
}

/** Active alarms count under their severity, cleared ones under `Cleared`. */
function countKey(e: Entry): Severity {
  return e.cleared ? 'Cleared' : e.alarm.perceived_severity;
}

function zeroCounts(): SeverityCounts {
  return { Critical: 0, Major: 0, Minor: 0, Warning: 0, Indeterminate: 0, Cleared: 0 };
}

/** Later changes carry a later changed_at; an acknowledgement of the same version comes after it. */
function version(a: Alarm): string {
  return `${a.changed_at}|${a.cleared_at ?? ''}|${a.acknowledged_at ?? ''}`;
}

const TEXT_FIELDS = [
  'id',
  'alarm_identifier',
  'probable_cause',
  'specific_problem',
  'raised_at',
  'changed_at',
];

/**
 * Whether a live event's payload has what the store relies on (the edge relays what the pipeline produced, but
 * a page must not break on one malformed frame): a malformed one is dropped, never applied.
 */
export function isAlarm(x: unknown): x is Alarm {
  if (typeof x !== 'object' || x === null) return false;
  const a = x as Record<string, unknown>;
  return (
    TEXT_FIELDS.every((f) => typeof a[f] === 'string') &&
    typeof a.perceived_severity === 'string' &&
    Object.hasOwn(SEVERITY_RANK, a.perceived_severity) &&
    (a.cleared_at === null || typeof a.cleared_at === 'string') &&
    (a.acknowledged_at === null || typeof a.acknowledged_at === 'string')
  );
}
