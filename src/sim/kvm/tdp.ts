/**
 * KVM's TDP MMU for EPT: one set of EPT tables per VM, filled on EPT violations.
 *
 * How it works (arch/x86/kvm/mmu/mmu.c kvm_tdp_page_fault and tdp_mmu.c kvm_tdp_mmu_map,
 * Documentation/virt/kvm/x86/mmu.rst): the hardware walks guest tables and EPT tables together
 * (x86/walk.ts). When an EPT entry is missing or lacks a permission the CPU exits with
 * EPT_VIOLATION and the exit qualification; KVM looks the gfn up in the memslots (no slot: MMIO,
 * it installs a misconfigured MMIO spte and exits to userspace with KVM_EXIT_MMIO; later accesses
 * exit with EPT_MISCONFIG and take the fast MMIO path), translates gfn -> hva -> pfn faulting the
 * host page in (hva_to_pfn, get_user_pages), picks the mapping level (kvm_mmu_hugepage_adjust:
 * the host mapping level from the host page tables, host_pfn_mapping_level; no huge page across
 * a memslot boundary or where gfn and hva are misaligned, the lpage_info disallow_lpage counts;
 * 4K while dirty logging), and installs the leaf, creating tables on the way. A huge leaf
 * replaces a table below it (the table is freed) and a smaller leaf replaces a huge one (zapped
 * first); both need a TLB flush (INVEPT). Leaves are RWX (R+X for KVM_MEM_READONLY slots), memory
 * type WB with ignore-PAT as vmx_get_mt_mask() returns for RAM without non-coherent DMA; with
 * dirty logging a read fault maps without W so the first write is logged. Since the guest page
 * size doesn't limit EPT, a guest 4K page can sit in an EPT 2M page and vice versa.
 *
 * Invariants (assertInvariants): every reachable table page was allocated here and the count
 * matches; each leaf maps a frame aligned to its level; leaf counts per level match the stats.
 */
import {
  EPT_MISCONFIG_WX,
  EPT_R,
  EPT_RWX,
  EPT_W,
  EPT_X,
  eptIsWriteOnly,
  eptPresent,
  eptWritable,
  MT_WB,
  makeEptHi,
  makeEptLeafLo,
  makeEptp,
  makeEptTableLo,
  QUAL_WRITE,
} from "../../x86/ept.js";
import { EXIT_EPT_MISCONFIG, EXIT_EPT_VIOLATION } from "../../x86/faults.js";
import { eptMode, LEVEL_PAGES, type PagingMode } from "../../x86/paging.js";
import { PTE_RW } from "../../x86/pte.js";
import { descend, entryIsLeaf, findLeaf, forEachEntry, LeafRef } from "../../x86/tables.js";
import * as walker from "../../x86/walk.js";
import { DIM_EPT, ST_EPT_MISCONFIG, ST_EPT_VIOLATION, type WalkOut } from "../../x86/walk.js";
import {
  LR_BOUNDARY,
  LR_DIRTY_LOG,
  LR_HOST_LEVEL,
  LR_MAX_LEVEL,
  LR_MISALIGNED,
  LR_MMIO,
  OUT_FIXED,
  OUT_SPURIOUS,
  OUT_USERSPACE_MMIO,
  type WalkRecord,
} from "../record.js";
import type { Memslot } from "./memslots.js";
import { type Mmu, SpteStore } from "./mmu.js";
import type { Vcpu } from "./vcpu.js";
import type { Vm } from "./vm.js";

// copied once: under tsx an imported binding is a getter, and hwWalk runs per TLB miss
const walk = walker.walk;

/** KVM_MAX_HUGEPAGE_LEVEL with 1G EPT pages (cpu_has_vmx_ept_1g_page) */
export const TDP_MAX_LEVEL = 3;

export interface LevelChoice {
  level: number;
  reason: number;
}

/**
 * kvm_mmu_max_mapping_level + kvm_mmu_hugepage_adjust: the largest level for `gfn`, and why.
 * `hostLevel` is the host page-table level backing the hva (1 = 4K).
 */
export function hugePageAdjust(
  slot: Memslot,
  gfn: number,
  hostLevel: number,
  maxLevel: number,
): LevelChoice {
  if (slot.dirtyLogging) return { level: 1, reason: LR_DIRTY_LOG };
  let slotLevel = maxLevel;
  let slotReason = LR_MAX_LEVEL;
  for (let l = maxLevel; l >= 2; l--) {
    const pages = LEVEL_PAGES[l];
    const start = gfn - (gfn % pages);
    if (start < slot.baseGfn || start + pages > slot.baseGfn + slot.npages) {
      slotLevel = l - 1;
      slotReason = LR_BOUNDARY;
    } else if ((slot.baseGfn - slot.userspaceAddr / 4096) % pages !== 0) {
      slotLevel = l - 1;
      slotReason = LR_MISALIGNED;
    } else break;
  }
  if (slotLevel < hostLevel) return { level: slotLevel, reason: slotReason };
  if (hostLevel < maxLevel) return { level: hostLevel, reason: LR_HOST_LEVEL };
  return { level: maxLevel, reason: LR_MAX_LEVEL };
}

