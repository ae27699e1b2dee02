/**
 * Page reclaim and swap: kswapd and direct reclaim take pages back from the LRU lists (lru.ts):
 * page-cache pages (pagecache.ts) are dropped, cold anonymous guest memory (anonlru.ts) goes to
 * swap (swapdev.ts), and the next touch of a swapped page reads it back as a major fault.
 *
 * How it works (mm/vmscan.c, mm/swapfile.c, mm/memory.c do_swap_page, mm/page_alloc.c
 * __setup_per_zone_wmarks; read at torvalds/linux 538d5baa): the watermarks come from
 * vm.min_free_kbytes: min, low = min + tmp, high = min + 2 tmp with tmp = max(min / 4, managed
 * pages x watermark_scale_factor (10) / 10000). kswapd wakes below low and runs balance_pgdat:
 * passes of nr_to_reclaim = max(high, SWAP_CLUSTER_MAX) pages from priority DEF_PRIORITY (12)
 * down, lowering the priority after a pass that scanned less than that or freed nothing, until
 * free memory is above high. An allocation that finds free memory at or below min, or no frame,
 * reclaims SWAP_CLUSTER_MAX pages itself (do_try_to_free_pages: priorities 12..0, allocstall),
 * retried MAX_RECLAIM_RETRIES (16) times without progress before out_of_memory (oom.ts).
 * Each pass is shrink_node -> shrink_lruvec: prepare_scan_control and get_scan_count (lru.ts)
 * split it between the four lists by vm.swappiness and the lists' recent costs; the lists are
 * shrunk SWAP_CLUSTER_MAX pages at a time until the pass's goal is met (the kernel then scales
 * the other type's remaining scan down proportionally: not modelled, the pass stops); an active
 * list is deactivated only when its inactive list is low (may_deactivate), and the anonymous
 * lists are rebalanced at the end of every pass when there is swap. New anonymous pages go to
 * the inactive list (lru_cache_add_inactive_or_unevictable in do_anonymous_page, since 5.9),
 * a swapped-in page too (without shadow entries there is no workingset activation).
 * Swap-out stores the page's content token in a free slot, turns the pte into a swap entry
 * (non-present, the slot in the address bits), zaps the spte through the MMU notifier and frees
 * the frame (pswpout); a guest access to it takes an EPT violation, KVM faults the hva and
 * swapIn reads the slot back (pswpin, pgmajfault; SWAP_IN_CYCLES of I/O). hugetlbfs memory is
 * not on the LRU; a <locked/> VM's memory is unevictable (Mlocked). Simplified: a shadow-paging
 * VM's pages are aged by the host pte's accessed bit only, which guest accesses do not set.
 *
 * Invariants (assertInvariants): every swap pte names a used slot and no two the same one;
 * the LRU lists and the page cache hold their own invariants.
 */
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { makePteHi, makePteLo, PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US, pteFrame } from "../x86/pte.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import { AnonLru, type Proc } from "./anonlru.js";
import type { HostPtes } from "./hostpte.js";
import type { Ksm } from "./ksm.js";
import {
  DEACTIVATE_ANON,
  DEACTIVATE_FILE,
  DEF_PRIORITY,
  getScanCount,
  inactiveIsLow,
  LRU_ACTIVE_ANON,
  LRU_INACTIVE_ANON,
  LRU_NONE,
  LRU_UNEVICTABLE,
  Lru,
  prepareScanControl,
  type ScanBalance,
} from "./lru.js";
import { KIND_ANON, KIND_FILE } from "./memory.js";
import type { MemoryPressure, Mm } from "./mm.js";
import { type OomVictim, outOfMemory } from "./oom.js";
import { PageCache } from "./pagecache.js";
import { SwapDevice } from "./swapdev.js";

/** SWAP_CLUSTER_MAX: pages reclaimed per batch */
export const SWAP_CLUSTER_MAX = 32;
/** MAX_RECLAIM_RETRIES: allocation retries without reclaim progress before the OOM killer */
export const MAX_RECLAIM_RETRIES = 16;
/** a swap-in's I/O: one 4 KiB read from an SSD, about 100 us at 3 GHz (a teaching number) */
export const SWAP_IN_CYCLES = 300000;
/** a software-available bit of the non-present pte marks a swap entry */
const SWP_MARK = 1 << 10;

/** Is the entry findLeaf stopped at a swap entry (a non-present level-1 pte with SWP_MARK)? */
function isSwapEntry(l: LeafRef): boolean {
  return !l.present && l.level === 1 && (l.lo & SWP_MARK) !== 0;
}

