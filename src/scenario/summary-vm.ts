/**
 * One VM's part of a scenario's results (ScenarioResult.vms, documented in docs/sim.md): its run
 * counters (accesses, TLB hits per level, walks and references per walk, cycles, exits by reason
 * since the measured run began, guest faults) read from the ScenarioRun's per-VM Float64Array,
 * KVM's and the guest's table pages, RSS and swap, and one block per device or mechanism the VM
 * has (virtio-balloon, the guest's own swap, the disk image through the page cache, KSM's
 * /proc/PID/ksm_stat), each null when the VM has none. Pure: no Node APIs.
 */
import { RMAP_ITEM_SIZE } from "../sim/ksm.js";
import { KSM_COW_CYCLES } from "../sim/ksm-cost.js";
import type { ShadowMmu } from "../sim/kvm/shadow.js";
import type { Mm } from "../sim/mm.js";
import { EXIT_EPT_VIOLATION, EXIT_REASON_COUNT, exitReasonName } from "../x86/faults.js";
import type { BuiltHost, SimVm } from "./build.js";
import { guestView } from "./guest-view.js";
import type { ScenarioRun } from "./run.js";
import { C, EXIT_IO_INSTRUCTION } from "./run-state.js";

export interface VmResult {
  name: string;
  state: "running" | "failed";
  error: string | null;
  backing: string;
  memoryBytes: number;
  guestPageSize: string;
  mmu: "ept" | "shadow" | null;
  vpid: boolean;
  workload: string;
  accesses: number;
  reads: number;
  writes: number;
  tlb: { l1Hits: number; stlbHits: number; misses: number; hitRate: number; l1HitRate: number };
  walks: number;
  referencesPerWalk: number;
  guestReferences: number;
  eptReferences: number;
  cycles: number;
  cyclesPerAccess: number;
  exits: Record<string, number>;
  exitsTotal: number;
  eptViolations: number;
  guestPageFaults: number;
  contextSwitches: number;
  /** KVM's table pages for this VM: EPT pages, or all shadow pages */
  kvmTablePages: number;
  /** shadow paging: shadow table pages per guest address space (process) */
  shadowTablesPerProcess: Record<string, number> | null;
  guestTablePages: number;
  rssBytes: number;
  /** virtio-balloon (null: no balloon device) */
  balloon: {
    targetBytes: number;
    actualBytes: number;
    inflatedPages: number;
    deflatedPages: number;
    oomDeflations: number;
    /** host RAM returned by discarding ballooned or reported pages */
    hostFreedBytes: number;
    /** huge pages returned to the hugetlb pool (not to host free memory) */
    hugePagesToPool: number;
    /** ballooned 4 KiB pages inside huge pages not wholly ballooned: nothing freed for them */
    heldInHugePages: number;
    reportedBytes: number;
    /** why the balloon frees no host RAM, when it does not */
    note: string;
    /**
     * balloon latency: from a target change (currentMemory at start, setmem, MOM) until
     * `actual` reached it: changes that needed a move, reached, superseded, ms; pendingSinceMs
     * when the balloon has not reached its target (null: it has)
     */
    latency: {
      targetChanges: number;
      reached: number;
      superseded: number;
      meanMs: number;
      maxMs: number;
      lastMs: number;
      pendingSinceMs: number | null;
    };
  } | null;
  /** the guest's own swap (null: the guest has none): guest /proc/vmstat and swap use */
  guestSwap: {
    totalBytes: number;
    usedBytes: number;
    pswpin: number;
    pswpout: number;
    pgmajfault: number;
    /** PGFAULT: the guest's page faults in the measured run (major ones included) */
    pgfault: number;
    allocstall: number;
    /** virtio-blk requests to the swap disk (I/O exits) */
    requests: number;
  } | null;
  /** the guest's view: /proc/meminfo, free -g, and virsh dommemstat */
  guest: { meminfo: string; freeG: string; dommemstat: Record<string, number> } | null;
  /** guest 4 KiB pages freed by exiting processes (exitAtEnd) */
  guestFreedPages: number;
  /** the kernel's report when the host's OOM killer killed this VM's QEMU, with the time */
  oomKilled: string | null;
  /** guest RAM in swap at the end (the QEMU process's swap entries) */
  swapBytes: number;
  /**
   * NUMA: the node of the CPU its vCPU runs on (the local policy's node) and <numatune>'s
   * policies over guest RAM (mode, host nodes, bytes covered); empty without numatune
   */
  numa: {
    homeNode: number;
    placement: Array<{ mode: string; hostNodes: number[]; bytes: number }>;
  };
  /** swap-ins during the VM's accesses (major faults on the host, each SWAP_IN_CYCLES) */
  majorFaults: number;
  /**
   * the guest's disk I/O through QEMU (null: none): the <driver cache> mode, 4 KiB requests,
   * reads the host's page cache served, pages read from / written to the disk, and the image's
   * pages in the page cache now (its memory cgroup's "file")
   */
  disk: {
    cache: string;
    reads: number;
    readHits: number;
    writes: number;
    diskReads: number;
    diskWrites: number;
    pageCacheBytes: number;
  } | null;
  /**
   * /proc/PID/ksm_stat of the VM's QEMU (null: guest RAM not MADV_MERGEABLE), and the price of
   * sharing for this VM: its writes that broke a KSM page's sharing (do_wp_page copies, each
   * KSM_COW_CYCLES on its vCPU) and those cycles
   */
  ksm: {
    rmapItems: number;
    mergingPages: number;
    zeroPages: number;
    processProfitBytes: number;
    cowBreaks: number;
    cowBreakCycles: number;
  } | null;
}

