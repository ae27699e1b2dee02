/**
 * What the guests and the host's policy daemons do around the run loop (run.ts): the guest
 * kernel's page allocation with a deflate-on-oom balloon, processes exiting, the idle dirty
 * rate, the warm-up leaving the workload's content, and what ksmtuned and MOM read.
 *
 * How it works: allocGuest is the guest's alloc_page: out of memory, a guest with swap reclaims
 * first (__alloc_pages_slowpath: direct reclaim, sim/guest/swap.ts), then a balloon with
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM gives pages back (virtio_balloon_oom_notify, called from
 * out_of_memory) and the guest tries again. guestFault is the guest's #PF handler for a
 * not-present pte: do_swap_page for a swap entry, else do_anonymous_page. exitProcesses unmaps the workload's 4 KiB data pages from every guest process
 * and frees them in the guest (the host keeps backing them); their swap entries free their slots. idleWrites makes a finished guest
 * write `dirtyRate` random pages of its footprint per simulated second through its vCPU and MMU
 * (EPT violations, COW breaks and swap-ins included). ksmtunedInputs and momInputs are the
 * /proc figures the two daemons read. Pure: no Node APIs.
 */
import type { GuestProcess } from "../sim/guest/os.js";
import { KIND_FILE, type PhysMem } from "../sim/memory.js";
import type { MomGuest } from "../sim/mom.js";
import { rssCounters } from "../sim/oom.js";
import { STATUS_GUEST_PF, STATUS_OK, type WalkRecord } from "../sim/record.js";
import { ACCESS_WRITE } from "../x86/faults.js";
import { LEVEL_PAGES } from "../x86/paging.js";
import { pteLeafFrame } from "../x86/pte.js";
import type { SimVm } from "./build.js";
import { GUEST_FAULT_CYCLES, type VmRunState } from "./run-state.js";

/**
 * The guest kernel allocates a data page: out of 4K pages it reclaims to its swap, then a
 * deflate-on-oom balloon gives pages back.
 */
export function allocGuest(sv: SimVm, level: number): number {
  const os = sv.os!;
  for (;;) {
    if (level === 1 && os.free4K === 0 && os.swap && os.swap.reclaim() > 0) continue;
    try {
      return os.allocData(level);
    } catch (e) {
      if (level !== 1 || !sv.balloon || sv.balloon.oomDeflate() === 0) throw e;
    }
  }
}

/**
 * The guest's #PF handler for a not-present pte at `vpn` of `p`: a swap entry is read back
 * (do_swap_page: a major fault), anything else gets a fresh page of the guest's page size
 * (do_anonymous_page). Returns the guest kernel's cycles (the caller retries the access).
 */
export function guestFault(sv: SimVm, p: GuestProcess, vpn: number): number {
  const os = sv.os!;
  const swap = os.swap;
  if (swap) {
    const before = swap.cycles;
    if (swap.swapIn(p, vpn, () => allocGuest(sv, 1))) return swap.cycles - before;
  }
  const level = sv.guestLevel;
  const before = swap?.cycles ?? 0;
  os.map(p, vpn - (vpn % LEVEL_PAGES[level]), allocGuest(sv, level), level, {
    write: true,
    user: true,
    exec: true,
  });
  return GUEST_FAULT_CYCLES[level] + (swap ? swap.cycles - before : 0);
}

/** Give the frame behind `vpn` of guest process `p` its first-touch content again. */
export function restoreContent(
  mem: PhysMem,
  sv: SimVm,
  p: GuestProcess,
  vpn: number,
  pfn: number,
): void {
  const { os, vm, mm } = sv;
  const leaf = os!.lookup(p, vpn);
  if (!leaf || !mm?.content) return;
  const gfn = pteLeafFrame(leaf.lo, leaf.hi, leaf.level) + (vpn % LEVEL_PAGES[leaf.level]);
  const hva = vm!.gfnToHva(gfn);
  const vma = mm.findVma(hva);
  if (vma) mem.token[pfn] = mm.content.token(vma, (hva - vma.start) / 4096);
}

/**
 * The workload's processes exit (exitAtEnd): their 4K data pages go back to the guest's free
 * memory (unmapped in the guest, TLB flushed); the host keeps backing them until the balloon
 * or free page reporting hands them back.
 */
