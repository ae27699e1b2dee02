/**
 * The report's first four sections, in the seed's order: memory, EPT/VPID, huge pages,
 * overcommit. Each reads through a ProcFs and turns a missing file into "not available" with
 * the reason, never an exception.
 */
import { freeFigures, freeTable } from "../units/free.js";
import {
  findBootMemoryLine,
  hugepageDirSizeKiB,
  parseCpuinfo,
  parseIntFile,
  parseMeminfo,
  parseMounts,
  parseSelector,
  parseSwaps,
} from "./parse.js";
import type { ProcFs } from "./procfs.js";
import { readQemuProcesses } from "./qemu.js";
import type { HostReport } from "./schema.js";
import { tdpVerdict, vpidVerdict } from "./verdicts.js";

type Memory = HostReport["memory"];
type Virt = HostReport["virt"];
type Hugepages = HostReport["hugepages"];
type Overcommit = HostReport["overcommit"];

export function readMemory(fs: ProcFs, problems: string[]): Memory {
  const r = fs.read("/proc/meminfo");
  if (!r.ok) return { available: false, reason: r.reason };
  const parsed = parseMeminfo(r.text);
  for (const p of parsed.problems) problems.push(`${p.path}: ${p.message}`);
  const m = parsed.value;
  const f = freeFigures(m);
  const log = fs.kernelLog();
  let boot: Extract<Memory, { available: true }>["boot"];
  if (!log.ok) boot = { available: false, reason: log.reason };
  else {
    const line = findBootMemoryLine(log.text);
    boot = line
      ? { available: true, ...line }
      : {
          available: false,
          reason: "the kernel log no longer holds the boot 'Memory:' line (ring buffer wrapped)",
        };
  }
  return {
    available: true,
    meminfo: m,
    free: f,
    freeG: freeTable(f, { unit: "g" }),
    freeH: freeTable(f, { unit: "h" }),
    boot,
  };
}

/** The CPU flags that matter for memory virtualization (arch/x86/include/asm/cpufeatures.h names). */
export const VIRT_FLAGS = [
  "vmx",
  "svm",
  "ept",
  "vpid",
  "npt",
  "ept_ad",
  "flexpriority",
  "unrestricted_guest",
  "ept_1gb",
  "ept_5level",
  "pdpe1gb",
  "la57",
  "pcid",
  "invpcid",
  "hypervisor",
] as const;

const MODULE_ROLES: Record<string, "common" | "intel" | "amd" | "pvm"> = {
  kvm: "common",
  kvm_intel: "intel",
  kvm_amd: "amd",
  kvm_pvm: "pvm",
};

export function readVirt(fs: ProcFs): Virt {
  const c = fs.read("/proc/cpuinfo");
  let cpu: Virt["cpu"];
  if (!c.ok) cpu = { available: false, reason: c.reason };
  else {
    const info = parseCpuinfo(c.text).value;
    const flags: Record<string, boolean> = {};
    for (const f of VIRT_FLAGS) flags[f] = info.flags.has(f) || (info.vmxFlags?.has(f) ?? false);
    cpu = {
      available: true,
      vendor: info.vendor ?? null,
      modelName: info.modelName ?? null,
      cpus: info.cpus,
      flags,
      vmxFlags: info.vmxFlags ? [...info.vmxFlags] : null,
      nested: info.flags.has("hypervisor"),
    };
  }
  const devKvm = fs.exists("/dev/kvm")
    ? { present: true, reason: "/dev/kvm exists" }
    : { present: false, reason: "/dev/kvm: no such device (KVM not loaded or not supported)" };
  const modules: Virt["modules"] = [];
  const sm = fs.list("/sys/module");
  if (sm.ok) {
    for (const name of sm.names.filter((n) => n === "kvm" || n.startsWith("kvm_"))) {
      const parameters: Record<string, string> = {};
      const pl = fs.list(`/sys/module/${name}/parameters`);
      if (pl.ok) {
        for (const p of pl.names) {
          const v = fs.read(`/sys/module/${name}/parameters/${p}`);
          if (v.ok) parameters[p] = v.text.trim();
        }
      }
      modules.push({ name, role: MODULE_ROLES[name] ?? "other", parameters });
    }
  }
  return { cpu, devKvm, modules, tdp: tdpVerdict(cpu, modules), vpid: vpidVerdict(cpu, modules) };
}