const SIZE = ["", "4K", "2M", "1G"];

function balloonOf(sv: SimVm): VmResult["balloon"] {
  const b = sv.balloon;
  if (!b) return null;
  const huge = sv.backing === "2M" || sv.backing === "1G";
  return {
    targetBytes: (b.opts.ramPages - b.targetPages) * 4096,
    actualBytes: (b.opts.ramPages - b.pages.length) * 4096,
    inflatedPages: b.inflated,
    deflatedPages: b.deflated,
    oomDeflations: b.oomDeflations,
    hostFreedBytes: b.framesFreed * 4096,
    hugePagesToPool: b.hugePagesFreed,
    heldInHugePages: b.heldInHugePages,
    reportedBytes: b.reported * 4096,
    note: huge
      ? `guest RAM is hugetlbfs (${sv.backing}): QEMU discards a huge page only once all of it is in the balloon, and it goes back to the hugetlb pool, not to the host's free memory`
      : b.outOfPuff
        ? "the guest has no free memory left to give the balloon"
        : "",
    latency: {
      targetChanges: b.latency.changes,
      reached: b.latency.reached,
      superseded: b.latency.superseded,
      meanMs: b.latency.reached ? b.latency.totalMs / b.latency.reached : 0,
      maxMs: b.latency.maxMs,
      lastMs: b.latency.lastMs,
      pendingSinceMs: b.pendingSince >= 0 ? b.pendingSince : null,
    },
  };
}

function guestSwapOf(sv: SimVm, pgfault: number): VmResult["guestSwap"] {
  const w = sv.os?.swap;
  if (!w) return null;
  return {
    totalBytes: w.slots * 4096,
    usedBytes: w.used * 4096,
    pswpin: w.pswpin,
    pswpout: w.pswpout,
    pgmajfault: w.pgmajfault,
    pgfault,
    allocstall: w.allocstall,
    requests: w.requests,
  };
}

function ksmOf(b: BuiltHost, mm: Mm | null, cowBreaks: number): VmResult["ksm"] {
  const slot = mm ? b.ksm.slotOf(mm) : undefined;
  if (!slot) return null;
  return {
    rmapItems: slot.rmapItems,
    mergingPages: slot.mergingPages,
    zeroPages: slot.zeroPages,
    // ksm_process_profit (mm/ksm.c)
    processProfitBytes:
      (slot.mergingPages + slot.zeroPages) * 4096 - slot.rmapItems * RMAP_ITEM_SIZE,
    cowBreaks,
    cowBreakCycles: cowBreaks * KSM_COW_CYCLES,
  };
}

