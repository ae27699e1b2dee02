/**
 * The page walker: one loop for guest x86 tables, EPT tables, shadow and host tables.
 *
 * How it works: walk() descends a radix tree described by a PagingMode (x86/paging.ts) from a
 * root frame, reading each entry as two 32-bit halves straight out of the simulated memory's
 * Uint32Array (a TableMemory: `slotOf[pfn]` is the word offset of that frame's bytes, -1 for a
 * frame without bytes, which reads as zeros). With `nested` set (a guest walk under EPT) every
 * table address is a gfn and is first translated by a nested walk of the EPT tables, and so is
 * the final gfn: the 2D walk of Intel SDM vol. 3C 29.3.2 / AMD's "two-dimensional page walk"
 * (Bhargava et al., ASPLOS 2008), (n+1)(m+1)-1 references with n guest and m EPT levels. With
 * `out.resolver` set instead, table gfns are resolved in software (KVM's FNAME(walk_addr) in
 * paging_tmpl.h reading guest memory through the memslots). Checks follow SDM vol. 3A 4.6/4.7
 * (x86: present, reserved bits, U/S, R/W with CR0.WP, XD with EFER.NXE) and vol. 3C 29.3.3
 * (EPT: violation when the access is not allowed, misconfiguration for W-without-R, reserved
 * memory types or bits). A/D flags are set as SDM 4.8 and 29.3.5 describe unless `out.setAd` is
 * false (probe mode). An optional paging-structure cache (WalkCache) lets a walk start below the
 * root (SDM 4.10.3, combined mappings 29.4.1). Every entry read is one step in `out` and one
 * counted memory reference. No allocation, closures or Map lookups happen here.
 */
import * as ept from "./ept.js";
import * as faults from "./faults.js";
import type { PagingMode } from "./paging.js";
import * as paging from "./paging.js";
import * as pte from "./pte.js";

// Copied once into module constants: under tsx and some bundlers an imported binding is a getter,
// and the walker reads these on every level of every walk.
const { EPT_A, EPT_ADDR_HI, EPT_D, EPT_LARGE, eptBadMemType, eptLeafFrame } = ept;
const { QUAL_FETCH, QUAL_GLA_TRANSLATION, QUAL_GLA_VALID, QUAL_READ, QUAL_WRITE } = ept;
const { PF_I, PF_P, PF_RSVD, PF_U, PF_W } = faults;
const { FMT_EPT, LEVEL_PAGES } = paging;
const { PTE_A, PTE_D, PTE_G, PTE_P, PTE_PS, PTE_RW, PTE_US, PTE_XD_HI, pteLeafFrame } = pte;

/** Memory holding table bytes. PhysMem implements it. */
export interface TableMemory {
  words: Uint32Array;
  slotOf: Int32Array;
}

/** Software resolution of a guest table frame (gfn) to the host frame holding its bytes. */
export interface FrameResolver {
  /** pfn backing `gfn`, or -1 when the gfn is not backed by RAM */
  gfnToPfn(gfn: number): number;
}

/** A paging-structure cache the walker consults and fills (sim/cpu/pwc.ts). */
export interface WalkCache {
  /** Deepest cached entry for (dim, pn): returns its level (>= 2) and sets out.pwc* or 0. */
  lookup(out: WalkOut, dim: number, pn: number): number;
  fill(
    out: WalkOut,
    dim: number,
    pn: number,
    level: number,
    next: number,
    nextPfn: number,
    perm: number,
  ): void;
}

export const DIM_GUEST = 0;
export const DIM_EPT = 1;
export const DIM_NATIVE = 2;

export const ST_OK = 0;
/** x86 #PF in the guest tables (dim GUEST) or shadow/host tables (dim NATIVE) */
export const ST_PF = 1;
export const ST_EPT_VIOLATION = 2;
export const ST_EPT_MISCONFIG = 3;