const readInt = (fs: ProcFs, path: string): number | undefined => {
  const r = fs.read(path);
  return r.ok ? parseIntFile(r.text) : undefined;
};

export function readHugepages(fs: ProcFs, meminfo: Record<string, number> | undefined): Hugepages {
  const defaultSizeKiB = meminfo?.Hugepagesize ?? null;
  const nodesList = fs.list("/sys/devices/system/node");
  const numaNodes = nodesList.ok
    ? nodesList.names
        .map((n) => /^node(\d+)$/.exec(n))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
        .sort((a, b) => a - b)
    : [];
  const pools: Hugepages["pools"] = [];
  const hl = fs.list("/sys/kernel/mm/hugepages");
  if (hl.ok) {
    for (const dir of hl.names) {
      const sizeKiB = hugepageDirSizeKiB(dir);
      if (sizeKiB === undefined) continue;
      const base = `/sys/kernel/mm/hugepages/${dir}`;
      const nodes = [];
      for (const node of numaNodes) {
        const nb = `/sys/devices/system/node/node${node}/hugepages/${dir}`;
        const nr = readInt(fs, `${nb}/nr_hugepages`);
        if (nr === undefined) continue;
        nodes.push({
          node,
          nr,
          free: readInt(fs, `${nb}/free_hugepages`) ?? 0,
          surplus: readInt(fs, `${nb}/surplus_hugepages`) ?? 0,
        });
      }
      pools.push({
        sizeKiB,
        nr: readInt(fs, `${base}/nr_hugepages`) ?? 0,
        free: readInt(fs, `${base}/free_hugepages`) ?? 0,
        resv: readInt(fs, `${base}/resv_hugepages`) ?? 0,
        surplus: readInt(fs, `${base}/surplus_hugepages`) ?? 0,
        overcommit: readInt(fs, `${base}/nr_overcommit_hugepages`) ?? 0,
        source: base,
        nodes,
      });
    }
  }
  if (pools.length === 0 && meminfo && defaultSizeKiB !== null) {
    // no sysfs: the default size from /proc/meminfo (Documentation/admin-guide/mm/hugetlbpage.rst)
    pools.push({
      sizeKiB: defaultSizeKiB,
      nr: meminfo.HugePages_Total ?? 0,
      free: meminfo.HugePages_Free ?? 0,
      resv: meminfo.HugePages_Rsvd ?? 0,
      surplus: meminfo.HugePages_Surp ?? 0,
      overcommit: readInt(fs, "/proc/sys/vm/nr_overcommit_hugepages") ?? 0,
      source: "/proc/meminfo",
      nodes: [],
    });
  }
  pools.sort((a, b) => a.sizeKiB - b.sizeKiB);

  let mountsSource: string | null = null;
  const mounts: Hugepages["mounts"] = [];
  for (const p of ["/proc/mounts", "/proc/self/mountinfo", "/proc/1/mountinfo"]) {
    const r = fs.read(p);
    if (!r.ok) continue;
    mountsSource = p;
    for (const m of parseMounts(r.text, p).value) {
      if (m.fsType !== "hugetlbfs") continue;
      const ps = typeof m.options.pagesize === "string" ? m.options.pagesize : undefined;
      const bytes = ps ? parseMemparseKiB(ps) : defaultSizeKiB;
      mounts.push({
        mountPoint: m.mountPoint,
        pageSizeKiB: bytes ?? null,
        options: Object.entries(m.options)
          .map(([k, v]) => (v === true ? k : `${k}=${v}`))
          .join(","),
      });
    }
    break;
  }

  const thpDir = "/sys/kernel/mm/transparent_hugepage";
  const en = fs.read(`${thpDir}/enabled`);
  const df = fs.read(`${thpDir}/defrag`);
  const hm: Record<string, number> = {};
  for (const k of [
    "AnonHugePages",
    "ShmemHugePages",
    "ShmemPmdMapped",
    "FileHugePages",
    "FilePmdMapped",
    "Hugetlb",
  ]) {
    if (meminfo && meminfo[k] !== undefined) hm[k] = meminfo[k];
  }
  return {
    basePageSizeKiB: 4,
    defaultSizeKiB,
    pools,
    mounts,
    mountsSource,
    thp: {
      enabled: en.ok ? (parseSelector(en.text).current ?? null) : null,
      defrag: df.ok ? (parseSelector(df.text).current ?? null) : null,
      reason: en.ok ? null : en.reason,
    },
    meminfo: hm,
    numaNodes,
    ...nodeMemory(fs, numaNodes),
  };
}

