/**
 * The QEMU processes of a host, as /proc shows them: which guest each one runs (its command
 * line), how much of its memory is resident, anonymous, file-backed, shmem, in hugetlbfs or in
 * swap (/proc/PID/status), and what KSM merged of it (/proc/PID/ksm_stat). This is what the
 * seed's "free -g" cannot say: which VM's memory is where.
 *
 * Formats: /proc/PID/cmdline is the argv joined by NUL bytes; /proc/PID/status prints
 * "Key:\tvalue" lines, the memory ones as "%8lu kB" (fs/proc/array.c proc_pid_status,
 * fs/proc/task_mmu.c task_mem: VmRSS = RssAnon + RssFile + RssShmem, VmSwap, HugetlbPages);
 * /proc/PID/ksm_stat prints "name value" lines (fs/proc/base.c proc_pid_ksm_stat, 6.1+:
 * ksm_rmap_items, then ksm_zero_pages, ksm_merging_pages, ksm_process_profit, and since 6.14
 * "ksm_merge_any: yes|no" and "ksm_mergeable: yes|no").
 * A guest's name comes from QEMU's `-name guest=NAME,...` (what libvirt passes) or `-name NAME`.
 * Pure over a ProcFs; never throws on what it reads.
 */
import type { ProcFs } from "./procfs.js";

export interface QemuProcess {
  pid: number;
  /** the guest's name from -name, or null when the command line has none */
  guest: string | null;
  /** KiB from /proc/PID/status; null when the kernel does not print the field */
  vmRssKiB: number | null;
  rssAnonKiB: number | null;
  rssFileKiB: number | null;
  rssShmemKiB: number | null;
  vmSwapKiB: number | null;
  hugetlbKiB: number | null;
  vmLckKiB: number | null;
  /** /proc/PID/ksm_stat (null: no such file, a kernel before 6.1 or without CONFIG_KSM) */
  ksm: {
    rmapItems: number;
    zeroPages: number | null;
    mergingPages: number | null;
    processProfitBytes: number | null;
  } | null;
}

const QEMU_BINARY = /(^|\/)(qemu-system-[\w-]+|qemu-kvm)$/;

/** argv from /proc/PID/cmdline (NUL-separated, usually NUL-terminated). */
export function parseCmdline(text: string): string[] {
  const args = text.split("\0");
  if (args.length > 0 && args[args.length - 1] === "") args.pop();
  return args;
}

/** The guest name QEMU was given: `-name guest=vm1,debug-threads=on` or `-name vm1`. */
export function guestName(argv: readonly string[]): string | null {
  const i = argv.indexOf("-name");
  if (i < 0 || i + 1 >= argv.length) return null;
  const v = argv[i + 1];
  // QEMU's option syntax: ",," is an escaped comma inside a value
  const parts: string[] = [];
  let cur = "";
  for (let j = 0; j < v.length; j++) {
    if (v[j] === "," && v[j + 1] === ",") {
      cur += ",";
      j++;
    } else if (v[j] === ",") {
      parts.push(cur);
      cur = "";
    } else cur += v[j];
  }
  parts.push(cur);
  const named = parts.find((p) => p.startsWith("guest="));
  if (named) return named.slice("guest=".length);
  return parts[0].includes("=") ? null : parts[0];
}

/** /proc/PID/status: the "kB" fields as numbers of KiB, others as text. */
export function parseStatus(text: string): {
  kib: Record<string, number>;
  text: Record<string, string>;
} {
  const kib: Record<string, number> = {};
  const other: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const c = line.indexOf(":");
    if (c <= 0) continue;
    const key = line.slice(0, c);
    const value = line.slice(c + 1).trim();
    const m = /^(\d+) kB$/.exec(value);
    if (m) kib[key] = Number(m[1]);
    else other[key] = value;
  }
  return { kib, text: other };
}

/** /proc/PID/ksm_stat: "name value" lines (numbers) and "name: yes|no" lines (flags). */
export function parseKsmStat(text: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):?\s+(\S+)$/.exec(line.trim());
    if (!m) continue;
    out[m[1]] = /^-?\d+$/.test(m[2]) ? Number(m[2]) : m[2];
  }
  return out;
}

const num = (v: number | string | undefined): number | null => (typeof v === "number" ? v : null);

/**
 * Every QEMU process under /proc, sorted by pid. `reason` says why none could be listed (no
 * /proc, or no process directories in a captured tree).
 */
export function readQemuProcesses(fs: ProcFs): { processes: QemuProcess[]; reason: string | null } {
  const l = fs.list("/proc");
  if (!l.ok) return { processes: [], reason: l.reason };
  const pids = l.names.filter((n) => /^\d+$/.test(n)).map(Number);
  if (pids.length === 0) return { processes: [], reason: "no process directories under /proc" };
  const processes: QemuProcess[] = [];
  for (const pid of pids.sort((a, b) => a - b)) {
    const cmd = fs.read(`/proc/${pid}/cmdline`);
    if (!cmd.ok) continue; // gone, or a captured tree without it
    const argv = parseCmdline(cmd.text);
    if (argv.length === 0 || !QEMU_BINARY.test(argv[0])) continue;
    const st = fs.read(`/proc/${pid}/status`);
    const s = st.ok ? parseStatus(st.text).kib : {};
    const ks = fs.read(`/proc/${pid}/ksm_stat`);
    const k = ks.ok ? parseKsmStat(ks.text) : null;
    processes.push({
      pid,
      guest: guestName(argv),
      vmRssKiB: s.VmRSS ?? null,
      rssAnonKiB: s.RssAnon ?? null,
      rssFileKiB: s.RssFile ?? null,
      rssShmemKiB: s.RssShmem ?? null,
      vmSwapKiB: s.VmSwap ?? null,
      hugetlbKiB: s.HugetlbPages ?? null,
      vmLckKiB: s.VmLck ?? null,
      ksm:
        k && typeof k.ksm_rmap_items === "number"
          ? {
              rmapItems: k.ksm_rmap_items,
              zeroPages: num(k.ksm_zero_pages),
              mergingPages: num(k.ksm_merging_pages),
              processProfitBytes: num(k.ksm_process_profit),
            }
          : null,
    });
  }
  return { processes, reason: null };
}