/** Accumulated permissions: x86 (W, U, X) and EPT (R, W, X) share bit slots; D, G beside. */
export const PERM_W = 1;
export const PERM_U = 2;
export const PERM_X = 4;
export const PERM_D = 8;
export const PERM_G = 16;
export const EPERM_R = 1;
export const EPERM_W = 2;
export const EPERM_X = 4;
export const EPERM_D = 8;

const MAX_STEPS = 48;

/** The steps and result of one walk (and its nested walks), in typed arrays reused per access. */
export class WalkOut {
  n = 0;
  /**
   * Per step, packed to keep the walk to few stores: entry index (bits 0..8), level (9..11),
   * dimension (12..13) and `under` + 1 (14..16). Read them with indexOf/levelOf/dimOf/underOf.
   */
  readonly meta = new Int32Array(MAX_STEPS);
  /** frame number of the table in its own space (gfn for guest tables under EPT) */
  readonly table = new Float64Array(MAX_STEPS);
  /** host frame holding the table */
  readonly tablePfn = new Float64Array(MAX_STEPS);
  readonly lo = new Uint32Array(MAX_STEPS);
  readonly hi = new Uint32Array(MAX_STEPS);
  guestRefs = 0;
  eptRefs = 0;
  pwcHits = 0;

  // controls, set by the caller
  setAd = true;
  eptAd = true;
  wp = true;
  nxe = true;
  gb1 = true;
  /** reserved hi-half address bits (MAXPHYADDR) */
  rsvdHi = 0;
  pwc: WalkCache | null = null;
  resolver: FrameResolver | null = null;
  /** tag the WalkCache uses for guest/native entries and for EPT entries */
  pwcTag = 0;
  pwcEptTag = 0;
  /** set by WalkCache.lookup on a hit */
  pwcFrame = 0;
  pwcPfn = 0;
  pwcPerm = 0;

  // result
  status = ST_OK;
  /** #PF error code, or EPT-violation exit qualification */
  errorCode = 0;
  faultLevel = 0;
  faultDim = 0;
  /** gfn (EPT fault) or page number (x86 fault) that faulted */
  faultFrame = 0;
  /** guest frame of the access (2D walks) */
  gfn = -1;
  gLevel = 0;
  eLevel = 0;
  gPerm = 0;
  ePerm = 0;

  indexOf(s: number): number {
    return this.meta[s] & 511;
  }
  levelOf(s: number): number {
    return (this.meta[s] >>> 9) & 7;
  }
  dimOf(s: number): number {
    return (this.meta[s] >>> 12) & 3;
  }
  /** guest level whose table an EPT step translates; 0 = the final gpa; -1 not nested */
  underOf(s: number): number {
    return ((this.meta[s] >>> 14) & 7) - 1;
  }

  reset(): void {
    this.n = 0;
    this.guestRefs = 0;
    this.eptRefs = 0;
    this.pwcHits = 0;
    this.status = ST_OK;
    this.errorCode = 0;
    this.faultLevel = 0;
    this.faultDim = 0;
    this.faultFrame = 0;
    this.gfn = -1;
    this.gLevel = 0;
    this.eLevel = 0;
    this.gPerm = 0;
    this.ePerm = 0;
  }
}

/** Record where a walk stopped and why (status, error code or qualification, entry); -1. */
function fail(
  out: WalkOut,
  status: number,
  code: number,
  dim: number,
  level: number,
  pn: number,
): number {
  out.status = status;
  out.errorCode = code;
  out.faultDim = dim;
  out.faultLevel = level;
  out.faultFrame = pn;
  return -1;
}

/**
 * Walk `mode` tables from `root` for page number `pn` (vpn or gfn). `access` is PF_* bits for
 * x86 modes and QUAL_READ/WRITE/FETCH for EPT. Returns the 4K frame the tables map `pn` to, or
 * -1 with out.status set. With `nested`, table and final frames are gfns translated by EPT walks
 * and the pfn is returned (out.gfn holds the gfn); with `out.resolver` (software walks) table
 * gfns are resolved by it and the gfn is returned. `under` labels EPT steps (WalkOut.under).
 */
