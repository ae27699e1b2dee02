/**
 * A VM: memslots, an MMU (EPT or shadow), vCPUs, and KVM's software access to guest memory.
 *
 * How it works: the VM's RAM is the VMM process's memory (an Mm); memslots say which guest frames
 * map where in it. KVM itself reads and writes guest memory in software through
 * gfn -> memslot -> hva -> host page (kvm_read_guest / kvm_write_guest, faulting the host page in
 * like get_user_pages); gfnToPfn does that and is the FrameResolver the shadow MMU's software
 * walk uses. Guest stores to its own page tables (the guest OS model) go through
 * writeGuestEntry(): under shadow paging a store to a write-protected (shadowed) table traps and
 * is emulated; with EPT it is an ordinary store. Exits are counted per basic reason in
 * `exitCounts`. Memslot changes zap the affected mappings (kvm_arch_flush_shadow_memslot, and
 * kvm_mmu_slot_apply_flags when dirty logging is toggled; KVM write-protects instead of zapping
 * there, which kvmem simplifies to a zap).
 */
import { EXIT_REASON_COUNT } from "../../x86/faults.js";
import { guestMode, type PagingMode } from "../../x86/paging.js";
import type { FrameResolver } from "../../x86/walk.js";
import type { Host } from "../host.js";
import type { Mm } from "../mm.js";
import { Memslots, type UserMemoryRegion } from "./memslots.js";
import type { Mmu } from "./mmu.js";
import { ShadowMmu } from "./shadow.js";
import { TdpMmu } from "./tdp.js";
import { Vcpu } from "./vcpu.js";

export interface VmConfig {
  name: string;
  /** kvm_intel ept=1 */
  ept: boolean;
  /** kvm_intel vpid=1 */
  vpid: boolean;
  /** guest paging: 4-level or 5-level (LA57) */
  guestLevels: 4 | 5;
  /** EPT walk length (defaults to the guest's levels) */
  eptLevels?: 4 | 5;
  /** EPT accessed/dirty flags (kvm_intel eptad=1) */
  eptAd?: boolean;
}

export class Vm implements FrameResolver {
  readonly memslots = new Memslots();
  readonly mmu: Mmu;
  readonly vcpus: Vcpu[] = [];
  readonly guestMode: PagingMode;
  /** exits by basic reason (SDM appendix C numbering) */
  readonly exitCounts = new Float64Array(EXIT_REASON_COUNT);
  /** guest stores to shadowed page tables that trapped and were emulated */
  emulatedTableWrites = 0;

  constructor(
    readonly host: Host,
    readonly id: number,
    readonly mm: Mm,
    readonly config: VmConfig,
  ) {
    this.guestMode = guestMode(config.guestLevels);
    this.mmu = config.ept
      ? new TdpMmu(this, config.eptLevels ?? config.guestLevels, config.eptAd ?? true)
      : new ShadowMmu(this);
    this.memslots.listeners.push((change, old, now) => {
      if (old && (change === "delete" || change === "move" || change === "flags-only")) {
        this.mmu.zapGfnRange(old.baseGfn, old.npages);
        this.host.flushVm(this);
      }
      // MMIO sptes cached for gfns that are RAM now must go (KVM tags MMIO sptes with the
      // memslot generation and treats older ones as stale)
      if (now && (change === "create" || change === "move")) {
        this.mmu.zapGfnRange(now.baseGfn, now.npages);
        this.host.flushVm(this);
      }
    });
  }

  get name(): string {
    return this.config.name;
  }

  /** KVM_SET_USER_MEMORY_REGION */
  setUserMemoryRegion(r: UserMemoryRegion): string {
    return this.memslots.set(r);
  }

  /** KVM_CREATE_VCPU */
  addVcpu(): Vcpu {
    const vcpu = new Vcpu(this, this.vcpus.length, this.config.vpid ? this.host.allocVpid() : 0);
    this.vcpus.push(vcpu);
    return vcpu;
  }

  /** gfn -> hva, or -1 when no memslot covers it */
  gfnToHva(gfn: number): number {
    const s = this.memslots.lookup(gfn);
    return s === null ? -1 : s.gfnToHva(gfn);
  }

  /** gfn -> pfn, faulting the host page in (kvm_vcpu_map / get_user_pages); -1 for MMIO */
  gfnToPfn(gfn: number): number {
    const hva = this.gfnToHva(gfn);
    return hva < 0 ? -1 : this.mm.fault(hva, true);
  }

  /** gfn -> pfn without side effects; -1 when absent */
  peekGfnToPfn(gfn: number): number {
    const hva = this.gfnToHva(gfn);
    return hva < 0 ? -1 : this.mm.lookup(hva);
  }

  readGuestEntry(gfn: number, index: number, into: Uint32Array): void {
    const pfn = this.gfnToPfn(gfn);
    if (pfn < 0) throw new Error(`gfn 0x${gfn.toString(16)} is not RAM`);
    this.host.mem.readEntry(pfn, index, into);
  }

  /** A guest store of a page-table entry. Returns true when it trapped to KVM. */
  writeGuestEntry(gfn: number, index: number, lo: number, hi: number): boolean {
    const pfn = this.gfnToPfn(gfn);
    if (pfn < 0) throw new Error(`gfn 0x${gfn.toString(16)} is not RAM`);
    this.host.mem.writeEntry(pfn, index, lo, hi);
    this.host.mem.written(pfn);
    const slot = this.memslots.lookup(gfn);
    if (slot?.dirtyBitmap) slot.dirtyBitmap[gfn - slot.baseGfn] = 1;
    const trapped = this.mmu.guestTableWrite(gfn, index);
    if (trapped) this.emulatedTableWrites++;
    return trapped;
  }

  countExit(reason: number): void {
    this.exitCounts[reason]++;
  }

  assertInvariants(): void {
    this.memslots.assertInvariants();
    this.mmu.assertInvariants();
    this.mm.assertInvariants();
  }
}
