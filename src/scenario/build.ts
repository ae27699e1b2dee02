/**
 * Build a simulated host from a scenario: the Host (frames, CPUs, TLB geometry, hugetlbfs pools
 * from vm.nr_hugepages), one VMM process per VM with guest RAM mapped as the domain's backing
 * says, memslots laid out as QEMU's q35 machine does (RAM above 2 GiB moves to 4 GiB, the PCI
 * hole below 4 GiB is MMIO), the VM with EPT or shadow paging and VPID on or off, one vCPU, a
 * guest OS with one process per workload process, and the workload.
 * Backing: the scenario's `backing`, else the domain's <hugepages> page size, else anonymous
 * memory that THP may back unless THP is `never` (QEMU madvises guest RAM MADV_HUGEPAGE,
 * qemu_ram_alloc -> qemu_madvise(QEMU_MADV_HUGEPAGE)). A VM whose hugepage backing cannot be
 * satisfied fails to start with QEMU's error and the scenario goes on without it.
 * Pure: no Node APIs (the lab runs this in a browser worker).
 */

import { initialMemoryKiB, parseDomain, ramParts } from "../libvirt/index.js";
import type { Domain } from "../libvirt/model.js";
import { Balloon } from "../sim/balloon.js";
import type { Cpu } from "../sim/cpu/cpu.js";
import type { TlbConfig } from "../sim/cpu/tlb.js";
import { GOLDEN_COVE_TLB } from "../sim/cpu/tlb.js";
import { GuestOs, type GuestProcess } from "../sim/guest/os.js";
import { GuestSwap } from "../sim/guest/swap.js";
import { Host } from "../sim/host.js";
import { HostPtes, VmStat } from "../sim/hostpte.js";
import { gatherSurplus, returnUnusedSurplus } from "../sim/hugetlb.js";
import { Ksm } from "../sim/ksm.js";
import { Ksmtuned } from "../sim/ksmtuned.js";
import type { Vcpu } from "../sim/kvm/vcpu.js";
import type { Vm } from "../sim/kvm/vm.js";
import type { Mm } from "../sim/mm.js";
import { MomPolicy } from "../sim/mom.js";
import { defaultMinFreeKbytes, Reclaim } from "../sim/reclaim.js";
import { GiB, MiB } from "../units/size.js";
import type { Workload } from "../workload/batch.js";
import { parseLackey, TraceWorkload } from "../workload/lackey.js";
import { SyntheticWorkload } from "../workload/patterns.js";
import { Prng } from "../workload/prng.js";
import { GuestContent, ImageRegistry } from "./content.js";
import { DiskIo } from "./diskio.js";
import {
  type PolicyRange,
  preallocShortfall,
  QEMU_PREALLOC_ERROR,
  vmPlacement,
} from "./placement.js";
import { hugepagesPerNode, type Scenario, type VmEntry, type WorkloadConfig } from "./schema.js";

export type Backing = "4K" | "thp" | "2M" | "1G";

export interface SimVm {
  name: string;
  index: number;
  domain: Domain;
  domainFile: string;
  xml: string;
  backing: Backing;
  /** guest RAM in bytes */
  memory: number;
  state: "running" | "failed";
  error: string | null;
  workloadConfig: WorkloadConfig;
  /** the rest only when running */
  vm: Vm | null;
  vcpu: Vcpu | null;
  os: GuestOs | null;
  mm: Mm | null;
  cpu: Cpu | null;
  workload: Workload | null;
  procs: GuestProcess[];
  /** guest page level for data (1 = 4K, 2 = 2M, 3 = 1G) */
  guestLevel: number;
  /** the virtio-balloon device and driver (null: <memballoon model='none'/> or not running) */
  balloon: Balloon | null;
  /** killed by the host's OOM killer: when (simulated ms) and the kernel's report */
  oomKilled: { at: number; message: string } | null;
  /** NUMA: the node of the CPU its vCPU runs on, and <numatune>'s policies over guest RAM */
  homeNode: number;
  placement: PolicyRange[];
}

