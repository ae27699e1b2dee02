/**
 * The host: physical memory, hugetlbfs pools, host processes (the VMMs), VMs and CPUs.
 *
 * How it works: a Host owns every frame (PhysMem) and everything that takes frames: host
 * processes with their page tables (Mm, one per VMM such as QEMU), hugetlbfs pools reserved up
 * front (vm.nr_hugepages and /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages), and
 * VMs whose MMUs allocate their table pages from it. NUMA: `nodes` splits memory and CPUs
 * evenly (CPU c is on node floor(c / (cpus / nodes)), as a two-socket machine numbers them);
 * vm.nr_hugepages is spread over the nodes round-robin (hugetlb.ts). VPIDs are handed out per vCPU from 1 as
 * KVM's allocate_vpid() does (0 is the host's). flushVm() is kvm_flush_remote_tlbs(): INVEPT
 * single-context on every CPU for an EPT VM, INVVPID of the VM's vCPUs under shadow paging.
 * A scenario builds one Host, any number of processes and VMs, and drives vCPUs on CPUs.
 */
import { INVEPT_SINGLE, INVVPID_SINGLE } from "../x86/faults.js";
import { pteReservedHi } from "../x86/pte.js";
import { type CostModel, DEFAULT_COSTS } from "./cpu/cost.js";
import { Cpu } from "./cpu/cpu.js";
import type { TlbConfig } from "./cpu/tlb.js";
import { allocPoolPage, HugetlbPool } from "./hugetlb.js";
import { Vm, type VmConfig } from "./kvm/vm.js";
import { PhysMem } from "./memory.js";
import { Mm } from "./mm.js";

export interface HostConfig {
  /** bytes of host RAM (whole GiB) */
  memory: number;
  cpus?: number;
  tlb?: TlbConfig;
  /** paging-structure caches on */
  pwc?: boolean;
  costs?: CostModel;
  /** MAXPHYADDR (CPUID.80000008H:EAX[7:0]); 46 on recent Intel server parts */
  maxPhyAddr?: number;
  /** NUMA nodes: memory (whole GiB each) and CPUs split evenly; 1 by default */
  nodes?: number;
}

export class Host {
  readonly mem: PhysMem;
  readonly pools = new Map<number, HugetlbPool>();
  readonly cpus: Cpu[] = [];
  readonly vms: Vm[] = [];
  readonly processes: Mm[] = [];
  readonly rsvdHi: number;
  readonly costs: CostModel;
  private nextVpid = 1;
  /** hstate next_nid_to_alloc per page size: where the next pool page goes */
  private readonly nextNid = new Map<number, number>();

  constructor(config: HostConfig) {
    const nodes = config.nodes ?? 1;
    const cpus = config.cpus ?? 1;
    if (cpus % nodes !== 0)
      throw new RangeError(`${cpus} CPUs do not split evenly over ${nodes} NUMA nodes`);
    this.mem = new PhysMem(config.memory, nodes);
    this.rsvdHi = pteReservedHi(config.maxPhyAddr ?? 46);
    this.costs = config.costs ?? DEFAULT_COSTS;
    for (let i = 0; i < (config.cpus ?? 1); i++) {
      this.cpus.push(new Cpu(this, i, config.tlb, config.pwc ?? false, this.costs));
    }
  }

  /** The NUMA node of CPU `cpu` (cpulist of /sys/devices/system/node/nodeN). */
  nodeOfCpu(cpu: number): number {
    return Math.floor(cpu / (this.cpus.length / this.mem.nodes));
  }

  pool(pageSize: 2097152 | 1073741824): HugetlbPool {
    let pool = this.pools.get(pageSize);
    if (!pool) {
      pool = new HugetlbPool(pageSize, this.mem.nodes);
      this.pools.set(pageSize, pool);
    }
    return pool;
  }

  /**
   * Reserve `count` more huge pages of `pageSize` (2M or 1G), round-robin over the nodes from
   * hstate's next_nid_to_alloc, skipping nodes without a free block (alloc_pool_huge_folio);
   * returns how many were reserved.
   */
  reserveHugePages(pageSize: 2097152 | 1073741824, count: number): number {
    const pool = this.pool(pageSize);
    const nodes = this.mem.nodes;
    let nid = this.nextNid.get(pageSize) ?? 0;
    let n = 0;
    for (; n < count; n++) {
      let ok = false;
      for (let tries = 0; tries < nodes && !ok; tries++) {
        ok = allocPoolPage(this, pool, nid, false);
        nid = (nid + 1) % nodes;
      }
      if (!ok) break;
    }
    this.nextNid.set(pageSize, nid);
    return n;
  }

  /** Reserve `count` huge pages on node `node` only (hugepages=N:count); returns how many. */
  reserveHugePagesOnNode(pageSize: 2097152 | 1073741824, node: number, count: number): number {
    const pool = this.pool(pageSize);
    let n = 0;
    while (n < count && allocPoolPage(this, pool, node, false)) n++;
    return n;
  }

  createProcess(name: string): Mm {
    const mm = new Mm(this.mem, this.pools, name);
    this.processes.push(mm);
    return mm;
  }

  createVm(mm: Mm, config: VmConfig): Vm {
    const vm = new Vm(this, this.vms.length, mm, config);
    this.vms.push(vm);
    return vm;
  }

  allocVpid(): number {
    if (this.nextVpid > 65535) throw new Error("out of VPIDs");
    return this.nextVpid++;
  }

  /** kvm_flush_remote_tlbs(vm) */
  flushVm(vm: Vm): void {
    for (const cpu of this.cpus) {
      if (vm.mmu.kind === "ept") cpu.invept(vm, INVEPT_SINGLE);
      else for (const v of vm.vcpus) cpu.invvpid(INVVPID_SINGLE, v.vpid);
    }
  }

  assertInvariants(): void {
    this.mem.assertInvariants();
    for (const pool of this.pools.values()) pool.assertInvariants(this.mem);
    for (const vm of this.vms) vm.assertInvariants();
    for (const mm of this.processes) mm.assertInvariants();
    for (const cpu of this.cpus) cpu.tlb.assertInvariants();
  }
}
