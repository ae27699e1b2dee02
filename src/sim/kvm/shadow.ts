/**
 * KVM's shadow MMU (kvm_intel ept=0): shadow tables GVA -> HPA per guest address space.
 *
 * How it works (Documentation/virt/kvm/x86/mmu.rst; arch/x86/kvm/mmu/paging_tmpl.h
 * FNAME(page_fault), FNAME(walk_addr), FNAME(fetch); mmu.c kvm_mmu_get_child_sp,
 * account_shadowed, kvm_mmu_pte_write): without EPT the hardware walks tables KVM builds, and
 * KVM intercepts every guest #PF. On one it walks the guest tables in software (the same walker,
 * reading guest memory through the memslots, setting guest A/D bits) and either reflects a real
 * guest fault back (#PF injected) or builds the missing shadow path: one shadow page per guest
 * table page, keyed by (gfn, level), "direct" shadow pages below a guest huge page that KVM maps
 * smaller, and a leaf whose rights are the guest's combined rights (writable only once the guest
 * entry is dirty, so the first write is seen). Every guest table page that has a shadow page is
 * write-protected (gfn write tracking): its sptes lose W, huge sptes over it are not allowed, and
 * a guest store to it exits (#PF -> EXCEPTION_NMI) and is emulated, zapping the shadowed entry.
 * A CR3 load exits (CR_ACCESS) and selects or builds the root for that guest address space
 * (kvm_mmu_new_pgd); INVLPG exits and zaps the spte. So shadow tables exist per guest address
 * space, while EPT tables exist once per VM: "one EPT table = N shadow page tables" (the seed).
 * Not modelled: role.access/role.cr0_wp variants of a shadow page, unsync pages, prefetch.
 *
 * Invariants (assertInvariants): a leaf spte mapping a tracked gfn is read-only and 4K; every
 * leaf is in the rmap; tracked counts equal the non-direct shadow pages per gfn.
 */
import { EXIT_EXCEPTION_NMI, PF_W } from "../../x86/faults.js";
import { LEVEL_PAGES } from "../../x86/paging.js";
import {
  makePteHi,
  makePteLo,
  PTE_A,
  PTE_D,
  PTE_G,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
} from "../../x86/pte.js";
import { findLeaf, forEachEntry, LeafRef } from "../../x86/tables.js";
import * as walker from "../../x86/walk.js";
import {
  DIM_GUEST,
  DIM_NATIVE,
  PERM_D,
  PERM_G,
  PERM_U,
  PERM_W,
  PERM_X,
  ST_PF,
  WalkOut,
} from "../../x86/walk.js";
import {
  FAULT_PF,
  LR_GUEST_LEVEL,
  LR_MAX_LEVEL,
  LR_WRITE_TRACKED,
  OUT_EMULATE,
  OUT_FIXED,
  OUT_INJECT_PF,
  OUT_USERSPACE_MMIO,
  type WalkRecord,
} from "../record.js";
import { type Mmu, SpteStore } from "./mmu.js";
import { hugePageAdjust } from "./tdp.js";
import type { Vcpu } from "./vcpu.js";
import type { Vm } from "./vm.js";

// copied once: under tsx an imported binding is a getter, and hwWalk runs per TLB miss
const walk = walker.walk;

interface ShadowPage {
  readonly pfn: number;
  readonly gfn: number;
  readonly level: number;
  readonly direct: boolean;
}

const spKey = (gfn: number, level: number, direct: boolean): number =>
  gfn * 16 + level * 2 + (direct ? 1 : 0);
const rmapKey = (headGfn: number, level: number): number => headGfn * 4 + level;

export class ShadowMmu implements Mmu {
  readonly kind = "shadow" as const;
  readonly store: SpteStore;
  /** #PF exits handled, guest faults reflected, emulated writes */
  pageFaults = 0;
  injected = 0;
  emulations = 0;
  private readonly sps = new Map<number, ShadowPage>();
  private readonly spByPfn = new Map<number, ShadowPage>();
  private readonly gfnSps = new Map<number, ShadowPage[]>();
  private readonly track2M = new Map<number, number>();
  private readonly track1G = new Map<number, number>();
  private readonly rmap = new Map<number, number[]>();
  private readonly locKey = new Map<number, number>();
  /** guest root gfn -> shadow root pfn */
  readonly roots = new Map<number, number>();
  private readonly sw = new WalkOut();
  private readonly leaf = new LeafRef();
  private readonly hostLevel = new Int32Array(1);
  /** the host pte backing the faulting gfn (read-only for KSM pages and the zero page) */
  private readonly hostEntry = new Uint32Array(2);

