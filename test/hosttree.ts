/**
 * Builds host trees for tests: a plausible KVM host's /proc and /sys files (in the kernel's
 * formats) with overrides, as a path -> text map that becomes a MapProcFs or a --root directory.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { MapProcFs } from "../src/inspect/procfs.js";

export interface TreeSpec {
  memTotalKiB?: number;
  memFreeKiB?: number;
  /** extra /proc/meminfo fields */
  meminfo?: Record<string, number>;
  flags?: string[];
  /** module name -> parameters; kvm is added when another kvm_* module is present */
  modules?: Record<string, Record<string, string>>;
  devKvm?: boolean;
  /** size KiB -> pool, with optional per-node figures */
  hugepages?: Record<
    number,
    { nr: number; free: number; nodes?: Array<{ nr: number; free: number }> }
  >;
  hugetlbfsMounts?: Array<{ path: string; pagesize?: string }>;
  thp?: "always" | "madvise" | "never";
  ksm?: Record<string, number> | null;
  swaps?: Array<{ file: string; sizeKiB: number; usedKiB: number }>;
  domains?: Record<string, string>;
  running?: Record<string, string>;
  numaNodes?: number;
  /** any other files, by absolute path (e.g. /proc/PID/status) */
  files?: Record<string, string>;
}

export const INTEL_FLAGS =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm vmx ept vpid ept_ad flexpriority pcid invpcid".split(
    " ",
  );

