/**
 * The MMU contract KVM's two implementations share, and the spte store both build on.
 *
 * How it works: an Mmu turns a vCPU's guest-virtual page number into a host frame in hardware
 * (hwWalk: the 2D walk over guest + EPT tables, or the 1D walk over shadow tables) and, when that
 * walk fails with an exit, handles it the way KVM does (handleExit -> a small closed set of
 * outcomes, record.ts OUT_*). The two implementations must agree on gva -> hpa (mmu.contract.ts
 * checks both against a software reference). SpteStore owns KVM's table pages in host memory
 * and is the single place an spte changes: setSpte() counts the change by kind and reports
 * whether a TLB flush is needed, as handle_changed_spte() in arch/x86/kvm/mmu/tdp_mmu.c and
 * mmu_spte_update() in mmu.c do (a present leaf losing presence, writability or its frame).
 *
 * Invariants (checked by each MMU's assertInvariants): every table page is KIND_KERNEL with
 * bytes; `pages` equals the table pages reachable from the roots.
 */
import type { PagingMode } from "../../x86/paging.js";
import type { TableSpace } from "../../x86/tables.js";
import type { WalkOut } from "../../x86/walk.js";
import { KIND_KERNEL, type PhysMem } from "../memory.js";
import type { WalkRecord } from "../record.js";
import type { Vcpu } from "./vcpu.js";

export interface Mmu {
  readonly kind: "ept" | "shadow";
  /** hardware walk for the vCPU's current address space; pfn or -1 with out.status set */
  hwWalk(vcpu: Vcpu, vpn: number, access: number, out: WalkOut): number;
  /** exit reason a failed hwWalk causes, or -1 when the fault goes to the guest without exit */
  exitReasonFor(out: WalkOut): number;
  /** KVM's handler for that exit; records level decisions in rec; returns an OUT_* outcome */
  handleExit(vcpu: Vcpu, vpn: number, access: number, out: WalkOut, rec: WalkRecord): number;
  /** a guest store hit a guest page-table page; true if it trapped to KVM */
  guestTableWrite(gfn: number, index: number): boolean;
  /** the vCPU loaded CR3 (shadow: find or build the root for it) */
  newPgd(vcpu: Vcpu): void;
  /** INVLPG reached KVM (shadow) */
  invlpg(vcpu: Vcpu, vpn: number): void;
  /** memslot removed or moved, or dirty logging toggled: drop mappings of [gfn, gfn + n) */
  zapGfnRange(gfn: number, npages: number): void;
  /** tables KVM holds for this VM */
  tablePages(): number;
  /** true (once) when spte changes since the last call need a TLB flush */
  takeFlush(): boolean;
  assertInvariants(): void;
}

/** What setSpte changed, counted (the lab shows these). */
export class SpteStats {
  created = 0;
  zapped = 0;
  changed = 0;
  flushesNeeded = 0;
  /** leaf sptes present per level (KVM's pages_4k / pages_2m / pages_1g stats) */
  readonly leaves = new Int32Array(6);
}

export class SpteStore implements TableSpace {
  readonly stats = new SpteStats();
  pages = 0;
  /** set by setSpte, cleared by whoever flushes */
  flushPending = false;

  /** Whether a TLB flush is owed since the last call (kvm_flush_remote_tlbs), and clear it. */
  takeFlush(): boolean {
    const f = this.flushPending;
    this.flushPending = false;
    return f;
  }

  constructor(
    readonly mem: PhysMem,
    readonly mode: PagingMode,
    private readonly tableLo: (child: number) => number,
    private readonly tableHi: (child: number) => number,
    private readonly isLeaf: (level: number, lo: number) => boolean,
    private readonly present: (lo: number) => boolean,
    private readonly writable: (lo: number) => boolean,
  ) {}

  tablePfn(frame: number): number {
    return frame;
  }
  allocTable(_level: number): number {
    const pfn = this.mem.alloc(0, KIND_KERNEL);
    if (pfn < 0) throw new Error("host out of memory for KVM MMU pages");
    this.mem.bytes(pfn);
    this.pages++;
    return pfn;
  }
  freeTable(pfn: number): void {
    this.mem.free(pfn, 0);
    this.pages--;
  }
  tableEntryLo(child: number): number {
    return this.tableLo(child);
  }
  tableEntryHi(child: number): number {
    return this.tableHi(child);
  }

  /** handle_changed_spte: the one place an spte changes. Returns true if a flush is needed. */
  setEntry(tableFrame: number, index: number, level: number, lo: number, hi: number): void {
    this.setSpte(tableFrame, index, level, lo, hi);
  }

  setSpte(pfn: number, index: number, level: number, lo: number, hi: number): boolean {
    const oldLo = this.mem.entryLo(pfn, index);
    const oldHi = this.mem.entryHi(pfn, index);
    if (oldLo === lo >>> 0 && oldHi === hi >>> 0) return false;
    this.mem.writeEntry(pfn, index, lo, hi);
    const wasPresent = this.present(oldLo);
    const isPresent = this.present(lo);
    const wasLeaf = wasPresent && this.isLeaf(level, oldLo);
    const nowLeaf = isPresent && this.isLeaf(level, lo);
    if (wasLeaf) this.stats.leaves[level]--;
    if (nowLeaf) this.stats.leaves[level]++;
    if (!wasPresent && isPresent) this.stats.created++;
    else if (wasPresent && !isPresent) this.stats.zapped++;
    else this.stats.changed++;
    // a flush is needed when a translation the CPU may cache goes away or loses rights
    const frameChanged = (oldLo ^ lo) >>> 12 !== 0 || ((oldHi ^ hi) & 0xfffff) !== 0;
    const lostWrite = this.writable(oldLo) && !this.writable(lo);
    const flush = wasPresent && (!isPresent || frameChanged || lostWrite || wasLeaf !== nowLeaf);
    if (flush) {
      this.stats.flushesNeeded++;
      this.flushPending = true;
    }
    return flush;
  }
}
