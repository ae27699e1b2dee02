/**
 * Where a domain's guest RAM may come from on the host: the memory policy libvirt gives QEMU for
 * each guest NUMA cell's memory backend.
 *
 * How it works (libvirt src/qemu/qemu_command.c qemuBuildMemoryBackendProps, src/conf/numa_conf.c
 * virDomainNumatuneGetMode / virDomainNumatuneMaybeGetNodeset, docs/formatdomain.rst "NUMA Node
 * Tuning"): a cell's mode and nodeset are its <memnode cellid=...> when there is one, else
 * <numatune><memory>'s. libvirt passes them to the backend as `host-nodes` and
 * `policy` = bind (strict), preferred or interleave, and QEMU mbind()s the backend's memory
 * with MPOL_BIND, MPOL_PREFERRED or MPOL_INTERLEAVE (backends/hostmem.c
 * host_memory_backend_memory_complete). `restrictive` gives QEMU no policy: libvirt restricts the
 * emulator's cgroup cpuset.mems to the nodeset instead, which confines allocations just as a
 * bind does. placement='auto' takes its nodeset from numad at start, which kvmem does not run,
 * so it gives no nodes. A domain without guest cells has one backend (cell -1 here).
 */
import type { Domain, NumaMode } from "./model.js";

export interface BackendPolicy {
  /** the numatune mode that applies */
  mode: NumaMode;
  /** QEMU's memory-backend policy, or "cpuset" for restrictive (cgroup cpuset.mems) */
  policy: "bind" | "preferred" | "interleave" | "cpuset";
  /** host NUMA nodes (host-nodes / cpuset.mems), ascending */
  hostNodes: number[];
}

const POLICY: Record<NumaMode, BackendPolicy["policy"]> = {
  strict: "bind",
  preferred: "preferred",
  interleave: "interleave",
  restrictive: "cpuset",
};

/**
 * The host memory policy of guest cell `cell` (-1: the domain's RAM when it has no cells), or
 * null when numatune does not place it (no <numatune>, placement='auto').
 */
export function backendPolicy(d: Domain, cell = -1): BackendPolicy | null {
  const nt = d.numatune;
  if (!nt) return null;
  const mn = cell >= 0 ? nt.memnodes.find((m) => m.cellid === cell) : undefined;
  if (mn) return { mode: mn.mode, policy: POLICY[mn.mode], hostNodes: [...mn.nodeset] };
  const mem = nt.memory;
  if (!mem || mem.placement === "auto" || !mem.nodeset) return null;
  return { mode: mem.mode, policy: POLICY[mem.mode], hostNodes: [...mem.nodeset] };
}

/** The cells' policies in guest-physical order (QEMU lays cell 0's RAM first), or the one. */
export function backendPolicies(
  d: Domain,
): Array<{ cell: number; memoryKiB: number; policy: BackendPolicy | null }> {
  if (d.numa.length === 0) return [{ cell: -1, memoryKiB: d.memoryKiB, policy: backendPolicy(d) }];
  return d.numa.map((c) => ({
    cell: c.id,
    memoryKiB: c.memoryKiB,
    policy: backendPolicy(d, c.id),
  }));
}
