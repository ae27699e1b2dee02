/**
 * The guest's own swap: a Linux guest out of free memory reclaims its pages to its swap disk,
 * and takes a major fault when it touches one again. Overcommit pages twice over: the guest
 * swaps what the host still backs, and the host may swap what the guest still maps.
 *
 * How it works (mm/vmscan.c shrink_folio_list and folio_referenced, mm/rmap.c try_to_unmap_one,
 * mm/memory.c do_swap_page, mm/swapfile.c, arch/x86/include/asm/pgtable_64.h __swp_entry):
 * when the guest kernel needs a 4 KiB page and has none (a demand-paging fault, do_swap_page
 * itself, or the balloon driver's balloon_page_alloc, whose __GFP_NORETRY still allows one
 * light direct reclaim), it reclaims up to SWAP_CLUSTER_MAX (32) pages. A CLOCK hand over the
 * guest frames of its 4K data zone finds the pte behind each mapped frame through a reverse map
 * (filled by GuestOs.map, page_add_new_anon_rmap) and reads the pte's accessed bit in the
 * guest's own page table, in guest memory: a young page gets the bit cleared (a guest store
 * through Vm.writeGuestEntry, which under shadow paging traps to KVM; x86's
 * ptep_clear_flush_young flushes no TLB) and another lap; an old page is written to a free slot
 * of the swap disk (its content token goes with it), its pte becomes a swap entry (not present,
 * the slot inverted in the address bits as __swp_entry does), INVLPG goes through the vCPU (an
 * INVLPG exit under shadow paging; kvmem's INVLPG drops the page for every PCID of the vCPU,
 * where Linux flushes the other address spaces lazily at their next switch), and the frame goes
 * back to the guest's allocator (pswpout). The writes of one batch are one virtio-blk request:
 * one I/O exit (the virtqueue kick), written back at once. The guest's next access to a swapped
 * page takes a guest #PF on the non-present pte; do_swap_page allocates a frame (reclaiming
 * again if it must), reads the slot (a virtio-blk read: an I/O exit and GUEST_SWAP_IN_CYCLES of
 * waiting), maps it and the access is retried (pswpin, pgmajfault). The frame the guest freed
 * stays backed on the host: QEMU's RSS does not shrink unless the balloon or free page
 * reporting hands the page back (double paging). Reading a page the host had swapped out to
 * write it to the guest's swap faults it back in on the host first.
 * Simplified: the guest reclaims only when it has no free page (no guest watermarks or
 * kswapd), only 4 KiB data pages of its processes are swapped, the swap disk holds its data
 * outside host RAM (a raw image with cache='none'), and there is no swap cache.
 *
 * Invariants (assertInvariants): used + free slots = slots; every swap pte of the guest's
 * processes names a distinct used slot; no mapped frame is in the free lists.
 */
import {
  isSwapPte,
  makeSwapPteHi,
  makeSwapPteLo,
  PTE_A,
  pteLeafFrame,
  swapPteOffset,
} from "../../x86/pte.js";
import type { Cpu } from "../cpu/cpu.js";
import type { Vcpu } from "../kvm/vcpu.js";
import { WalkRecord } from "../record.js";
import type { GuestOs, GuestProcess } from "./os.js";

/** SWAP_CLUSTER_MAX: pages reclaimed per direct reclaim */
export const GUEST_SWAP_CLUSTER = 32;
/**
 * a swap-in's read from the guest's virtio-blk disk: the host's 4 KiB SSD read (about 100 us
 * at 3 GHz) the vCPU waits for; a teaching number, as SWAP_IN_CYCLES is for the host's swap
 */
export const GUEST_SWAP_IN_CYCLES = 300000;

/**
 * VMX basic exit reason 30 (SDM vol. 3D appendix C), an I/O instruction: the virtqueue kick of
 * a legacy virtio-pci device (kvmem counts every virtio notify as one, as the run loop does)
 */
const EXIT_IO_INSTRUCTION = 30;

/** The vCPU the guest kernel's reclaim and swap-ins run on. */
export interface GuestCpu {
  cpu: Cpu;
  vcpu: Vcpu;
}

