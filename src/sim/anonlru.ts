/**
 * The anonymous LRU lists' scanning: shrink_inactive_list and shrink_active_list over the QEMU
 * processes' guest RAM, aged with the accessed bits of the host ptes and the EPT leaves.
 *
 * How it works (mm/vmscan.c shrink_inactive_list, shrink_folio_list, folio_check_references,
 * shrink_active_list; mm/rmap.c folio_referenced; virt/kvm/kvm_main.c
 * kvm_mmu_notifier_clear_flush_young -> kvm_age_gfn): which list a page is on is a byte per
 * frame (lru.ts). A page on the inactive list: folio_referenced tests and clears the host pte's
 * accessed bit and, through the MMU notifier, the EPT leaf's A bit (the VMs are flushed once per
 * batch so the guest sets it again on use); referenced with PG_referenced already set, it is
 * activated (pgactivate); referenced for the first time, it gets PG_referenced and another trip
 * (FOLIOREF_KEEP: the fault that mapped it set the bit, so a page is looked at twice); not
 * referenced, it is reclaimed: a THP is split first (its subpages take their own pass) and the
 * 4 KiB page goes to swap (Reclaim.swapOut). A page on the active list has its bits cleared and
 * is deactivated (pgrefill, pgdeactivate): anonymous pages are not given another trip around
 * the active list (only executable file pages are). lru_note_cost gets the swap-outs as I/O and
 * the rest of the scanned pages as rotations.
 * Why hands and not lists: a guest page's frame changes under reclaim's feet (KSM merges and
 * COW breaks, balloon discards, THP splits, OOM teardowns) in modules that do not call into the
 * LRU, so each list is scanned by a CLOCK hand over the registered processes' anonymous memory
 * in address order, picking the pages whose byte names the list: the two-list algorithm, its
 * counters and its balance are the kernel's; the order within a list is address order rather
 * than the age order of the kernel's lists. KSM pages and the zero page are left alone;
 * <locked/> (mlocked) processes are skipped.
 */
import { EPT_A } from "../x86/ept.js";
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { PTE_A, pteLeafFrame } from "../x86/pte.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import type { HostPtes } from "./hostpte.js";
import type { Ksm } from "./ksm.js";
import type { TdpMmu } from "./kvm/tdp.js";
import type { Vm } from "./kvm/vm.js";
import { LRU_ACTIVE_ANON, LRU_INACTIVE_ANON, LRU_NONE, type Lru, PG_REFERENCED } from "./lru.js";
import { KIND_ANON, KIND_THP } from "./memory.js";
import type { Mm, Vma } from "./mm.js";

const ACTIVATE = 0;
const KEEP = 1;
const RECLAIM = 2;

/** A process under reclaim: its guest RAM VMA, whether it is mlocked, its swap entries. */
export interface Proc {
  mm: Mm;
  locked: boolean;
  swapped: number;
  vma: Vma | undefined;
}

/** A CLOCK hand over the registered processes' anonymous memory. */
class Hand {
  proc = 0;
  vpn = -1;
}

export class AnonLru {
  private readonly inactiveHand = new Hand();
  private readonly activeHand = new Hand();
  private readonly leaf = new LeafRef();
  private readonly eptLeaf = new LeafRef();
  private readonly toFlush = new Set<Vm>();

  constructor(
    readonly ptes: HostPtes,
    readonly ksm: Ksm,
    readonly lru: Lru,
    private readonly procs: readonly Proc[],
    /** free swap slots (get_nr_swap_pages) */
    private readonly freeSlots: () => number,
    /** add_to_swap, try_to_unmap, pageout, free: the page at `vpn` of `p` leaves memory */
    private readonly swapOut: (
      p: Proc,
      vpn: number,
      pfn: number,
      table: number,
      index: number,
    ) => void,
  ) {}

  /** the leaf `step` stopped at: its size in 4 KiB pages and its first frame */
  private leafPages = 1;
  private leafPfn = 0;

  /** One kvm_flush_remote_tlbs per VM whose accessed bits a pass cleared. */
  private flushAged(): void {
    for (const vm of this.toFlush) this.ptes.host.flushVm(vm);
    this.toFlush.clear();
  }

  /** Resident anonymous pages of unevictable-free processes: one lap of a hand. */
  private lap(): number {
    let n = 64;
    for (const p of this.procs) if (!p.locked && !p.mm.killed) n += p.mm.rss;
    return n;
  }

