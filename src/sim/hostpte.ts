/**
 * Host page-table edits that overcommit mechanisms share: find the pte backing an hva, point it at
 * another frame (writable or write-protected), split a transparent huge page, and tell KVM.
 *
 * How it works: the host's tables are the VMM process's real x86-64 tables (mm.ts), so every
 * change is an entry write through the Mm's TableSpace. split() is split_huge_pmd +
 * split_huge_page (mm/huge_memory.c): the PMD leaf becomes a page table of 512 ptes to the same
 * frames, which stop being one THP (KIND_THP -> KIND_ANON) and thp_split_page is counted. Every
 * change of a pte that a VM may have mapped goes through invalidate(): the MMU-notifier path
 * (mmu_notifier_invalidate_range_start -> kvm_mmu_notifier_invalidate_range_start ->
 * kvm_unmap_gfn_range in virt/kvm/kvm_main.c) that zaps the sptes of the gfns backed by the
 * changed hvas and flushes the VM's TLBs (kvm_flush_remote_tlbs), so the guest's next access
 * takes an EPT violation (or shadow fault) and KVM faults the host page in again.
 *
 * Invariants: a pte is only changed after the hva's huge mapping, if any, was split; every
 * change is followed by invalidate() for the VMs of that Mm.
 */
import { GUEST_4LEVEL } from "../x86/paging.js";
import { makePteHi, makePteLo, PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US, pteFrame } from "../x86/pte.js";
import { descend, findLeaf, LeafRef } from "../x86/tables.js";
import type { Host } from "./host.js";
import type { TdpMmu } from "./kvm/tdp.js";
import type { Vm } from "./kvm/vm.js";
import { KIND_ANON, KIND_THP } from "./memory.js";
import type { Mm } from "./mm.js";

/** /proc/vmstat counters the overcommit mechanisms move (mm/vmstat.c vmstat_text names). */
export class VmStat {
  pswpin = 0;
  pswpout = 0;
  thp_split_page = 0;
  cow_ksm = 0;
}

export class HostPtes {
  readonly leaf = new LeafRef();
  /** whose pte `leaf` holds (set by pte4K, cleared by any other walk) */
  private leafMm: Mm | null = null;
  private leafVpn = -1;
  private readonly tdpLeaf = new LeafRef();

  constructor(
    readonly host: Host,
    readonly vmstat: VmStat,
  ) {}

  /** The VMs whose guest RAM is this process's memory. */
  vmsOf(mm: Mm): Vm[] {
    return this.host.vms.filter((v) => v.mm === mm);
  }