export class GuestSwap {
  readonly slots: number;
  /** slots in use (SwapTotal - SwapFree) */
  used = 0;
  /** /proc/vmstat of the guest */
  pswpin = 0;
  pswpout = 0;
  pgmajfault = 0;
  /** direct reclaims (allocstall) and pages scanned */
  allocstall = 0;
  pgscan = 0;
  /** virtio-blk requests (each an I/O exit) */
  requests = 0;
  /** guest page-table stores that trapped to KVM (shadow paging) while aging or unmapping */
  trappedWrites = 0;
  /** cycles the vCPU spent on reclaim and swap-ins (exits, emulation, waiting for reads) */
  cycles = 0;
  /** where the reclaim's INVLPGs and I/O exits run (null: no vCPU yet) */
  cpu: GuestCpu | null = null;
  private readonly slotToken: Uint32Array;
  private readonly freeSlots: Int32Array;
  private nfree: number;
  /** reverse map of mapped 4K data pages by gfn: owner's pcid (0: none) and vpn */
  private readonly ownerPcid: Uint16Array;
  private readonly ownerVpn: Float64Array;
  private hand: number;
  private readonly rec = new WalkRecord();

  /** first and end gfn of the guest's 4K data zone, the frames reclaim scans */
  readonly first: number;
  readonly end: number;

  /** `bytes` of swap for `os` (it becomes os.swap). */
  constructor(
    readonly os: GuestOs,
    bytes: number,
  ) {
    [this.first, this.end] = os.data4K;
    this.slots = Math.floor(bytes / 4096);
    this.slotToken = new Uint32Array(this.slots);
    this.freeSlots = new Int32Array(this.slots);
    for (let i = 0; i < this.slots; i++) this.freeSlots[i] = this.slots - 1 - i;
    this.nfree = this.slots;
    this.ownerPcid = new Uint16Array(this.end);
    this.ownerVpn = new Float64Array(this.end);
    this.hand = this.first;
    os.swap = this;
  }

  rmapAdd(gfn: number, pcid: number, vpn: number): void {
    if (gfn < this.first || gfn >= this.end) return;
    this.ownerPcid[gfn] = pcid;
    this.ownerVpn[gfn] = vpn;
  }

  rmapDel(gfn: number): void {
    if (gfn >= this.first && gfn < this.end) this.ownerPcid[gfn] = 0;
  }

  /**
   * try_to_free_pages for the guest: swap out up to `nr` old pages, freeing their frames to
   * the guest's allocator. Returns the pages freed (0: nothing reclaimable or no free slot).
   */
  reclaim(nr = GUEST_SWAP_CLUSTER): number {
    // a VM whose QEMU the host's OOM killer took runs no more guest code (its balloon driver too)
    if (this.os.vm.mm.killed) return 0;
    this.allocstall++;
    const os = this.os;
    const zone = this.end - this.first;
    // at most two laps: one clearing accessed bits, one finding them still clear
    let budget = 2 * zone + 1;
    let freed = 0;
    while (freed < nr && budget-- > 0 && this.nfree > 0) {
      const gfn = this.hand;
      this.hand = gfn + 1 >= this.end ? this.first : gfn + 1;
      const pcid = this.ownerPcid[gfn];
      if (pcid === 0) continue;
      const proc = os.byPcid[pcid - 1];
      const vpn = this.ownerVpn[gfn];
      const l = os.entryOf(proc, vpn);
      if (!l.present || l.level !== 1 || pteLeafFrame(l.lo, l.hi, 1) !== gfn) {
        this.ownerPcid[gfn] = 0; // stale: the page was remapped elsewhere
        continue;
      }
      this.pgscan++;
      if ((l.lo & PTE_A) !== 0) {
        // folio_referenced -> ptep_clear_flush_young: clear A, no TLB flush on x86
        this.store(l.tableFrame, l.index, (l.lo & ~PTE_A) >>> 0, l.hi);
        continue;
      }
      this.swapOut(vpn, gfn, l.tableFrame, l.index);
      freed++;
    }
    if (freed > 0) this.io(); // swap_writepage: the batch as one virtio-blk write
    return freed;
  }

  /** add_to_swap + try_to_unmap_one + swap_writepage + free: one old page to swap. */
  private swapOut(vpn: number, gfn: number, table: number, index: number): void {
    const os = this.os;
    const slot = this.freeSlots[--this.nfree];
    // QEMU's virtio-blk reads the page out of guest memory: a page the host swapped comes back
    const vm = os.vm;
    let pfn = vm.peekGfnToPfn(gfn);
    if (pfn < 0) pfn = vm.mm.fault(vm.gfnToHva(gfn), false);
    this.slotToken[slot] = vm.host.mem.token[pfn];
    this.store(table, index, makeSwapPteLo(slot), makeSwapPteHi(slot));
    if (this.cpu) {
      // flush_tlb_page after clearing a present pte
      this.cpu.cpu.invlpg(this.cpu.vcpu, vpn, this.rec);
      this.cycles += this.rec.cycles;
    }
    this.ownerPcid[gfn] = 0;
    os.freeData(gfn);
    this.used++;
    this.pswpout++;
  }

