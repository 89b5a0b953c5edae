/** An alarm as the API and the live events carry it (snake_case wire shape). */
export interface Alarm {
  id: string;
  tenant_id: number;
  device_id: number | null;
  alarm_identifier: string;
  event_type: string;
  probable_cause: string;
  specific_problem: string;
  perceived_severity: 'Critical' | 'Major' | 'Minor' | 'Warning' | 'Indeterminate' | 'Cleared';
  managed_object_instance: string | null;
  additional_text: string | null;
  raised_at: string;
  changed_at: string;
  cleared_at: string | null;
  acknowledged_at: string | null;
}

const SEVERITY_RANK: Record<Alarm['perceived_severity'], number> = {
  Critical: 0,
  Major: 1,
  Minor: 2,
  Warning: 3,
  Indeterminate: 4,
  Cleared: 5,
};

/**
 * The alarms on screen. The page loads the current list first and then applies live events; events that
 * arrive while the list is loading are held and applied after it, and an older version of an alarm never
 * replaces a newer one, so the order of arrival cannot lose a change.
 */
export class AlarmStore {
  private readonly alarms = new Map<string, Alarm>();
  private pending: Alarm[] | null = [];

  /** Replaces the content with a freshly loaded list, then applies what arrived meanwhile. */
  load(list: Alarm[]): void {
    this.alarms.clear();
    for (const a of list) this.alarms.set(a.id, a);
    const held = this.pending ?? [];
    this.pending = null;
    for (const a of held) this.apply(a);
  }

  /** Starts holding events again (before a reload). */
  hold(): void {
    this.pending ??= [];
  }

  /** Applies one alarm version from a live event; returns whether the view changed. */
  apply(alarm: Alarm): boolean {
    if (this.pending) {
      this.pending.push(alarm);
      return false;
    }
    const current = this.alarms.get(alarm.id);
    if (current && version(current) > version(alarm)) return false;
    this.alarms.set(alarm.id, alarm);
    return true;
  }

  /** Active before cleared, then by severity, then newest first. */
  sorted(): Alarm[] {
    return [...this.alarms.values()].sort(
      (a, b) =>
        Number(a.cleared_at !== null) - Number(b.cleared_at !== null) ||
        SEVERITY_RANK[a.perceived_severity] - SEVERITY_RANK[b.perceived_severity] ||
        b.raised_at.localeCompare(a.raised_at) ||
        Number(BigInt(b.id) - BigInt(a.id)),
    );
  }
}

/** Later changes carry a later changed_at; an acknowledgement of the same version comes after it. */
function version(a: Alarm): string {
  return `${a.changed_at}|${a.cleared_at ?? ''}|${a.acknowledged_at ?? ''}`;
}
