/**
 * A vCPU's architectural state that translation depends on.
 *
 * How it works: CR3 holds the guest frame of the current top-level table and a PCID (CR4.PCIDE,
 * SDM vol. 3A 4.10.1); the CPL decides user or supervisor accesses; CR0.WP and EFER.NXE change
 * the permission checks (SDM 4.6). KVM gives each vCPU a VPID when enable_vpid (vmx.c
 * allocate_vpid); 0 means VPID is off and every VM entry and exit flushes the TLB. Under shadow
 * paging `shadowRoot` is the host frame of the shadow table KVM loaded for this CR3 (the real
 * CR3 the hardware uses, mmu.rst "root_hpa").
 */
import type { Vm } from "./vm.js";

export class Vcpu {
  /** guest frame of the top-level table (CR3 bits 51:12), -1 before the first CR3 load */
  cr3 = -1;
  pcid = 0;
  user = false;
  wp = true;
  nxe = true;
  shadowRoot = -1;
  /** guest process whose tables CR3 points at (the guest OS model's name for it) */
  process = "";

  constructor(
    readonly vm: Vm,
    readonly id: number,
    readonly vpid: number,
  ) {}

  /** TLB tag: vpid * 4096 + pcid */
  get tag(): number {
    return this.vpid * 4096 + this.pcid;
  }
}