export class TdpMmu implements Mmu {
  readonly kind = "ept" as const;
  readonly mode: PagingMode;
  readonly store: SpteStore;
  readonly root: number;
  readonly eptp: { lo: number; hi: number };
  /** EPT violations and misconfigurations handled */
  violations = 0;
  misconfigs = 0;
  private readonly leaf = new LeafRef();
  private readonly hostLevel = new Int32Array(1);
  /** the host pte backing the faulting gfn (read-only for KSM pages and the zero page) */
  private readonly hostEntry = new Uint32Array(2);

  constructor(
    readonly vm: Vm,
    levels: 4 | 5,
    readonly adEnabled: boolean,
  ) {
    this.mode = eptMode(levels);
    this.store = new SpteStore(
      vm.host.mem,
      this.mode,
      makeEptTableLo,
      makeEptHi,
      (level, lo) => level === 1 || (lo & 0x80) !== 0,
      eptPresent,
      eptWritable,
    );
    this.root = this.store.allocTable(levels);
    this.eptp = makeEptp(this.root, levels, adEnabled);
  }

  hwWalk(vcpu: Vcpu, vpn: number, access: number, out: WalkOut): number {
    return walk(
      out,
      this.vm.host.mem,
      this.vm.guestMode,
      vcpu.cr3,
      vpn,
      access,
      0,
      this.mode,
      this.root,
      -1,
    );
  }

  exitReasonFor(out: WalkOut): number {
    if (out.status === ST_EPT_VIOLATION) return EXIT_EPT_VIOLATION;
    if (out.status === ST_EPT_MISCONFIG) return EXIT_EPT_MISCONFIG;
    return -1; // a guest #PF: delivered to the guest, no exit with EPT (exception bitmap)
  }

  handleExit(_vcpu: Vcpu, _vpn: number, _access: number, out: WalkOut, rec: WalkRecord): number {
    const gfn = out.faultFrame;
    if (out.status === ST_EPT_MISCONFIG) {
      this.misconfigs++;
      findLeaf(this.vm.host.mem, this.store, this.mode, this.root, gfn, this.leaf);
      if (!eptIsWriteOnly(this.leaf.lo))
        throw new Error(`EPT misconfiguration at gfn ${gfn} that KVM did not make`);
      rec.setOutcome(OUT_USERSPACE_MMIO, 1, LR_MMIO);
      return OUT_USERSPACE_MMIO; // handle_ept_misconfig -> fast MMIO -> KVM_EXIT_MMIO
    }
    this.violations++;
    const r = this.fault(gfn, (out.errorCode & QUAL_WRITE) !== 0);
    rec.setOutcome(r.outcome, r.level, r.reason, r.hostFault);
    return r.outcome;
  }

  /** kvm_tdp_page_fault for `gfn`. */
  fault(
    gfn: number,
    write: boolean,
  ): { outcome: number; level: number; reason: number; hostFault: number } {
    const vm = this.vm;
    const slot = vm.memslots.lookup(gfn);
    const mem = vm.host.mem;
    if (slot === null || (write && slot.readonly)) {
      if (slot === null) {
        const table = descend(mem, this.store, this.mode, this.root, gfn, 1, (l, _lo, _hi, first) =>
          this.zapLeaf(l, first),
        );
        this.store.setSpte(table, gfn & 511, 1, EPT_MISCONFIG_WX, 0);
      }
      return { outcome: OUT_USERSPACE_MMIO, level: 1, reason: LR_MMIO, hostFault: 0 };
    }
    const hva = slot.gfnToHva(gfn);
    const rssBefore = vm.mm.rss;
    const pfn = vm.mm.fault(hva, write);
    const hostFault = vm.mm.rss - rssBefore;
    vm.mm.lookup(hva, this.hostLevel, this.hostEntry);
    const choice = hugePageAdjust(slot, gfn, this.hostLevel[0], TDP_MAX_LEVEL);
    const level = choice.level;
    // already mapped with the rights needed? (another vCPU, or a guest-table walk got it first)
    findLeaf(mem, this.store, this.mode, this.root, gfn, this.leaf);
    if (
      this.leaf.present &&
      !eptIsWriteOnly(this.leaf.lo) &&
      (!write || eptWritable(this.leaf.lo))
    ) {
      return { outcome: OUT_SPURIOUS, level: this.leaf.level, reason: choice.reason, hostFault };
    }
    let rwx = slot.readonly ? EPT_R | EPT_X : EPT_RWX;
    // hva_to_pfn found a read-only host page (KSM page, zero page): map_writable is false, so
    // the spte lacks W and a guest write exits to COW-break it (kvm_faultin_pfn, make_spte)
    if ((this.hostEntry[0] & PTE_RW) === 0) rwx &= ~EPT_W;
    if (slot.dirtyLogging) {
      if (write) slot.dirtyBitmap![gfn - slot.baseGfn] = 1;
      else rwx &= ~EPT_W;
    }
    const pages = LEVEL_PAGES[level];
    const headPfn = pfn - (gfn % pages);
    const table = descend(mem, this.store, this.mode, this.root, gfn, level, (l, _lo, _hi, first) =>
      this.zapLeaf(l, first),
    );
    const idx = (gfn / pages) & 511;
    const oldLo = mem.entryLo(table, idx);
    if (level > 1 && eptPresent(oldLo) && !entryIsLeaf(this.mode, level, oldLo)) {
      // a huge page replaces a table of smaller sptes: free the table below
      this.freeSubtree((mem.entryHi(table, idx) & 0xfffff) * 1048576 + (oldLo >>> 12), level - 1);
      this.store.flushPending = true;
    }
    this.store.setSpte(
      table,
      idx,
      level,
      makeEptLeafLo(headPfn, level, rwx, MT_WB, true),
      makeEptHi(headPfn),
    );
    return { outcome: OUT_FIXED, level, reason: choice.reason, hostFault };
  }