/** init_per_zone_wmark_min: int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144] */
export function defaultMinFreeKbytes(totalKiB: number): number {
  return Math.min(262144, Math.max(128, Math.floor(Math.sqrt(totalKiB * 16))));
}

export interface ReclaimOptions {
  swapBytes: number;
  minFreeKbytes: number;
  /** the sysctls reclaim reads when it runs (vm.swappiness; a timeline `set` changes it) */
  sysctl?: { swappiness: number };
}

export class Reclaim implements MemoryPressure {
  readonly min: number;
  readonly low: number;
  readonly high: number;
  readonly swap: SwapDevice;
  readonly lru: Lru;
  readonly cache: PageCache;
  readonly sysctl: { swappiness: number };
  pgmajfault = 0;
  pageoutrun = 0;
  allocstall = 0;
  pgscanKswapd = 0;
  pgscanDirect = 0;
  pgstealKswapd = 0;
  pgstealDirect = 0;
  pgscanAnon = 0;
  pgscanFile = 0;
  pgstealAnon = 0;
  pgstealFile = 0;
  /** passes per balance, for the results */
  readonly balances: Record<ScanBalance, number> = { equal: 0, fract: 0, anon: 0, file: 0 };
  private readonly procs: Proc[] = [];
  /** the anonymous lists' scanning (anonlru.ts) */
  readonly anon: AnonLru;
  private direct = false;
  /** WORKINGSET_ACTIVATE_FILE when reclaim last finished (snapshot_refaults) */
  private refaultSnapshot = 0;
  private readonly leaf = new LeafRef();

  constructor(
    readonly ptes: HostPtes,
    readonly ksm: Ksm,
    opts: ReclaimOptions,
  ) {
    const mem = ptes.host.mem;
    this.min = Math.floor(opts.minFreeKbytes / 4);
    const tmp = Math.max(Math.floor(this.min / 4), Math.floor((mem.nframes * 10) / 10000));
    this.low = this.min + tmp;
    this.high = this.min + 2 * tmp;
    this.swap = new SwapDevice(opts.swapBytes);
    this.sysctl = opts.sysctl ?? { swappiness: 60 };
    this.lru = new Lru(mem);
    this.cache = new PageCache(
      mem,
      this.lru,
      () => this.allocFrame(KIND_FILE),
      () => this.swap.freeSlots,
    );
    this.anon = new AnonLru(
      ptes,
      ksm,
      this.lru,
      this.procs,
      () => this.swap.freeSlots,
      (p, vpn, pfn, table, index) => this.swapOut(p, vpn, pfn, table, index),
    );
  }

  get slots(): number {
    return this.swap.slots;
  }
  get swapUsed(): number {
    return this.swap.used;
  }

  /** Put a process's anonymous memory under reclaim (locked: mlock'ed, never reclaimed). */
  register(mm: Mm, locked: boolean): void {
    mm.pressure = this;
    this.procs.push({ mm, locked, swapped: 0, vma: mm.vmas.find((v) => v.kind === "anon") });
  }

  private procOf(mm: Mm): Proc | undefined {
    for (const p of this.procs) if (p.mm === mm) return p;
    return undefined;
  }

  /** Pages of `mm` in swap (MM_SWAPENTS). */
  swappedOf(mm: Mm): number {
    return this.procOf(mm)?.swapped ?? 0;
  }

  /** Pages mlocked (<locked/> VMs): /proc/meminfo Mlocked. */
  mlockedPages(): number {
    let n = 0;
    for (const p of this.procs) if (p.locked) n += p.mm.rss;
    return n;
  }

  /** A new anonymous page (do_anonymous_page, a THP fault): the inactive list or unevictable. */
  newAnon(mm: Mm, pfn: number, pages: number): void {
    this.lru.setAnon(pfn, pages, this.procOf(mm)?.locked ? LRU_UNEVICTABLE : LRU_INACTIVE_ANON);
    this.lru.flags.fill(0, pfn, pfn + pages);
  }

  /** The LRU list sizes with frames freed elsewhere dropped (see Lru.resync). */
  lists() {
    this.lru.resync();
    return this.lru.sizes();
  }

