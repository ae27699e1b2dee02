/**
 * A physical CPU running vCPUs: TLB lookup, the hardware walk, exits and their handling.
 *
 * How it works: access() is one guest load, store or fetch. The TLB is probed with the vCPU's
 * tag (VPID, PCID); a hit that allows the access (and is dirty for a store) completes it. Else
 * the MMU's hardware walk runs (2D under EPT, shadow tables otherwise) with the paging-structure
 * caches if enabled. A walk ending in a guest #PF under EPT is delivered to the guest (no exit).
 * A walk ending in an EPT violation/misconfiguration, or any #PF under shadow paging, is a VM
 * exit: counted by reason, handled by KVM (Mmu.handleExit), and the access retried if KVM fixed
 * the mapping. Without VPID every VM exit and entry flushes the TLB entries of VPID 0 and the
 * linear paging-structure caches (Intel SDM vol. 3C 29.1.3 and 29.4.3.3, "Guidelines for Use of
 * the INVVPID Instruction"; EPT-dimension cache entries survive, tagged by EPT only). The
 * instructions around it live here too: a plain exit (`vmexit`), MOV to CR3 (no exit with EPT;
 * CR_ACCESS exit under shadow), INVLPG (INVLPG exit under shadow), and KVM's INVEPT and INVVPID.
 * A completed walk fills the TLB with the smaller of the guest and EPT page sizes (the shadow
 * leaf's size under shadow paging). probe=true walks without side effects: no TLB or cache
 * fill, no A/D updates, no exit handling; it stops at the first exit with STATUS_WOULD_EXIT.
 */
import * as faults from "../../x86/faults.js";
import * as paging from "../../x86/paging.js";
import type { FrameResolver } from "../../x86/walk.js";
import * as walker from "../../x86/walk.js";
import { WalkOut } from "../../x86/walk.js";
import type { Host } from "../host.js";
import type { TdpMmu } from "../kvm/tdp.js";
import type { Vcpu } from "../kvm/vcpu.js";
import type { Vm } from "../kvm/vm.js";
import type { WalkRecord } from "../record.js";
import * as record from "../record.js";
import type { CostModel } from "./cost.js";
import { PagingStructureCache } from "./pwc.js";
import type { TlbConfig } from "./tlb.js";
import * as tlbBits from "./tlb.js";
import { Tlb } from "./tlb.js";

// imported values copied once into module constants (bindings can be getters under tsx)
const { HIT_L1, TLB_D, TLB_G, TLB_U, TLB_W, TLB_X } = tlbBits;
const {
  FAULT_GP,
  FAULT_PF,
  OUT_EMULATE,
  OUT_FIXED,
  OUT_HANDLED,
  OUT_INJECT_PF,
  OUT_SPURIOUS,
  OUT_USERSPACE_MMIO,
  STATUS_EMULATED,
  STATUS_GP,
  STATUS_GUEST_PF,
  STATUS_MMIO,
  STATUS_OK,
  STATUS_WOULD_EXIT,
  TLB_HIT_L1,
  TLB_HIT_STLB,
  TLB_MISS,
} = record;
const { DIM_GUEST, PERM_D, PERM_G, PERM_U, PERM_W, PERM_X, walk } = walker;
const { LEVEL_PAGES } = paging;
const {
  EXIT_CR_ACCESS,
  EXIT_EPT_VIOLATION,
  EXIT_EXTERNAL_INTERRUPT,
  EXIT_INVLPG,
  INVEPT_GLOBAL,
  INVVPID_ADDRESS,
  INVVPID_ALL,
  INVVPID_SINGLE,
  INVVPID_SINGLE_RETAIN_GLOBALS,
  PF_I,
  PF_U,
  PF_W,
} = faults;

class PeekResolver implements FrameResolver {
  vm: Vm | null = null;
  gfnToPfn(gfn: number): number {
    return this.vm === null ? -1 : this.vm.peekGfnToPfn(gfn);
  }
}

const MAX_RETRIES = 16;

export class Cpu {
  readonly tlb: Tlb;
  readonly pwc: PagingStructureCache;
  pwcEnabled: boolean;
  /** the vCPU whose context is loaded (VMCS current), or null */
  current: Vcpu | null = null;
  private readonly sw = new WalkOut();
  private readonly peek = new PeekResolver();
  private readonly hostLevel = new Int32Array(1);
  private readonly hostEntry = new Uint32Array(2);

  constructor(
    readonly host: Host,
    readonly id: number,
    tlb: TlbConfig | undefined,
    pwc: boolean,
    readonly costs: CostModel,
  ) {
    this.tlb = new Tlb(tlb);
    this.pwc = new PagingStructureCache();
    this.pwcEnabled = pwc;
    this.sw.setAd = false;
    this.sw.resolver = this.peek;
  }

