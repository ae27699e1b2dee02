/**
 * KSM's rmap_items, as struct-of-arrays: one per scanned page of a mergeable area.
 *
 * How it works: struct ksm_rmap_item (mm/ksm.c) holds the mm, the address (+ UNSTABLE_FLAG,
 * STABLE_FLAG and the seqnr of the scan that put it in the unstable tree), the old checksum, its
 * stable node and hlist links, the NUMA node of the unstable tree it went into (nid), and
 * smart_scan's age and remaining_skips. Here each field is a
 * typed array indexed by item number, so ksmd's inner loop allocates nothing; freed items go on
 * a free list. Each mm_slot's items form a list sorted by address (`next`); getNext() is
 * get_next_rmap_item (items the cursor passes without a page at their address are freed) and
 * removeTrailing() is remove_trailing_rmap_items.
 *
 * Invariants: `count` equals the items reachable from the slots' lists (Ksm.assertInvariants).
 */

export const UNSTABLE = 1;
export const STABLE = 2;

interface ItemOwner {
  removeFromTree(item: number): void;
}

interface ItemSlot {
  readonly index: number;
  head: number;
  rmapItems: number;
}

export class KsmItems {
  /** ksm_rmap_items */
  count = 0;
  mm = new Int32Array(1024);
  /** the page number (hva >> 12) */
  addr = new Float64Array(1024);
  next = new Int32Array(1024);
  flags = new Uint8Array(1024);
  seq = new Uint8Array(1024);
  csum = new Uint32Array(1024);
  /** content the item was put in the unstable tree under */
  utok = new Uint32Array(1024);
  /** the unstable tree (NUMA node) it went into (rmap_item->nid) */
  unid = new Uint8Array(1024);
  node = new Int32Array(1024);
  hnext = new Int32Array(1024);
  hprev = new Int32Array(1024);
  age = new Uint8Array(1024);
  skips = new Uint8Array(1024);
  private used = 0;
  private readonly free: number[] = [];

  private grow(): void {
    const n = this.mm.length * 2;
    const g = <T extends Int32Array | Float64Array | Uint8Array | Uint32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.mm = g(this.mm);
    this.addr = g(this.addr);
    this.next = g(this.next);
    this.flags = g(this.flags);
    this.seq = g(this.seq);
    this.csum = g(this.csum);
    this.utok = g(this.utok);
    this.unid = g(this.unid);
    this.node = g(this.node);
    this.hnext = g(this.hnext);
    this.hprev = g(this.hprev);
    this.age = g(this.age);
    this.skips = g(this.skips);
  }

  /** alloc_rmap_item: zeroed (oldchecksum 0, age 0) */
  private alloc(slot: ItemSlot, addr: number): number {
    let i = this.free.pop();
    if (i === undefined) {
      if (this.used === this.mm.length) this.grow();
      i = this.used++;
    }
    this.mm[i] = slot.index;
    this.addr[i] = addr;
    this.next[i] = -1;
    this.flags[i] = 0;
    this.seq[i] = 0;
    this.csum[i] = 0;
    this.utok[i] = 0;
    this.unid[i] = 0;
    this.node[i] = -1;
    this.hnext[i] = -1;
    this.hprev[i] = -1;
    this.age[i] = 0;
    this.skips[i] = 0;
    this.count++;
    slot.rmapItems++;
    return i;
  }

  private release(slot: ItemSlot, i: number): void {
    this.count--;
    slot.rmapItems--;
    this.flags[i] = 0;
    this.free.push(i);
  }

  private link(slot: ItemSlot, prev: number, to: number): void {
    if (prev < 0) slot.head = to;
    else this.next[prev] = to;
  }

  /** get_next_rmap_item: the item for `addr` after `prev` (-1: the list head), made if missing. */
  getNext(slot: ItemSlot, prev: number, addr: number, owner: ItemOwner): number {
    let cur = prev < 0 ? slot.head : this.next[prev];
    while (cur >= 0) {
      if (this.addr[cur] === addr) return cur;
      if (this.addr[cur] > addr) break;
      const nx = this.next[cur];
      this.link(slot, prev, nx);
      owner.removeFromTree(cur);
      this.release(slot, cur);
      cur = nx;
    }
    const item = this.alloc(slot, addr);
    this.next[item] = cur;
    this.link(slot, prev, item);
    return item;
  }

  /** remove_trailing_rmap_items: free every item after `prev`. */
  removeTrailing(slot: ItemSlot, prev: number, owner: ItemOwner): void {
    let cur = prev < 0 ? slot.head : this.next[prev];
    this.link(slot, prev, -1);
    while (cur >= 0) {
      const nx = this.next[cur];
      owner.removeFromTree(cur);
      this.release(slot, cur);
      cur = nx;
    }
  }
}