export function buildTree(spec: TreeSpec = {}): Record<string, string> {
  const f: Record<string, string> = {};
  const total = spec.memTotalKiB ?? 16 * 1024 * 1024;
  const free = spec.memFreeKiB ?? Math.floor(total * 0.8);
  const mi: Record<string, number> = {
    MemTotal: total,
    MemFree: free,
    MemAvailable: free + 100_000,
    Buffers: 10_000,
    Cached: 200_000,
    SwapCached: 0,
    Shmem: 5_000,
    SReclaimable: 30_000,
    SwapTotal: (spec.swaps ?? []).reduce((s, x) => s + x.sizeKiB, 0),
    SwapFree: (spec.swaps ?? []).reduce((s, x) => s + x.sizeKiB - x.usedKiB, 0),
    AnonHugePages: 0,
    HugePages_Total: 0,
    HugePages_Free: 0,
    HugePages_Rsvd: 0,
    HugePages_Surp: 0,
    Hugepagesize: 2048,
    Hugetlb: 0,
    ...spec.meminfo,
  };
  const huge = spec.hugepages ?? { 2048: { nr: 0, free: 0 }, 1048576: { nr: 0, free: 0 } };
  if (huge[2048]) {
    mi.HugePages_Total = huge[2048].nr;
    mi.HugePages_Free = huge[2048].free;
  }
  f["/proc/meminfo"] = Object.entries(mi)
    .map(([k, v]) =>
      k.startsWith("HugePages_")
        ? `${`${k}:`.padEnd(16)}${String(v).padStart(8)}`
        : `${`${k}:`.padEnd(16)}${String(v).padStart(8)} kB`,
    )
    .join("\n")
    .concat("\n");
  const flags = spec.flags ?? INTEL_FLAGS;
  f["/proc/cpuinfo"] = [0, 1]
    .map(
      (i) =>
        `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: ${flags.join(" ")}\n`,
    )
    .join("\n");
  const modules = spec.modules ?? { kvm_intel: { ept: "Y", vpid: "Y", nested: "N" } };
  const mods: Record<string, Record<string, string>> = Object.keys(modules).length
    ? { kvm: { tdp_mmu: "Y", nx_huge_pages: "N" }, ...modules }
    : {};
  for (const [m, params] of Object.entries(mods)) {
    for (const [p, v] of Object.entries(params)) f[`/sys/module/${m}/parameters/${p}`] = `${v}\n`;
  }
  f["/sys/module/zswap/parameters/enabled"] = "N\n";
  if (spec.devKvm ?? Object.keys(modules).length > 0) f["/dev/kvm"] = "";
  const nodes = spec.numaNodes ?? 1;
  for (let n = 0; n < nodes; n++) f[`/sys/devices/system/node/node${n}/cpulist`] = "0-1\n";
  for (const [size, p] of Object.entries(huge)) {
    const d = `/sys/kernel/mm/hugepages/hugepages-${size}kB`;
    f[`${d}/nr_hugepages`] = `${p.nr}\n`;
    f[`${d}/free_hugepages`] = `${p.free}\n`;
    f[`${d}/resv_hugepages`] = "0\n";
    f[`${d}/surplus_hugepages`] = "0\n";
    f[`${d}/nr_overcommit_hugepages`] = "0\n";
    const per = p.nodes ?? [{ nr: p.nr, free: p.free }];
    per.forEach((np, n) => {
      const nd = `/sys/devices/system/node/node${n}/hugepages/hugepages-${size}kB`;
      f[`${nd}/nr_hugepages`] = `${np.nr}\n`;
      f[`${nd}/free_hugepages`] = `${np.free}\n`;
      f[`${nd}/surplus_hugepages`] = "0\n";
    });
  }
  f["/proc/mounts"] = [
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
    ...(spec.hugetlbfsMounts ?? [{ path: "/dev/hugepages" }]).map(
      (m) =>
        `hugetlbfs ${m.path} hugetlbfs rw,relatime${m.pagesize ? `,pagesize=${m.pagesize}` : ",pagesize=2M"} 0 0`,
    ),
  ]
    .join("\n")
    .concat("\n");
  const thp = spec.thp ?? "madvise";
  f["/sys/kernel/mm/transparent_hugepage/enabled"] = ["always", "madvise", "never"]
    .map((x) => (x === thp ? `[${x}]` : x))
    .join(" ")
    .concat("\n");
  f["/sys/kernel/mm/transparent_hugepage/defrag"] = "always defer defer+madvise [madvise] never\n";
  if (spec.ksm !== null) {
    const ksm = {
      run: 0,
      pages_to_scan: 100,
      sleep_millisecs: 20,
      pages_shared: 0,
      pages_sharing: 0,
      pages_unshared: 0,
      pages_volatile: 0,
      pages_scanned: 0,
      full_scans: 0,
      general_profit: 0,
      ksm_zero_pages: 0,
      stable_node_chains: 0,
      stable_node_dups: 0,
      merge_across_nodes: 1,
      use_zero_pages: 0,
      max_page_sharing: 256,
      ...spec.ksm,
    };
    for (const [k, v] of Object.entries(ksm)) f[`/sys/kernel/mm/ksm/${k}`] = `${v}\n`;
  }
  f["/proc/swaps"] =
    `Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n${(spec.swaps ?? []).map((s) => `${s.file.padEnd(40)}partition\t${s.sizeKiB}\t\t${s.usedKiB}\t\t-2\n`).join("")}`;
  for (const [k, v] of Object.entries({
    swappiness: 60,
    overcommit_memory: 0,
    overcommit_ratio: 50,
    min_free_kbytes: 67584,
    nr_hugepages: huge[2048]?.nr ?? 0,
    nr_overcommit_hugepages: 0,
  })) {
    f[`/proc/sys/vm/${k}`] = `${v}\n`;
  }
  for (const [name, xml] of Object.entries(spec.domains ?? {}))
    f[`/etc/libvirt/qemu/${name}.xml`] = xml;
  for (const [name, xml] of Object.entries(spec.running ?? {}))
    f[`/run/libvirt/qemu/${name}.xml`] = xml;
  Object.assign(f, spec.files ?? {});
  return f;
}

export function treeFs(spec: TreeSpec = {}, kernelLog?: string): MapProcFs {
  return new MapProcFs(buildTree(spec), { kind: "root", label: "test", kernelLog });
}

/** Write a tree to a fresh temp directory (for --root CLI tests); returns its path. */
export function writeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "kvmem-tree-"));
  for (const [p, text] of Object.entries(files)) {
    const abs = join(root, p);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, text);
  }
  return root;
}

/** A libvirt domain XML with the memory settings tests vary. */
export function domainXml(o: {
  name: string;
  memoryKiB?: number;
  currentKiB?: number;
  hugepages?: string;
  locked?: boolean;
  nosharepages?: boolean;
  balloon?: string;
}): string {
  const mem = o.memoryKiB ?? 2097152;
  const backing = [
    o.hugepages ?? "",
    o.nosharepages ? "<nosharepages/>" : "",
    o.locked ? "<locked/>" : "",
  ].join("");
  return `<domain type='kvm'>
  <name>${o.name}</name>
  <memory unit='KiB'>${mem}</memory>
  <currentMemory unit='KiB'>${o.currentKiB ?? mem}</currentMemory>
${backing ? `  <memoryBacking>${backing}</memoryBacking>\n` : ""}  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    ${o.balloon ?? "<memballoon model='virtio'/>"}
  </devices>
</domain>
`;
}
