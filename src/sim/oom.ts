/**
 * The OOM killer: when reclaim frees nothing, kill the process with the most memory and give
 * everything it held back.
 *
 * How it works (mm/oom_kill.c): out_of_memory -> select_bad_process picks the task with the
 * highest oom_badness = rss + swap entries + page-table pages (oom_score_adj 0 everywhere), where
 * rss is get_mm_rss: MM_ANONPAGES + MM_FILEPAGES + MM_SHMEMPAGES. hugetlbfs pages are in none of
 * them (hugetlb mappings are counted apart, HugetlbPages in /proc/PID/status), the KSM zero
 * page neither (a special pte); guest RAM QEMU maps shared from a memfd or a file is shmem
 * (MM_SHMEMPAGES); QEMU maps no page-cache page (its disk I/O is read()/write()), so file-rss
 * is 0.
 * __oom_kill_process reports it as the kernel does ("Out of memory: Killed process PID (COMM)
 * total-vm:..kB, anon-rss:..kB, file-rss:..kB, shmem-rss:..kB, UID:107 pgtables:..kB
 * oom_score_adj:0"; COMM is 15 characters, so QEMU is "qemu-system-x86"; UID 107 is libvirt's
 * qemu user on Debian). The victim's address space is torn down as exit_mmap does: anonymous and
 * THP frames freed, KSM pages and the zero page unmapped, hugetlb pages back to their pool, swap
 * slots freed, page tables freed; its VMs' EPT or shadow tables go with kvm_destroy_vm
 * (kvm_mmu_uninit_vm: kvm_mmu_zap_all for shadow pages). The Mm is marked killed: a fault in it afterwards raises SIGKILL.
 *
 * Invariants: a killed Mm maps nothing and holds no swap slots.
 */
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { pteFrame, pteLeafFrame } from "../x86/pte.js";
import { forEachEntry } from "../x86/tables.js";
import type { HostPtes } from "./hostpte.js";
import { releaseHugePage } from "./hugetlb.js";
import type { Ksm } from "./ksm.js";
import type { ShadowMmu } from "./kvm/shadow.js";
import type { TdpMmu } from "./kvm/tdp.js";
import { KIND_HUGETLB, KIND_THP } from "./memory.js";
import type { Mm } from "./mm.js";

export interface OomVictim {
  mm: Mm;
  pid: number;
  /** the kernel's report line */
  message: string;
}

/**
 * out_of_memory: select_bad_process picks the process with the highest oom_badness among those
 * not killed yet (the first on a tie; pid 1000 + its index, as the simulated /proc numbers the
 * QEMU processes), then __oom_kill_process reports it and tears it down. Null: no candidate.
 */
export function outOfMemory(
  ptes: HostPtes,
  ksm: Ksm,
  procs: ReadonlyArray<{ mm: Mm; swapped: number }>,
): { victim: OomVictim; freed: number } | null {
  let victim: { mm: Mm; pid: number } | null = null;
  let worst = -1;
  for (const [i, p] of procs.entries()) {
    if (p.mm.killed) continue;
    const points = badness(p.mm, p.swapped);
    if (points > worst) {
      worst = points;
      victim = { mm: p.mm, pid: 1000 + i };
    }
  }
  if (!victim) return null;
  const message = oomMessage(victim.mm, victim.pid);
  const freed = tearDown(ptes, ksm, victim.mm);
  return { victim: { mm: victim.mm, pid: victim.pid, message }, freed };
}

/** Page-table pages of a process (mm_pgtables_bytes / PAGE_SIZE). */
export function tablePages(mm: Mm): number {
  return rssCounters(mm).pgtables;
}

/**
 * The counters oom_badness and the report read: MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES
 * (pages mapped, hugetlbfs and the zero page excluded) and page-table pages.
 */