export interface BuiltHost {
  scenario: Scenario;
  host: Host;
  vms: SimVm[];
  /** host pte edits + the MMU notifier, and /proc/vmstat counters */
  ptes: HostPtes;
  /** ksmd (runs when host.kernel.ksm.run is 1) */
  ksm: Ksm;
  /** the LRU lists, the page cache, swap, kswapd and direct reclaim */
  reclaim: Reclaim;
  /** the guests' disk I/O through QEMU (fills the host's page cache) */
  diskIo: DiskIo;
  /** ksmtuned, when the scenario's host runs it */
  ksmtuned: Ksmtuned | null;
  /** oVirt MOM's balloon policy, when the scenario's host runs it */
  mom: MomPolicy | null;
  /** hugetlb pages reserved per size (bytes -> count) */
  reserved: Map<number, number>;
}

export interface ScenarioInput {
  scenario: Scenario;
  domains: Map<string, { xml: string; file: string }>;
  traces: Map<string, string>;
}

function tlbConfig(s: Scenario): TlbConfig {
  const t = s.host.cpu.tlb;
  if (!t) return GOLDEN_COVE_TLB;
  return {
    ...GOLDEN_COVE_TLB,
    ...(t.l1d4k ? { l1d4k: t.l1d4k } : {}),
    ...(t.l1d2m ? { l1d2m: t.l1d2m } : {}),
    ...(t.l1d1g ? { l1d1g: t.l1d1g } : {}),
    ...(t.stlb ? { stlb: t.stlb } : {}),
  } as TlbConfig;
}

export function backingOf(entry: VmEntry, d: Domain, s: Scenario): Backing {
  if (entry.backing) return entry.backing;
  // the page size backing most of the guest's RAM (libvirt's per-node choice, ramParts)
  const parts = ramParts(d).sort((a, b) => b.kib - a.kib);
  const huge = parts[0]?.huge;
  if (huge) return huge.sizeKiB === 1048576 ? "1G" : "2M";
  // shared memfd/file RAM is shmem: no THP unless shmem_enabled says so (its default: never)
  if (sharedRam(d)) return "4K";
  return s.host.kernel.thp === "never" ? "4K" : "thp";
}

/**
 * Guest RAM QEMU maps MAP_SHARED from a memfd or a file (<memoryBacking><source type='memfd'|'file'/>
 * with <access mode='shared'/>: memory-backend-memfd/-file share=on): shmem pages.
 */
export function sharedRam(d: Domain): boolean {
  const mb = d.memoryBacking;
  return (mb.source === "memfd" || mb.source === "file") && mb.access === "shared";
}

export function workloadConfig(s: Scenario, entry: VmEntry): WorkloadConfig {
  return typeof entry.workload === "string" ? s.workloads[entry.workload] : entry.workload;
}

export function makeWorkload(
  w: WorkloadConfig,
  seed: number,
  traces: Map<string, string>,
): Workload {
  if (w.pattern === "trace") {
    const text = traces.get(w.trace ?? "") ?? "";
    return new TraceWorkload(parseLackey(text, w.trace), w.accesses, w.instructions);
  }
  return new SyntheticWorkload({ ...w, pattern: w.pattern, seed });
}

