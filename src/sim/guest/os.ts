/**
 * A small guest OS: page tables for processes and the kernel, kept in guest memory.
 *
 * How it works: like Linux on x86-64 (arch/x86/mm), the kernel has its own top-level table
 * (swapper_pg_dir) whose upper half (indices 256..511: the direct map at PAGE_OFFSET, vmalloc,
 * kernel text) every process's top-level table copies when created (pgd_alloc) and receives
 * again when the kernel adds a top-level entry (sync_global_pgds). Each process has a PCID.
 * Tables are allocated from a table zone of guest frames and written entry by entry as guest
 * stores through Vm.writeGuestEntry, so under shadow paging a store to a table KVM shadows traps
 * exactly as it would from a real guest. Data pages come from zones for 4K, 2M and 1G pages,
 * naturally aligned. map/unmap/protect are the guest's set_pte/pte_clear/mprotect; callers issue INVLPG
 * through the CPU as a guest kernel would after changing a present entry. A guest with a swap
 * device (swap.ts) keeps a reverse map of its processes' 4K data pages, filled by map and
 * emptied by unmap (page_add_new_anon_rmap / page_remove_rmap), so its reclaim can find the pte
 * behind a guest frame.
 */
import { LEVEL_PAGES, type PagingMode } from "../../x86/paging.js";
import {
  makePteHi,
  makePteLo,
  PTE_A,
  PTE_G,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
  PTE_XD_HI,
  pteLeafFrame,
} from "../../x86/pte.js";
import { descend, findLeaf, LeafRef, type TableSpace } from "../../x86/tables.js";
import type { Vm } from "../kvm/vm.js";
import type { GuestSwap } from "./swap.js";

export interface Prot {
  write: boolean;
  user: boolean;
  exec: boolean;
  global?: boolean;
}

export interface GuestProcess {
  readonly name: string;
  /** gfn of the top-level table (what CR3 holds) */
  readonly root: number;
  readonly pcid: number;
}

export interface GuestRam {
  /** [first gfn, npages) ranges of guest RAM */
  ranges: ReadonlyArray<readonly [number, number]>;
  /**
   * Where the zones end, in MiB of guest-physical address space (defaults: page tables 1-8 MiB,
   * 4K data to 64 MiB, 2M data to 1 GiB, 1G data above). A scenario's guest sizes them to its
   * RAM and working set.
   */
  zones?: { tableEndMiB: number; end4KMiB: number; end2MMiB: number };
}

const MiB_PAGES = 256;

export class GuestOs implements TableSpace {
  readonly processes = new Map<string, GuestProcess>();
  /** processes by pcid - 1 */
  readonly byPcid: GuestProcess[] = [];
  /** the guest's swap device and reclaim (null: no swap) */
  swap: GuestSwap | null = null;
  /** swapper_pg_dir */
  readonly kernelRoot: number;
  readonly mode: PagingMode;
  tables = 0;
  private nextTable = 1 * MiB_PAGES;
  private readonly tableEnd: number;
  private next4K: number;
  /** top of the 4K data zone: the balloon driver takes pages from here down (takeFree4K) */
  private end4K: number;
  private next2M: number;
  private readonly end2M: number;
  private next1G: number;
  private readonly leaf = new LeafRef();
  private readonly entry = new Uint32Array(2);
  /** [first, end) gfns of the 4K data zone as booted (the balloon later takes its top) */
  readonly data4K: readonly [number, number];

  constructor(
    readonly vm: Vm,
    readonly ram: GuestRam,
  ) {
    const z = ram.zones ?? { tableEndMiB: 8, end4KMiB: 64, end2MMiB: 1024 };
    this.tableEnd = z.tableEndMiB * MiB_PAGES;
    this.next4K = this.tableEnd;
    this.end4K = z.end4KMiB * MiB_PAGES;
    this.data4K = [this.next4K, this.end4K];
    this.next2M = Math.ceil(this.end4K / 512) * 512;
    this.end2M = z.end2MMiB * MiB_PAGES;
    this.next1G = Math.ceil(this.end2M / 262144) * 262144;
    this.mode = vm.guestMode;
    this.kernelRoot = this.allocTable(this.mode.levels);
  }

  // TableSpace over guest memory
  tablePfn(gfn: number): number {
    const pfn = this.vm.gfnToPfn(gfn);
    if (pfn < 0) throw new Error(`guest table gfn 0x${gfn.toString(16)} is not RAM`);
    return pfn;
  }
  allocTable(_level: number): number {
    if (this.nextTable >= this.tableEnd) throw new Error("guest out of page-table pages");
    this.tables++;
    return this.nextTable++;
  }
  tableEntryLo(child: number): number {
    return makePteLo(child, PTE_P | PTE_RW | PTE_US | PTE_A);
  }
  tableEntryHi(child: number): number {
    return makePteHi(child, false);
  }
  setEntry(gfn: number, index: number, level: number, lo: number, hi: number): void {
    this.vm.writeGuestEntry(gfn, index, lo, hi);
    if (gfn === this.kernelRoot && level === this.mode.levels && index >= 256) {
      for (const p of this.processes.values()) this.vm.writeGuestEntry(p.root, index, lo, hi);
    }
  }

  isRam(gfn: number): boolean {
    for (const [first, n] of this.ram.ranges) if (gfn >= first && gfn < first + n) return true;
    return false;
  }

  /** Get or create a process (pgd_alloc: copy the kernel half of swapper_pg_dir). */
  process(name: string): GuestProcess {
    const found = this.processes.get(name);
    if (found) return found;
    const root = this.allocTable(this.mode.levels);
    for (let i = 256; i < 512; i++) {
      this.vm.readGuestEntry(this.kernelRoot, i, this.entry);
      if (this.entry[0] !== 0 || this.entry[1] !== 0)
        this.vm.writeGuestEntry(root, i, this.entry[0], this.entry[1]);
    }
    const p: GuestProcess = { name, root, pcid: this.processes.size + 1 };
    this.processes.set(name, p);
    this.byPcid.push(p);
    return p;
  }

