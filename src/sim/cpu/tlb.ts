/**
 * The TLB hierarchy of one physical CPU: split L1 dTLB, shared L2 STLB, tagged by VPID and PCID.
 *
 * How it works: each structure is set-associative with LRU replacement, stored in typed arrays.
 * An entry's key is (page number at its page size) * 4 + level, so 4K and 2M entries can share
 * the STLB; its tag is vpid * 4096 + pcid (Intel SDM vol. 3A 4.10.1: entries are associated with
 * the current PCID, and with VPID, vol. 3C 29.1); global entries (G) match any PCID of their VPID.
 * Each entry also notes the EPT it came from (combined mappings are tagged by EP4TA, 29.4.1) so
 * INVEPT can drop them. A lookup probes the three L1 arrays, then the STLB at 4K and 2M and the
 * STLB 1G array; an STLB hit refills L1. The page size cached is the size the CPU may assume:
 * the smaller of the guest and EPT (or shadow) page sizes, since a translation is only uniform
 * within both. Defaults are Intel's Golden Cove (Alder Lake P-core, Sapphire Rapids) data-side
 * TLBs as the Intel 64 and IA-32 Architectures Optimization Reference Manual lists them: L1 dTLB
 * 96 x 4K (6-way), 32 x 2M (4-way), 8 x 1G (fully associative); STLB 2048 x 4K/2M (16-way)
 * and 1024 x 1G (8-way) (transcribed from the manual's Golden Cove TLB table; check them against
 * the edition you use). Sizes are configuration (TlbConfig).
 *
 * Invariants (assertInvariants): no set holds two valid entries with the same key and tag; an
 * entry's frame is aligned to its page size; the per-level counts match the valid entries.
 */
import * as paging from "../../x86/paging.js";

// imported values copied once into module constants (bindings can be getters under tsx)
const { LEVEL_PAGES } = paging;

export interface TlbGeometry {
  entries: number;
  ways: number;
}

export interface TlbConfig {
  l1: { k4: TlbGeometry; m2: TlbGeometry; g1: TlbGeometry };
  stlb: { shared: TlbGeometry; g1: TlbGeometry };
}

export const GOLDEN_COVE_TLB: TlbConfig = {
  l1: { k4: { entries: 96, ways: 6 }, m2: { entries: 32, ways: 4 }, g1: { entries: 8, ways: 8 } },
  stlb: { shared: { entries: 2048, ways: 16 }, g1: { entries: 1024, ways: 8 } },
};

/** Entry flags. */
export const TLB_W = 1;
export const TLB_U = 2;
export const TLB_X = 4;
export const TLB_D = 8;
export const TLB_G = 16;

export const HIT_NONE = 0;
export const HIT_L1 = 1;
export const HIT_STLB = 2;

export class TlbArray {
  readonly sets: number;
  readonly ways: number;
  readonly key: Float64Array;
  readonly tag: Int32Array;
  readonly ept: Int32Array;
  readonly pfn: Float64Array;
  readonly flags: Uint8Array;
  readonly stamp: Float64Array;
  /** valid entries per page level (index 1..3), so a lookup can skip a size that is absent */
  private readonly levels = new Int32Array(4);
  private clock = 0;

  constructor(g: TlbGeometry) {
    if (g.entries % g.ways !== 0) throw new RangeError("TLB entries must be a multiple of ways");
    this.sets = g.entries / g.ways;
    if ((this.sets & (this.sets - 1)) !== 0)
      throw new RangeError("TLB sets must be a power of two");
    this.ways = g.ways;
    this.key = new Float64Array(g.entries).fill(-1);
    this.tag = new Int32Array(g.entries);
    this.ept = new Int32Array(g.entries);
    this.pfn = new Float64Array(g.entries);
    this.flags = new Uint8Array(g.entries);
    this.stamp = new Float64Array(g.entries);
  }

  /** Index of the entry for (key, tag) or -1. `pageNo` picks the set. */
  find(pageNo: number, key: number, tag: number, peek: boolean): number {
    if (this.levels[key % 4] === 0) return -1; // nothing of this page size cached
    const ways = this.ways;
    const first = (pageNo & (this.sets - 1)) * ways;
    const vpid = tag >>> 12;
    for (let i = first; i < first + ways; i++) {
      if (
        this.key[i] === key &&
        (this.tag[i] === tag || ((this.flags[i] & TLB_G) !== 0 && this.tag[i] >>> 12 === vpid))
      ) {
        if (!peek) this.stamp[i] = ++this.clock;
        return i;
      }
    }
    return -1;
  }