  constructor(readonly vm: Vm) {
    this.store = new SpteStore(
      vm.host.mem,
      vm.guestMode,
      (child) => makePteLo(child, PTE_P | PTE_RW | PTE_US | PTE_A),
      (child) => makePteHi(child, false),
      (level, lo) => level === 1 || (lo & PTE_PS) !== 0,
      (lo) => (lo & PTE_P) !== 0,
      (lo) => (lo & PTE_RW) !== 0,
    );
    this.sw.resolver = vm;
  }

  isTracked(gfn: number): boolean {
    return this.gfnSps.has(gfn);
  }

  private getSp(gfn: number, level: number, direct: boolean): ShadowPage {
    const key = spKey(gfn, level, direct);
    const found = this.sps.get(key);
    if (found) return found;
    const sp: ShadowPage = { pfn: this.store.allocTable(level), gfn, level, direct };
    this.sps.set(key, sp);
    this.spByPfn.set(sp.pfn, sp);
    if (!direct) this.track(gfn, sp);
    return sp;
  }

  /** account_shadowed: write-protect a guest table page. */
  private track(gfn: number, sp: ShadowPage): void {
    const list = this.gfnSps.get(gfn);
    if (list) {
      list.push(sp);
      return;
    }
    this.gfnSps.set(gfn, [sp]);
    const k2 = Math.floor(gfn / 512);
    const k1 = Math.floor(gfn / 262144);
    this.track2M.set(k2, (this.track2M.get(k2) ?? 0) + 1);
    this.track1G.set(k1, (this.track1G.get(k1) ?? 0) + 1);
    // existing writable mappings of it lose W; huge ones covering it go
    const mem = this.vm.host.mem;
    for (let l = 1; l <= 3; l++) {
      const head = gfn - (gfn % LEVEL_PAGES[l]);
      const locs = this.rmap.get(rmapKey(head, l));
      if (!locs) continue;
      for (const loc of [...locs]) {
        const pfn = Math.floor(loc / 512);
        const idx = loc % 512;
        const lo = mem.entryLo(pfn, idx);
        if (l === 1)
          this.store.setSpte(pfn, idx, 1, (lo & ~(PTE_RW | PTE_D)) >>> 0, mem.entryHi(pfn, idx));
        else this.zapLeaf(pfn, idx, l);
      }
    }
  }

  hwWalk(vcpu: Vcpu, vpn: number, access: number, out: WalkOut): number {
    if (vcpu.shadowRoot < 0) this.newPgd(vcpu);
    return walk(
      out,
      this.vm.host.mem,
      this.vm.guestMode,
      vcpu.shadowRoot,
      vpn,
      access,
      DIM_NATIVE,
      null,
      0,
      -1,
    );
  }

  exitReasonFor(out: WalkOut): number {
    return out.status === ST_PF ? EXIT_EXCEPTION_NMI : -1;
  }

