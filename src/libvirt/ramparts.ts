/**
 * What backs each part of guest RAM: per guest NUMA node (or the whole RAM without NUMA), the page
 * size, whether it is hugetlb, shared or private, and which host memory kind — the facts the
 * explanation's swap, KSM and balloon sentences are derived from.
 *
 * How it works (libvirt 11.3.0 qemuBuildMemoryBackendProps, src/qemu/qemu_command.c): a guest
 * node takes the <page> whose nodeset names it, else the <page> without a nodeset (the "master"),
 * else no huge pages; a page of the system page size (4 KiB) is ordinary memory. A node is shared
 * when its cell's memAccess says so, else when <access mode='shared'/> does. The host memory kind
 * is <source type> (anonymous by default). Then, per the kernel: hugetlb pages are never swapped
 * nor merged by KSM (Documentation/admin-guide/mm/hugetlbpage.rst, mm/ksm.c only scans
 * VM_MERGEABLE anonymous pages and skips VM_HUGETLB and VM_SHARED vmas); <locked/> mlocks
 * everything; shared file pages go back to their file, not to swap; QEMU turns merging off for
 * all of RAM with mem-merge=off when <nosharepages/> is set. Pure.
 */
import type { Domain } from "./model.js";
import { formatBitmap } from "./scaled.js";

export interface RamPart {
  /** guest NUMA node ids, or undefined for all guest RAM of a domain without NUMA */
  nodes: number[] | undefined;
  kib: number;
  /** huge page size in KiB when hugetlb-backed (undefined size = the host's default) */
  huge: { sizeKiB: number | undefined } | undefined;
  shared: boolean;
  source: "anonymous" | "file" | "memfd";
}

export function ramParts(d: Domain): RamPart[] {
  const mb = d.memoryBacking;
  const pages = mb.hugepages ?? [];
  const source = mb.source ?? "anonymous";
  const pageFor = (node: number | undefined) =>
    (node !== undefined ? pages.find((p) => p.nodeset?.includes(node)) : undefined) ??
    pages.find((p) => p.nodeset === undefined);
  const hugeOf = (node: number | undefined) => {
    const p = pageFor(node);
    return p && p.sizeKiB !== 4 ? { sizeKiB: p.sizeKiB } : undefined;
  };
  if (d.numa.length === 0) {
    const kib = Math.max(0, d.memoryKiB - d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0));
    return [
      { nodes: undefined, kib, huge: hugeOf(undefined), shared: mb.access === "shared", source },
    ];
  }
  return d.numa.map((c) => ({
    nodes: [c.id],
    kib: c.memoryKiB,
    huge: hugeOf(c.id),
    shared: (c.memAccess ?? mb.access) === "shared",
    source,
  }));
}

/** Group parts by a verdict; one verdict for all -> that sentence, else "node X: ...; node Y: ...". */
export function byVerdict(parts: RamPart[], verdict: (p: RamPart) => string): string {
  const groups = new Map<string, number[]>();
  for (const p of parts) {
    const v = verdict(p);
    groups.set(v, [...(groups.get(v) ?? []), ...(p.nodes ?? [])]);
  }
  if (groups.size === 1) return [...groups.keys()][0];
  return `Partly. ${[...groups.entries()]
    .map(([v, nodes]) => `Guest node${nodes.length > 1 ? "s" : ""} ${formatBitmap(nodes)}: ${v}`)
    .join(" ")}`;
}

export function swapVerdict(d: Domain, p: RamPart): string {
  if (d.memoryBacking.locked) return "No: <locked/> mlocks all guest RAM in host memory.";
  if (p.huge) return "No: hugetlbfs pages are never swapped.";
  if (p.shared && p.source === "file")
    return "Not to swap: shared file pages are written back to their file.";
  return "Yes: the host may swap this memory out under memory pressure.";
}

export function ksmVerdict(d: Domain, p: RamPart): string {
  if (d.memoryBacking.nosharepages)
    return "No: <nosharepages/> makes QEMU mark guest RAM unmergeable (mem-merge=off).";
  if (p.huge) return "No: KSM never merges hugetlbfs pages.";
  if (p.shared)
    return "No: this memory is shared (MAP_SHARED), and KSM merges only private anonymous pages.";
  if (p.source !== "anonymous")
    return `Yes, the pages the guest has written: private copies of ${p.source} pages are anonymous memory that ksmd merges when KSM runs.`;
  return "Yes: guest RAM is MADV_MERGEABLE; ksmd merges identical pages when KSM runs (/sys/kernel/mm/ksm/run = 1).";
}
