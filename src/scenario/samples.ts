/**
 * Samples of a scenario run: every counter the time series shows (per-VM RSS, accesses, cycles
 * per access, TLB hit rate, exits, KSM merging pages, balloon size, guest swap; host free memory,
 * swap used, the KSM sysfs counters and ksmd's CPU time), taken at evenly spaced accesses and
 * idle steps. Pure.
 */
import { KIND_THP } from "../sim/memory.js";
import { EXIT_REASON_COUNT } from "../x86/faults.js";
import { type BuiltHost, hugeReserved, type SimVm } from "./build.js";
import { C, type VmRunState } from "./run-state.js";

export interface Sample {
  /** simulated milliseconds */
  t: number;
  accesses: number;
  vms: Array<{
    name: string;
    rss: number;
    accesses: number;
    cyclesPerAccess: number;
    tlbHitRate: number;
    exits: number;
    /** KSM: this VM's pages mapped to KSM pages (ksm_stat ksm_merging_pages) */
    ksmMerging: number;
    /** bytes in the VM's balloon */
    balloon: number;
    /** bytes in the guest's own swap (guest.swap) */
    guestSwap: number;
    /** the guest's own major faults so far (its pgmajfault: guest swap-ins) */
    guestMajorFaults: number;
  }>;
  /**
   * what overcommit has cost so far, cumulative: host major faults (/proc/vmstat pgmajfault:
   * swap-ins of guest memory) and copy-on-write breaks of KSM pages (cow_ksm)
   */
  costs: { pgmajfault: number; cowKsm: number };
  hostFree: number;
  /** bytes in swap */
  swapUsed: number;
  /** bytes in the host's page cache (Buffers + Cached) */
  pageCache: number;
  /** hugetlb pools per size (/proc/meminfo HugePages_Total, _Free, _Rsvd, _Surp), in pages */
  hugepages: Record<"2M" | "1G", { total: number; free: number; rsvd: number; surp: number }>;
  /** AnonHugePages: bytes of THP-backed anonymous memory */
  anonHuge: number;
  /** /sys/kernel/mm/ksm counters at the sample */
  ksm: {
    shared: number;
    sharing: number;
    unshared: number;
    volatile: number;
    zeroPages: number;
    fullScans: number;
    profit: number;
    /** ksmd's CPU time so far, ms (the cost model of sim/ksm-cost.ts) */
    cpuMs: number;
  };
}

/** One sample of the run at simulated time `timeMs` after `accesses` accesses. */
export function takeSample(
  built: BuiltHost,
  states: readonly VmRunState[],
  timeMs: number,
  accesses: number,
): Sample {
  const mem = built.host.mem;
  const ksm = built.ksm;
  const kc = ksm.counters();
  return {
    t: timeMs,
    accesses,
    hostFree: mem.freeFrames * 4096,
    swapUsed: built.reclaim.swapUsed * 4096,
    pageCache: built.reclaim.cache.pages * 4096,
    hugepages: {
      "2M": poolSample(built, 2097152),
      "1G": poolSample(built, 1073741824),
    },
    anonHuge: mem.kindFrames[KIND_THP] * 4096,
    costs: { pgmajfault: built.reclaim.pgmajfault, cowKsm: built.ptes.vmstat.cow_ksm },
    vms: states.map((st) => {
      const k = st.counters;
      const hits = k[C.tlbL1] + k[C.tlbStlb];
      return {
        name: st.sv.name,
        rss: (st.sv.mm?.rss ?? 0) * 4096,
        accesses: k[C.accesses],
        cyclesPerAccess: k[C.accesses] ? k[C.cycles] / k[C.accesses] : 0,
        tlbHitRate: k[C.accesses] ? hits / k[C.accesses] : 0,
        exits: totalExits(st.sv) - st.exitBase.reduce((a, b) => a + b, 0),
        ksmMerging: st.sv.mm ? (ksm.slotOf(st.sv.mm)?.mergingPages ?? 0) : 0,
        balloon: (st.sv.balloon?.pages.length ?? 0) * 4096,
        guestSwap: (st.sv.os?.swap?.used ?? 0) * 4096,
        guestMajorFaults: st.sv.os?.swap?.pgmajfault ?? 0,
      };
    }),
    ksm: {
      shared: kc.pages_shared,
      sharing: kc.pages_sharing,
      unshared: kc.pages_unshared,
      volatile: kc.pages_volatile,
      zeroPages: kc.ksm_zero_pages,
      fullScans: kc.full_scans,
      profit: kc.general_profit,
      cpuMs: ksm.cpuMs(),
    },
  };
}

function poolSample(b: BuiltHost, size: number): Sample["hugepages"]["2M"] {
  const p = b.host.pools.get(size);
  return {
    total: p?.total ?? 0,
    free: p?.free.length ?? 0,
    rsvd: hugeReserved(b.vms, size),
    surp: p?.surplus ?? 0,
  };
}

export function totalExits(sv: SimVm): number {
  if (!sv.vm) return 0;
  let n = 0;
  for (let r = 0; r < EXIT_REASON_COUNT; r++) n += sv.vm.exitCounts[r];
  return n;
}