/** /sys/devices/system/node/nodeN/meminfo ("Node N " stripped by parseMeminfo) and numastat. */
function nodeMemory(fs: ProcFs, nodes: number[]): Pick<Hugepages, "nodeMemory"> {
  const out: NonNullable<Hugepages["nodeMemory"]> = [];
  for (const node of nodes) {
    const r = fs.read(`/sys/devices/system/node/node${node}/meminfo`);
    if (!r.ok) continue;
    const mi = parseMeminfo(r.text).value;
    const st = fs.read(`/sys/devices/system/node/node${node}/numastat`);
    const num = (k: string) => {
      const m = st.ok ? new RegExp(`^${k} (\\d+)$`, "m").exec(st.text) : null;
      return m ? Number(m[1]) : null;
    };
    out.push({
      node,
      memTotalKiB: mi.MemTotal ?? 0,
      memFreeKiB: mi.MemFree ?? 0,
      anonHugePagesKiB: mi.AnonHugePages ?? 0,
      numaMiss: num("numa_miss"),
      otherNode: num("other_node"),
    });
  }
  return out.length ? { nodeMemory: out } : {};
}

function parseMemparseKiB(s: string): number | undefined {
  const m = /^(\d+)([KkMmGg]?)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  switch (m[2].toUpperCase()) {
    case "K":
      return n;
    case "M":
      return n * 1024;
    case "G":
      return n * 1024 * 1024;
    default:
      return n / 1024;
  }
}

/** The vm.* sysctls that decide overcommit and huge pages (Documentation/admin-guide/sysctl/vm.rst). */
export const VM_SYSCTLS = [
  "swappiness",
  "overcommit_memory",
  "overcommit_ratio",
  "overcommit_kbytes",
  "min_free_kbytes",
  "nr_hugepages",
  "nr_overcommit_hugepages",
  "watermark_scale_factor",
  "zone_reclaim_mode",
] as const;

export function readOvercommit(
  fs: ProcFs,
  meminfo: Record<string, number> | undefined,
): Overcommit {
  const s = fs.read("/proc/swaps");
  const swaps = s.ok ? parseSwaps(s.text).value : [];
  const sysctl: Record<string, number> = {};
  for (const k of VM_SYSCTLS) {
    const v = readInt(fs, `/proc/sys/vm/${k}`);
    if (v !== undefined) sysctl[k] = v;
  }
  return {
    swaps,
    swapsReason: s.ok ? null : s.reason,
    sysctl,
    ksm: readKsm(fs),
    balloonKiB: meminfo?.Balloon ?? null,
    qemu: readQemuProcesses(fs),
  };
}

/** sizeof(struct ksm_rmap_item) on x86-64 (mm/ksm.c), used by general_profit. */
export const RMAP_ITEM_BYTES = 64;

function readKsm(fs: ProcFs): Overcommit["ksm"] {
  const dir = "/sys/kernel/mm/ksm";
  const l = fs.list(dir);
  if (!l.ok) return { available: false, reason: `${l.reason} (kernel built without CONFIG_KSM?)` };
  const values: Record<string, number> = {};
  const text: Record<string, string> = {};
  for (const name of l.names) {
    const r = fs.read(`${dir}/${name}`);
    if (!r.ok) continue;
    const v = parseIntFile(r.text);
    if (v !== undefined) values[name] = v;
    else text[name] = r.text.trim();
  }
  const page = 4096;
  // Documentation/admin-guide/mm/ksm.rst: general_profit =
  //   (pages_sharing + ksm_zero_pages) * PAGE_SIZE - all_rmap_items * sizeof(rmap_item)
  let rmapBytes: number | null = null;
  if (values.general_profit !== undefined) {
    const gross = ((values.pages_sharing ?? 0) + (values.ksm_zero_pages ?? 0)) * page;
    rmapBytes = Math.max(0, gross - values.general_profit);
    return {
      available: true,
      values,
      text,
      savedBytes: values.general_profit,
      savedSource: "general_profit",
      rmapBytes,
    };
  }
  return {
    available: true,
    values,
    text,
    savedBytes: (values.pages_sharing ?? 0) * page,
    savedSource: "pages_sharing",
    rmapBytes,
  };
}