export function buildHost(input: ScenarioInput): BuiltHost {
  const s = input.scenario;
  const host = new Host({
    memory: s.host.memory,
    cpus: s.host.cpus,
    tlb: tlbConfig(s),
    pwc: s.host.cpu.pwc,
    nodes: s.host.numa.nodes,
  });
  const reserved = new Map<number, number>();
  for (const [key, size] of [
    ["2M", 2097152],
    ["1G", 1073741824],
  ] as const) {
    // vm.nr_hugepages round-robin over the nodes, or the boot parameter's per-node counts
    const v = s.host.kernel.hugepages[key];
    const perNode = hugepagesPerNode(v);
    let n = 0;
    if (perNode) for (const [node, c] of perNode) n += host.reserveHugePagesOnNode(size, node, c);
    else n = host.reserveHugePages(size, v as number);
    reserved.set(size, n);
  }
  host.pools.get(2 * MiB)!.overcommit = s.host.kernel.overcommitHugepages["2M"];
  host.pools.get(GiB)!.overcommit = s.host.kernel.overcommitHugepages["1G"];
  const rng = new Prng(s.seed);
  const ptes = new HostPtes(host, new VmStat());
  const ksm = new Ksm(ptes, s.host.kernel.ksm);
  const images = new ImageRegistry();
  const reclaim = new Reclaim(ptes, ksm, {
    swapBytes: s.host.swap,
    minFreeKbytes: defaultMinFreeKbytes(host.mem.nframes * 4),
    // reclaim reads vm.swappiness from here when it runs (a timeline `set` changes it)
    sysctl: s.host.kernel,
  });
  // other host processes' files, read before the VMs start (host.pageCache)
  reclaim.cache.fillHostFiles(Math.floor(s.host.pageCache / 4096));
  const diskIo = new DiskIo(reclaim.cache, s.seed);
  const vms: SimVm[] = [];
  s.vms.forEach((entry, index) => {
    const src = input.domains.get(entry.name) ?? { xml: entry.xml ?? "", file: entry.name };
    const { domain } = parseDomain(src.xml, src.file);
    // the RAM QEMU boots the guest with: NUMA cells, else <memory> less memory devices
    const memory = Math.max(
      64 * MiB,
      Math.ceil((initialMemoryKiB(domain) * 1024) / (2 * MiB)) * 2 * MiB,
    );
    const w = workloadConfig(s, entry);
    const sv: SimVm = {
      name: entry.name,
      index,
      domain,
      domainFile: src.file,
      xml: src.xml,
      backing: backingOf(entry, domain, s),
      memory,
      state: "running",
      error: null,
      workloadConfig: w,
      vm: null,
      vcpu: null,
      os: null,
      mm: null,
      cpu: null,
      workload: null,
      procs: [],
      guestLevel: entry.guest.pageSize === "1G" ? 3 : entry.guest.pageSize === "2M" ? 2 : 1,
      balloon: null,
      oomKilled: null,
      homeNode: host.nodeOfCpu(index % host.cpus.length),
      placement: [],
    };
    startVm(host, s, sv, vms, entry, rng.fork(index), input.traces, images);
    // the guest's own swap disk; its reclaim runs on the VM's vCPU (sim/guest/swap.ts)
    if (sv.os && entry.guest.swap > 0)
      new GuestSwap(sv.os, entry.guest.swap).cpu = { cpu: sv.cpu!, vcpu: sv.vcpu! };
    if (sv.mm) {
      // QEMU madvises guest RAM MADV_MERGEABLE (memory_try_enable_merging) unless the machine
      // has mem-merge=off, which libvirt sets for <memoryBacking><nosharepages/>; hugetlbfs
      // RAM is not KSM-compatible (ksm_madvise ignores it)
      // (a MAP_SHARED mapping is not KSM-compatible either: vma_ksm_compatible)
      if (!domain.memoryBacking.nosharepages && !sharedRam(domain))
        ksm.madvise(sv.mm, sv.mm.vmas[0]);
      // <locked/>: QEMU mlocks guest RAM (-overcommit mem-lock=on): unevictable
      reclaim.register(sv.mm, domain.memoryBacking.locked);
      const mb = domain.memballoon;
      if (mb.model.startsWith("virtio")) {
        sv.balloon = new Balloon(sv.vm!, sv.mm, sv.os!, ptes, ksm, {
          ramPages: sv.memory / 4096,
          autodeflate: mb.autodeflate === true,
          freePageReporting: mb.freePageReporting === true,
        });
        // libvirt sets the balloon to <currentMemory> when the domain starts
        // (qemuProcessSetupBalloon -> qemuMonitorSetBalloon)
        sv.balloon.setTarget(Math.min(sv.memory, domain.currentMemoryKiB * 1024));
      }
    }
    vms.push(sv);
  });
  const tuned = s.host.policies.ksmtuned;
  const ksmtuned = tuned ? new Ksmtuned(tuned, host.mem.nframes * 4) : null;
  const m = s.host.policies.mom;
  const mom = m
    ? new MomPolicy(
        m.intervalS,
        m.monitorIntervalS,
        m.sampleHistoryLength,
        m.ksm ? ksm.settings : null,
      )
    : null;
  return { scenario: s, host, vms, reserved, ptes, ksm, reclaim, diskIo, ksmtuned, mom };
}

