/**
 * The host's LRU lists: which list every reclaimable frame is on, and how reclaim balances them.
 *
 * How it works (mm/vmscan.c, mm/swap.c, include/linux/mm_inline.h; read at torvalds/linux
 * 538d5baa, 6.15): every evictable frame is on one of four lists, inactive and active anonymous
 * and inactive and active file, or on the unevictable list (mlocked: a <locked/> VM). The list
 * is a byte per frame (`lru[pfn]`, the kernel's PG_lru/PG_active/PG_unevictable folio flags) and
 * `flags[pfn]` holds PG_referenced and PG_dirty; `nr[list]` are the lists' sizes in pages
 * (nr_inactive_anon, ... in /proc/vmstat). File pages are on real doubly-linked lists in typed
 * arrays indexed by pfn (allocated with the first file page), scanned from the tail (the
 * oldest) and added at the head, as lruvec_add_folio and lru_to_folio do. Anonymous pages are
 * scanned by reclaim.ts in address order over each QEMU's guest RAM (a CLOCK hand per list), not
 * in age order: see reclaim.ts for why. prepareScanControl and getScanCount are the kernel's
 * functions of the same names over the list sizes (pure, tested with hand-computed numbers):
 * file refaults (pagecache.ts keeps shadow entries) and inactive_is_low decide may_deactivate;
 * memory cgroups and their protection are not modelled (global reclaim).
 * noteCost is lru_note_cost: cost = nr_io x SWAP_CLUSTER_MAX + nr_rotated, both costs halved
 * when their sum exceeds a quarter of the LRU pages.
 *
 * Invariants (assertInvariants): nr[list] equals the frames whose byte names the list; a file
 * list's links name exactly the frames on it; a frame on a file list is KIND_FILE.
 */
import { KIND_ANON, KIND_FILE, KIND_FREE, KIND_THP, type PhysMem } from "./memory.js";

export const LRU_NONE = 0;
export const LRU_INACTIVE_ANON = 1;
export const LRU_ACTIVE_ANON = 2;
export const LRU_INACTIVE_FILE = 3;
export const LRU_ACTIVE_FILE = 4;
export const LRU_UNEVICTABLE = 5;
/** PG_referenced: seen accessed once (folio_mark_accessed, folio_check_references) */
export const PG_REFERENCED = 1;
/** PG_dirty: a page-cache page written and not yet written back */
export const PG_DIRTY = 2;
/** PG_workingset: the page was active before (deactivated, or activated on a refault) */
export const PG_WORKINGSET = 4;

/** DEF_PRIORITY: reclaim scans (list size >> priority) pages, from 12 down to 0 */
export const DEF_PRIORITY = 12;
/** MAX_SWAPPINESS (include/linux/swap.h, 5.8+: swappiness goes to 200) */
export const MAX_SWAPPINESS = 200;
const SWAP_CLUSTER_MAX = 32;

/** int_sqrt (lib/math/int_sqrt.c): floor of the square root */
export function intSqrt(x: number): number {
  let r = Math.floor(Math.sqrt(x));
  while (r * r > x) r--;
  while ((r + 1) * (r + 1) <= x) r++;
  return r;
}

/** inactive_is_low: inactive x int_sqrt(10 x GiB of both lists) < active (ratio 1 below 1 GiB) */
export function inactiveIsLow(inactive: number, active: number): boolean {
  const gb = Math.floor((inactive + active) / 262144);
  const ratio = gb ? intSqrt(10 * gb) : 1;
  return inactive * ratio < active;
}

export const DEACTIVATE_ANON = 1;
export const DEACTIVATE_FILE = 2;

export interface LruSizes {
  inactiveAnon: number;
  activeAnon: number;
  inactiveFile: number;
  activeFile: number;
}

export interface ScanControl {
  mayDeactivate: number;
  cacheTrimMode: boolean;
  fileIsTiny: boolean;
}

/** prepare_scan_control for global reclaim at `priority`; `free` and `high` in pages. */
export function prepareScanControl(
  s: LruSizes,
  free: number,
  high: number,
  priority: number,
  /** file pages were activated on refault since the last reclaim run (WORKINGSET_ACTIVATE_FILE) */
  fileRefaults = false,
): ScanControl {
  // a new workingset being established (refaults), or an inactive list that is low, asks for
  // deactivation; anonymous refaults are not modelled (no swap-cache shadow entries)
  let mayDeactivate = 0;
  if (inactiveIsLow(s.inactiveAnon, s.activeAnon)) mayDeactivate |= DEACTIVATE_ANON;
  if (fileRefaults || inactiveIsLow(s.inactiveFile, s.activeFile)) mayDeactivate |= DEACTIVATE_FILE;
  // plenty of inactive file that is not thrashing: reclaim it before anon (cache_trim_mode)
  const cacheTrimMode =
    Math.floor(s.inactiveFile / 2 ** priority) > 0 && (mayDeactivate & DEACTIVATE_FILE) === 0;
  // the cache trap: file + free at or below the high watermark forces anon scanning
  const fileIsTiny =
    s.inactiveFile + s.activeFile + free <= high &&
    (mayDeactivate & DEACTIVATE_ANON) === 0 &&
    Math.floor(s.inactiveAnon / 2 ** priority) > 0;
  return { mayDeactivate, cacheTrimMode, fileIsTiny };
}

