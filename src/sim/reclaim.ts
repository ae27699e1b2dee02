/**
 * Swap and page reclaim: kswapd and direct reclaim move cold anonymous guest memory to a swap
 * device; the next touch reads it back as a major fault.
 *
 * How it works (mm/vmscan.c, mm/swapfile.c, mm/memory.c do_swap_page, mm/page_alloc.c
 * __setup_per_zone_wmarks): the watermarks come from vm.min_free_kbytes: min, low = min + tmp,
 * high = min + 2 tmp with tmp = max(min / 4, managed pages x watermark_scale_factor (10) /
 * 10000). kswapd wakes when free memory falls below low and reclaims until it is above high
 * (balance_pgdat); an allocation that finds no free frame reclaims SWAP_CLUSTER_MAX pages itself
 * (direct reclaim, allocstall) and tries again. Reclaim ages the anonymous pages of the
 * registered processes with a CLOCK hand, the second-chance approximation of the kernel's
 * active/inactive LRU lists: a page whose accessed bit is set (the host pte's, or for an EPT VM
 * the EPT leaf's A bit that the CPU sets on guest accesses: kvm_age_gfn through the MMU
 * notifier's clear_young) gets its bits cleared and another lap; the VMs whose bits were cleared
 * are flushed once per batch (kvm_flush_remote_tlbs) so a hot page is seen again. An unreferenced
 * page goes to a free swap slot (its content token is stored there), its pte becomes a swap
 * entry (non-present, the slot in the address bits), the MMU notifier zaps the spte, and the
 * frame is freed (pswpout). A THP is split first (thp_split_page); hugetlbfs memory is never on
 * the LRU, a <locked/> VM's memory is mlocked (unevictable), KSM pages and the zero page are
 * left alone. A guest access to a swapped page takes an EPT violation, KVM faults the hva, and
 * swapIn reads the slot back into a fresh frame (pswpin, pgmajfault; SWAP_IN_CYCLES of I/O).
 * Without free swap slots anonymous memory cannot be reclaimed; an allocation that finds nothing
 * to reclaim invokes the OOM killer (oom.ts), and fails only when nothing is left to kill.
 * Simplified: swappiness has no effect (there is no page cache, so reclaim always scans anon,
 * as get_scan_count does when file pages are too few); a shadow-paging VM's pages are aged by
 * the host pte's accessed bit only, which guest accesses do not set.
 *
 * Invariants (assertInvariants): used slots + free slots = slots; every swap pte names a used
 * slot, and no two name the same one.
 */
import { EPT_A } from "../x86/ept.js";
import { GUEST_4LEVEL } from "../x86/paging.js";
import { makePteHi, makePteLo, PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US, pteFrame } from "../x86/pte.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import type { HostPtes } from "./hostpte.js";
import type { Ksm } from "./ksm.js";
import type { TdpMmu } from "./kvm/tdp.js";
import type { Vm } from "./kvm/vm.js";
import { KIND_ANON, KIND_THP } from "./memory.js";
import type { MemoryPressure, Mm } from "./mm.js";
import { badness, type OomVictim, oomMessage, tearDown } from "./oom.js";

/** SWAP_CLUSTER_MAX: pages reclaimed per batch */
export const SWAP_CLUSTER_MAX = 32;
/** a swap-in's I/O: one 4 KiB read from an SSD, about 100 us at 3 GHz (a teaching number) */
export const SWAP_IN_CYCLES = 300000;
/** a software-available bit of the non-present pte marks a swap entry */
const SWP_MARK = 1 << 10;

/** init_per_zone_wmark_min: int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144] */
export function defaultMinFreeKbytes(totalKiB: number): number {
  return Math.min(262144, Math.max(128, Math.floor(Math.sqrt(totalKiB * 16))));
}

export interface ReclaimOptions {
  swapBytes: number;
  minFreeKbytes: number;
}