  insert(pageNo: number, key: number, tag: number, ept: number, pfn: number, flags: number): void {
    const ways = this.ways;
    const first = (pageNo & (this.sets - 1)) * ways;
    // the same translation again replaces itself; else a free way; else the least recently used
    let victim = -1;
    let free = -1;
    let lru = -1;
    for (let i = first; i < first + ways; i++) {
      const k = this.key[i];
      if (k === key && this.tag[i] === tag) {
        victim = i;
        break;
      }
      if (k === -1) {
        if (free < 0) free = i;
      } else if (lru < 0 || this.stamp[i] < this.stamp[lru]) lru = i;
    }
    if (victim < 0) victim = free >= 0 ? free : lru;
    if (this.key[victim] === -1) this.levels[key % 4]++;
    else if (this.key[victim] !== key) {
      this.levels[this.key[victim] % 4]--;
      this.levels[key % 4]++;
    }
    this.key[victim] = key;
    this.tag[victim] = tag;
    this.ept[victim] = ept;
    this.pfn[victim] = pfn;
    this.flags[victim] = flags;
    this.stamp[victim] = ++this.clock;
  }

  /** Drop entries matching: vpid (-1 any), pcid (-1 any), ept (-1 any), keepGlobal, key (-1 any). */
  invalidate(vpid: number, pcid: number, ept: number, keepGlobal: boolean, key: number): number {
    let n = 0;
    let from = 0;
    let to = this.key.length;
    if (key >= 0) {
      // one translation lives only in the set its page number picks (insert): scan that set
      if (this.levels[key % 4] === 0) return 0;
      from = (Math.floor(key / 4) & (this.sets - 1)) * this.ways;
      to = from + this.ways;
    }
    for (let i = from; i < to; i++) {
      if (this.key[i] === -1) continue;
      const t = this.tag[i];
      if (vpid >= 0 && t >>> 12 !== vpid) continue;
      if (pcid >= 0 && (t & 4095) !== pcid && (this.flags[i] & TLB_G) === 0) continue;
      if (ept >= 0 && this.ept[i] !== ept) continue;
      if (keepGlobal && (this.flags[i] & TLB_G) !== 0) continue;
      if (key >= 0 && this.key[i] !== key) continue;
      this.levels[this.key[i] % 4]--;
      this.key[i] = -1;
      n++;
    }
    return n;
  }

  count(): number {
    let n = 0;
    for (let i = 0; i < this.key.length; i++) if (this.key[i] !== -1) n++;
    return n;
  }

  assertInvariants(): void {
    const levels = new Int32Array(4);
    for (let i = 0; i < this.key.length; i++) if (this.key[i] !== -1) levels[this.key[i] % 4]++;
    for (let l = 1; l <= 3; l++) {
      if (levels[l] !== this.levels[l])
        throw new Error(`TLB level ${l} count ${this.levels[l]} != ${levels[l]}`);
    }
    for (let set = 0; set < this.sets; set++) {
      const seen = new Set<string>();
      for (let i = set * this.ways; i < (set + 1) * this.ways; i++) {
        if (this.key[i] === -1) continue;
        const id = `${this.key[i]}/${this.tag[i]}`;
        if (seen.has(id)) throw new Error(`TLB set ${set} holds ${id} twice`);
        seen.add(id);
        const level = this.key[i] % 4;
        if (this.pfn[i] % LEVEL_PAGES[level] !== 0)
          throw new Error(`TLB entry frame not aligned to level ${level}`);
      }
    }
  }
}

export class Tlb {
  readonly l1k4: TlbArray;
  readonly l1m2: TlbArray;
  readonly l1g1: TlbArray;
  readonly stlb: TlbArray;
  readonly stlbG1: TlbArray;
  /** result of the last lookup */
  hitWhere = HIT_NONE;
  hitLevel = 0;
  hitFlags = 0;
  lookups = 0;
  hitsL1 = 0;
  hitsStlb = 0;
  flushes = 0;

  constructor(readonly config: TlbConfig = GOLDEN_COVE_TLB) {
    this.l1k4 = new TlbArray(config.l1.k4);
    this.l1m2 = new TlbArray(config.l1.m2);
    this.l1g1 = new TlbArray(config.l1.g1);
    this.stlb = new TlbArray(config.stlb.shared);
    this.stlbG1 = new TlbArray(config.stlb.g1);
  }