function diskOf(b: BuiltHost, sv: SimVm): VmResult["disk"] {
  const img = b.diskIo.imageOf(sv);
  if (!img) return null;
  return {
    cache: img.mode,
    reads: img.reads,
    readHits: img.readHits,
    writes: img.writes,
    diskReads: img.diskReads,
    diskWrites: img.diskWrites,
    pageCacheBytes: img.cached * 4096,
  };
}

/** The result of one VM of the built host after the run (failed VMs included, with zeros). */
export function vmResult(b: BuiltHost, run: ScenarioRun, sv: SimVm): VmResult {
  const st = run.states.find((x) => x.sv === sv);
  const k = st?.counters ?? new Float64Array(32);
  const exits: Record<string, number> = {};
  let exitsTotal = 0;
  if (sv.vm && st) {
    for (let r = 0; r < EXIT_REASON_COUNT; r++) {
      const n = sv.vm.exitCounts[r] - (st.exitBase[r] ?? 0);
      if (n > 0) {
        exits[r === EXIT_IO_INSTRUCTION ? "IO_INSTRUCTION" : exitReasonName(r)] = n;
        exitsTotal += n;
      }
    }
  }
  const acc = k[C.accesses];
  const hits = k[C.tlbL1] + k[C.tlbStlb];
  let perProc: Record<string, number> | null = null;
  if (sv.vm?.mmu.kind === "shadow") {
    const roots = (sv.vm.mmu as ShadowMmu).tablesPerRoot();
    perProc = {};
    for (const p of sv.procs) perProc[p.name] = roots.get(p.root) ?? 0;
  }
  return {
    name: sv.name,
    state: sv.state,
    error: sv.error,
    backing: sv.backing,
    memoryBytes: sv.memory,
    guestPageSize: SIZE[sv.guestLevel],
    mmu: sv.vm?.mmu.kind ?? null,
    vpid: (sv.vcpu?.vpid ?? 0) !== 0,
    workload: sv.workloadConfig.pattern,
    accesses: acc,
    reads: k[C.reads],
    writes: k[C.writes],
    tlb: {
      l1Hits: k[C.tlbL1],
      stlbHits: k[C.tlbStlb],
      misses: k[C.tlbMiss],
      hitRate: acc ? hits / acc : 0,
      l1HitRate: acc ? k[C.tlbL1] / acc : 0,
    },
    walks: k[C.walks],
    referencesPerWalk: k[C.walks] ? (k[C.guestRefs] + k[C.eptRefs]) / k[C.walks] : 0,
    guestReferences: k[C.guestRefs],
    eptReferences: k[C.eptRefs],
    cycles: k[C.cycles],
    cyclesPerAccess: acc ? k[C.cycles] / acc : 0,
    exits,
    exitsTotal,
    eptViolations: exits[exitReasonName(EXIT_EPT_VIOLATION)] ?? 0,
    guestPageFaults: k[C.guestFaults],
    contextSwitches: k[C.switches],
    kvmTablePages: sv.vm?.mmu.tablePages() ?? 0,
    shadowTablesPerProcess: perProc,
    guestTablePages: sv.os?.tables ?? 0,
    rssBytes: (sv.mm?.rss ?? 0) * 4096,
    ksm: ksmOf(b, sv.mm, st?.cowBreaks ?? 0),
    balloon: balloonOf(sv),
    guestSwap: guestSwapOf(sv, k[C.guestFaults]),
    guest: guestView(sv, k[C.guestFaults], run.timeMs),
    guestFreedPages: st?.freedPages ?? 0,
    oomKilled: sv.oomKilled ? `at ${sv.oomKilled.at.toFixed(2)} ms: ${sv.oomKilled.message}` : null,
    swapBytes: sv.mm ? b.reclaim.swappedOf(sv.mm) * 4096 : 0,
    numa: {
      homeNode: sv.homeNode,
      placement: sv.placement.map((p) => ({
        mode: p.mode,
        hostNodes: p.hostNodes,
        bytes: p.end - p.start,
      })),
    },
    majorFaults: st?.majorFaults ?? 0,
    disk: diskOf(b, sv),
  };
}
