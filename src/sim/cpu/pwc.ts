/**
 * Paging-structure caches: let a walk skip the upper levels (Intel SDM vol. 3A 4.10.3).
 *
 * How it works: for each dimension (linear: guest or shadow tables; guest-physical: EPT tables)
 * and each non-leaf level L >= 2 there is a small fully associative cache. An entry is keyed by
 * the page-number prefix that selects the level-L entry (pn / 512^(L-1)) and a tag (vpid*4096+pcid
 * for linear entries, the EPT id for EPT entries) and holds the next table's frame, the host
 * frame holding it, and the permissions accumulated so far. Under EPT the linear entries are
 * the SDM's "combined" paging-structure-cache entries (vol. 3C 29.4.1): they hold the host
 * physical address of the next guest table, so a hit skips the nested EPT walks of the levels
 * above too. The walker asks for the deepest hit (the PDE cache first) and fills entries as it
 * descends. Intel does not publish the sizes; the defaults (PDE 32, PDPTE 4, PML4E/PML5E 2 per
 * dimension) follow the split-cache organisation studied by Barr, Cox and Rixner, "Translation
 * Caching: Skip, Don't Walk (the Page Table)", ISCA 2010. Replacement is round robin.
 */
import * as paging from "../../x86/paging.js";
import type { WalkCache, WalkOut } from "../../x86/walk.js";
import * as walker from "../../x86/walk.js";

// imported values copied once into module constants (bindings can be getters under tsx)
const { DIM_EPT } = walker;
const { LEVEL_PAGES } = paging;

export interface PwcConfig {
  /** entries per level, index = level (2..5) */
  entries: readonly number[];
}

export const DEFAULT_PWC: PwcConfig = { entries: [0, 0, 32, 4, 2, 2] };

class Level {
  readonly prefix: Float64Array;
  readonly tag: Int32Array;
  readonly next: Float64Array;
  readonly nextPfn: Float64Array;
  readonly perm: Uint8Array;
  private rr = 0;
  constructor(readonly size: number) {
    this.prefix = new Float64Array(size).fill(-1);
    this.tag = new Int32Array(size);
    this.next = new Float64Array(size);
    this.nextPfn = new Float64Array(size);
    this.perm = new Uint8Array(size);
  }
  find(prefix: number, tag: number): number {
    for (let i = 0; i < this.size; i++)
      if (this.prefix[i] === prefix && this.tag[i] === tag) return i;
    return -1;
  }
  put(prefix: number, tag: number, next: number, nextPfn: number, perm: number): void {
    if (this.size === 0 || this.find(prefix, tag) >= 0) return;
    const i = this.rr;
    this.rr = (this.rr + 1) % this.size;
    this.prefix[i] = prefix;
    this.tag[i] = tag;
    this.next[i] = next;
    this.nextPfn[i] = nextPfn;
    this.perm[i] = perm;
  }
  drop(tagMatch: (tag: number) => boolean): void {
    for (let i = 0; i < this.size; i++)
      if (this.prefix[i] !== -1 && tagMatch(this.tag[i])) this.prefix[i] = -1;
  }
}

export class PagingStructureCache implements WalkCache {
  private readonly linear: Level[] = [];
  private readonly ept: Level[] = [];
  hits = 0;
  lookups = 0;

  constructor(config: PwcConfig = DEFAULT_PWC) {
    for (let l = 0; l <= 5; l++) {
      this.linear.push(new Level(l >= 2 ? (config.entries[l] ?? 0) : 0));
      this.ept.push(new Level(l >= 2 ? (config.entries[l] ?? 0) : 0));
    }
  }

  lookup(out: WalkOut, dim: number, pn: number): number {
    this.lookups++;
    const levels = dim === DIM_EPT ? this.ept : this.linear;
    const tag = dim === DIM_EPT ? out.pwcEptTag : out.pwcTag;
    for (let l = 2; l <= 5; l++) {
      const c = levels[l];
      if (c.size === 0) continue;
      const i = c.find(Math.floor(pn / LEVEL_PAGES[l]), tag);
      if (i >= 0) {
        this.hits++;
        out.pwcFrame = c.next[i];
        out.pwcPfn = c.nextPfn[i];
        out.pwcPerm = c.perm[i];
        return l;
      }
    }
    return 0;
  }

  fill(
    out: WalkOut,
    dim: number,
    pn: number,
    level: number,
    next: number,
    nextPfn: number,
    perm: number,
  ): void {
    const c = (dim === DIM_EPT ? this.ept : this.linear)[level];
    c.put(
      Math.floor(pn / LEVEL_PAGES[level]),
      dim === DIM_EPT ? out.pwcEptTag : out.pwcTag,
      next,
      nextPfn,
      perm,
    );
  }

  /** Drop linear entries whose tag matches (INVLPG, MOV CR3, INVVPID, VM entry without VPID). */
  flushLinear(match: (tag: number) => boolean): void {
    for (const c of this.linear) c.drop(match);
  }
  /** INVEPT: drop EPT-dimension entries of an EPT (and the caller drops combined ones). */
  flushEpt(eptTag: number): void {
    for (const c of this.ept) c.drop((t) => t === eptTag);
  }
  flushAll(): void {
    for (const c of this.linear) c.drop(() => true);
    for (const c of this.ept) c.drop(() => true);
  }
}