export type ScanBalance = "equal" | "fract" | "anon" | "file";

export interface ScanCount {
  balance: ScanBalance;
  /** pages to scan: [inactive anon, active anon, inactive file, active file] */
  nr: [number, number, number, number];
  /** SCAN_FRACT's fractions (0 otherwise) */
  ap: number;
  fp: number;
}

/**
 * get_scan_count: how many pages of each list to scan at `priority`. `canSwap` is
 * can_reclaim_anon_pages (free swap slots); costs are lruvec->anon_cost and file_cost.
 */
export function getScanCount(
  s: LruSizes,
  sc: ScanControl,
  priority: number,
  swappiness: number,
  canSwap: boolean,
  anonCost: number,
  fileCost: number,
): ScanCount {
  let balance: ScanBalance;
  let ap = 0;
  let fp = 0;
  if (!canSwap) balance = "file";
  else if (priority === 0 && swappiness > 0) balance = "equal";
  else if (sc.fileIsTiny) balance = "anon";
  else if (sc.cacheTrimMode) balance = "file";
  else {
    balance = "fract";
    // at least a third of the pressure on each list before swappiness (the kernel's comment)
    let total = anonCost + fileCost;
    const ac = total + anonCost;
    const fc = total + fileCost;
    total = ac + fc;
    ap = Math.floor((swappiness * (total + 1)) / (ac + 1));
    fp = Math.floor(((MAX_SWAPPINESS - swappiness) * (total + 1)) / (fc + 1));
  }
  const sizes = [s.inactiveAnon, s.activeAnon, s.inactiveFile, s.activeFile];
  const nr: [number, number, number, number] = [0, 0, 0, 0];
  for (let lru = 0; lru < 4; lru++) {
    const file = lru >= 2;
    let scan = Math.floor(sizes[lru] / 2 ** priority);
    // the root memory cgroup is online: div64_u64 rounds down
    if (balance === "fract") scan = Math.floor((scan * (file ? fp : ap)) / (ap + fp));
    else if (balance === "file" && !file) scan = 0;
    else if (balance === "anon" && file) scan = 0;
    nr[lru] = scan;
  }
  return { balance, nr, ap, fp };
}

export class Lru {
  /** which list each frame is on (LRU_*) */
  readonly lru: Uint8Array;
  /** PG_referenced, PG_dirty */
  readonly flags: Uint8Array;
  /** pages per list, indexed by LRU_* */
  readonly nr = new Float64Array(6);
  /** file lists: links by pfn (-1: none), allocated with the first file page */
  private prev: Int32Array | null = null;
  private next: Int32Array | null = null;
  /** head (newest) and tail (oldest) of the inactive [0] and active [1] file lists */
  private readonly head = new Int32Array([-1, -1]);
  private readonly tail = new Int32Array([-1, -1]);
  anonCost = 0;
  fileCost = 0;
  pgactivate = 0;
  pgdeactivate = 0;
  pgrefill = 0;

  constructor(readonly mem: PhysMem) {
    this.lru = new Uint8Array(mem.nframes);
    this.flags = new Uint8Array(mem.nframes);
  }

  /** Put `n` frames from `pfn` on anon list `list` (not a file list), counting the move. */
  setAnon(pfn: number, n: number, list: number): void {
    for (let i = 0; i < n; i++) {
      const f = pfn + i;
      this.nr[this.lru[f]]--;
      this.lru[f] = list;
      this.nr[list]++;
    }
    this.nr[LRU_NONE] = 0;
  }

  /** lru_note_cost */
  noteCost(file: boolean, nrIo: number, nrRotated: number): void {
    const cost = nrIo * SWAP_CLUSTER_MAX + nrRotated;
    if (cost === 0) return;
    if (file) this.fileCost += cost;
    else this.anonCost += cost;
    const size =
      this.nr[LRU_INACTIVE_ANON] +
      this.nr[LRU_ACTIVE_ANON] +
      this.nr[LRU_INACTIVE_FILE] +
      this.nr[LRU_ACTIVE_FILE];
    if (this.fileCost + this.anonCost > Math.floor(size / 4)) {
      this.fileCost = Math.floor(this.fileCost / 2);
      this.anonCost = Math.floor(this.anonCost / 2);
    }
  }