  /** do_swap_page */
  swapIn(mm: Mm, hva: number): number {
    const vpn = Math.floor(hva / 4096);
    const mem = this.ptes.host.mem;
    const l = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (!isSwapEntry(l)) return -1;
    const slot = pteFrame(l.lo, l.hi);
    const table = l.tableFrame;
    const index = l.index;
    const pfn = this.allocFrame(KIND_ANON);
    if (pfn < 0) throw new Error("host out of memory");
    if (mm.killed) {
      mem.free(pfn, 0);
      throw new Error(`SIGKILL: ${mm.name} was killed by the OOM killer`);
    }
    mem.token[pfn] = this.swap.tokenOf(slot);
    const bytes = this.swap.takeBytes(slot);
    if (bytes) {
      const off = mem.bytes(pfn); // may grow (replace) the words arena: take it after
      mem.words.set(bytes, off);
    }
    this.swap.release(slot);
    mm.setEntry(
      table,
      index,
      1,
      makePteLo(pfn, PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D),
      makePteHi(pfn, true),
    );
    mm.rss++;
    this.newAnon(mm, pfn, 1);
    const p = this.procOf(mm);
    if (p) p.swapped--;
    this.ptes.vmstat.pswpin++;
    this.pgmajfault++;
    return pfn;
  }

  /**
   * get_page_from_freelist's watermark check: a user allocation does not take the last `min`
   * pages (they stay for page tables and the kernel); below it, reclaim directly first.
   */
  beforeAlloc(): void {
    const mem = this.ptes.host.mem;
    while (mem.freeFrames <= this.min && this.directReclaim() > 0);
  }

  /** A frame of `kind` for a swap-in or the page cache; -1 when nothing could be freed. */
  private allocFrame(kind: number): number {
    this.beforeAlloc();
    const mem = this.ptes.host.mem;
    let pfn = mem.alloc(0, kind);
    while (pfn < 0 && this.directReclaim() > 0) pfn = mem.alloc(0, kind);
    return pfn;
  }

  /**
   * try_to_free_pages from an allocation; when retries make no progress, out_of_memory kills
   * the process with the highest oom_badness (oom.ts).
   */
  directReclaim(): number {
    this.direct = true;
    let n = 0;
    for (let retry = 0; retry < MAX_RECLAIM_RETRIES && n === 0; retry++) {
      this.allocstall++;
      for (let prio = DEF_PRIORITY; prio >= 0 && n < SWAP_CLUSTER_MAX; prio--)
        n += this.shrinkNode(prio, SWAP_CLUSTER_MAX - n).reclaimed;
    }
    this.direct = false;
    this.refaultSnapshot = this.cache.activations;
    if (n > 0) return n;
    const killed = outOfMemory(this.ptes, this.ksm, this.procs);
    if (!killed) return 0;
    this.victims.push(killed.victim);
    return killed.freed;
  }

  /** processes the OOM killer killed, in order */
  readonly victims: OomVictim[] = [];

  /** kswapd: below the low watermark, balance_pgdat until above the high one. */
  kswapd(): void {
    const mem = this.ptes.host.mem;
    if (mem.freeFrames >= this.low) return;
    this.pageoutrun++;
    this.lru.resync();
    const goal = Math.max(this.high, SWAP_CLUSTER_MAX);
    for (let prio = DEF_PRIORITY; prio >= 1 && mem.freeFrames < this.high; ) {
      const r = this.shrinkNode(prio, goal);
      // raise the priority (scan more) after a pass that scanned too little or freed nothing
      if (r.scanned < goal || r.reclaimed === 0) prio--;
    }
    this.refaultSnapshot = this.cache.activations;
  }