  private zapLeaf(_level: number, _firstGfn: number): void {
    this.store.flushPending = true;
  }

  private freeSubtree(tablePfn: number, level: number): void {
    const mem = this.vm.host.mem;
    if (level > 1) {
      for (let i = 0; i < 512; i++) {
        const lo = mem.entryLo(tablePfn, i);
        if (eptPresent(lo) && !entryIsLeaf(this.mode, level, lo)) {
          this.freeSubtree((mem.entryHi(tablePfn, i) & 0xfffff) * 1048576 + (lo >>> 12), level - 1);
        }
      }
    }
    for (let i = 0; i < 512; i++) {
      if (eptPresent(mem.entryLo(tablePfn, i))) this.store.setSpte(tablePfn, i, level, 0, 0);
    }
    this.store.freeTable(tablePfn);
  }

  guestTableWrite(_gfn: number, _index: number): boolean {
    return false; // with EPT guest tables are ordinary guest memory
  }

  newPgd(_vcpu: Vcpu): void {}

  invlpg(_vcpu: Vcpu, _vpn: number): void {}

  zapGfnRange(gfn: number, npages: number): void {
    const mem = this.vm.host.mem;
    const end = gfn + npages;
    const victims: Array<[number, number, number]> = [];
    forEachEntry(
      mem,
      this.store,
      this.mode,
      this.root,
      (level, table, index, _lo, _hi, leaf, first) => {
        const last = first + LEVEL_PAGES[level];
        if (last <= gfn || first >= end) return false;
        if (leaf) victims.push([table, index, level]);
        return true;
      },
    );
    for (const [table, index, level] of victims) this.store.setSpte(table, index, level, 0, 0);
  }

  tablePages(): number {
    return this.store.pages;
  }

  takeFlush(): boolean {
    return this.store.takeFlush();
  }

  /** The EPT entry mapping `gfn` (for display), or null. */
  lookup(gfn: number): LeafRef | null {
    findLeaf(this.vm.host.mem, this.store, this.mode, this.root, gfn, this.leaf);
    return this.leaf.present ? this.leaf : null;
  }

  /** Walk EPT for `gfn` without side effects (the probe / display path). */
  probe(gfn: number, out: WalkOut): number {
    const setAd = out.setAd;
    out.setAd = false;
    const r = walk(out, this.vm.host.mem, this.mode, this.root, gfn, 1, DIM_EPT, null, 0, 0);
    out.setAd = setAd;
    return r;
  }

  assertInvariants(): void {
    const mem = this.vm.host.mem;
    let tables = 1;
    const leaves = new Int32Array(6);
    forEachEntry(mem, this.store, this.mode, this.root, (level, _t, _i, lo, hi, leaf) => {
      if (!leaf) {
        tables++;
        return true;
      }
      if (eptIsWriteOnly(lo)) return true; // MMIO spte
      leaves[level]++;
      const frame = (hi & 0xfffff) * 1048576 + (lo >>> 12);
      if (level > 1 && frame % LEVEL_PAGES[level] !== 0)
        throw new Error(`EPT leaf at level ${level} misaligned`);
      return true;
    });
    if (tables !== this.store.pages)
      throw new Error(`EPT pages ${this.store.pages} != reachable ${tables}`);
    for (let l = 1; l <= 3; l++) {
      // MMIO sptes count as leaves in the stats; compare only the RAM leaves as a lower bound
      if (leaves[l] > this.store.stats.leaves[l]) throw new Error(`EPT leaf count at level ${l}`);
    }
  }
}
