/**
 * Where a VM's guest RAM comes from on a NUMA host: the domain's <numatune> turned into memory
 * policies over the VMM's guest RAM mapping, and whether hugepage RAM bound to nodes can be
 * preallocated there.
 *
 * How it works: src/libvirt/numatune.ts gives each guest cell's backend libvirt's policy
 * (qemuBuildMemoryBackendProps); QEMU mbind()s each backend's memory before preallocating it
 * (backends/hostmem.c host_memory_backend_memory_complete): strict -> MPOL_BIND, preferred ->
 * MPOL_PREFERRED_MANY (QEMU 7.2+ on a 5.15+ kernel turns MPOL_PREFERRED into it, so that every
 * node of the nodeset is preferred, not only the first), interleave -> MPOL_INTERLEAVE; restrictive
 * confines the process with cgroup cpuset.mems, which kvmem applies as a bind. Cells lie one after
 * another in guest RAM (QEMU's memory-backend per -numa node, cell 0 first), so a cell's policy
 * covers its byte range of the mapping. A nodeset naming a node the host lacks fails the start
 * as virNumaNodesetIsAvailable (src/util/virnuma.c) does. Without numatune the RAM has the
 * process's local policy: the node of the CPU its vCPU runs on.
 * Hugepage RAM bound to nodes: libvirt gives hugepage backends prealloc=on, so QEMU touches
 * every page right after mbind; a page the bound nodes' pools cannot give (and no surplus page
 * within nr_overcommit_hugepages on them, alloc_buddy_hugetlb_folio_with_mpol) is a SIGBUS
 * that qemu_prealloc_mem reports as "preallocating memory failed: Bad address" (util/oslib-posix.c),
 * and QEMU exits. Pure.
 */
import { backendPolicies, type Domain } from "../libvirt/index.js";
import type { HugetlbPool } from "../sim/hugetlb.js";
import type { PhysMem } from "../sim/memory.js";
import { type MemPolicy, nodemask } from "../sim/numa.js";

/** QEMU's error when preallocating guest RAM faults (util/oslib-posix.c qemu_prealloc_mem). */
export const QEMU_PREALLOC_ERROR =
  "qemu-system-x86_64: qemu_prealloc_mem: preallocating memory failed: Bad address";

export interface PolicyRange {
  /** byte offsets in guest RAM */
  start: number;
  end: number;
  policy: MemPolicy;
  /** the libvirt mode, for the results */
  mode: string;
  hostNodes: number[];
}

export interface VmPlacement {
  ranges: PolicyRange[];
  /** libvirt's error when a nodeset names a missing host node */
  error: string | null;
}

/** The mbind ranges of a domain's guest RAM (`ramBytes`) on a host with `hostNodes` nodes. */
export function vmPlacement(d: Domain, ramBytes: number, hostNodes: number): VmPlacement {
  const ranges: PolicyRange[] = [];
  let at = 0;
  const cells = backendPolicies(d);
  for (const [i, c] of cells.entries()) {
    const end = i === cells.length - 1 ? ramBytes : Math.min(ramBytes, at + c.memoryKiB * 1024);
    const p = c.policy;
    if (p) {
      const missing = p.hostNodes.find((n) => n >= hostNodes);
      if (missing !== undefined)
        return {
          ranges: [],
          error: `unsupported configuration: NUMA node ${missing} is unavailable`,
        };
      const nodes = nodemask(p.hostNodes);
      const policy: MemPolicy =
        p.policy === "preferred"
          ? { mode: "preferred-many", nodes }
          : { mode: p.policy === "interleave" ? "interleave" : "bind", nodes };
      if (end > at) ranges.push({ start: at, end, policy, mode: p.mode, hostNodes: p.hostNodes });
    }
    at = end;
  }
  return { ranges, error: null };
}

/**
 * Can the bound ranges of hugepage RAM be preallocated from `pool`? Walks the pages in order as
 * QEMU's preallocation does, each from the first node of the local zonelist within the range's
 * nodes that still has a free page (dequeue_hugetlb_folio_nodemask). Returns the pages that
 * found none, per range.
 */
export function preallocShortfall(
  pool: HugetlbPool,
  mem: PhysMem,
  ranges: readonly PolicyRange[],
  local: number,
): number[] {
  const nodes = mem.nodes;
  const free = new Int32Array(nodes);
  for (let n = 0; n < nodes; n++) free[n] = pool.freeOn(mem, n);
  return ranges.map((r) => {
    if (r.policy.mode !== "bind") return 0;
    let short = 0;
    for (let i = 0; i < (r.end - r.start) / pool.pageSize; i++) {
      let got = false;
      for (let k = 0; k < nodes && !got; k++) {
        const n = (local + k) % nodes;
        if ((r.policy.nodes >>> n) & 1 && free[n] > 0) {
          free[n]--;
          got = true;
        }
      }
      if (!got) short++;
    }
    return short;
  });
}
