/**
 * Pure parsers for the /proc and /sys text the inspector reads. They never throw on input:
 * each returns what it could read plus a list of problems `{code, path, message}`.
 * Formats (cited per parser): fs/proc/meminfo.c, arch/x86/kernel/cpu/proc.c, mm/swapfile.c
 * (swap_show), fs/proc_namespace.c (show_mountinfo/show_vfsmnt), mm/hugetlb.c sysfs attributes,
 * drivers/base/node.c (node_read_meminfo), mm/ksm.c sysfs attributes, init/main.c / mm/mm_init.c
 * (mem_init_print_info: the boot "Memory:" line).
 */

export interface ParseProblem {
  code: "E_PARSE";
  path: string;
  message: string;
}

export interface Parsed<T> {
  value: T;
  problems: ParseProblem[];
}

/**
 * /proc/meminfo (fs/proc/meminfo.c): "Name:   value kB" or "Name: value" (HugePages_* counts).
 * Values are returned as numbers: KiB for "kB" lines, plain counts otherwise. A per-node
 * meminfo (drivers/base/node.c) has a "Node N " prefix which is stripped.
 */
export function parseMeminfo(text: string, path = "/proc/meminfo"): Parsed<Record<string, number>> {
  const value: Record<string, number> = {};
  const problems: ParseProblem[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/^Node \d+ /, "");
    if (line.trim() === "") continue;
    const m = /^([A-Za-z0-9_()]+):\s*(\S+)(?:\s+(kB))?\s*$/.exec(line);
    if (!m || !/^\d+$/.test(m[2])) {
      problems.push({
        code: "E_PARSE",
        path: `${path}:${i + 1}`,
        message: `cannot read '${lines[i].trim()}' (expected 'Name: <number> [kB]')`,
      });
      continue;
    }
    value[m[1]] = Number(m[2]);
  }
  return { value, problems };
}

export interface CpuInfo {
  vendor: string | undefined;
  modelName: string | undefined;
  cpus: number;
  /** union of the "flags" of every processor */
  flags: Set<string>;
  /** the "vmx flags" line (kernel 5.9+, arch/x86/kernel/cpu/proc.c), when present */
  vmxFlags: Set<string> | undefined;
}

/** /proc/cpuinfo (arch/x86/kernel/cpu/proc.c show_cpuinfo): "key\t: value" blocks. */
export function parseCpuinfo(text: string): Parsed<CpuInfo> {
  const info: CpuInfo = {
    vendor: undefined,
    modelName: undefined,
    cpus: 0,
    flags: new Set(),
    vmxFlags: undefined,
  };
  for (const line of text.split("\n")) {
    const idx = line.indexOf(":");
    if (idx < 0) continue;
    const key = line.slice(0, idx).trim();
    const val = line.slice(idx + 1).trim();
    if (key === "processor") info.cpus++;
    else if (key === "vendor_id" && info.vendor === undefined) info.vendor = val;
    else if (key === "model name" && info.modelName === undefined) info.modelName = val;
    else if (key === "flags") {
      for (const f of val.split(/\s+/)) if (f) info.flags.add(f);
    } else if (key === "vmx flags") {
      info.vmxFlags ??= new Set();
      for (const f of val.split(/\s+/)) if (f) info.vmxFlags.add(f);
    }
  }
  return { value: info, problems: [] };
}

export interface SwapEntry {
  filename: string;
  type: string;
  sizeKiB: number;
  usedKiB: number;
  priority: number;
}

/** /proc/swaps (mm/swapfile.c swap_show): a header, then "name type size used prio". */
export function parseSwaps(text: string, path = "/proc/swaps"): Parsed<SwapEntry[]> {
  const value: SwapEntry[] = [];
  const problems: ParseProblem[] = [];
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i].trim();
    if (!l) continue;
    const p = l.split(/\s+/);
    if (p.length < 5 || !/^\d+$/.test(p[2]) || !/^\d+$/.test(p[3]) || !/^-?\d+$/.test(p[4])) {
      problems.push({ code: "E_PARSE", path: `${path}:${i + 1}`, message: `cannot read '${l}'` });
      continue;
    }
    value.push({
      filename: p[0].replace(/\\040/g, " "),
      type: p[1],
      sizeKiB: Number(p[2]),
      usedKiB: Number(p[3]),
      priority: Number(p[4]),
    });
  }
  return { value, problems };
}

