/**
 * Host checks: can this host run the domain's memory configuration as written?
 *
 * How it works: the host is read through a tiny `HostTree` (read a file, list a directory, paths
 * relative to a root: "/" for the live machine, a captured tree with --root, or a simulated host)
 * so the checks stay pure. The facts used are the ones libvirt's QEMU driver uses when it starts
 * a domain:
 * - hugetlbfs mounts and their page sizes (virFileFindHugeTLBFS, src/util/virfile.c: the
 *   `hugetlbfs` lines of /proc/mounts, `pagesize=` option or else the default huge page size,
 *   `Hugepagesize:` in /proc/meminfo). A hugepage size with no mount fails in
 *   qemuGetDomainHupageMemPath (src/qemu/qemu_conf.c): "Unable to find any usable hugetlbfs
 *   mount for N KiB". When the tree has no /proc/mounts, the sizes the kernel offers
 *   (/sys/kernel/mm/hugepages/hugepages-<N>kB) stand in for mounts.
 * - the hugepage pool: nr_hugepages of each size (kernel Documentation/admin-guide/mm/hugetlbpage.rst);
 *   a pool smaller than the guest memory it must back makes QEMU's allocation fail.
 * - host NUMA nodes (/sys/devices/system/node/node<N>): a numatune nodeset naming a missing node
 *   fails in virNumaNodesetIsAvailable (src/util/virnuma.c): "NUMA node N is unavailable".
 * A page size equal to the system page size (4 KiB on x86) is ordinary memory and needs no mount.
 */
import type { Domain, DomainProblem } from "./model.js";
import { type DomainSource, locate } from "./reader.js";

export interface HostTree {
  /** file contents, or undefined when missing */
  read(path: string): string | undefined;
  /** directory entries, or undefined when missing */
  list(path: string): string[] | undefined;
}

export interface HostMemoryFacts {
  /** hugetlbfs page sizes (KiB) that can back guest memory */
  hugetlbfsSizesKiB: number[];
  /** huge page sizes (KiB) the kernel offers (sys/kernel/mm/hugepages), mounted or not */
  kernelHugePageSizesKiB: number[];
  /** where the sizes came from */
  hugetlbfsFrom: "proc/mounts" | "sys/kernel/mm/hugepages" | "none";
  defaultHugePageKiB: number | undefined;
  /** nr_hugepages per size */
  poolPages: Map<number, number>;
  /** nr_hugepages per host NUMA node and size (sys/devices/system/node/nodeN/hugepages) */
  nodePoolPages: Map<number, Map<number, number>>;
  /** host NUMA node ids, or undefined when the tree does not say */
  numaNodes: number[] | undefined;
  systemPageKiB: number;
}