  /** Free 4K data pages: never handed out, or freed since (freeData). */
  get free4K(): number {
    return this.end4K - this.next4K + this.freed4K.length;
  }

  /** [first, end) gfns of the never-allocated part of the 4K data zone */
  free4KRange(): [number, number] {
    return [this.next4K, this.end4K];
  }

  /** 4K data pages freed (a process exited), reused first (LIFO, like the per-CPU free lists) */
  readonly freed4K: number[] = [];

  /** free_page: a 4K data page (already unmapped by the caller) goes back to the guest. */
  freeData(gfn: number): void {
    this.freed4K.push(gfn);
  }

  /**
   * The balloon driver's alloc_page: a freed page if any, else the highest never-allocated 4K
   * data page, which the guest then no longer allocates; -1 when the guest has no free page.
   */
  takeFree4K(): number {
    const f = this.freed4K.pop();
    if (f !== undefined) return f;
    if (this.end4K <= this.next4K) return -1;
    return --this.end4K;
  }

  /** A naturally aligned data page of `level` (1 = 4K, 2 = 2M, 3 = 1G); returns its gfn. */
  allocData(level: number): number {
    if (level === 1) {
      const f = this.freed4K.pop();
      if (f !== undefined) return f;
      if (this.next4K >= this.end4K) throw new Error("guest out of 4K data pages");
      return this.next4K++;
    }
    if (level === 2) {
      if (this.next2M + 512 > this.end2M) throw new Error("guest out of 2M data pages");
      const g = this.next2M;
      this.next2M += 512;
      return g;
    }
    for (;;) {
      const g = this.next1G;
      const fits = this.ram.ranges.some(([first, n]) => g >= first && g + 262144 <= first + n);
      const beyond = this.ram.ranges.every(([first, n]) => g >= first + n);
      if (beyond) throw new Error("guest out of 1G data pages");
      this.next1G += 262144;
      if (fits) return g;
    }
  }

  private rootFor(proc: GuestProcess | null, vpn: number): number {
    const top = (vpn / LEVEL_PAGES[this.mode.levels]) & 511;
    if (top >= 256 || proc === null) return this.kernelRoot;
    return proc.root;
  }

  /** set_pte: map page `vpn` (aligned to `level`) to `gfn` in `proc` (kernel half: shared). */
  map(proc: GuestProcess | null, vpn: number, gfn: number, level: number, prot: Prot): void {
    const pages = LEVEL_PAGES[level];
    if (vpn % pages !== 0 || gfn % pages !== 0)
      throw new Error("map: vpn and gfn must be aligned to the page size");
    const root = this.rootFor(proc, vpn);
    const table = descend(this.vm.host.mem, this, this.mode, root, vpn, level);
    let flags =
      PTE_P | (prot.write ? PTE_RW : 0) | (prot.user ? PTE_US : 0) | (prot.global ? PTE_G : 0);
    if (level > 1) flags |= PTE_PS;
    this.setEntry(
      table,
      (vpn / pages) & 511,
      level,
      makePteLo(gfn, flags),
      makePteHi(gfn, !prot.exec),
    );
    if (this.swap && level === 1 && proc !== null) this.swap.rmapAdd(gfn, proc.pcid, vpn);
  }

  /** pte_clear; returns the level that was unmapped or 0. */
  unmap(proc: GuestProcess | null, vpn: number): number {
    findLeaf(this.vm.host.mem, this, this.mode, this.rootFor(proc, vpn), vpn, this.leaf);
    if (!this.leaf.present) return 0;
    this.setEntry(this.leaf.tableFrame, this.leaf.index, this.leaf.level, 0, 0);
    if (this.swap && this.leaf.level === 1)
      this.swap.rmapDel(pteLeafFrame(this.leaf.lo, this.leaf.hi, 1));
    return this.leaf.level;
  }

  /** mprotect on one page: rewrite the leaf's R/W, U/S and XD bits; returns its level or 0. */
  protect(proc: GuestProcess | null, vpn: number, prot: Prot): number {
    findLeaf(this.vm.host.mem, this, this.mode, this.rootFor(proc, vpn), vpn, this.leaf);
    if (!this.leaf.present) return 0;
    const { tableFrame, index, level } = this.leaf;
    let lo = this.leaf.lo & ~(PTE_RW | PTE_US);
    if (prot.write) lo |= PTE_RW;
    if (prot.user) lo |= PTE_US;
    const hi = prot.exec ? this.leaf.hi & ~PTE_XD_HI : this.leaf.hi | PTE_XD_HI;
    this.setEntry(tableFrame, index, level, lo >>> 0, hi >>> 0);
    return level;
  }

  /**
   * The entry that maps `vpn` or ends its walk (present or not: a swap pte is a non-present
   * level-1 entry): the reusable LeafRef itself, valid until the next call.
   */
  entryOf(proc: GuestProcess | null, vpn: number): LeafRef {
    return findLeaf(this.vm.host.mem, this, this.mode, this.rootFor(proc, vpn), vpn, this.leaf);
  }

  /** The leaf mapping `vpn` (a copy of the reusable LeafRef), or null. */
  lookup(proc: GuestProcess | null, vpn: number): LeafRef | null {
    findLeaf(this.vm.host.mem, this, this.mode, this.rootFor(proc, vpn), vpn, this.leaf);
    if (!this.leaf.present) return null;
    const r = new LeafRef();
    Object.assign(r, this.leaf);
    return r;
  }
}