  sizes(): LruSizes {
    return {
      inactiveAnon: this.nr[LRU_INACTIVE_ANON],
      activeAnon: this.nr[LRU_ACTIVE_ANON],
      inactiveFile: this.nr[LRU_INACTIVE_FILE],
      activeFile: this.nr[LRU_ACTIVE_FILE],
    };
  }

  // --- file lists ---

  private links(): [Int32Array, Int32Array] {
    if (!this.prev || !this.next) {
      this.prev = new Int32Array(this.mem.nframes).fill(-1);
      this.next = new Int32Array(this.mem.nframes).fill(-1);
    }
    return [this.prev, this.next];
  }

  /** lruvec_add_folio: a file page goes to the head of the inactive or active file list. */
  addFile(pfn: number, list: typeof LRU_INACTIVE_FILE | typeof LRU_ACTIVE_FILE): void {
    const [prev, next] = this.links();
    const k = list - LRU_INACTIVE_FILE;
    const h = this.head[k];
    prev[pfn] = -1;
    next[pfn] = h;
    if (h >= 0) prev[h] = pfn;
    else this.tail[k] = pfn;
    this.head[k] = pfn;
    this.lru[pfn] = list;
    this.nr[list]++;
  }

  /** lruvec_del_folio of a file page. */
  delFile(pfn: number): void {
    const [prev, next] = this.links();
    const list = this.lru[pfn];
    if (list !== LRU_INACTIVE_FILE && list !== LRU_ACTIVE_FILE)
      throw new Error(`pfn ${pfn} not on a file list`);
    const k = list - LRU_INACTIVE_FILE;
    const p = prev[pfn];
    const n = next[pfn];
    if (p >= 0) next[p] = n;
    else this.head[k] = n;
    if (n >= 0) prev[n] = p;
    else this.tail[k] = p;
    prev[pfn] = -1;
    next[pfn] = -1;
    this.lru[pfn] = LRU_NONE;
    this.nr[list]--;
  }

  /** The oldest page of a file list, or -1. */
  fileTail(list: typeof LRU_INACTIVE_FILE | typeof LRU_ACTIVE_FILE): number {
    return this.tail[list - LRU_INACTIVE_FILE];
  }

  /**
   * Drop list membership of anonymous frames that went away behind reclaim's back (freed by the
   * balloon, KSM, an OOM teardown) and adopt anonymous frames no path put on a list (a KSM COW
   * copy) as inactive, so nr[] counts frames as they are. Run when kswapd wakes and before the
   * counters are read.
   */
  resync(): void {
    const mem = this.mem;
    const kind = mem.kind;
    const lru = this.lru;
    for (let f = 0; f < mem.nframes; f++) {
      const k = kind[f];
      const l = lru[f];
      if (k === KIND_ANON || k === KIND_THP) {
        if (l === LRU_NONE) {
          lru[f] = LRU_INACTIVE_ANON;
          this.nr[LRU_INACTIVE_ANON]++;
          this.flags[f] = 0;
        }
      } else if (l !== LRU_NONE && k !== KIND_FILE) {
        this.nr[l]--;
        lru[f] = LRU_NONE;
        this.flags[f] = 0;
      }
    }
  }

  assertInvariants(): void {
    const count = new Float64Array(6);
    for (let f = 0; f < this.mem.nframes; f++) {
      count[this.lru[f]]++;
      const l = this.lru[f];
      if ((l === LRU_INACTIVE_FILE || l === LRU_ACTIVE_FILE) && this.mem.kind[f] !== KIND_FILE)
        throw new Error(`pfn ${f} on a file list is not a file page`);
      if (this.mem.kind[f] === KIND_FILE && l !== LRU_INACTIVE_FILE && l !== LRU_ACTIVE_FILE)
        throw new Error(`file page ${f} on no file list`);
      if (this.mem.kind[f] === KIND_FREE && (l === LRU_INACTIVE_FILE || l === LRU_ACTIVE_FILE))
        throw new Error(`free pfn ${f} on a file list`);
    }
    for (let l = 1; l < 6; l++)
      if (count[l] !== this.nr[l])
        throw new Error(`LRU list ${l}: nr ${this.nr[l]} != ${count[l]}`);
    for (const list of [LRU_INACTIVE_FILE, LRU_ACTIVE_FILE] as const) {
      let n = 0;
      let last = -1;
      for (let f = this.head[list - LRU_INACTIVE_FILE]; f >= 0; f = this.next![f]) {
        if (this.lru[f] !== list)
          throw new Error(`pfn ${f} linked on list ${list} but marked ${this.lru[f]}`);
        if (this.prev![f] !== last) throw new Error(`broken back link at pfn ${f}`);
        last = f;
        n++;
      }
      if (last !== this.tail[list - LRU_INACTIVE_FILE]) throw new Error("file list tail mismatch");
      if (n !== this.nr[list])
        throw new Error(`file list ${list} has ${n} links, nr ${this.nr[list]}`);
    }
  }
}