export class Reclaim implements MemoryPressure {
  readonly min: number;
  readonly low: number;
  readonly high: number;
  readonly slots: number;
  swapUsed = 0;
  pgmajfault = 0;
  pageoutrun = 0;
  allocstall = 0;
  pgscanKswapd = 0;
  pgscanDirect = 0;
  pgstealKswapd = 0;
  pgstealDirect = 0;
  private readonly slotToken: Uint32Array;
  /** the bytes of swapped frames that had them (guest page tables), by slot */
  private readonly slotBytes = new Map<number, Uint32Array>();
  private readonly freeSlots: Int32Array;
  private nfree: number;
  private readonly procs: Array<{ mm: Mm; locked: boolean; swapped: number }> = [];
  private hand = 0;
  private handVpn = -1;
  private direct = false;
  private readonly leaf = new LeafRef();
  private readonly eptLeaf = new LeafRef();
  private readonly toFlush = new Set<Vm>();

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
    this.slots = Math.floor(opts.swapBytes / 4096);
    this.slotToken = new Uint32Array(this.slots);
    this.freeSlots = new Int32Array(this.slots);
    for (let i = 0; i < this.slots; i++) this.freeSlots[i] = this.slots - 1 - i;
    this.nfree = this.slots;
  }

  /** Put a process's anonymous memory under reclaim (locked: mlock'ed, never reclaimed). */
  register(mm: Mm, locked: boolean): void {
    mm.pressure = this;
    this.procs.push({ mm, locked, swapped: 0 });
  }

  /** Pages of `mm` in swap (MM_SWAPENTS). */
  swappedOf(mm: Mm): number {
    return this.procs.find((p) => p.mm === mm)?.swapped ?? 0;
  }

  private count(mm: Mm, d: number): void {
    const p = this.procs.find((x) => x.mm === mm);
    if (p) p.swapped += d;
  }

  /** Pages mlocked (<locked/> VMs): /proc/meminfo Mlocked. */
  mlockedPages(): number {
    let n = 0;
    for (const p of this.procs) if (p.locked) n += p.mm.rss;
    return n;
  }

  /** do_swap_page */
  swapIn(mm: Mm, hva: number): number {
    const vpn = Math.floor(hva / 4096);
    const mem = this.ptes.host.mem;
    const l = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (l.present || l.level !== 1 || (l.lo & SWP_MARK) === 0) return -1;
    const slot = pteFrame(l.lo, l.hi);
    const table = l.tableFrame;
    const index = l.index;
    const pfn = this.allocFrame();
    if (mm.killed) {
      mem.free(pfn, 0);
      throw new Error(`SIGKILL: ${mm.name} was killed by the OOM killer`);
    }
    mem.token[pfn] = this.slotToken[slot];
    const bytes = this.slotBytes.get(slot);
    if (bytes) {
      const off = mem.bytes(pfn); // may grow (replace) the words arena: take it after
      mem.words.set(bytes, off);
      this.slotBytes.delete(slot);
    }
    this.freeSlots[this.nfree++] = slot;
    this.swapUsed--;
    mm.setEntry(
      table,
      index,
      1,
      makePteLo(pfn, PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D),
      makePteHi(pfn, true),
    );
    mm.rss++;
    this.count(mm, -1);
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

  private allocFrame(): number {
    this.beforeAlloc();
    const mem = this.ptes.host.mem;
    let pfn = mem.alloc(0, KIND_ANON);
    while (pfn < 0 && this.directReclaim() > 0) pfn = mem.alloc(0, KIND_ANON);
    if (pfn < 0) throw new Error("host out of memory");
    return pfn;
  }

  /**
   * try_to_free_pages from an allocation that found no free frame; when nothing can be
   * reclaimed, out_of_memory kills the process with the highest oom_badness (oom.ts).
   */
  directReclaim(): number {
    this.allocstall++;
    this.direct = true;
    const n = this.shrink(SWAP_CLUSTER_MAX);
    this.direct = false;
    if (n > 0) return n;
    let victim: { mm: Mm; pid: number } | null = null;
    let worst = -1;
    for (const [i, p] of this.procs.entries()) {
      if (p.mm.killed) continue;
      const points = badness(p.mm, p.swapped);
      if (points > worst) {
        worst = points;
        victim = { mm: p.mm, pid: 1000 + i };
      }
    }
    if (!victim) return 0;
    const message = oomMessage(victim.mm, victim.pid);
    const freed = tearDown(this.ptes, this.ksm, victim.mm);
    this.victims.push({ mm: victim.mm, pid: victim.pid, message });
    return freed;
  }

  /** processes the OOM killer killed, in order */
  readonly victims: OomVictim[] = [];

  /** kswapd: below the low watermark, reclaim until above the high one. */
  kswapd(): void {
    const mem = this.ptes.host.mem;
    if (mem.freeFrames >= this.low) return;
    this.pageoutrun++;
    while (mem.freeFrames < this.high) if (this.shrink(SWAP_CLUSTER_MAX) === 0) break;
  }

  /** shrink_lruvec over the anon pages: a CLOCK lap at most twice round; frames freed. */
  private shrink(nr: number): number {
    if (this.nfree === 0 || this.procs.length === 0) return 0;
    const mem = this.ptes.host.mem;
    let total = 0;
    for (const p of this.procs) if (!p.locked) total += p.mm.rss;
    // at most two laps: one to clear accessed bits, one to find them still clear
    let budget = 2 * total + 64;
    let wraps = 2 * this.procs.length + 1;
    let freed = 0;
    while (freed < nr && budget > 0 && wraps > 0 && this.nfree > 0) {
      const p = this.procs[this.hand % this.procs.length];
      const vma = p.mm.vmas.find((v) => v.kind === "anon");
      if (p.locked || !vma) {
        this.next();
        wraps--;
        continue;
      }
      if (this.handVpn < vma.start / 4096) this.handVpn = vma.start / 4096;
      if (this.handVpn >= vma.end / 4096) {
        this.next();
        wraps--;
        continue;
      }
      const vpn = this.handVpn;
      const l = findLeaf(mem, p.mm, GUEST_4LEVEL, p.mm.root, vpn, this.leaf);
      if (!l.present) {
        this.handVpn = l.level >= 2 ? vpn - (vpn % 512) + 512 : vpn + 1;
        continue;
      }
      budget--;
      if (this.direct) this.pgscanDirect++;
      else this.pgscanKswapd++;
      if (l.level === 2) {
        // a THP: referenced as a whole, else split for swap-out (thp_split_page)
        if (this.referenced(p.mm, vpn - (vpn % 512), l.lo, l.tableFrame, l.index, 2)) {
          this.handVpn = vpn - (vpn % 512) + 512;
          continue;
        }
        this.ptes.split(p.mm, vpn);
        continue;
      }
      this.handVpn++;
      const pfn = pteFrame(l.lo, l.hi);
      if (pfn === this.ksm.zeroPfn || this.ksm.stableOf[pfn] >= 0) continue;
      if (mem.kind[pfn] !== KIND_ANON && mem.kind[pfn] !== KIND_THP) continue;
      if (this.referenced(p.mm, vpn, l.lo, l.tableFrame, l.index, 1)) continue;
      this.swapOut(p.mm, vpn, pfn, l.tableFrame, l.index);
      freed++;
    }
    for (const vm of this.toFlush) this.ptes.host.flushVm(vm);
    this.toFlush.clear();
    if (this.direct) this.pgstealDirect += freed;
    else this.pgstealKswapd += freed;
    return freed;
  }

  private next(): void {
    this.hand++;
    this.handVpn = -1;
  }

  /** page_referenced: test and clear the host pte's and the EPT leaf's accessed bits. */
  private referenced(
    mm: Mm,
    vpn: number,
    lo: number,
    table: number,
    index: number,
    level: number,
  ): boolean {
    let young = (lo & PTE_A) !== 0;
    if (young)
      mm.setEntry(
        table,
        index,
        level,
        (lo & ~PTE_A) >>> 0,
        this.ptes.host.mem.entryHi(table, index),
      );
    for (const vm of this.ptes.vmsOf(mm)) {
      if (vm.mmu.kind !== "ept") continue;
      const mmu = vm.mmu as TdpMmu;
      for (const slot of vm.memslots.all()) {
        const sv = slot.userspaceAddr / 4096;
        if (vpn < sv || vpn >= sv + slot.npages) continue;
        const e = findLeaf(
          this.ptes.host.mem,
          mmu.store,
          mmu.mode,
          mmu.root,
          slot.baseGfn + vpn - sv,
          this.eptLeaf,
        );
        if (e.present && (e.lo & EPT_A) !== 0) {
          young = true;
          mmu.store.setSpte(e.tableFrame, e.index, e.level, (e.lo & ~EPT_A) >>> 0, e.hi);
          this.toFlush.add(vm);
        }
      }
    }
    return young;
  }

  /** shrink_folio_list -> add_to_swap, try_to_unmap (a swap pte), swap_writepage, free */
  private swapOut(mm: Mm, vpn: number, pfn: number, table: number, index: number): void {
    const mem = this.ptes.host.mem;
    const slot = this.freeSlots[--this.nfree];
    this.slotToken[slot] = mem.token[pfn];
    // a frame with bytes (a guest page-table page) takes them to swap
    const words = mem.slotOf[pfn];
    if (words >= 0) this.slotBytes.set(slot, mem.words.slice(words, words + 1024));
    this.swapUsed++;
    mm.setEntry(table, index, 1, makePteLo(slot, SWP_MARK), makePteHi(slot, false));
    this.ptes.invalidate(mm, vpn, 1);
    mem.free(pfn, 0);
    mm.rss--;
    this.count(mm, 1);
    this.ptes.vmstat.pswpout++;
  }

  /** zap of a swap pte (MADV_DONTNEED, the balloon): free_swap_and_cache frees its slot */
  dropSwap(mm: Mm, vpn: number): void {
    const l = findLeaf(this.ptes.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (l.present || l.level !== 1 || (l.lo & SWP_MARK) === 0) return;
    this.freeSlots[this.nfree++] = pteFrame(l.lo, l.hi);
    this.slotBytes.delete(pteFrame(l.lo, l.hi));
    this.swapUsed--;
    this.count(mm, -1);
    mm.setEntry(l.tableFrame, l.index, 1, 0, 0);
  }

  /** Is page `vpn` of `mm` in swap? */
  isSwapped(mm: Mm, vpn: number): boolean {
    const l = findLeaf(this.ptes.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    return !l.present && l.level === 1 && (l.lo & SWP_MARK) !== 0;
  }

  assertInvariants(): void {
    if (this.swapUsed + this.nfree !== this.slots) throw new Error("swap slots lost");
    const seen = new Uint8Array(this.slots);
    for (const slot of this.freeSlots.subarray(0, this.nfree)) seen[slot] = 1;
    const mem = this.ptes.host.mem;
    let entries = 0;
    for (const { mm } of this.procs) {
      const vma = mm.vmas.find((v) => v.kind === "anon");
      if (!vma) continue;
      for (let vpn = vma.start / 4096; vpn < vma.end / 4096; vpn++) {
        const l = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
        if (!l.present && l.level >= 2) {
          vpn += 511 - (vpn % 512);
          continue;
        }
        if (l.present || (l.lo & SWP_MARK) === 0) continue;
        const slot = pteFrame(l.lo, l.hi);
        if (seen[slot]) throw new Error(`swap slot ${slot} named twice or free`);
        seen[slot] = 1;
        entries++;
      }
    }
    if (entries !== this.swapUsed)
      throw new Error(`swap ptes ${entries} != used slots ${this.swapUsed}`);
  }
}