  /** VM entry into `vcpu` (VMLAUNCH/VMRESUME). Without VPID: flush VPID 0 mappings. */
  enter(vcpu: Vcpu): void {
    this.current = vcpu;
    if (vcpu.vpid === 0) this.flushVpid0();
  }

  /** VM exit of the current vCPU for `reason`. */
  exit(vcpu: Vcpu, reason: number): void {
    vcpu.vm.countExit(reason);
    if (vcpu.vpid === 0) this.flushVpid0();
  }

  private flushVpid0(): void {
    this.tlb.flushVpid(0);
    this.pwc.flushLinear((t) => t >>> 12 === 0);
  }

  /**
   * One guest access to a 64-bit gva (BigInt at this edge only): #GP for a non-canonical address
   * (SDM vol. 1 3.3.7.1), else access() on its page number and offset.
   */
  accessGva(vcpu: Vcpu, gva: bigint, kind: number, rec: WalkRecord, probe = false): number {
    const bits = vcpu.vm.guestMode.addressBits;
    const top = gva >> BigInt(bits - 1);
    if (top !== 0n && top !== (1n << BigInt(65 - bits)) - 1n) {
      rec.begin(0, 0, kind | (vcpu.user ? PF_U : 0));
      rec.status = STATUS_GP;
      rec.addFault(FAULT_GP, 0);
      return STATUS_GP;
    }
    const low = BigInt.asUintN(57, gva);
    return this.access(vcpu, Number(low >> 12n), Number(low & 0xfffn), kind, rec, probe);
  }

