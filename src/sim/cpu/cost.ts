/**
 * A cost model: cycles for TLB hits, page-walk references, exits and fault handling.
 *
 * How it works: a WalkRecord already counts what happened (TLB level hit, memory references of
 * the completing walk and of aborted walks, paging-structure-cache hits, exits by reason, host
 * faults); cycles() prices each with a latency. Defaults, all approximate and configurable:
 *   - L1 dTLB hit: 0 extra cycles (in the load pipeline); STLB hit: 7 cycles (Intel Optimization
 *     Reference Manual, Golden Cove: "STLB hit ... 7 cycles" order of magnitude for recent cores);
 *   - one page-walk memory reference: 15 cycles, an L2 hit (page-walk loads go through the data
 *     caches; Golden Cove L2 latency ~15 cycles per the same manual); a PWC hit: 1 cycle;
 *   - a VM exit + entry round trip: 1,100 cycles, the order kvm-unit-tests x86/vmexit.c
 *     ("cpuid" test) measures on recent Intel hosts, excluding handler work;
 *   - KVM's EPT-violation handling (kvm_tdp_page_fault, no host fault): 2,000 cycles; a host page
 *     fault (handle_mm_fault, zeroing a 4K page): 3,000 cycles, 2M: 150,000, 1G: 0 (hugetlb pages
 *     are zeroed when the pool is filled, not on fault);
 *   - shadow-paging #PF handling (FNAME(page_fault) with a software walk): 3,000 cycles;
 *     instruction emulation of a write to a write-protected guest page table: 4,000 cycles;
 *   - an exit to userspace for MMIO (KVM_RUN return and re-entry): 10,000 cycles.
 * These are teaching numbers for relative comparison, not a performance prediction.
 */

export interface CostModel {
  l1Hit: number;
  stlbHit: number;
  walkReference: number;
  pwcHit: number;
  vmExitRoundTrip: number;
  eptViolation: number;
  hostFault4K: number;
  hostFault2M: number;
  hostFault1G: number;
  shadowPageFault: number;
  emulateWrite: number;
  userspaceExit: number;
}

export const DEFAULT_COSTS: CostModel = {
  l1Hit: 0,
  stlbHit: 7,
  walkReference: 15,
  pwcHit: 1,
  vmExitRoundTrip: 1100,
  eptViolation: 2000,
  hostFault4K: 3000,
  hostFault2M: 150000,
  hostFault1G: 0,
  shadowPageFault: 3000,
  emulateWrite: 4000,
  userspaceExit: 10000,
};