export function rssCounters(mm: Mm): {
  anon: number;
  file: number;
  shmem: number;
  pgtables: number;
} {
  let pgtables = 1;
  let hugetlb = 0;
  let shmem = 0;
  forEachEntry(mm.mem, mm, GUEST_4LEVEL, mm.root, (level, _t, _i, _lo, _hi, leaf, first) => {
    if (!leaf) {
      pgtables++;
      return true;
    }
    const vma = mm.findVma(first * 4096);
    if (vma?.kind === "hugetlb") hugetlb += LEVEL_PAGES[level];
    else if (vma?.shared) shmem += LEVEL_PAGES[level];
    return true;
  });
  // Mm.rss counts anonymous, THP, shmem and hugetlbfs pages (not the zero page)
  return { anon: mm.rss - hugetlb - shmem, file: 0, shmem, pgtables };
}

/** oom_badness in pages */
export function badness(mm: Mm, swapEntries: number): number {
  const c = rssCounters(mm);
  return c.anon + c.file + c.shmem + swapEntries + c.pgtables;
}

/** The report line of __oom_kill_process. */
export function oomMessage(mm: Mm, pid: number): string {
  const totalVm = mm.vmas.reduce((a, v) => a + (v.end - v.start), 0) / 1024;
  const comm = "qemu-system-x86_64".slice(0, 15); // TASK_COMM_LEN 16
  const c = rssCounters(mm);
  return `Out of memory: Killed process ${pid} (${comm}) total-vm:${totalVm}kB, anon-rss:${c.anon * 4}kB, file-rss:${c.file * 4}kB, shmem-rss:${c.shmem * 4}kB, UID:107 pgtables:${c.pgtables * 4}kB oom_score_adj:0`;
}

/**
 * exit_mmap of `mm`: free every frame it maps (calling dropSwap for swap ptes through its
 * MemoryPressure), its page tables, and the EPT tables of its VMs. Returns frames freed.
 */
export function tearDown(ptes: HostPtes, ksm: Ksm, mm: Mm): number {
  const mem = ptes.host.mem;
  const before = mem.freeFrames;
  const tables: number[] = [];
  const leaves: Array<[number, number, number, number]> = [];
  forEachEntry(mem, mm, GUEST_4LEVEL, mm.root, (level, _t, _i, lo, hi, leaf, first) => {
    if (leaf) leaves.push([level, lo, hi, first]);
    else tables.push(pteFrame(lo, hi));
    return true;
  });
  // swap ptes are not present: forEachEntry skips them; the pressure hook frees their slots
  for (const v of mm.vmas)
    if (v.kind === "anon" && mm.pressure)
      for (let vpn = v.start / 4096; vpn < v.end / 4096; vpn++) mm.pressure.dropSwap(mm, vpn);
  for (const [level, lo, hi] of leaves) {
    const pages = LEVEL_PAGES[level];
    const pfn = pteLeafFrame(lo, hi, level);
    const head = pfn;
    if (level > 1) {
      if (mem.kind[head] === KIND_HUGETLB) {
        releaseHugePage(ptes.host, pages * 4096, head);
      } else if (mem.kind[head] === KIND_THP) mem.free(head, 9);
      continue;
    }
    if (pfn === ksm.zeroPfn) ksm.unmapZero(mm);
    else if (ksm.stableOf[pfn] >= 0) ksm.putPage(pfn);
    else mem.free(pfn, 0);
  }
  for (const t of tables) mem.free(t, 0);
  for (let i = 0; i < 512; i++) mem.writeEntry(mm.root, i, 0, 0);
  mm.rss = 0;
  mm.killed = true;
  for (const vm of ptes.vmsOf(mm)) {
    if (vm.mmu.kind === "shadow") {
      (vm.mmu as ShadowMmu).destroy();
      ptes.host.flushVm(vm);
      continue;
    }
    if (vm.mmu.kind !== "ept") continue;
    const mmu = vm.mmu as TdpMmu;
    const eptTables: number[] = [];
    forEachEntry(mem, mmu.store, mmu.mode, mmu.root, (_l, _t, _i, lo, hi, leaf) => {
      if (!leaf) eptTables.push((hi & 0xfffff) * 1048576 + (lo >>> 12));
      return true;
    });
    for (const t of eptTables) mmu.store.freeTable(t);
    for (let i = 0; i < 512; i++) mem.writeEntry(mmu.root, i, 0, 0);
    ptes.host.flushVm(vm);
  }
  return mem.freeFrames - before;
}