  handleExit(vcpu: Vcpu, vpn: number, access: number, _out: WalkOut, rec: WalkRecord): number {
    this.pageFaults++;
    const vm = this.vm;
    const sw = this.sw;
    sw.reset();
    sw.setAd = true;
    sw.wp = vcpu.wp;
    sw.nxe = vcpu.nxe;
    const gfn = walk(sw, vm.host.mem, vm.guestMode, vcpu.cr3, vpn, access, DIM_GUEST, null, 0, -1);
    if (gfn < 0) {
      this.injected++;
      rec.addFault(FAULT_PF, sw.errorCode);
      rec.setOutcome(OUT_INJECT_PF);
      return OUT_INJECT_PF;
    }
    const slot = vm.memslots.lookup(gfn);
    const write = (access & PF_W) !== 0;
    if (slot === null || (write && slot.readonly)) {
      rec.gfn = gfn;
      rec.setOutcome(OUT_USERSPACE_MMIO);
      return OUT_USERSPACE_MMIO;
    }
    if (write && this.isTracked(gfn)) {
      // a store to a shadowed guest page table: emulate it (x86_emulate_instruction) and
      // let kvm_mmu_pte_write drop the shadow entry it changes
      this.emulations++;
      const pfn = vm.gfnToPfn(gfn);
      vm.host.mem.written(pfn);
      this.zapGuestEntry(gfn, rec.offset >>> 3);
      rec.gfn = gfn;
      rec.pfn = pfn;
      rec.setOutcome(OUT_EMULATE, 1, LR_WRITE_TRACKED);
      return OUT_EMULATE;
    }
    const hva = slot.gfnToHva(gfn);
    const rssBefore = vm.mm.rss;
    const pfn = vm.mm.fault(hva, write);
    const hostFault = vm.mm.rss - rssBefore;
    vm.mm.lookup(hva, this.hostLevel, this.hostEntry);
    const gLevel = sw.gLevel;
    const choice = hugePageAdjust(slot, gfn, this.hostLevel[0], gLevel);
    let level = choice.level;
    let reason = choice.reason === LR_MAX_LEVEL ? LR_GUEST_LEVEL : choice.reason;
    while (level > 1 && this.trackedIn(gfn, level)) {
      level--;
      reason = LR_WRITE_TRACKED;
    }
    let perm = sw.gPerm;
    if (slot.dirtyLogging) {
      if (write) slot.dirtyBitmap![gfn - slot.baseGfn] = 1;
      else perm &= ~PERM_W;
    }
    if ((perm & PERM_D) === 0 || slot.readonly || (level === 1 && this.isTracked(gfn)))
      perm &= ~PERM_W;
    // a read-only host page (KSM page, zero page): no W until a write fault COW-breaks it
    if ((this.hostEntry[0] & PTE_RW) === 0) perm &= ~PERM_W;
    // shadow path: one shadow page per guest table, direct pages below a split guest huge page
    const mem = vm.host.mem;
    const levels = vm.guestMode.levels;
    let table = vcpu.shadowRoot;
    for (let l: number = levels; l > level; l--) {
      const idx = (vpn / LEVEL_PAGES[l]) & 511;
      const child = l - 1;
      let childSp: ShadowPage;
      if (child >= gLevel) {
        let gtable = -1;
        for (let s = 0; s < sw.n; s++) if (sw.levelOf(s) === child) gtable = sw.table[s];
        childSp = this.getSp(gtable, child, false);
      } else {
        childSp = this.getSp(gfn - (gfn % LEVEL_PAGES[l]), child, true);
      }
      const lo = mem.entryLo(table, idx);
      if ((lo & PTE_P) !== 0 && ((lo & PTE_PS) !== 0 || l === 1)) this.zapLeaf(table, idx, l);
      const want = makePteLo(childSp.pfn, PTE_P | PTE_RW | PTE_US | PTE_A);
      if (mem.entryLo(table, idx) !== want)
        this.store.setSpte(table, idx, l, want, makePteHi(childSp.pfn, false));
      table = childSp.pfn;
    }
    const idx = (vpn / LEVEL_PAGES[level]) & 511;
    const head = pfn - (vpn % LEVEL_PAGES[level]);
    let flags = PTE_P | PTE_A;
    if (perm & PERM_W) flags |= PTE_RW | (write ? PTE_D : 0);
    if (perm & PERM_U) flags |= PTE_US;
    if (perm & PERM_G) flags |= PTE_G;
    if (level > 1) flags |= PTE_PS;
    const oldLo = mem.entryLo(table, idx);
    if ((oldLo & PTE_P) !== 0) this.zapLeaf(table, idx, level);
    this.store.setSpte(
      table,
      idx,
      level,
      makePteLo(head, flags),
      makePteHi(head, (perm & PERM_X) === 0),
    );
    const key = rmapKey(gfn - (gfn % LEVEL_PAGES[level]), level);
    const loc = table * 512 + idx;
    const list = this.rmap.get(key);
    if (list) list.push(loc);
    else this.rmap.set(key, [loc]);
    this.locKey.set(loc, key);
    rec.setOutcome(OUT_FIXED, level, reason, hostFault);
    return OUT_FIXED;
  }

  private trackedIn(gfn: number, level: number): boolean {
    if (level === 2) return (this.track2M.get(Math.floor(gfn / 512)) ?? 0) > 0;
    if (level === 3) return (this.track1G.get(Math.floor(gfn / 262144)) ?? 0) > 0;
    return this.isTracked(gfn);
  }

  private zapLeaf(pfn: number, idx: number, level: number): void {
    const loc = pfn * 512 + idx;
    const key = this.locKey.get(loc);
    if (key !== undefined) {
      this.locKey.delete(loc);
      const list = this.rmap.get(key);
      if (list) {
        const i = list.indexOf(loc);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.rmap.delete(key);
      }
    }
    this.store.setSpte(pfn, idx, level, 0, 0);
  }

  /** kvm_mmu_pte_write: the guest changed entry `index` of table `gfn`: drop what shadows it. */
  private zapGuestEntry(gfn: number, index: number): void {
    const mem = this.vm.host.mem;
    for (const sp of this.gfnSps.get(gfn) ?? []) {
      const lo = mem.entryLo(sp.pfn, index);
      if ((lo & PTE_P) === 0) continue;
      if (sp.level === 1 || (lo & PTE_PS) !== 0) this.zapLeaf(sp.pfn, index, sp.level);
      else this.store.setSpte(sp.pfn, index, sp.level, 0, 0);
    }
    if (this.store.flushPending) {
      this.store.flushPending = false;
      this.vm.host.flushVm(this.vm);
    }
  }