export function walk(
  out: WalkOut,
  mem: TableMemory,
  mode: PagingMode,
  root: number,
  pn: number,
  access: number,
  dim: number,
  nested: PagingMode | null,
  nestedRoot: number,
  under: number,
): number {
  const ept = mode.format === FMT_EPT;
  // the arena may grow (and move) only when a resolver faults a host page in: reloaded there
  let words = mem.words;
  const slotOf = mem.slotOf;
  const leafMask = ept || out.gb1 ? mode.leafMask : mode.leafMask & ~8;
  let table = root;
  let knownPfn = -1;
  const metaBase = (dim << 12) | ((under + 1) << 14);
  let level = mode.levels;
  // x86: W, U, X accumulate by AND; EPT: R, W, X
  let acc = ept ? 7 : PERM_W | PERM_U | PERM_X;
  const pwc = out.pwc;
  if (pwc !== null) {
    const hit = pwc.lookup(out, dim, pn);
    if (hit !== 0) {
      out.pwcHits++;
      level = hit - 1;
      table = out.pwcFrame;
      knownPfn = out.pwcPfn;
      acc = out.pwcPerm;
    }
  }
  for (; level >= 1; level--) {
    let tablePfn = table;
    if (knownPfn >= 0) {
      tablePfn = knownPfn;
      knownPfn = -1;
    } else if (nested !== null) {
      const eAccess = out.eptAd ? QUAL_WRITE : QUAL_READ;
      tablePfn = walk(out, mem, nested, nestedRoot, table, eAccess, DIM_EPT, null, 0, level);
      if (tablePfn < 0) {
        // the access was to a guest paging-structure entry (qualification bit 8 = 0)
        if (out.status === ST_EPT_VIOLATION) out.errorCode |= QUAL_GLA_VALID;
        out.faultLevel = level;
        return -1;
      }
      if (pwc !== null && level < mode.levels)
        pwc.fill(out, dim, pn, level + 1, table, tablePfn, acc);
    } else if (out.resolver !== null && dim === DIM_GUEST) {
      tablePfn = out.resolver.gfnToPfn(table);
      words = mem.words;
      if (tablePfn < 0) return fail(out, ST_PF, access | PF_RSVD, dim, level, table);
    } else if (pwc !== null && level < mode.levels) {
      pwc.fill(out, dim, pn, level + 1, table, tablePfn, acc);
    }
    const idx = (pn / LEVEL_PAGES[level]) & 511;
    const base = slotOf[tablePfn];
    let lo = 0;
    let hi = 0;
    let w = -1;
    if (base >= 0) {
      w = base + idx * 2;
      lo = words[w];
      hi = words[w + 1];
    }
    const s = out.n++;
    out.meta[s] = metaBase | (level << 9) | idx;
    out.table[s] = table;
    out.tablePfn[s] = tablePfn;
    out.lo[s] = lo;
    out.hi[s] = hi;
    if (ept) out.eptRefs++;
    else out.guestRefs++;

    if (ept) {
      const rwx = lo & 7;
      if (rwx === 0) {
        return fail(out, ST_EPT_VIOLATION, access, dim, level, pn);
      }
      const large = (lo & EPT_LARGE) !== 0;
      const leaf = level === 1 || large;
      if (
        (lo & 3) === 2 ||
        (hi & out.rsvdHi) !== 0 ||
        (large && level > 1 && (leafMask & (1 << level)) === 0) ||
        (leaf && eptBadMemType(lo)) ||
        (large && level > 1 && (lo & (level === 2 ? 0x001ff000 : 0x3ffff000)) !== 0)
      ) {
        return fail(out, ST_EPT_MISCONFIG, access, dim, level, pn);
      }
      acc &= rwx;
      if (!leaf) {
        if (out.setAd && out.eptAd && (lo & EPT_A) === 0) words[w] = lo | EPT_A;
        table = (hi & EPT_ADDR_HI) * 1048576 + (lo >>> 12);
        continue;
      }
      // qualification bits 0..2 (read, write, fetch) line up with R, W, X
      const need = access & 7;
      if ((need & acc) !== need) {
        return fail(out, ST_EPT_VIOLATION, access | (acc << 3), dim, level, pn);
      }
      let nlo = lo;
      if (out.setAd && out.eptAd) {
        nlo |= EPT_A;
        if (access & QUAL_WRITE) nlo |= EPT_D;
        if (nlo !== lo) words[w] = nlo;
      }
      out.eLevel = level;
      out.ePerm = acc | (nlo & EPT_D || !out.eptAd ? EPERM_D : 0);
      const first = eptLeafFrame(lo, hi, level);
      return level === 1 ? first : first + (pn % LEVEL_PAGES[level]);
    }

    // x86 format
    if ((lo & PTE_P) === 0) {
      return fail(out, ST_PF, access, dim, level, pn);
    }
    const ps = (lo & PTE_PS) !== 0 && level > 1;
    if (
      (hi & out.rsvdHi) !== 0 ||
      (!out.nxe && (hi & PTE_XD_HI) !== 0) ||
      (ps && (leafMask & (1 << level)) === 0) ||
      (ps && (lo & (level === 2 ? 0x001fe000 : 0x3fffe000)) !== 0)
    ) {
      return fail(out, ST_PF, access | PF_P | PF_RSVD, dim, level, pn);
    }
    if ((lo & PTE_RW) === 0) acc &= ~PERM_W;
    if ((lo & PTE_US) === 0) acc &= ~PERM_U;
    if ((hi & PTE_XD_HI) !== 0) acc &= ~PERM_X;
    if (!ps && level > 1) {
      if (out.setAd && (lo & PTE_A) === 0) words[w] = lo | PTE_A;
      table = (hi & 0xfffff) * 1048576 + (lo >>> 12);
      continue;
    }
    // leaf: permission checks (SDM 4.6; SMEP/SMAP/PK not modelled)
    const user = (access & PF_U) !== 0;
    if (
      (user && (acc & PERM_U) === 0) ||
      ((access & PF_W) !== 0 && (acc & PERM_W) === 0 && (user || out.wp)) ||
      ((access & PF_I) !== 0 && out.nxe && (acc & PERM_X) === 0)
    ) {
      return fail(out, ST_PF, access | PF_P, dim, level, pn);
    }
    const first = pteLeafFrame(lo, hi, level);
    const frame = level === 1 ? first : first + (pn % LEVEL_PAGES[level]);
    let nlo = lo;
    if (out.setAd) {
      nlo |= PTE_A;
      if (access & PF_W) nlo |= PTE_D;
    }
    if (nested !== null) {
      // the guest-physical address of the access itself, translated by EPT
      const eAccess = access & PF_W ? QUAL_WRITE : access & PF_I ? QUAL_FETCH : QUAL_READ;
      const pfn = walk(out, mem, nested, nestedRoot, frame, eAccess, DIM_EPT, null, 0, 0);
      if (pfn < 0) {
        // the access was to the translation of the linear address (bit 8 = 1)
        if (out.status === ST_EPT_VIOLATION) out.errorCode |= QUAL_GLA_VALID | QUAL_GLA_TRANSLATION;
        out.faultLevel = 0;
        out.gfn = frame;
        return -1;
      }
      if (nlo !== lo) words[w] = nlo;
      out.gfn = frame;
      out.gLevel = level;
      out.gPerm = acc | (nlo & PTE_D ? PERM_D : 0) | (lo & PTE_G ? PERM_G : 0);
      return pfn;
    }
    if (nlo !== lo) words[w] = nlo;
    out.gfn = frame;
    out.gLevel = level;
    out.gPerm = acc | (nlo & PTE_D ? PERM_D : 0) | (lo & PTE_G ? PERM_G : 0);
    return frame;
  }
  throw new Error("unreachable: a walk always ends at level 1");
}
