/**
 * The simulated host's NUMA files: /sys/devices/system/node (online, and per node cpulist,
 * meminfo, numastat, hugepages-<size>kB/{nr,free,surplus}_hugepages) and the /proc/vmstat lines
 * that count NUMA and THP events.
 * Formats: drivers/base/node.c (node_read_meminfo: "Node %d MemTotal:       %8lu kB" with the
 * field name padded so the numbers line up; hugetlb_report_node_meminfo: "Node %d
 * HugePages_Total: %5u" for the default huge page size; node_read_numastat: "numa_hit %lu" ...;
 * cpulist and online as bitmap lists, "0-3"), mm/hugetlb_sysfs.c (per-node pool files: the
 * node's nr_huge_pages_node, free_huge_pages_node, surplus_huge_pages_node), mm/vmstat.c
 * (vmstat_text: numa_hit, numa_miss, numa_foreign, numa_interleave, numa_local, numa_other;
 * thp_fault_alloc, thp_fault_fallback, thp_split_pmd).
 * Per node, frames are counted by owner in the node's range: AnonPages (4K and THP),
 * AnonHugePages (THP), FilePages, PageTables (the VMMs' page tables, found by walking them, and
 * the KSM zero page, which /proc/meminfo counts there too), SecPageTables (KVM's tables: the
 * other kernel frames). The LRU lists per node are the host's LRU bytes (lru.ts) counted over
 * the node's frames.
 * Pure.
 */
import { formatBitmap } from "../libvirt/index.js";
import {
  LRU_ACTIVE_ANON,
  LRU_ACTIVE_FILE,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  LRU_UNEVICTABLE,
} from "../sim/lru.js";
import {
  KIND_ANON,
  KIND_FILE,
  KIND_KERNEL,
  KIND_THP,
  NUMA_FOREIGN,
  NUMA_HIT,
  NUMA_INTERLEAVE_HIT,
  NUMA_LOCAL,
  NUMA_MISS,
  NUMA_OTHER,
} from "../sim/memory.js";
import { GUEST_4LEVEL } from "../x86/paging.js";
import { forEachEntry } from "../x86/tables.js";
import type { BuiltHost } from "./build.js";

/** "Node 0 MemTotal:       %8lu kB": the label padded to 15 characters after "Node N ". */
const nkb = (node: number, label: string, kib: number) =>
  `Node ${node} ${`${label}:`.padEnd(15)} ${String(Math.round(kib)).padStart(8)} kB\n`;

/** Page-table frames of the host's processes (root and every table below it), per node. */
function userTablesPerNode(b: BuiltHost): Int32Array {
  const mem = b.host.mem;
  const out = new Int32Array(mem.nodes);
  for (const mm of b.host.processes) {
    if (mm.killed) continue;
    out[mem.nodeOf(mm.root)]++;
    forEachEntry(mem, mm, GUEST_4LEVEL, mm.root, (_l, _t, _i, lo, hi, leaf) => {
      if (!leaf) out[mem.nodeOf((hi & 0xfffff) * 1048576 + (lo >>> 12))]++;
      return true;
    });
  }
  return out;
}

