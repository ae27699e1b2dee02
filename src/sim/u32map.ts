/**
 * A hash map from 32-bit unsigned keys to int32 values on typed arrays: KSM's trees by content.
 *
 * How it works: open addressing with linear probing in power-of-two tables (keys, values and an
 * occupancy byte per slot), grown at 1/2 load; delete uses backward-shift deletion (Knuth 6.4
 * algorithm R) so no tombstones build up. V8 keeps numbers >= 2^30 as heap numbers, which makes a
 * JS Map keyed by content tokens (most of them >= 2^30) slow to hash; this stays on integers.
 *
 * Invariants: every key sits in the probe run from its home slot; size counts occupied slots.
 */
export class U32Map {
  size = 0;
  private keys: Uint32Array;
  private vals: Int32Array;
  private used: Uint8Array;
  private mask: number;
  private shift: number;

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = new Uint32Array(n);
    this.vals = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
  }

  /** Fibonacci hashing: the top bits of key * 2^32/phi */
  private home(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift;
  }

  /** the value for `key`, or -1 when absent (so -1 is never stored) */
  get(key: number): number {
    let i = this.home(key);
    while (this.used[i] !== 0) {
      if (this.keys[i] === key) return this.vals[i];
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  set(key: number, value: number): void {
    if (value === -1) throw new RangeError("U32Map values must not be -1");
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    let i = this.home(key);
    while (this.used[i] !== 0) {
      if (this.keys[i] === key) {
        this.vals[i] = value;
        return;
      }
      i = (i + 1) & this.mask;
    }
    this.used[i] = 1;
    this.keys[i] = key;
    this.vals[i] = value;
    this.size++;
  }

  delete(key: number): boolean {
    let i = this.home(key);
    while (this.used[i] !== 0 && this.keys[i] !== key) i = (i + 1) & this.mask;
    if (this.used[i] === 0) return false;
    // backward-shift: move later entries of the run into the hole when their home allows
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      if (this.used[j] === 0) break;
      const h = this.home(this.keys[j]);
      const between = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (between) continue;
      this.keys[hole] = this.keys[j];
      this.vals[hole] = this.vals[j];
      hole = j;
    }
    this.used[hole] = 0;
    this.size--;
    return true;
  }

  clear(): void {
    if (this.size === 0) return;
    this.used.fill(0);
    this.size = 0;
  }

  private grow(): void {
    const keys = this.keys;
    const vals = this.vals;
    const used = this.used;
    const n = (this.mask + 1) * 2;
    this.keys = new Uint32Array(n);
    this.vals = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.mask = n - 1;
    this.shift = 32 - Math.log2(n);
    this.size = 0;
    for (let i = 0; i < used.length; i++) if (used[i] !== 0) this.set(keys[i], vals[i]);
  }
}