  /** One guest access of `kind` (ACCESS_READ / ACCESS_WRITE / ACCESS_EXEC) to page `vpn`. */
  access(
    vcpu: Vcpu,
    vpn: number,
    offset: number,
    kind: number,
    rec: WalkRecord,
    probe = false,
  ): number {
    if (this.current !== vcpu && !probe) this.enter(vcpu);
    const access = kind | (vcpu.user ? PF_U : 0);
    rec.begin(vpn, offset, access);
    rec.vpid = vcpu.vpid;
    rec.pcid = vcpu.pcid;
    const tag = vcpu.tag;
    const costs = this.costs;
    const pfnHit = this.tlb.lookup(vpn, tag, probe);
    if (pfnHit >= 0) {
      const f = this.tlb.hitFlags;
      if (
        ((access & PF_U) === 0 || (f & TLB_U) !== 0) &&
        ((access & PF_W) === 0 || (f & (TLB_W | TLB_D)) === (TLB_W | TLB_D)) &&
        ((access & PF_I) === 0 || (f & TLB_X) !== 0)
      ) {
        const l1 = this.tlb.hitWhere === HIT_L1;
        rec.tlb = l1 ? TLB_HIT_L1 : TLB_HIT_STLB;
        rec.tlbLevel = this.tlb.hitLevel;
        rec.pfn = pfnHit;
        rec.cycles = l1 ? costs.l1Hit : costs.stlbHit;
        if ((access & PF_W) !== 0 && !probe) this.host.mem.written(pfnHit);
        if (rec.detail) this.fillDetail(vcpu, rec);
        return STATUS_OK;
      }
    }
    rec.tlb = TLB_MISS;
    const vm = vcpu.vm;
    const mmu = vm.mmu;
    const out = rec.out;
    out.setAd = !probe;
    out.wp = vcpu.wp;
    out.nxe = vcpu.nxe;
    out.eptAd = vm.config.eptAd ?? true;
    out.rsvdHi = this.host.rsvdHi;
    out.pwc = this.pwcEnabled && !probe ? this.pwc : null;
    out.pwcTag = tag;
    out.pwcEptTag = vm.id + 1;
    let cycles = 0;
    let pfn = -1;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      out.reset();
      pfn = mmu.hwWalk(vcpu, vpn, access, out);
      if (pfn >= 0) break;
      const reason = mmu.exitReasonFor(out);
      if (reason < 0) {
        rec.addFault(FAULT_PF, out.errorCode);
        rec.status = STATUS_GUEST_PF;
        rec.cycles = cycles + (out.guestRefs + out.eptRefs) * costs.walkReference;
        rec.abortedRefs += out.guestRefs + out.eptRefs;
        if (rec.detail) this.fillDetail(vcpu, rec);
        return rec.status;
      }
      const refs = out.guestRefs + out.eptRefs;
      rec.addExit(reason, out.errorCode, reason >= EXIT_EPT_VIOLATION ? out.faultFrame : -1, refs);
      cycles += refs * costs.walkReference + out.pwcHits * costs.pwcHit;
      if (probe) {
        rec.status = STATUS_WOULD_EXIT;
        if (reason >= EXIT_EPT_VIOLATION) rec.gfn = out.faultFrame;
        rec.cycles = cycles;
        if (rec.detail) this.fillDetail(vcpu, rec);
        return rec.status;
      }
      this.exit(vcpu, reason);
      const outcome = mmu.handleExit(vcpu, vpn, access, out, rec);
      if (mmu.takeFlush()) this.host.flushVm(vm);
      this.enter(vcpu);
      cycles += this.exitCost(rec, rec.nExits - 1);
      if (outcome === OUT_FIXED || outcome === OUT_SPURIOUS) continue;
      if (outcome === OUT_INJECT_PF) rec.status = STATUS_GUEST_PF;
      else if (outcome === OUT_EMULATE) rec.status = STATUS_EMULATED;
      else if (outcome === OUT_USERSPACE_MMIO) rec.status = STATUS_MMIO;
      if (rec.gfn < 0 && reason >= EXIT_EPT_VIOLATION) rec.gfn = out.faultFrame;
      rec.cycles = cycles;
      if (rec.detail) this.fillDetail(vcpu, rec);
      return rec.status;
    }
    if (pfn < 0) throw new Error("access did not complete after repeated exits");
    // completed walk
    let flags: number;
    let level: number;
    if (mmu.kind === "ept") {
      rec.gfn = out.gfn;
      rec.guestLevel = out.gLevel;
      rec.mmuLevel = out.eLevel;
      level = Math.min(out.gLevel, out.eLevel);
      const g = out.gPerm;
      const e = out.ePerm;
      flags =
        ((g & PERM_W) !== 0 && (e & 2) !== 0 ? TLB_W : 0) |
        ((g & PERM_U) !== 0 ? TLB_U : 0) |
        ((g & PERM_X) !== 0 && (e & 4) !== 0 ? TLB_X : 0) |
        ((g & PERM_D) !== 0 && (e & PERM_D) !== 0 ? TLB_D : 0) |
        ((g & PERM_G) !== 0 ? TLB_G : 0);
    } else {
      rec.mmuLevel = out.gLevel;
      level = out.gLevel;
      const g = out.gPerm;
      flags =
        ((g & PERM_W) !== 0 ? TLB_W : 0) |
        ((g & PERM_U) !== 0 ? TLB_U : 0) |
        ((g & PERM_X) !== 0 ? TLB_X : 0) |
        ((g & PERM_D) !== 0 ? TLB_D : 0) |
        ((g & PERM_G) !== 0 ? TLB_G : 0);
    }
    rec.tlbLevel = level;
    rec.pfn = pfn;
    rec.status = STATUS_OK;
    cycles += (out.guestRefs + out.eptRefs) * costs.walkReference + out.pwcHits * costs.pwcHit;
    rec.cycles = cycles;
    if (!probe) {
      this.tlb.fill(
        vpn,
        level,
        pfn - (vpn % LEVEL_PAGES[level]),
        tag,
        mmu.kind === "ept" ? vm.id + 1 : 0,
        flags,
      );
      if ((access & PF_W) !== 0) this.host.mem.written(pfn);
    }
    if (rec.detail) this.fillDetail(vcpu, rec);
    return STATUS_OK;
  }

  private exitCost(rec: WalkRecord, i: number): number {
    const c = this.costs;
    let cycles = c.vmExitRoundTrip;
    const reason = rec.exitReason[i];
    const outcome = rec.exitOutcome[i];
    if (reason === EXIT_EPT_VIOLATION) cycles += c.eptViolation;
    else if (reason === 0) cycles += c.shadowPageFault;
    if (outcome === OUT_EMULATE) cycles += c.emulateWrite;
    if (outcome === OUT_USERSPACE_MMIO) cycles += c.userspaceExit;
    const hf = rec.exitHostFault[i];
    if (hf >= 262144) cycles += c.hostFault1G;
    else if (hf >= 512) cycles += c.hostFault2M;
    else if (hf > 0) cycles += c.hostFault4K * hf;
    return cycles;
  }

  /** The software chain: gpa (shadow: by a side-effect-free guest walk), memslot, hva, host pte. */
  private fillDetail(vcpu: Vcpu, rec: WalkRecord): void {
    const vm = vcpu.vm;
    if (rec.gfn < 0 || rec.guestLevel === 0) {
      const sw = this.sw;
      sw.reset();
      sw.wp = vcpu.wp;
      sw.nxe = vcpu.nxe;
      this.peek.vm = vm;
      const gfn = walk(
        sw,
        this.host.mem,
        vm.guestMode,
        vcpu.cr3,
        rec.vpn,
        rec.access,
        DIM_GUEST,
        null,
        0,
        -1,
      );
      if (gfn >= 0) {
        if (rec.gfn < 0) rec.gfn = gfn;
        rec.guestLevel = sw.gLevel;
      }
    }
    if (rec.gfn < 0) return;
    if (rec.mmuLevel === 0 && vm.mmu.kind === "ept") {
      const leaf = (vm.mmu as TdpMmu).lookup(rec.gfn);
      if (leaf) rec.mmuLevel = leaf.level;
    }
    const slot = vm.memslots.lookup(rec.gfn);
    if (slot === null) return;
    rec.memslot = slot.id;
    rec.hva = slot.gfnToHva(rec.gfn);
    const pfn = vm.mm.lookup(rec.hva, this.hostLevel, this.hostEntry);
    if (pfn >= 0) {
      rec.hostLevel = this.hostLevel[0];
      rec.hostLo = this.hostEntry[0];
      rec.hostHi = this.hostEntry[1];
      if (rec.pfn < 0) rec.pfn = pfn;
    }
  }

  /** An exit that is not about memory (a timer interrupt): `vmexit` in kvmem translate. */
  vmexit(vcpu: Vcpu, rec: WalkRecord, reason = EXIT_EXTERNAL_INTERRUPT): void {
    rec.begin(0, 0, 0);
    rec.addExit(reason, 0, -1, 0);
    this.exit(vcpu, reason);
    rec.setOutcome(OUT_HANDLED);
    this.enter(vcpu);
    rec.cycles = this.costs.vmExitRoundTrip;
  }

  /** MOV to CR3: load `rootGfn` with `pcid` (bit 63 `noflush` keeps that PCID's entries). */
  movCr3(vcpu: Vcpu, rootGfn: number, pcid: number, noflush: boolean, rec: WalkRecord): void {
    rec.begin(0, 0, 0);
    vcpu.cr3 = rootGfn;
    vcpu.pcid = pcid;
    const mmu = vcpu.vm.mmu;
    if (mmu.kind === "shadow") {
      rec.addExit(EXIT_CR_ACCESS, 0, -1, 0);
      this.exit(vcpu, EXIT_CR_ACCESS);
      mmu.newPgd(vcpu);
      rec.setOutcome(OUT_HANDLED);
      this.enter(vcpu);
      rec.cycles = this.costs.vmExitRoundTrip;
    }
    if (!noflush) {
      this.tlb.flushPcid(vcpu.vpid, pcid);
      const tag = vcpu.vpid * 4096 + pcid;
      this.pwc.flushLinear((t) => t === tag);
    }
  }

  /** INVLPG executed by the guest. */
  invlpg(vcpu: Vcpu, vpn: number, rec: WalkRecord): void {
    rec.begin(vpn, 0, 0);
    const mmu = vcpu.vm.mmu;
    if (mmu.kind === "shadow") {
      rec.addExit(EXIT_INVLPG, 0, -1, 0);
      this.exit(vcpu, EXIT_INVLPG);
      mmu.invlpg(vcpu, vpn);
      if (mmu.takeFlush()) this.host.flushVm(vcpu.vm);
      rec.setOutcome(OUT_HANDLED);
      this.enter(vcpu);
      rec.cycles = this.costs.vmExitRoundTrip;
    }
    this.tlb.flushAddress(vcpu.vpid, vpn);
    const tag = vcpu.tag;
    this.pwc.flushLinear((t) => t === tag);
  }

  /** INVEPT by KVM: single-context (this VM's EPT) or global. Returns entries dropped. */
  invept(vm: Vm, type: number): number {
    if (type === INVEPT_GLOBAL) {
      const n = this.tlb.flushAll();
      this.pwc.flushAll();
      return n;
    }
    const n = this.tlb.flushEpt(vm.id + 1);
    this.pwc.flushEpt(vm.id + 1);
    const vpids = new Set(vm.vcpus.map((v) => v.vpid));
    this.pwc.flushLinear((t) => vpids.has(t >>> 12));
    return n;
  }

  /** INVVPID by KVM. Returns entries dropped. */
  invvpid(type: number, vpid: number, vpn = 0): number {
    this.pwc.flushLinear((t) => type === INVVPID_ALL || t >>> 12 === vpid);
    if (type === INVVPID_ADDRESS) return this.tlb.flushAddress(vpid, vpn);
    if (type === INVVPID_SINGLE) return this.tlb.flushVpid(vpid);
    if (type === INVVPID_SINGLE_RETAIN_GLOBALS) return this.tlb.flushVpid(vpid, true);
    return this.tlb.flushAll();
  }
}
