/**
 * The simulated host's QEMU processes under /proc: /proc/PID/cmdline, /proc/PID/status and
 * /proc/PID/ksm_stat for every VM whose QEMU runs, so `kvmem host --sim` finds them as it finds
 * real ones (src/inspect/qemu.ts). PIDs are 1000 + the VM's index (as the OOM killer's report).
 *
 * Formats: cmdline is argv joined by NULs, with libvirt's `-name guest=NAME,debug-threads=on`;
 * status follows fs/proc/array.c proc_pid_status and fs/proc/task_mmu.c task_mem ("%8lu kB":
 * VmRSS = RssAnon + RssFile + RssShmem; hugetlbfs pages are not in RSS but in HugetlbPages;
 * VmSwap counts the process's swap entries; VmLck the size of its mlocked VMAs); ksm_stat
 * follows fs/proc/base.c proc_pid_ksm_stat (6.14: the four counters, then ksm_merge_any and
 * ksm_mergeable). What kvmem does not model prints 0: QEMU's own text, libraries and stack
 * (VmExe, VmLib, VmStk) and its file-backed pages. Pure: no Node APIs.
 */
import { RMAP_ITEM_SIZE } from "../sim/ksm.js";
import { KIND_KERNEL } from "../sim/memory.js";
import { tablePages } from "../sim/oom.js";
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { forEachEntry } from "../x86/tables.js";
import type { BuiltHost, SimVm } from "./build.js";

/** PID of a VM's QEMU process. */
export const qemuPid = (sv: SimVm): number => 1000 + sv.index;

const kB = (label: string, kib: number) => `${label}:\t${String(kib).padStart(8)} kB\n`;

/**
 * 4 KiB pages a process maps, by kind: anonymous (THP and KSM pages included), shmem (guest RAM
 * mapped shared from a memfd or a file) and hugetlbfs.
 */
export function residentPages(sv: SimVm): { anon: number; shmem: number; hugetlb: number } {
  const mm = sv.mm;
  let anon = 0;
  let shmem = 0;
  let hugetlb = 0;
  if (!mm) return { anon, shmem, hugetlb };
  forEachEntry(mm.mem, mm, GUEST_4LEVEL, mm.root, (level, _t, _i, lo, hi, leaf, first) => {
    if (!leaf) return true;
    const vma = mm.findVma(first * 4096);
    if (vma?.kind === "hugetlb") hugetlb += LEVEL_PAGES[level];
    else if (vma?.shared) shmem += LEVEL_PAGES[level];
    // KSM's shared zero page is a special pte: vm_normal_page() is NULL, not in RSS
    else if (level !== 1 || mm.mem.kind[(hi & 0xfffff) * 1048576 + (lo >>> 12)] !== KIND_KERNEL)
      anon += LEVEL_PAGES[level];
    return true;
  });
  return { anon, shmem, hugetlb };
}

export function qemuProcFiles(b: BuiltHost): Record<string, string> {
  const f: Record<string, string> = {};
  for (const sv of b.vms) {
    const mm = sv.mm;
    if (sv.state !== "running" || !mm || mm.killed) continue;
    const pid = qemuPid(sv);
    const dir = `/proc/${pid}`;
    f[`${dir}/cmdline`] = `${[
      "/usr/bin/qemu-system-x86_64",
      "-name",
      `guest=${sv.name},debug-threads=on`,
      "-machine",
      "pc-q35-8.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
      "-accel",
      "kvm",
      "-m",
      `size=${sv.memory / 1024}k`,
    ].join("\0")}\0`;
    const { anon, shmem, hugetlb } = residentPages(sv);
    let vmSize = 0;
    for (const v of mm.vmas) vmSize += (v.end - v.start) / 1024;
    // VmData counts private writable mappings: a shared memfd/file mapping is not data
    const anonVmas = mm.vmas.filter((v) => v.kind === "anon" && !v.shared);
    // <locked/>: QEMU -overcommit mem-lock=on mlockall()s: every VMA is VM_LOCKED
    const locked = sv.domain.memoryBacking.locked;
    const swap = b.reclaim.swappedOf(mm);
    f[`${dir}/status`] =
      `Name:\tqemu-system-x86\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t${pid}\nNgid:\t0\n` +
      `Pid:\t${pid}\nPPid:\t1\nTracerPid:\t0\nUid:\t107\t107\t107\t107\nGid:\t107\t107\t107\t107\n` +
      kB("VmPeak", vmSize) +
      kB("VmSize", vmSize) +
      kB("VmLck", locked ? vmSize : 0) +
      kB("VmPin", 0) +
      // hiwater_rss is get_mm_rss at its peak, without hugetlbfs pages; Mm.hiwaterRss counts
      // them too, so today's hugetlbfs pages come off (exact unless some were unmapped since)
      kB("VmHWM", Math.max(mm.hiwaterRss - hugetlb, anon + shmem) * 4) +
      kB("VmRSS", (anon + shmem) * 4) +
      kB("RssAnon", anon * 4) +
      kB("RssFile", 0) +
      kB("RssShmem", shmem * 4) +
      kB(
        "VmData",
        anonVmas.reduce((a, v) => a + (v.end - v.start) / 1024, 0),
      ) +
      kB("VmStk", 0) +
      kB("VmExe", 0) +
      kB("VmLib", 0) +
      kB("VmPTE", tablePages(mm) * 4) +
      kB("VmSwap", swap * 4) +
      kB("HugetlbPages", hugetlb * 4) +
      "Threads:\t1\n";
    const slot = b.ksm.slotOf(mm);
    if (slot) {
      const profit = (slot.mergingPages + slot.zeroPages) * 4096 - slot.rmapItems * RMAP_ITEM_SIZE;
      f[`${dir}/ksm_stat`] =
        `ksm_rmap_items ${slot.rmapItems}\nksm_zero_pages ${slot.zeroPages}\n` +
        `ksm_merging_pages ${slot.mergingPages}\nksm_process_profit ${profit}\n` +
        // QEMU uses madvise(MADV_MERGEABLE), not prctl(PR_SET_MEMORY_MERGE)
        "ksm_merge_any: no\nksm_mergeable: yes\n";
    } else {
      // the file exists for every process; a process with no mergeable area prints zeros
      f[`${dir}/ksm_stat`] =
        "ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n" +
        "ksm_merge_any: no\nksm_mergeable: no\n";
    }
  }
  return f;
}
