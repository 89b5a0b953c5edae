import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SmallSet } from '../src/small-set.js';

describe('SmallSet', () => {
  it('answers as a Set would under any sequence of adds and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(4)), { maxLength: 60 }), (ops) => {
        const small = new SmallSet<number>();
        const truth = new Set<number>();
        for (const [add, v] of ops) {
          if (add) {
            small.add(v);
            truth.add(v);
          } else expect(small.delete(v)).toBe(truth.delete(v));
          expect(small.size).toBe(truth.size);
          expect([...small]).toEqual([...truth]);
          for (let k = 0; k < 5; k++) expect(small.has(k)).toBe(truth.has(k));
        }
      }),
    );
  });
});