  /** Is `vpn` of `proc` a swap pte? */
  isSwapped(proc: GuestProcess, vpn: number): boolean {
    const l = this.os.entryOf(proc, vpn);
    return l.level === 1 && isSwapPte(l.lo, l.hi);
  }

  /**
   * do_swap_page: if `vpn` of `proc` is a swap pte, read its slot into a frame from `alloc`
   * (the guest's allocator, which reclaims when it must), map it and return true; false when
   * the pte is not a swap entry (the caller demand-pages a fresh frame).
   */
  swapIn(proc: GuestProcess, vpn: number, alloc: () => number): boolean {
    const os = this.os;
    let l = os.entryOf(proc, vpn);
    if (l.level !== 1 || !isSwapPte(l.lo, l.hi)) return false;
    const slot = swapPteOffset(l.lo, l.hi);
    const gfn = alloc();
    // the read is DMA into the new frame: a write to guest memory on the host
    const vm = os.vm;
    const pfn = vm.gfnToPfn(gfn);
    vm.host.mem.token[pfn] = this.slotToken[slot];
    this.io();
    this.cycles += GUEST_SWAP_IN_CYCLES;
    // the allocation may have reclaimed (and walked) meanwhile: find the pte again
    l = os.entryOf(proc, vpn);
    if (l.level !== 1 || swapPteOffset(l.lo, l.hi) !== slot)
      throw new Error(`guest swap: pte of vpn ${vpn} changed under do_swap_page`);
    os.map(proc, vpn, gfn, 1, { write: true, user: true, exec: true });
    this.freeSlots[this.nfree++] = slot;
    this.used--;
    this.pswpin++;
    this.pgmajfault++;
    return true;
  }

  /** zap_pte_range of a swap pte (the process exits): free_swap_and_cache frees its slot. */
  drop(proc: GuestProcess, vpn: number): boolean {
    const l = this.os.entryOf(proc, vpn);
    if (l.level !== 1 || !isSwapPte(l.lo, l.hi)) return false;
    this.freeSlots[this.nfree++] = swapPteOffset(l.lo, l.hi);
    this.used--;
    this.store(l.tableFrame, l.index, 0, 0);
    return true;
  }

  /** A guest store of a page-table entry; under shadow paging it traps and is emulated. */
  private store(table: number, index: number, lo: number, hi: number): void {
    if (this.os.vm.writeGuestEntry(table, index, lo, hi)) {
      this.trappedWrites++;
      const c = this.cpu?.cpu.costs;
      if (c) this.cycles += c.vmExitRoundTrip + c.emulateWrite;
    }
  }

  /** One virtio-blk request: the driver kicks the virtqueue, an I/O exit. */
  private io(): void {
    this.requests++;
    if (!this.cpu) return;
    this.cpu.cpu.vmexit(this.cpu.vcpu, this.rec, EXIT_IO_INSTRUCTION);
    this.cycles += this.rec.cycles;
  }

  /** Mapped 4K data pages the reverse map knows (present ptes of the guest's processes). */
  mappedPages(): number {
    let n = 0;
    for (let g = this.first; g < this.end; g++) if (this.ownerPcid[g] !== 0) n++;
    return n;
  }

  assertInvariants(procVpns: Iterable<[GuestProcess, number]>): void {
    if (this.used + this.nfree !== this.slots) throw new Error("guest swap slots lost");
    const seen = new Uint8Array(this.slots);
    for (const s of this.freeSlots.subarray(0, this.nfree)) seen[s] = 1;
    let entries = 0;
    for (const [proc, vpn] of procVpns) {
      const l = this.os.entryOf(proc, vpn);
      if (l.level !== 1 || !isSwapPte(l.lo, l.hi)) continue;
      const slot = swapPteOffset(l.lo, l.hi);
      if (seen[slot]) throw new Error(`guest swap slot ${slot} named twice or free`);
      seen[slot] = 1;
      entries++;
    }
    if (entries !== this.used) throw new Error(`guest swap ptes ${entries} != used ${this.used}`);
    const free = new Set(this.os.freed4K);
    for (let g = this.first; g < this.end; g++)
      if (this.ownerPcid[g] !== 0 && free.has(g)) throw new Error(`gfn ${g} mapped and free`);
  }
}
