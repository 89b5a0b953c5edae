/**
 * A Set for collections that almost always hold one element: the sockets of one user channel, the local
 * sockets of one user. It keeps a lone element in a field and makes a real Set only for the second; a Set
 * costs ~170 bytes even for one element (the object and its hash table), and an idle connection holds two
 * such collections, so this is ~300 bytes of each. Iteration order is insertion order, as for a Set.
 */
export class SmallSet<T> implements Iterable<T> {
  private one: T | undefined;
  private many: Set<T> | undefined;

  get size(): number {
    return this.many ? this.many.size : this.one === undefined ? 0 : 1;
  }

  has(value: T): boolean {
    return this.many ? this.many.has(value) : this.one === value;
  }

  add(value: T): this {
    if (this.many) this.many.add(value);
    else if (this.one === undefined) this.one = value;
    else if (this.one !== value) {
      this.many = new Set([this.one, value]);
      this.one = undefined;
    }
    return this;
  }

  delete(value: T): boolean {
    if (this.many) return this.many.delete(value);
    if (this.one !== value || value === undefined) return false;
    this.one = undefined;
    return true;
  }

  *[Symbol.iterator](): Iterator<T> {
    if (this.many) yield* this.many;
    else if (this.one !== undefined) yield this.one;
  }
}