export function readHostFacts(h: HostTree): HostMemoryFacts {
  const meminfo = h.read("proc/meminfo") ?? "";
  const hps = /^Hugepagesize:\s+(\d+)\s+kB/m.exec(meminfo);
  const sysSizes = (h.list("sys/kernel/mm/hugepages") ?? [])
    .map((n) => /^hugepages-(\d+)kB$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const defaultHugePageKiB = hps ? Number(hps[1]) : sysSizes.includes(2048) ? 2048 : sysSizes[0];
  const poolPages = new Map<number, number>();
  for (const s of sysSizes) {
    const n = h.read(`sys/kernel/mm/hugepages/hugepages-${s}kB/nr_hugepages`);
    if (n !== undefined && /^\s*\d+\s*$/.test(n)) poolPages.set(s, Number(n));
  }
  let hugetlbfsSizesKiB = sysSizes;
  let hugetlbfsFrom: HostMemoryFacts["hugetlbfsFrom"] = sysSizes.length
    ? "sys/kernel/mm/hugepages"
    : "none";
  const mounts = h.read("proc/mounts");
  if (mounts !== undefined) {
    hugetlbfsFrom = "proc/mounts";
    hugetlbfsSizesKiB = [];
    for (const line of mounts.split("\n")) {
      const f = line.split(/\s+/);
      if (f[2] !== "hugetlbfs") continue;
      const ps = /(?:^|,)pagesize=(\d+)([KMG]?)/i.exec(f[3] ?? "");
      const mult: Record<string, number> = { "": 1 / 1024, K: 1, M: 1024, G: 1024 * 1024 };
      const size = ps ? Number(ps[1]) * mult[ps[2].toUpperCase()] : defaultHugePageKiB;
      if (size !== undefined && !hugetlbfsSizesKiB.includes(size)) hugetlbfsSizesKiB.push(size);
    }
  }
  const nodes = h
    .list("sys/devices/system/node")
    ?.map((n) => /^node(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const nodePoolPages = new Map<number, Map<number, number>>();
  for (const n of nodes ?? []) {
    const per = new Map<number, number>();
    for (const s of sysSizes) {
      const v = h.read(`sys/devices/system/node/node${n}/hugepages/hugepages-${s}kB/nr_hugepages`);
      if (v !== undefined && /^\s*\d+\s*$/.test(v)) per.set(s, Number(v));
    }
    if (per.size) nodePoolPages.set(n, per);
  }
  return {
    hugetlbfsSizesKiB,
    kernelHugePageSizesKiB: sysSizes,
    nodePoolPages,
    hugetlbfsFrom,
    defaultHugePageKiB,
    poolPages,
    numaNodes: nodes,
    systemPageKiB: 4,
  };
}

/** Guest memory (KiB) each hugepage entry backs: its cells, or everything else for the master. */
export function hugepageDemandKiB(
  d: Domain,
): Array<{ index: number; sizeKiB: number | undefined; kib: number }> {
  const pages = d.memoryBacking.hugepages ?? [];
  const claimed = new Set<number>();
  for (const p of pages) for (const n of p.nodeset ?? []) claimed.add(n);
  return pages.map((p, index) => {
    let kib: number;
    if (d.numa.length === 0) kib = p.nodeset ? 0 : d.memoryKiB;
    else if (p.nodeset)
      kib = d.numa.filter((c) => p.nodeset!.includes(c.id)).reduce((s, c) => s + c.memoryKiB, 0);
    else kib = d.numa.filter((c) => !claimed.has(c.id)).reduce((s, c) => s + c.memoryKiB, 0);
    return { index, sizeKiB: p.sizeKiB, kib };
  });
}

export function checkHost(d: Domain, src: DomainSource, facts: HostMemoryFacts): DomainProblem[] {
  const out: DomainProblem[] = [];
  const QC = "qemuGetDomainHupageMemPath (qemu_conf.c)";
  for (const { index, sizeKiB, kib } of hugepageDemandKiB(d)) {
    const el = src.hugepages[index];
    const size = sizeKiB ?? facts.defaultHugePageKiB;
    if (size === facts.systemPageKiB) continue;
    const problem = (code: string, message: string, rule: string, onSize: boolean) =>
      out.push(
        locate(src.doc, el, onSize && sizeKiB !== undefined ? "size" : undefined, {
          code,
          message,
          rule,
          severity: "error",
        }),
      );
    if (d.memoryBacking.source === "memfd") {
      // memory-backend-memfd asks the kernel for hugetlb memory directly (memfd_create with
      // MFD_HUGETLB and the page size): no hugetlbfs mount, but the kernel must offer the size
      if (size === undefined || !facts.kernelHugePageSizesKiB.includes(size)) {
        problem(
          "host.memfd-hugepage-size",
          `the kernel offers no ${size ?? "default"} KiB huge pages for memfd memory`,
          "qemuBuildMemoryBackendProps, memory-backend-memfd hugetlbsize (qemu_command.c)",
          true,
        );
        continue;
      }
    } else if (size === undefined || facts.hugetlbfsSizesKiB.length === 0) {
      problem(
        "host.hugetlbfs-none",
        "hugetlbfs filesystem is not mounted or disabled by administrator config",
        QC,
        false,
      );
      continue;
    } else if (!facts.hugetlbfsSizesKiB.includes(size)) {
      problem(
        "host.hugetlbfs-size",
        `Unable to find any usable hugetlbfs mount for ${size} KiB`,
        QC,
        true,
      );
      continue;
    }
    // with a strict <numatune><memory> binding the pages must come from those host nodes' pools
    const mem = d.numatune?.memory;
    const bound =
      mem?.placement === "static" && (mem.mode === "strict" || mem.mode === "restrictive")
        ? mem.nodeset
        : undefined;
    let pool = facts.poolPages.get(size);
    let where = "the host has";
    if (bound?.every((n) => facts.nodePoolPages.get(n)?.has(size))) {
      pool = bound.reduce((a, n) => a + (facts.nodePoolPages.get(n)?.get(size) ?? 0), 0);
      where = `host node${bound.length > 1 ? "s" : ""} ${bound.join(",")} (strict numatune) ${bound.length > 1 ? "have" : "has"}`;
    }
    if (pool !== undefined && kib > 0 && pool * size < kib) {
      out.push(
        locate(src.doc, el, undefined, {
          code: "host.hugepage-pool",
          message: `${where} ${pool} huge pages of ${size} KiB (${pool * size} KiB) but this domain needs ${kib} KiB of them`,
          rule: "hugetlb pool, nr_hugepages (Documentation/admin-guide/mm/hugetlbpage.rst)",
          severity: "error",
        }),
      );
    }
  }
  const nodes = facts.numaNodes;
  const nt = d.numatune;
  if (nodes && nt) {
    const sets: Array<{ bits: number[] | undefined; el: DomainSource["numatuneMemory"] }> = [
      { bits: nt.memory?.nodeset, el: src.numatuneMemory },
      ...nt.memnodes.map((m, i) => ({ bits: m.nodeset, el: src.memnodes[i] })),
    ];
    for (const s of sets) {
      const missing = s.bits?.find((b) => !nodes.includes(b));
      if (missing !== undefined) {
        out.push(
          locate(src.doc, s.el, "nodeset", {
            code: "host.numa-node",
            message: `NUMA node ${missing} is unavailable`,
            rule: "virNumaNodesetIsAvailable (virnuma.c)",
            severity: "error",
          }),
        );
        break;
      }
    }
  }
  return out;
}