  /**
   * The 4K pte mapping page `vpn` of `mm`, splitting a THP over it first; returns the pfn or -1
   * when nothing is mapped. `this.leaf` then holds the pte's table, index and entry.
   */
  pte4K(mm: Mm, vpn: number): number {
    const leaf = findLeaf(this.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (!leaf.present) return -1;
    if (leaf.level === 2) {
      this.split(mm, vpn);
      findLeaf(this.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    } else if (leaf.level !== 1) {
      throw new Error(`${mm.name}: a ${leaf.level === 3 ? "1G" : "huge"} leaf cannot be split`);
    }
    this.leafMm = mm;
    this.leafVpn = vpn;
    return pteFrame(this.leaf.lo, this.leaf.hi);
  }

  /**
   * The caller already holds the 4K pte of `vpn`: entry `index` of page table `table` (KSM's scan
   * cursor walked to it). The next setPte of `vpn` writes there without walking again.
   */
  pteAt(mm: Mm, vpn: number, table: number, index: number): void {
    const l = this.leaf;
    l.level = 1;
    l.tableFrame = table;
    l.index = index;
    l.present = true;
    this.leafMm = mm;
    this.leafVpn = vpn;
  }

  /** split_huge_page: the THP mapping `vpn` becomes 512 4K ptes to the same frames. */
  split(mm: Mm, vpn: number): void {
    const mem = this.host.mem;
    this.leafMm = null;
    const leaf = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (!leaf.present || leaf.level !== 2) return;
    const head = pteFrame(leaf.lo, leaf.hi) - (pteFrame(leaf.lo, leaf.hi) % 512);
    if (mem.kind[head] !== KIND_THP) throw new Error(`${mm.name}: split of a non-THP 2M page`);
    const first = vpn - (vpn % 512);
    const flags = (leaf.lo & (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D)) >>> 0;
    const xd = (leaf.hi & 0x80000000) !== 0;
    // descend replaces the PMD leaf by a fresh (zeroed) page table
    const table = descend(mem, mm, GUEST_4LEVEL, mm.root, vpn, 1);
    // a 2M-aligned head: the 512 frames differ only in pte bits 12-20, the high word is shared
    const lo0 = makePteLo(head, flags);
    const hi = makePteHi(head, xd);
    for (let i = 0; i < 512; i++) mm.setEntry(table, i, 1, (lo0 + i * 4096) >>> 0, hi);
    mem.setKind(head, 512, KIND_ANON);
    this.vmstat.thp_split_page++;
    this.invalidate(mm, first, 512);
  }

  /** Point the pte of `vpn` (a 4K pte: call pte4K first) at `pfn`, writable or not. */
  setPte(mm: Mm, vpn: number, pfn: number, writable: boolean, dirty: boolean): void {
    // the pte pte4K just found (tables do not move under it), else walk to it
    const l =
      this.leafMm === mm && this.leafVpn === vpn
        ? this.leaf
        : findLeaf(this.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    this.leafMm = null;
    if (l.level !== 1) throw new Error(`${mm.name}: setPte on a level-${l.level} entry`);
    const flags = PTE_P | PTE_US | PTE_A | (writable ? PTE_RW : 0) | (dirty ? PTE_D : 0);
    mm.setEntry(l.tableFrame, l.index, 1, makePteLo(pfn, flags), makePteHi(pfn, true));
    this.invalidate(mm, vpn, 1);
  }

  /** Clear the pte of `vpn` (4K); the caller fixes rss. */
  clearPte(mm: Mm, vpn: number): void {
    this.leafMm = null;
    const l = findLeaf(this.host.mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
    if (l.level !== 1 || !l.present) throw new Error(`${mm.name}: clearPte of no 4K pte`);
    mm.setEntry(l.tableFrame, l.index, 1, 0, 0);
    this.invalidate(mm, vpn, 1);
  }

  /** The MMU notifier: zap the sptes of guest frames backed by [vpn, vpn + n) and flush. */
  invalidate(mm: Mm, vpn: number, n: number): void {
    const vms = this.host.vms;
    for (let v = 0; v < vms.length; v++) {
      const vm = vms[v];
      if (vm.mm !== mm) continue;
      let zapped = false;
      const slots = vm.memslots.all();
      for (let s = 0; s < slots.length; s++) {
        const slot = slots[s];
        const sv = slot.userspaceAddr / 4096;
        const lo = Math.max(vpn, sv);
        const hi = Math.min(vpn + n, sv + slot.npages);
        if (lo >= hi) continue;
        const gfn = slot.baseGfn + (lo - sv);
        if (hi - lo === 1 && vm.mmu.kind === "ept") {
          // one gfn: find its leaf (perhaps a huge spte over it) and zap it
          const mmu = vm.mmu as TdpMmu;
          const leaf = findLeaf(this.host.mem, mmu.store, mmu.mode, mmu.root, gfn, this.tdpLeaf);
          if (leaf.present) mmu.store.setSpte(leaf.tableFrame, leaf.index, leaf.level, 0, 0);
        } else {
          vm.mmu.zapGfnRange(gfn, hi - lo);
        }
        zapped = true;
      }
      if (zapped && vm.mmu.takeFlush()) this.host.flushVm(vm);
    }
  }
}
