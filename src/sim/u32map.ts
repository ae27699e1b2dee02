/**
 * A hash map from 32-bit unsigned keys to int32 values on one typed array: KSM's trees by content.
 *
 * How it works: open addressing with linear probing in a power-of-two table grown at 1/2 load.
 * Key and value of a slot sit side by side in one Int32Array (`cells[2i]`, `cells[2i + 1]`), so
 * a probe touches one cache line: with millions of entries (a 16 GiB scan) every lookup is a
 * cache miss, and three parallel arrays (keys, values, occupancy) cost three. A slot holds
 * value + 1, so that 0 (what a fresh array holds) marks an empty slot and a grown table needs no
 * fill; this is why -1 is never stored. delete uses backward-shift deletion
 * (Knuth 6.4 algorithm R) so no tombstones build up. V8 keeps numbers >= 2^30 as heap numbers,
 * which makes a JS Map keyed by content tokens (most of them >= 2^30) slow to hash; this stays
 * on integers.
 *
 * Invariants: every key sits in the probe run from its home slot; size counts occupied slots.
 */
/** an empty slot's cell (it holds value + 1) */
const EMPTY = 0;

export class U32Map {
  size = 0;
  /** [key | 0, value + 1] per slot; EMPTY = free slot */
  private cells: Int32Array;
  private mask: number;
  private shift: number;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.cells = new Int32Array(n * 2);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
  }

  /**
   * Fibonacci hashing of key / 8 picks an 8-slot block (one 64-byte cache line), key % 8 the
   * slot in it: consecutive keys (an image's pages, the fresh tokens of one guest's unique pages,
   * which ksmd meets in address order) share a line instead of costing a cache miss each.
   */
  private home(key: number): number {
    return ((Math.imul(key >>> 3, 0x9e3779b1) >>> this.shift) & ~7) | (key & 7);
  }

  /** the value for `key`, or -1 when absent (so -1 is never stored) */
  get(key: number): number {
    const c = this.cells;
    const k = key | 0;
    let i = this.home(key);
    for (;;) {
      const v = c[2 * i + 1];
      if (v === EMPTY || c[2 * i] === k) return v - 1;
      i = (i + 1) & this.mask;
    }
  }

  set(key: number, value: number): void {
    if (value === -1) throw new RangeError("U32Map values must not be -1");
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    const c = this.cells;
    const k = key | 0;
    let i = this.home(key);
    while (c[2 * i + 1] !== EMPTY) {
      if (c[2 * i] === k) {
        c[2 * i + 1] = value + 1;
        return;
      }
      i = (i + 1) & this.mask;
    }
    c[2 * i] = k;
    c[2 * i + 1] = value + 1;
    this.size++;
  }

  delete(key: number): boolean {
    return this.deleteIf(key, -1);
  }

  /** delete `key` when it maps to `value` (any value when `value` is -1); true when deleted */
  deleteIf(key: number, value: number): boolean {
    const c = this.cells;
    const k = key | 0;
    let i = this.home(key);
    while (c[2 * i + 1] !== EMPTY && c[2 * i] !== k) i = (i + 1) & this.mask;
    if (c[2 * i + 1] === EMPTY) return false;
    if (value !== -1 && c[2 * i + 1] !== value + 1) return false;
    // backward-shift: move later entries of the run into the hole when their home allows
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      if (c[2 * j + 1] === EMPTY) break;
      const h = this.home(c[2 * j]);
      const between = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (between) continue;
      c[2 * hole] = c[2 * j];
      c[2 * hole + 1] = c[2 * j + 1];
      hole = j;
    }
    c[2 * hole + 1] = EMPTY;
    this.size--;
    return true;
  }

  clear(): void {
    if (this.size === 0) return;
    this.cells.fill(EMPTY);
    this.size = 0;
  }

  private grow(): void {
    const old = this.cells;
    const n = (this.mask + 1) * 2;
    this.cells = new Int32Array(n * 2);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
    this.size = 0;
    for (let i = 0; i < old.length; i += 2)
      if (old[i + 1] !== EMPTY) this.set(old[i], old[i + 1] - 1);
  }
}