export function exitProcesses(st: VmRunState, rec: WalkRecord): void {
  const { cpu, vcpu, os, procs, guestLevel } = st.sv;
  if (guestLevel !== 1) return;
  const w = st.sv.workloadConfig;
  const first = Math.floor(w.base / 4096);
  const last = Math.floor((w.base + w.footprint - 1) / 4096);
  for (const p of procs) {
    for (let vpn = first; vpn <= last; vpn++) {
      if (os!.swap?.drop(p, vpn)) continue; // a swapped page: its slot is freed
      const leaf = os!.lookup(p, vpn);
      if (leaf?.level !== 1) continue;
      os!.unmap(p, vpn);
      os!.freeData(pteLeafFrame(leaf.lo, leaf.hi, 1));
      st.freedPages++;
    }
    cpu!.movCr3(vcpu!, p.root, p.pcid, false, rec); // flush the process's TLB entries
  }
}

/** The idle guest dirties `dirtyRate` pages per second of its footprint, through its MMU. */
export function idleWrites(st: VmRunState, ms: number, rec: WalkRecord): void {
  const w = st.sv.workloadConfig;
  if (w.dirtyRate <= 0 || st.sv.mm?.killed) return;
  st.idleOwed += (w.dirtyRate * ms) / 1000;
  const n = Math.floor(st.idleOwed);
  st.idleOwed -= n;
  const { cpu, vcpu, procs } = st.sv;
  const p = procs[0];
  cpu!.movCr3(vcpu!, p.root, p.pcid, true, rec);
  const first = Math.floor(w.base / 4096);
  const pages = Math.max(1, Math.floor(w.footprint / 4096));
  for (let i = 0; i < n; i++) {
    const vpn = first + st.idleRng.below(pages);
    let status = cpu!.access(vcpu!, vpn, 0, ACCESS_WRITE, rec);
    if (status === STATUS_GUEST_PF) {
      guestFault(st.sv, p, vpn);
      status = cpu!.access(vcpu!, vpn, 0, ACCESS_WRITE, rec);
    }
    if (status !== STATUS_OK) throw new Error(`${st.sv.name}: idle write ended with ${status}`);
    st.idleWrites++;
  }
}

/** ksmtuned's committed_memory (QEMU RSS) and free_memory (MemFree + Buffers + Cached), KiB */
export function ksmtunedInputs(states: readonly VmRunState[], mem: PhysMem) {
  let rss = 0;
  for (const st of states) if (st.sv.mm && !st.sv.mm.killed) rss += st.sv.mm.rss * 4;
  // free_memory = MemFree + Buffers + Cached: the page cache, and shmem (memfd guest RAM)
  let shmem = 0;
  for (const st of states) {
    const mm = st.sv.mm;
    if (mm && !mm.killed && mm.vmas.some((v) => v.shared)) shmem += rssCounters(mm).shmem;
  }
  return { committedKiB: rss, freeKiB: (mem.freeFrames + mem.countKind(KIND_FILE) + shmem) * 4 };
}

/**
 * What MOM's collectors read: host MemFree/MemTotal, guests with balloon statistics, and
 * ksm_shareable (the QEMU processes' VSZ: here their mappings, guest RAM).
 */
export function momInputs(states: readonly VmRunState[], mem: PhysMem, nowMs: number) {
  const guests: MomGuest[] = [];
  let vszBytes = 0;
  for (const st of states)
    if (st.sv.mm && !st.sv.mm.killed) for (const v of st.sv.mm.vmas) vszBytes += v.end - v.start;
  for (const st of states) {
    const { balloon, os, mm, domain, name } = st.sv;
    if (!balloon || !os || mm?.killed || st.startMs > nowMs) continue;
    if ((domain.memballoon.statsPeriod ?? 0) <= 0) continue;
    guests.push({ name, balloon, unusedKiB: os.free4K * 4 });
  }
  return {
    memFreeKiB: mem.freeFrames * 4,
    memTotalKiB: mem.nframes * 4,
    guests,
    shareableKiB: vszBytes / 1024,
  };
}