export function nodeProcFiles(b: BuiltHost): Record<string, string> {
  const f: Record<string, string> = {};
  const host = b.host;
  const mem = host.mem;
  const nodes = mem.nodes;
  const dir = "/sys/devices/system/node";
  f[`${dir}/online`] = `${formatBitmap(Array.from({ length: nodes }, (_, i) => i))}\n`;
  const tables = userTablesPerNode(b);
  const zero = b.ksm.zeroPfn;
  b.reclaim.lists(); // brings the LRU bytes up to date (frames freed or mapped behind reclaim)
  const lru = b.reclaim.lru.lru;
  const pool2 = host.pools.get(2097152);
  for (let n = 0; n < nodes; n++) {
    const nd = `${dir}/node${n}`;
    const cpus: number[] = [];
    for (let c = 0; c < host.cpus.length; c++) if (host.nodeOfCpu(c) === n) cpus.push(c);
    f[`${nd}/cpulist`] = `${formatBitmap(cpus)}\n`;
    const totalKiB = mem.nodeFrames(n) * 4;
    const freeKiB = mem.nodeFree[n] * 4;
    const anon = mem.countKind(KIND_ANON, n);
    const thp = mem.countKind(KIND_THP, n);
    const kernel = mem.countKind(KIND_KERNEL, n) - (mem.nodeOf(zero) === n ? 1 : 0);
    // pages per LRU list on this node, indexed by lru.ts's LRU_* (node_page_state NR_*_ANON/FILE)
    const lists = [0, 0, 0, 0, 0, 0];
    for (let p = mem.nodeStart[n]; p < mem.nodeStart[n + 1]; p++) lists[lru[p]]++;
    const pool = (size: number) => host.pools.get(size);
    let meminfo =
      nkb(n, "MemTotal", totalKiB) +
      nkb(n, "MemFree", freeKiB) +
      nkb(n, "MemUsed", totalKiB - freeKiB) +
      nkb(n, "SwapCached", 0) +
      nkb(n, "Active", (lists[LRU_ACTIVE_ANON] + lists[LRU_ACTIVE_FILE]) * 4) +
      nkb(n, "Inactive", (lists[LRU_INACTIVE_ANON] + lists[LRU_INACTIVE_FILE]) * 4) +
      nkb(n, "Active(anon)", lists[LRU_ACTIVE_ANON] * 4) +
      nkb(n, "Inactive(anon)", lists[LRU_INACTIVE_ANON] * 4) +
      nkb(n, "Active(file)", lists[LRU_ACTIVE_FILE] * 4) +
      nkb(n, "Inactive(file)", lists[LRU_INACTIVE_FILE] * 4) +
      nkb(n, "Unevictable", lists[LRU_UNEVICTABLE] * 4) +
      nkb(n, "Mlocked", lists[LRU_UNEVICTABLE] * 4) +
      nkb(n, "Dirty", 0) +
      nkb(n, "Writeback", 0) +
      nkb(n, "FilePages", mem.countKind(KIND_FILE, n) * 4) +
      nkb(n, "Mapped", 0) +
      nkb(n, "AnonPages", (anon + thp) * 4) +
      nkb(n, "Shmem", 0) +
      nkb(n, "KernelStack", 0) +
      // the KSM zero page stays in PageTables, as /proc/meminfo has it (kernel frames less KVM's)
      nkb(n, "PageTables", (tables[n] + (mem.nodeOf(zero) === n ? 1 : 0)) * 4) +
      nkb(n, "SecPageTables", (kernel - tables[n]) * 4) +
      nkb(n, "NFS_Unstable", 0) +
      nkb(n, "Bounce", 0) +
      nkb(n, "WritebackTmp", 0) +
      nkb(n, "KReclaimable", 0) +
      nkb(n, "Slab", 0) +
      nkb(n, "SReclaimable", 0) +
      nkb(n, "SUnreclaim", 0) +
      nkb(n, "AnonHugePages", thp * 4) +
      nkb(n, "ShmemHugePages", 0) +
      nkb(n, "ShmemPmdMapped", 0) +
      nkb(n, "FileHugePages", 0) +
      nkb(n, "FilePmdMapped", 0) +
      nkb(n, "Unaccepted", 0);
    // hugetlb_report_node_meminfo: the default huge page size (2M on x86)
    meminfo +=
      `Node ${n} HugePages_Total: ${String(pool2?.totalNode[n] ?? 0).padStart(5)}\n` +
      `Node ${n} HugePages_Free:  ${String(pool2?.freeOn(mem, n) ?? 0).padStart(5)}\n` +
      `Node ${n} HugePages_Surp:  ${String(pool2?.surplusNode[n] ?? 0).padStart(5)}\n`;
    f[`${nd}/meminfo`] = meminfo;
    const st = (i: number) => mem.numaStat[n * 6 + i];
    f[`${nd}/numastat`] =
      `numa_hit ${st(NUMA_HIT)}\nnuma_miss ${st(NUMA_MISS)}\nnuma_foreign ${st(NUMA_FOREIGN)}\n` +
      `interleave_hit ${st(NUMA_INTERLEAVE_HIT)}\nlocal_node ${st(NUMA_LOCAL)}\nother_node ${st(NUMA_OTHER)}\n`;
    for (const [sizeKiB, size] of [
      [2048, 2097152],
      [1048576, 1073741824],
    ] as const) {
      const p = pool(size);
      const hd = `${nd}/hugepages/hugepages-${sizeKiB}kB`;
      f[`${hd}/nr_hugepages`] = `${p?.totalNode[n] ?? 0}\n`;
      f[`${hd}/free_hugepages`] = `${p?.freeOn(mem, n) ?? 0}\n`;
      f[`${hd}/surplus_hugepages`] = `${p?.surplusNode[n] ?? 0}\n`;
    }
  }
  return f;
}

/** /proc/vmstat's NUMA counters: the sums of the nodes' numastat (mm/vmstat.c, vmstat_text). */
export function numaVmstat(b: BuiltHost): Array<[string, number]> {
  const mem = b.host.mem;
  const sum = (i: number) => {
    let s = 0;
    for (let n = 0; n < mem.nodes; n++) s += mem.numaStat[n * 6 + i];
    return s;
  };
  return [
    ["numa_hit", sum(NUMA_HIT)],
    ["numa_miss", sum(NUMA_MISS)],
    ["numa_foreign", sum(NUMA_FOREIGN)],
    ["numa_interleave", sum(NUMA_INTERLEAVE_HIT)],
    ["numa_local", sum(NUMA_LOCAL)],
    ["numa_other", sum(NUMA_OTHER)],
  ];
}

/** /proc/vmstat's THP fault events (mm/huge_memory.c do_huge_pmd_anonymous_page, Mm.fault). */
export function thpVmstat(b: BuiltHost): Array<[string, number]> {
  const mem = b.host.mem;
  return [
    ["thp_fault_alloc", mem.thpFaultAlloc],
    ["thp_fault_fallback", mem.thpFaultFallback],
  ];
}
