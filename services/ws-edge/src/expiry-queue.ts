/** Node's timers overflow past 2^31-1 ms (~24.8 days); a JWT may live a year. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the queue keeps on each item: its due time and its place in the heap (-1: not queued). */
export interface Expiring {
  expiryAtMs: number;
  expiryIndex: number;
}

/**
 * Due times of many items (one per socket: its subscriptions' earliest JWT expiry) on one timer: a binary
 * min-heap whose index lives on the item, so setting, moving and removing an item's time is O(log n) and
 * the queue holds no object per item. A timer per socket cost ~250 bytes of an idle connection (the
 * Timeout, its callback and the callback's context). The timer is armed for the earliest due time only,
 * unref'd (it never keeps a process alive), and fires each due item once, in time order.
 */
export class ExpiryQueue<T extends Expiring> {
  private readonly heap: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Infinity;
  private firing = false;

  constructor(private readonly onDue: (item: T) => void) {}

  get size(): number {
    return this.heap.length;
  }

  /** Sets (or moves) `item`'s due time; Infinity removes it. */
  set(item: T, atMs: number): void {
    if (atMs === Infinity) return this.remove(item);
    if (item.expiryIndex < 0) {
      item.expiryAtMs = atMs;
      item.expiryIndex = this.heap.push(item) - 1;
      this.up(item.expiryIndex);
    } else {
      const earlier = atMs < item.expiryAtMs;
      item.expiryAtMs = atMs;
      if (earlier) this.up(item.expiryIndex);
      else this.down(item.expiryIndex);
    }
    this.arm();
  }

  remove(item: T): void {
    const i = item.expiryIndex;
    if (i < 0) return;
    item.expiryIndex = -1;
    item.expiryAtMs = Infinity;
    const last = this.heap.pop()!;
    if (i < this.heap.length) {
      this.heap[i] = last;
      last.expiryIndex = i;
      this.down(i);
      this.up(last.expiryIndex);
    }
    this.arm();
  }

  private arm(): void {
    if (this.firing) return;
    const next = this.heap[0]?.expiryAtMs ?? Infinity;
    if (next === this.timerAtMs && this.timer !== undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAtMs = next;
    if (next === Infinity) return;
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAtMs = Infinity;
    const now = Date.now();
    this.firing = true;
    try {
      // Removed before its callback runs, which may set it again or remove others.
      while (this.heap.length > 0 && this.heap[0]!.expiryAtMs <= now) {
        const item = this.heap[0]!;
        this.remove(item);
        this.onDue(item);
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }

  private up(i: number): void {
    const heap = this.heap;
    const item = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.expiryAtMs <= item.expiryAtMs) break;
      heap[i] = heap[parent]!;
      heap[i]!.expiryIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.expiryIndex = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const item = heap[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.expiryAtMs < heap[left]!.expiryAtMs ? right : left;
      if (heap[child]!.expiryAtMs >= item.expiryAtMs) break;
      heap[i] = heap[child]!;
      heap[i]!.expiryIndex = i;
      i = child;
    }
    heap[i] = item;
    item.expiryIndex = i;
  }
}
