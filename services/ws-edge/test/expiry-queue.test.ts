import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { ExpiryQueue, type Expiring } from '../src/expiry-queue.js';

interface Item extends Expiring {
  name: string;
}
const item = (name: string): Item => ({ name, expiryAtMs: Infinity, expiryIndex: -1 });

describe('ExpiryQueue (one timer for every socket’s expiry)', () => {
  afterEach(() => vi.useRealTimers());

  it('fires each item once at its time, in time order, after moves and removals', async () => {
    vi.useFakeTimers({ now: 0 });
    const fired: string[] = [];
    const q = new ExpiryQueue<Item>((i) => fired.push(`${i.name}@${Date.now()}`));
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item) as [Item, Item, Item, Item];
    q.set(a, 300);
    q.set(b, 100);
    q.set(c, 200);
    q.set(d, 50);
    q.set(b, 400); // moved later
    q.remove(d);
    q.set(c, Infinity); // Infinity removes
    expect(q.size).toBe(2);
    await vi.advanceTimersByTimeAsync(299);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toEqual(['a@300']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual(['a@300', 'b@400']);
    expect(q.size).toBe(0);
    expect(a.expiryIndex).toBe(-1);
  });

  it('keeps the heap order under any sequence of sets and removes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(19), fc.option(fc.nat(1000), { nil: Infinity })), { maxLength: 200 }),
        (ops) => {
          const q = new ExpiryQueue<Item>(() => undefined);
          const items = Array.from({ length: 20 }, (_, i) => item(String(i)));
          const truth = new Map<Item, number>();
          for (const [i, at] of ops) {
            q.set(items[i]!, at);
            if (at === Infinity) truth.delete(items[i]!);
            else truth.set(items[i]!, at);
          }
          expect(q.size).toBe(truth.size);
          for (const [it, at] of truth) expect(it.expiryAtMs).toBe(at);
          // Each queued item sits at its index, and no child is due before its parent.
          const heap = (q as unknown as { heap: Item[] }).heap;
          heap.forEach((it, i) => {
            expect(it.expiryIndex).toBe(i);
            if (i > 0) expect(heap[(i - 1) >> 1]!.expiryAtMs).toBeLessThanOrEqual(it.expiryAtMs);
          });
        },
      ),
    );
  });
});