  /** pfn of `vpn` under `tag`, or -1. Sets hitWhere, hitLevel, hitFlags. `peek`: no side effects. */
  lookup(vpn: number, tag: number, peek = false): number {
    if (!peek) this.lookups++;
    let a = this.l1k4;
    let i = a.find(vpn, vpn * 4 + 1, tag, peek);
    let level = 1;
    let p2 = 0;
    let p3 = 0;
    if (i < 0) {
      p2 = Math.floor(vpn / 512);
      p3 = Math.floor(vpn / 262144);
      a = this.l1m2;
      i = a.find(p2, p2 * 4 + 2, tag, peek);
      level = 2;
      if (i < 0) {
        a = this.l1g1;
        i = a.find(p3, p3 * 4 + 3, tag, peek);
        level = 3;
      }
    }
    if (i >= 0) {
      if (!peek) this.hitsL1++;
      this.hitWhere = HIT_L1;
      this.hitLevel = level;
      this.hitFlags = a.flags[i];
      return level === 1 ? a.pfn[i] : a.pfn[i] + (vpn % LEVEL_PAGES[level]);
    }
    a = this.stlb;
    i = a.find(vpn, vpn * 4 + 1, tag, peek);
    level = 1;
    if (i < 0) {
      i = a.find(p2, p2 * 4 + 2, tag, peek);
      level = 2;
    }
    if (i < 0) {
      a = this.stlbG1;
      i = a.find(p3, p3 * 4 + 3, tag, peek);
      level = 3;
    }
    if (i >= 0) {
      this.hitWhere = HIT_STLB;
      this.hitLevel = level;
      this.hitFlags = a.flags[i];
      const pfn = a.pfn[i];
      if (!peek) {
        this.hitsStlb++;
        this.fillL1(vpn, level, pfn, a.tag[i], a.ept[i], a.flags[i]);
      }
      return pfn + (vpn % LEVEL_PAGES[level]);
    }
    this.hitWhere = HIT_NONE;
    this.hitLevel = 0;
    return -1;
  }

  private fillL1(
    vpn: number,
    level: number,
    basePfn: number,
    tag: number,
    ept: number,
    flags: number,
  ): void {
    const pn = Math.floor(vpn / LEVEL_PAGES[level]);
    const a = level === 1 ? this.l1k4 : level === 2 ? this.l1m2 : this.l1g1;
    a.insert(pn, pn * 4 + level, tag, ept, basePfn, flags);
  }

  /** Cache a translation of size `level` whose page starts at `basePfn`. */
  fill(vpn: number, level: number, basePfn: number, tag: number, ept: number, flags: number): void {
    const pn = Math.floor(vpn / LEVEL_PAGES[level]);
    this.fillL1(vpn, level, basePfn, tag, ept, flags);
    (level === 3 ? this.stlbG1 : this.stlb).insert(pn, pn * 4 + level, tag, ept, basePfn, flags);
  }

  private all(vpid: number, pcid: number, ept: number, keepGlobal: boolean, vpn: number): number {
    let n = 0;
    const arrays = [this.l1k4, this.l1m2, this.l1g1, this.stlb, this.stlbG1];
    for (let lv = 0; lv < arrays.length; lv++) {
      const level = lv < 3 ? lv + 1 : 0;
      if (vpn < 0) {
        n += arrays[lv].invalidate(vpid, pcid, ept, keepGlobal, -1);
      } else {
        for (let l = 1; l <= 3; l++) {
          if (level !== 0 && level !== l) continue;
          const pn = Math.floor(vpn / LEVEL_PAGES[l]);
          n += arrays[lv].invalidate(vpid, pcid, ept, keepGlobal, pn * 4 + l);
        }
      }
    }
    this.flushes++;
    return n;
  }

  flushAll(): number {
    return this.all(-1, -1, -1, false, -1);
  }
  /** INVVPID single-context (keepGlobal: single-context-retaining-globals) */
  flushVpid(vpid: number, keepGlobal = false): number {
    return this.all(vpid, -1, -1, keepGlobal, -1);
  }
  /** INVVPID individual-address / INVLPG: every size that could hold `vpn`, globals included */
  flushAddress(vpid: number, vpn: number): number {
    return this.all(vpid, -1, -1, false, vpn);
  }
  /** MOV to CR3 without no-flush: non-global entries of (vpid, pcid) */
  flushPcid(vpid: number, pcid: number): number {
    return this.all(vpid, pcid, -1, true, -1);
  }
  /** INVEPT single-context: combined mappings of this EPT */
  flushEpt(ept: number): number {
    return this.all(-1, -1, ept, false, -1);
  }

  assertInvariants(): void {
    for (const a of [this.l1k4, this.l1m2, this.l1g1, this.stlb, this.stlbG1]) a.assertInvariants();
  }

  entries(): number {
    return (
      this.l1k4.count() +
      this.l1m2.count() +
      this.l1g1.count() +
      this.stlb.count() +
      this.stlbG1.count()
    );
  }
}