export interface Mount {
  source: string;
  mountPoint: string;
  fsType: string;
  options: Record<string, string | true>;
}

function parseOptions(s: string): Record<string, string | true> {
  const o: Record<string, string | true> = {};
  for (const kv of s.split(",")) {
    if (!kv) continue;
    const eq = kv.indexOf("=");
    if (eq < 0) o[kv] = true;
    else o[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return o;
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/**
 * /proc/mounts (fs/proc_namespace.c show_vfsmnt: "dev dir type opts 0 0") or
 * /proc/PID/mountinfo (show_mountinfo: "id parent maj:min root dir opts [tags] - type src sopts").
 * Options of both the mount and the superblock are merged (hugetlbfs's pagesize= is a sb option).
 */
export function parseMounts(text: string, path = "/proc/mounts"): Parsed<Mount[]> {
  const value: Mount[] = [];
  const problems: ParseProblem[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    if (!l) continue;
    const p = l.split(" ");
    const dash = p.indexOf("-");
    if (dash >= 6) {
      value.push({
        source: unescapeMount(p[dash + 2] ?? ""),
        mountPoint: unescapeMount(p[4]),
        fsType: p[dash + 1] ?? "",
        options: { ...parseOptions(p[5]), ...parseOptions(p[dash + 3] ?? "") },
      });
    } else if (p.length >= 4) {
      value.push({
        source: unescapeMount(p[0]),
        mountPoint: unescapeMount(p[1]),
        fsType: p[2],
        options: parseOptions(p[3]),
      });
    } else {
      problems.push({ code: "E_PARSE", path: `${path}:${i + 1}`, message: `cannot read '${l}'` });
    }
  }
  return { value, problems };
}

/** A sysfs/procfs file holding one integer ("1024\n"). */
export function parseIntFile(text: string): number | undefined {
  const t = text.trim();
  return /^-?\d+$/.test(t) ? Number(t) : undefined;
}

/**
 * A sysfs selector such as THP's "always [madvise] never" (mm/huge_memory.c): the bracketed
 * word is the one in effect.
 */
export function parseSelector(text: string): { current: string | undefined; choices: string[] } {
  const choices = text
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => w.replace(/^\[|\]$/g, ""));
  const m = /\[([^\]]+)\]/.exec(text);
  return { current: m ? m[1] : undefined, choices };
}

/** "hugepages-2048kB" (mm/hugetlb.c hugetlb_sysfs_add_hstate) -> 2048. */
export function hugepageDirSizeKiB(name: string): number | undefined {
  const m = /^hugepages-(\d+)kB$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Parse a size option such as hugetlbfs "pagesize=2M" / "1G" / "2097152" (memparse). */
export function parseMemparse(s: string): number | undefined {
  const m = /^(\d+)([KkMmGgTtPpEe]?)$/.exec(s.trim());
  if (!m) return undefined;
  const shift = { "": 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 }[m[2].toLowerCase()] ?? 0;
  return Number(m[1]) * 2 ** shift;
}

export interface BootMemoryLine {
  line: string;
  availableKiB: number;
  totalKiB: number;
}

/**
 * The boot "Memory:" line (mm/mm_init.c mem_init_print_info):
 * "Memory: 3218236K/25165432K available (18470K kernel code, ..., 448828K reserved, ...)".
 */
export function findBootMemoryLine(log: string): BootMemoryLine | undefined {
  for (const line of log.split("\n")) {
    const m = /Memory: (\d+)K\/(\d+)K available/.exec(line);
    if (m) return { line: line.trim(), availableKiB: Number(m[1]), totalKiB: Number(m[2]) };
  }
  return undefined;
}

/** A module parameter as sysfs prints it: "Y"/"N" for bools, numbers, or text. */
export function paramBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t === "Y" || t === "y" || t === "1") return true;
  if (t === "N" || t === "n" || t === "0") return false;
  return undefined;
}