  /** shrink_node -> shrink_lruvec at `priority`: pages scanned and reclaimed. */
  private shrinkNode(
    priority: number,
    nrToReclaim: number,
  ): { scanned: number; reclaimed: number } {
    const lru = this.lru;
    const sizes = lru.sizes();
    const free = this.ptes.host.mem.freeFrames;
    const refaulted = this.cache.activations !== this.refaultSnapshot;
    const sc = prepareScanControl(sizes, free, this.high, priority, refaulted);
    const canSwap = this.swap.freeSlots > 0;
    const count = getScanCount(
      sizes,
      sc,
      priority,
      this.sysctl.swappiness,
      canSwap,
      lru.anonCost,
      lru.fileCost,
    );
    const nr = count.nr;
    let scanned = 0;
    let reclaimed = 0;
    if (nr[0] + nr[1] + nr[2] + nr[3] > 0) this.balances[count.balance]++;
    while ((nr[0] > 0 || nr[2] > 0 || nr[3] > 0) && reclaimed < nrToReclaim) {
      for (let l = 0; l < 4; l++) {
        if (nr[l] === 0) continue;
        const n = Math.min(nr[l], SWAP_CLUSTER_MAX);
        nr[l] -= n;
        if (l === 0) {
          const r = this.anon.shrinkInactive(n);
          this.countScan(true, r.scanned, r.reclaimed);
          scanned += r.scanned;
          reclaimed += r.reclaimed;
        } else if (l === 1) {
          if (sc.mayDeactivate & DEACTIVATE_ANON) this.anon.shrinkActive(n);
        } else if (l === 2) {
          const r = this.cache.shrinkInactive(n);
          this.countScan(false, r.scanned, r.reclaimed);
          // the flusher, not reclaim's pageout, writes dirty file pages here: no nr_io
          lru.noteCost(true, 0, r.scanned - r.reclaimed);
          scanned += r.scanned;
          reclaimed += r.reclaimed;
        } else if (sc.mayDeactivate & DEACTIVATE_FILE) this.cache.shrinkActive(n);
      }
    }
    // rebalance the anon lists even when they were not scanned (can_age_anon_pages)
    if (this.swap.slots > 0 && inactiveIsLow(lru.nr[LRU_INACTIVE_ANON], lru.nr[LRU_ACTIVE_ANON]))
      this.anon.shrinkActive(SWAP_CLUSTER_MAX);
    return { scanned, reclaimed };
  }

  private countScan(anon: boolean, scanned: number, reclaimed: number): void {
    if (this.direct) {
      this.pgscanDirect += scanned;
      this.pgstealDirect += reclaimed;
    } else {
      this.pgscanKswapd += scanned;
      this.pgstealKswapd += reclaimed;
    }
    if (anon) {
      this.pgscanAnon += scanned;
      this.pgstealAnon += reclaimed;
    } else {
      this.pgscanFile += scanned;
      this.pgstealFile += reclaimed;
    }
  }

  /** shrink_folio_list -> add_to_swap, try_to_unmap (a swap pte), swap_writepage, free */
  private swapOut(p: Proc, vpn: number, pfn: number, table: number, index: number): void {
    const mem = this.ptes.host.mem;
    const mm = p.mm;
    // a frame with bytes (a guest page-table page) takes them to swap
    const words = mem.slotOf[pfn];
    const slot = this.swap.store(
      mem.token[pfn],
      words >= 0 ? mem.words.slice(words, words + 1024) : null,
    );
    mm.setEntry(table, index, 1, makePteLo(slot, SWP_MARK), makePteHi(slot, false));
    this.ptes.invalidate(mm, vpn, 1);
    this.lru.setAnon(pfn, 1, LRU_NONE);
    this.lru.flags[pfn] = 0;
    mem.free(pfn, 0);
    mm.rss--;
    p.swapped++;
    this.ptes.vmstat.pswpout++;
  }

  /** zap of a swap pte (MADV_DONTNEED, the balloon): free_swap_and_cache frees its slot */
  dropSwap(mm: Mm, vpn: number): void {
    const l = findLeaf(this.ptes.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (!isSwapEntry(l)) return;
    this.swap.release(pteFrame(l.lo, l.hi));
    const p = this.procOf(mm);
    if (p) p.swapped--;
    mm.setEntry(l.tableFrame, l.index, 1, 0, 0);
  }

  /** Is page `vpn` of `mm` in swap? */
  isSwapped(mm: Mm, vpn: number): boolean {
    const l = findLeaf(this.ptes.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    return isSwapEntry(l);
  }

  assertInvariants(): void {
    const seen = this.swap.usedMap();
    const mem = this.ptes.host.mem;
    let entries = 0;
    for (const { mm, vma } of this.procs) {
      if (!vma) continue;
      for (let vpn = vma.start / 4096; vpn < vma.end / 4096; vpn++) {
        const l = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
        if (!l.present && l.level >= 2) {
          vpn += LEVEL_PAGES[l.level] - 1 - (vpn % LEVEL_PAGES[l.level]);
          continue;
        }
        if (l.present || (l.lo & SWP_MARK) === 0) continue;
        const slot = pteFrame(l.lo, l.hi);
        if (seen[slot]) throw new Error(`swap slot ${slot} named twice or free`);
        seen[slot] = 1;
        entries++;
      }
    }
    if (entries !== this.swap.used)
      throw new Error(`swap ptes ${entries} != used slots ${this.swap.used}`);
    this.lru.assertInvariants();
    this.cache.assertInvariants();
  }
}