  /**
   * Move `h` to the next present anonymous leaf (4K or THP) of an evictable process, at the
   * leaf's first vpn; `leaf` holds it, `leafPages` and `leafPfn` its size and frame. Returns the
   * process, or null when a lap found nothing.
   */
  private step(h: Hand): Proc | null {
    const n = this.procs.length;
    const mem = this.ptes.host.mem;
    for (let wraps = 2 * n + 1; wraps > 0; ) {
      const p = this.procs[h.proc % n];
      const vma = p.vma;
      if (p.locked || !vma || p.mm.killed || h.vpn >= vma.end / 4096) {
        h.proc = (h.proc + 1) % n;
        h.vpn = -1;
        wraps--;
        continue;
      }
      if (h.vpn < vma.start / 4096) h.vpn = vma.start / 4096;
      const l = findLeaf(mem, p.mm, GUEST_4LEVEL, p.mm.root, h.vpn, this.leaf);
      if (!l.present) {
        const span = LEVEL_PAGES[l.level];
        h.vpn = h.vpn - (h.vpn % span) + span;
        continue;
      }
      this.leafPages = LEVEL_PAGES[l.level];
      this.leafPfn = pteLeafFrame(l.lo, l.hi, l.level);
      h.vpn -= h.vpn % this.leafPages;
      return p;
    }
    return null;
  }

  /** shrink_inactive_list over the inactive anon list: up to `nr` pages. */
  shrinkInactive(nr: number): { scanned: number; reclaimed: number } {
    const mem = this.ptes.host.mem;
    const lru = this.lru;
    const h = this.inactiveHand;
    let scanned = 0;
    let reclaimed = 0;
    for (let steps = this.lap(); scanned < nr && steps > 0 && this.freeSlots() > 0; steps--) {
      const p = this.step(h);
      if (!p) break;
      const l = this.leaf;
      const pages = this.leafPages;
      const vpn = h.vpn;
      const pfn = this.leafPfn;
      const kind = mem.kind[pfn];
      const special = pfn === this.ksm.zeroPfn || this.ksm.stableOf[pfn] >= 0;
      if (special || (kind !== KIND_ANON && kind !== KIND_THP)) {
        h.vpn = vpn + pages;
        continue;
      }
      if (lru.lru[pfn] === LRU_NONE) lru.setAnon(pfn, pages, LRU_INACTIVE_ANON);
      if (lru.lru[pfn] !== LRU_INACTIVE_ANON) {
        h.vpn = vpn + pages;
        continue;
      }
      scanned += pages;
      const ref = this.checkReferences(p.mm, vpn, pfn, l.lo, l.tableFrame, l.index, l.level);
      if (ref === ACTIVATE) {
        lru.setAnon(pfn, pages, LRU_ACTIVE_ANON);
        lru.pgactivate += pages;
      } else if (ref === RECLAIM) {
        if (pages > 1) {
          // split, then the subpages take their own pass (the head is reclaimed next step)
          this.ptes.split(p.mm, vpn);
          scanned -= pages - 1;
          continue;
        }
        this.swapOut(p, vpn, pfn, l.tableFrame, l.index);
        reclaimed++;
      }
      h.vpn = vpn + pages;
    }
    this.flushAged();
    // every swap-out is a pageout (swap_writepage): nr_io; the rest rotated
    lru.noteCost(false, reclaimed, scanned - reclaimed);
    return { scanned, reclaimed };
  }

  /** shrink_active_list over the active anon list: clear accessed bits, deactivate. */
  shrinkActive(nr: number): void {
    const mem = this.ptes.host.mem;
    const lru = this.lru;
    const h = this.activeHand;
    let n = 0;
    for (let steps = this.lap(); n < nr && steps > 0; steps--) {
      const p = this.step(h);
      if (!p) break;
      const l = this.leaf;
      const pages = this.leafPages;
      const vpn = h.vpn;
      const pfn = this.leafPfn;
      h.vpn = vpn + pages;
      if (lru.lru[pfn] !== LRU_ACTIVE_ANON) continue;
      const k = mem.kind[pfn];
      if (k !== KIND_ANON && k !== KIND_THP) continue;
      this.referenced(p.mm, vpn, l.lo, l.tableFrame, l.index, l.level);
      lru.setAnon(pfn, pages, LRU_INACTIVE_ANON);
      n += pages;
    }
    this.flushAged();
    lru.pgrefill += n;
    lru.pgdeactivate += n;
  }

  /** folio_check_references for an anonymous folio mapped once. */
  private checkReferences(
    mm: Mm,
    vpn: number,
    pfn: number,
    lo: number,
    table: number,
    index: number,
    level: number,
  ): number {
    const ptes = this.referenced(mm, vpn, lo, table, index, level);
    const folio = (this.lru.flags[pfn] & PG_REFERENCED) !== 0;
    this.lru.flags[pfn] &= ~PG_REFERENCED;
    if (ptes) {
      // the first reference spares it another trip; a second activates it
      this.lru.flags[pfn] |= PG_REFERENCED;
      return folio ? ACTIVATE : KEEP;
    }
    return RECLAIM;
  }

  /** folio_referenced: test and clear the host pte's and the EPT leaf's accessed bits. */
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
}
