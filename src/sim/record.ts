/**
 * The WalkRecord: everything one access did, in one reusable object.
 *
 * How it works: Cpu.access() fills it: the TLB result, the steps of the walk that completed the
 * access (guest entries with the nested EPT walk under each, or shadow entries) in `out`, the
 * exits and faults met on the way (each with the references its aborted walk made, which are
 * kept out of `memoryReferences`), the gfn/pfn and page sizes, and cycles from the cost model.
 * With `detail` set it also resolves the software chain the lab and CLI show: gpa -> memslot ->
 * hva -> host page-table entry -> hpa. All storage is typed arrays sized once, so recording costs
 * no allocation per access. The CLI, the lab and the tests read this one record.
 */
import { WalkOut } from "../x86/walk.js";

export const TLB_MISS = 0;
export const TLB_HIT_L1 = 1;
export const TLB_HIT_STLB = 2;

export const STATUS_OK = 0;
/** a #PF was delivered to the guest */
export const STATUS_GUEST_PF = 1;
/** #GP: non-canonical address */
export const STATUS_GP = 2;
/** the access ended in an exit to the VMM (KVM_EXIT_MMIO) */
export const STATUS_MMIO = 3;
/** KVM emulated the access (a write to a write-protected guest page table) */
export const STATUS_EMULATED = 4;
/** probe mode: the access would exit; nothing was changed */
export const STATUS_WOULD_EXIT = 5;
export const STATUS_NAMES = [
  "ok",
  "guest-page-fault",
  "general-protection",
  "mmio-exit",
  "emulated",
  "would-exit",
];

/** How KVM handled an exit (KVM's RET_PF_* and friends). */
export const OUT_NONE = 0;
/** an spte was installed: retry the access (RET_PF_FIXED) */
export const OUT_FIXED = 1;
/** nothing to do, another path fixed it (RET_PF_SPURIOUS) */
export const OUT_SPURIOUS = 2;
/** the instruction was emulated (RET_PF_EMULATE) */
export const OUT_EMULATE = 3;
/** a #PF was injected into the guest */
export const OUT_INJECT_PF = 4;
/** exit to userspace: KVM_EXIT_MMIO */
export const OUT_USERSPACE_MMIO = 5;
/** a non-fault exit was handled (CR3 load, INVLPG, interrupt) */
export const OUT_HANDLED = 6;
export const OUTCOME_NAMES = [
  "none",
  "fixed",
  "spurious",
  "emulate",
  "inject-pf",
  "userspace-mmio",
  "handled",
];

/** Why an spte got the level it got (kvm_mmu_hugepage_adjust and friends). */
export const LR_NONE = 0;
export const LR_MAX_LEVEL = 1;
export const LR_HOST_LEVEL = 2;
export const LR_MISALIGNED = 3;
export const LR_BOUNDARY = 4;
export const LR_DIRTY_LOG = 5;
export const LR_GUEST_LEVEL = 6;
export const LR_WRITE_TRACKED = 7;
export const LR_MMIO = 8;
export const LEVEL_REASON_NAMES = [
  "",
  "max-level",
  "host-mapping-level",
  "memslot-misaligned",
  "memslot-boundary",
  "dirty-logging",
  "guest-page-size",
  "write-tracked",
  "mmio",
];

export const FAULT_PF = 1;
export const FAULT_GP = 2;
export const FAULT_NAMES = ["", "#PF", "#GP"];

const MAX_EVENTS = 32;

export class WalkRecord {
  readonly out = new WalkOut();
  /** fill the software chain (memslot, hva, host entry) too */
  detail = false;

  vpn = 0;
  offset = 0;
  access = 0;
  vpid = 0;
  pcid = 0;
  tlb = TLB_MISS;
  status = STATUS_OK;
  /** result: host frame (or -1) and guest frame (or -1) */
  pfn = -1;
  gfn = -1;
  guestLevel = 0;
  /** EPT level (EPT) or shadow spte level (shadow) */
  mmuLevel = 0;
  tlbLevel = 0;
  cycles = 0;
  abortedRefs = 0;

  nExits = 0;
  readonly exitReason = new Int16Array(MAX_EVENTS);
  readonly exitQual = new Int32Array(MAX_EVENTS);
  readonly exitGfn = new Float64Array(MAX_EVENTS);
  readonly exitOutcome = new Int8Array(MAX_EVENTS);
  readonly exitLevel = new Int8Array(MAX_EVENTS);
  readonly exitLevelReason = new Int8Array(MAX_EVENTS);
  readonly exitRefs = new Int16Array(MAX_EVENTS);
  /** host frames faulted in while handling the exit, in 4K frames */
  readonly exitHostFault = new Int32Array(MAX_EVENTS);

  nFaults = 0;
  readonly faultType = new Int8Array(MAX_EVENTS);
  readonly faultCode = new Int32Array(MAX_EVENTS);

  // detail
  memslot = -1;
  hva = -1;
  hostLo = 0;
  hostHi = 0;
  hostLevel = 0;

  /** Start recording an access (the walk steps are reset when a walk starts). */
  begin(vpn: number, offset: number, access: number): void {
    this.out.n = 0;
    this.vpn = vpn;
    this.offset = offset;
    this.access = access;
    this.tlb = TLB_MISS;
    this.status = STATUS_OK;
    this.pfn = -1;
    this.gfn = -1;
    this.guestLevel = 0;
    this.mmuLevel = 0;
    this.tlbLevel = 0;
    this.cycles = 0;
    this.abortedRefs = 0;
    this.nExits = 0;
    this.nFaults = 0;
    this.memslot = -1;
    this.hva = -1;
    this.hostLo = 0;
    this.hostHi = 0;
    this.hostLevel = 0;
  }

  addExit(reason: number, qual: number, gfn: number, refs: number): number {
    const i = this.nExits < MAX_EVENTS ? this.nExits++ : MAX_EVENTS - 1;
    this.exitReason[i] = reason;
    this.exitQual[i] = qual;
    this.exitGfn[i] = gfn;
    this.exitOutcome[i] = OUT_NONE;
    this.exitLevel[i] = 0;
    this.exitLevelReason[i] = LR_NONE;
    this.exitRefs[i] = refs;
    this.exitHostFault[i] = 0;
    this.abortedRefs += refs;
    return i;
  }

  addFault(type: number, code: number): void {
    const i = this.nFaults < MAX_EVENTS ? this.nFaults++ : MAX_EVENTS - 1;
    this.faultType[i] = type;
    this.faultCode[i] = code;
  }

  /** Set how the last exit was handled. */
  setOutcome(outcome: number, level = 0, reason = LR_NONE, hostFault = 0): void {
    if (this.nExits === 0) return;
    const i = this.nExits - 1;
    this.exitOutcome[i] = outcome;
    this.exitLevel[i] = level;
    this.exitLevelReason[i] = reason;
    this.exitHostFault[i] = hostFault;
  }
}