  guestTableWrite(gfn: number, index: number): boolean {
    if (!this.isTracked(gfn)) return false;
    this.vm.countExit(EXIT_EXCEPTION_NMI);
    this.emulations++;
    this.zapGuestEntry(gfn, index);
    return true;
  }

  newPgd(vcpu: Vcpu): void {
    const sp = this.getSp(vcpu.cr3, this.vm.guestMode.levels, false);
    this.roots.set(vcpu.cr3, sp.pfn);
    vcpu.shadowRoot = sp.pfn;
  }

  invlpg(vcpu: Vcpu, vpn: number): void {
    if (vcpu.shadowRoot < 0) return;
    findLeaf(this.vm.host.mem, this.store, this.vm.guestMode, vcpu.shadowRoot, vpn, this.leaf);
    if (this.leaf.present) this.zapLeaf(this.leaf.tableFrame, this.leaf.index, this.leaf.level);
  }

  zapGfnRange(gfn: number, npages: number): void {
    if (npages <= 512) {
      // a small range (the MMU notifier's one page or one THP): look its rmaps up per level, as
      // kvm_handle_gfn_range walks the memslot's rmaps, instead of scanning every rmap
      for (let level = 1; level <= 3; level++) {
        const pages = LEVEL_PAGES[level];
        for (let head = gfn - (gfn % pages); head < gfn + npages; head += pages) {
          const locs = this.rmap.get(rmapKey(head, level));
          if (locs)
            for (const loc of [...locs]) this.zapLeaf(Math.floor(loc / 512), loc % 512, level);
        }
      }
      return;
    }
    for (const [key, locs] of [...this.rmap]) {
      const head = Math.floor(key / 4);
      const level = key % 4;
      if (head + LEVEL_PAGES[level] <= gfn || head >= gfn + npages) continue;
      for (const loc of [...locs]) this.zapLeaf(Math.floor(loc / 512), loc % 512, level);
    }
  }

  tablePages(): number {
    return this.store.pages;
  }

  /**
   * kvm_destroy_vm -> kvm_arch_destroy_vm -> kvm_mmu_uninit_vm: every shadow page is freed
   * (kvm_mmu_zap_all) with its rmaps and write tracking. Returns the pages freed.
   */
  destroy(): number {
    const n = this.sps.size;
    for (const sp of this.sps.values()) this.store.freeTable(sp.pfn);
    this.sps.clear();
    this.spByPfn.clear();
    this.gfnSps.clear();
    this.track2M.clear();
    this.track1G.clear();
    this.rmap.clear();
    this.locKey.clear();
    this.roots.clear();
    for (const v of this.vm.vcpus) v.shadowRoot = -1;
    return n;
  }

  takeFlush(): boolean {
    return this.store.takeFlush();
  }

  /** Shadow pages reachable from the root of each guest address space (keyed by CR3 gfn). */
  tablesPerRoot(): Map<number, number> {
    const res = new Map<number, number>();
    for (const [gfn, root] of this.roots) {
      let n = 1;
      forEachEntry(
        this.vm.host.mem,
        this.store,
        this.vm.guestMode,
        root,
        (_l, _t, _i, _lo, _hi, leaf) => {
          if (!leaf) n++;
          return true;
        },
      );
      res.set(gfn, n);
    }
    return res;
  }

  assertInvariants(): void {
    const mem = this.vm.host.mem;
    let tracked = 0;
    for (const list of this.gfnSps.values()) tracked += list.length;
    let nonDirect = 0;
    for (const sp of this.sps.values()) if (!sp.direct) nonDirect++;
    if (tracked !== nonDirect)
      throw new Error(`tracked ${tracked} != non-direct shadow pages ${nonDirect}`);
    for (const [key, locs] of this.rmap) {
      const head = Math.floor(key / 4);
      const level = key % 4;
      for (const loc of locs) {
        const lo = mem.entryLo(Math.floor(loc / 512), loc % 512);
        if ((lo & PTE_P) === 0) throw new Error("rmap names a non-present spte");
        if (level === 1 && this.isTracked(head) && (lo & PTE_RW) !== 0) {
          throw new Error(
            `gfn 0x${head.toString(16)} is a shadowed guest table but mapped writable`,
          );
        }
        if (level > 1 && this.trackedIn(head, level))
          throw new Error("huge spte over a write-tracked gfn");
      }
    }
    if (this.store.pages !== this.sps.size) throw new Error("shadow page count mismatch");
  }
}