/** QEMU's error when hugetlbfs cannot back guest RAM (backends/hostmem-file.c, qemu_ram_mmap). */
export const QEMU_HUGEPAGE_ERROR =
  "qemu-system-x86_64: unable to map backing store for guest RAM: Cannot allocate memory";

function startVm(
  host: Host,
  s: Scenario,
  sv: SimVm,
  vms: readonly SimVm[],
  entry: VmEntry,
  rng: Prng,
  traces: Map<string, string>,
  images: ImageRegistry,
): void {
  const memory = sv.memory;
  const placed = vmPlacement(sv.domain, sv.memory, host.mem.nodes);
  if (placed.error) {
    sv.state = "failed";
    sv.error = placed.error;
    return;
  }
  sv.placement = placed.ranges;
  let prealloc = false;
  if (sv.backing === "2M" || sv.backing === "1G") {
    const size = sv.backing === "1G" ? GiB : 2 * MiB;
    if (sv.backing === "1G" && memory % GiB !== 0) sv.memory = Math.ceil(memory / GiB) * GiB;
    const pool = host.pools.get(size);
    const needed = sv.memory / size;
    // the kernel reserves the pages at mmap time (hugetlb_reserve_pages), so a short pool fails
    // here. libvirt also gives hugepage backends prealloc=on (qemuBuildMemoryBackendProps); kvmem
    // preallocates only RAM bound to nodes (below), other hugepage RAM faults in as it is touched
    const committed = hugeReserved(vms, size);
    // short of free pages: surplus pages within nr_overcommit_hugepages (gather_surplus_pages)
    const short = needed - ((pool?.free.length ?? 0) - committed);
    const surplusBefore = pool?.surplus ?? 0;
    if (short > 0) gatherSurplus(host, size, short, sv.homeNode);
    if (!pool || pool.free.length - committed < needed) {
      sv.state = "failed";
      sv.error = `${QEMU_HUGEPAGE_ERROR} (needs ${needed} x ${sv.backing} pages, ${Math.max(0, (pool?.free.length ?? 0) - committed)} free)`;
      return;
    }
    // bound to nodes (placement.ts): QEMU mbinds, then preallocates; a page the bound nodes
    // cannot give, even as a surplus page, fails the start
    const bound = sv.placement.filter((r) => r.policy.mode === "bind");
    if (bound.length > 0) {
      prealloc = true;
      const lack = preallocShortfall(pool, host.mem, bound, sv.homeNode);
      const ok = lack.every(
        (n, i) => n === 0 || gatherSurplus(host, size, n, sv.homeNode, bound[i].policy.nodes),
      );
      if (!ok) {
        // QEMU exits: its reservation goes, and with it the surplus pages it had gathered
        returnUnusedSurplus(host, size, pool.surplus - surplusBefore);
        const free = bound.map((r) => r.hostNodes.map((n) => pool.freeOn(host.mem, n)).join("+"));
        sv.state = "failed";
        sv.error = `${QEMU_PREALLOC_ERROR} (needs ${needed} x ${sv.backing} pages on host node ${bound.map((r) => r.hostNodes.join(",")).join("; ")}, ${free.join("; ")} free there)`;
        return;
      }
    }
  }
  const name = sv.name;
  const mm = host.createProcess(`qemu-system-x86_64 (${name})`);
  // guest RAM holds the workload's content from the first touch on (the guest OS's own early
  // page-table pages included)
  mm.content = new GuestContent(sv.workloadConfig.content, host.mem, images);
  const hva =
    sv.backing === "2M" || sv.backing === "1G"
      ? mm.mmap(sv.memory, {
          kind: "hugetlb",
          pageSize: sv.backing === "1G" ? GiB : 2 * MiB,
          name: `/dev/hugepages${sv.backing === "1G" ? "1G" : ""}/libvirt/qemu/${name}`,
        })
      : sharedRam(sv.domain)
        ? mm.mmap(sv.memory, {
            kind: "anon",
            shared: true,
            name:
              sv.domain.memoryBacking.source === "memfd"
                ? "/memfd:pc.ram (deleted)"
                : `/dev/shm/qemu-${name}-ram`,
          })
        : mm.mmap(sv.memory, { kind: "anon", thp: sv.backing === "thp", name: `${name}-ram` });
  // NUMA: the process runs on its vCPU's node (local policy); QEMU mbinds each cell's RAM as
  // <numatune> says and preallocates bound hugepage RAM (placement.ts)
  mm.homeNode = sv.homeNode;
  for (const r of sv.placement) mm.mbind(hva + r.start, r.end - r.start, r.policy);
  if (prealloc)
    for (let off = 0; off < sv.memory; off += mm.vmas[0].pageSize) mm.fault(hva + off, true);
  const levels = entry.guest.levels ?? (s.host.cpu.la57 ? 5 : 4);
  const vm = host.createVm(mm, {
    name,
    ept: s.host.cpu.ept,
    vpid: s.host.cpu.vpid,
    guestLevels: levels,
  });
  const low = Math.min(sv.memory, 2 * GiB);
  vm.setUserMemoryRegion({
    slot: 0,
    flags: 0,
    guestPhysAddr: 0,
    memorySize: low,
    userspaceAddr: hva,
  });
  const ranges: Array<[number, number]> = [[0, low / 4096]];
  if (sv.memory > low) {
    vm.setUserMemoryRegion({
      slot: 1,
      flags: 0,
      guestPhysAddr: 4 * GiB,
      memorySize: sv.memory - low,
      userspaceAddr: hva + low,
    });
    ranges.push([(4 * GiB) / 4096, (sv.memory - low) / 4096]);
  }
  const vcpu = vm.addVcpu();
  // guest zones (bump allocators, so each stays below the PCI hole at 2 GiB): page tables
  // 1/64 of RAM (at least 8 MiB); then the data zone of the guest's page size takes the rest of
  // the low 2 GiB (1G pages come from RAM above 4 GiB too)
  const lowMiB = low / MiB;
  const tableEndMiB = Math.max(8, Math.ceil(sv.memory / MiB / 64));
  const end4KMiB = sv.guestLevel === 1 ? lowMiB : tableEndMiB + 8;
  const end2MMiB = sv.guestLevel === 2 ? lowMiB : end4KMiB;
  const os = new GuestOs(vm, { ranges, zones: { tableEndMiB, end4KMiB, end2MMiB } });
  const workload = makeWorkload(sv.workloadConfig, rng.u32(), traces);
  const procs: GuestProcess[] = [];
  for (let p = 0; p < workload.processes; p++)
    procs.push(os.process(`${sv.workloadConfig.pattern}-${p}`));
  const cpu = host.cpus[sv.index % host.cpus.length];
  vcpu.user = true;
  sv.vm = vm;
  sv.vcpu = vcpu;
  sv.os = os;
  sv.mm = mm;
  sv.cpu = cpu;
  sv.workload = workload;
  sv.procs = procs;
}

/**
 * HugePages_Rsvd of a size: pages promised to started hugepage VMs at mmap time
 * (hugetlb_reserve_pages) and not yet faulted in (Documentation/admin-guide/mm/hugetlbpage.rst).
 */
export function hugeReserved(vms: readonly SimVm[], size: number): number {
  let r = 0;
  for (const v of vms) {
    if (v.state !== "running" || !v.mm) continue;
    if ((v.backing === "1G" ? GiB : v.backing === "2M" ? 2 * MiB : 0) !== size) continue;
    // a huge page the balloon had punched out gave its reservation back with it
    // (hugetlbfs_punch_hole -> remove_inode_hugepages -> hugetlb_unreserve_pages)
    const punched = v.balloon?.hugePagesFreed ?? 0;
    r += Math.max(0, v.memory / size - v.mm.rss / (size / 4096) - punched);
  }
  return r;
}
