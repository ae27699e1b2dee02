/**
 * The results of a scenario run as one JSON-ready object (documented in docs/sim.md): per VM and
 * for the host, accesses, TLB hit rates per level, walks and memory references per walk, cycles
 * per access, exits by reason, EPT violations, KVM's tables (EPT pages per VM, shadow pages per
 * guest address space), guest page faults, RSS; the time series; and the simulated host's /proc
 * and /sys text. Pure: no Node APIs.
 */
import { RMAP_ITEM_SIZE } from "../sim/ksm.js";
import { KSM_COW_CYCLES } from "../sim/ksm-cost.js";
import type { KsmtunedDecision } from "../sim/ksmtuned.js";
import type { ShadowMmu } from "../sim/kvm/shadow.js";
import type { Mm } from "../sim/mm.js";
import type { MomDecision, MomKsmDecision } from "../sim/mom.js";
import { EXIT_EPT_VIOLATION, EXIT_REASON_COUNT, exitReasonName } from "../x86/faults.js";
import { type BuiltHost, hugeReserved, type SimVm } from "./build.js";
import { guestView } from "./guest-view.js";
import { simKernelLog, simProcfs } from "./procfs.js";
import { C, EXIT_IO_INSTRUCTION, type Sample, type ScenarioRun } from "./run.js";
import type { TimelineEntry } from "./timeline.js";

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

export interface ScenarioResult {
  scenario: string;
  seed: number;
  host: {
    memoryBytes: number;
    cpus: number;
    ept: boolean;
    vpid: boolean;
    simulatedMs: number;
    accesses: number;
    cyclesPerAccess: number;
    tlbHitRate: number;
    referencesPerWalk: number;
    exitsTotal: number;
    kvmTablePages: number;
    freeBytes: number;
    /** pools per size: HugePages_Total/Free/Rsvd/Surp, nr_overcommit_hugepages, and per node */
    hugepages: Record<
      string,
      {
        total: number;
        free: number;
        reserved: number;
        surplus: number;
        overcommit: number;
        nodes: Array<{ node: number; total: number; free: number; surplus: number }>;
      }
    >;
    /** per NUMA node: memory, free memory, and the numastat counters */
    numa: Array<{
      node: number;
      memoryBytes: number;
      freeBytes: number;
      numastat: Record<string, number>;
    }>;
    /**
     * /sys/kernel/mm/ksm/* at the end of the run, and ksmd's CPU time by the cost model
     * (ksmd_cpu: the host CPU it ran on; ksmd_cpu_ms, ksmd_cpu_percent of one CPU over the run;
     * ksmd_scan_ms, ksmd_compare_ms, ksmd_merge_ms) and the vCPU time of COW breaks of KSM
     * pages (vcpu_cow_break_ms, KSM_COW_CYCLES each)
     */
    ksm: Record<string, number>;
    /** MOM's balloon targets (null: not running) */
    mom: MomDecision[] | null;
    /** MOM's KSM rules' decisions (null: MOM does not run them) */
    momKsm: MomKsmDecision[] | null;
    /** ksmtuned's decisions (null: not running) */
    ksmtuned: KsmtunedDecision[] | null;
    /** copy-on-write breaks of KSM and zero pages (guest writes to merged pages) */
    ksmCowBreaks: number;
    /** swap and reclaim: watermarks (pages), swap use, kswapd runs, direct reclaims */
    reclaim: {
      swapTotalBytes: number;
      swapUsedBytes: number;
      watermarks: { min: number; low: number; high: number };
      kswapdRuns: number;
      allocstall: number;
      pgmajfault: number;
      /** vm.swappiness at the end, and how get_scan_count balanced the reclaim passes */
      swappiness: number;
      scanBalance: Record<string, number>;
      /** the LRU lists (pages) and the page cache (bytes) at the end */
      lru: { activeAnon: number; inactiveAnon: number; activeFile: number; inactiveFile: number };
      pageCacheBytes: number;
      dirtyBytes: number;
      /** /proc/vmstat: pgactivate, pgdeactivate, pgrefill, pgscan/pgsteal per type, pgpgin/out */
      pgactivate: number;
      pgdeactivate: number;
      pgrefill: number;
      pgscanAnon: number;
      pgscanFile: number;
      pgstealAnon: number;
      pgstealFile: number;
      pgpginKiB: number;
      pgpgoutKiB: number;
      /** shadow entries: workingset_refault_file, workingset_activate_file, _restore_file */
      workingsetRefaultFile: number;
      workingsetActivateFile: number;
      workingsetRestoreFile: number;
    };
    /** /proc/vmstat counters kvmem models */
    vmstat: {
      thp_split_page: number;
      cow_ksm: number;
      pswpin: number;
      pswpout: number;
      thp_fault_alloc: number;
      thp_fault_fallback: number;
    };
  };
  vms: VmResult[];
  series: Sample[];
  /** the timeline's events as they were applied */
  timeline: TimelineEntry[];
  procfs: Record<string, string>;
  kernelLog: string;
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

/**
 * ksmd's CPU time by the cost model (sim/ksm-cost.ts; not sysfs files): ms in all, as % of one
 * CPU over the simulated time, split into scanning (walk + checksum), tree comparisons and
 * merges; and the host CPU it ran on. Beside it, the vCPU time COW breaks of KSM pages cost.
 */
function ksmdCpu(b: BuiltHost, run: ScenarioRun): Record<string, number> {
  const k = b.ksm;
  const ms = (cycles: number) => (cycles / k.cpuHz) * 1000;
  return {
    ksmd_cpu: run.ksmdCpu,
    ksmd_cpu_ms: k.cpuMs(),
    ksmd_cpu_percent: run.timeMs > 0 ? (100 * k.cpuMs()) / run.timeMs : 0,
    ksmd_scan_ms: ms(k.scanCycles),
    ksmd_compare_ms: ms(k.compareCycles),
    ksmd_merge_ms: ms(k.mergeCycles),
    // not ksmd's: the vCPUs' do_wp_page copies of KSM pages during their accesses
    vcpu_cow_break_ms: ms(run.states.reduce((a, st) => a + st.cowBreaks, 0) * KSM_COW_CYCLES),
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

export function summarize(b: BuiltHost, run: ScenarioRun): ScenarioResult {
  const vms: VmResult[] = b.vms.map((sv) => {
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
      oomKilled: sv.oomKilled
        ? `at ${sv.oomKilled.at.toFixed(2)} ms: ${sv.oomKilled.message}`
        : null,
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
  });
  const running = vms.filter((v) => v.state === "running");
  const sum = (f: (v: VmResult) => number) => running.reduce((a, v) => a + f(v), 0);
  const accesses = sum((v) => v.accesses);
  const walks = sum((v) => v.walks);
  const s = b.scenario;
  const hugepages: ScenarioResult["host"]["hugepages"] = {};
  for (const [size, pool] of b.host.pools)
    hugepages[size === 2097152 ? "2M" : "1G"] = {
      total: pool.total,
      free: pool.free.length,
      reserved: hugeReserved(b.vms, size),
      surplus: pool.surplus,
      overcommit: pool.overcommit,
      nodes: Array.from({ length: b.host.mem.nodes }, (_, n) => ({
        node: n,
        total: pool.totalNode[n],
        free: pool.freeOn(b.host.mem, n),
        surplus: pool.surplusNode[n],
      })),
    };
  const mem = b.host.mem;
  const numa = Array.from({ length: mem.nodes }, (_, n) => ({
    node: n,
    memoryBytes: mem.nodeFrames(n) * 4096,
    freeBytes: mem.nodeFree[n] * 4096,
    numastat: Object.fromEntries(
      ["numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node"].map(
        (k, i) => [k, mem.numaStat[n * 6 + i]],
      ),
    ),
  }));
  return {
    scenario: s.name,
    seed: s.seed,
    host: {
      memoryBytes: s.host.memory,
      cpus: s.host.cpus,
      ept: s.host.cpu.ept,
      vpid: s.host.cpu.vpid,
      simulatedMs: run.timeMs,
      accesses,
      cyclesPerAccess: accesses ? sum((v) => v.cycles) / accesses : 0,
      tlbHitRate: accesses ? sum((v) => v.tlb.l1Hits + v.tlb.stlbHits) / accesses : 0,
      referencesPerWalk: walks ? sum((v) => v.guestReferences + v.eptReferences) / walks : 0,
      exitsTotal: sum((v) => v.exitsTotal),
      kvmTablePages: sum((v) => v.kvmTablePages),
      freeBytes: b.host.mem.freeFrames * 4096,
      hugepages,
      numa,
      ksm: { ...b.ksm.counters(), ...ksmdCpu(b, run) },
      ksmCowBreaks: b.ksm.cowBreaks,
      ksmtuned: b.ksmtuned ? b.ksmtuned.log : null,
      mom: b.mom ? b.mom.log : null,
      momKsm: b.mom?.ksm ? b.mom.ksmLog : null,
      reclaim: {
        swapTotalBytes: b.reclaim.slots * 4096,
        swapUsedBytes: b.reclaim.swapUsed * 4096,
        watermarks: { min: b.reclaim.min, low: b.reclaim.low, high: b.reclaim.high },
        kswapdRuns: b.reclaim.pageoutrun,
        allocstall: b.reclaim.allocstall,
        pgmajfault: b.reclaim.pgmajfault,
        swappiness: b.reclaim.sysctl.swappiness,
        scanBalance: { ...b.reclaim.balances },
        lru: b.reclaim.lists(),
        pageCacheBytes: b.reclaim.cache.pages * 4096,
        dirtyBytes: b.reclaim.cache.dirty * 4096,
        pgactivate: b.reclaim.lru.pgactivate,
        pgdeactivate: b.reclaim.lru.pgdeactivate,
        pgrefill: b.reclaim.lru.pgrefill,
        pgscanAnon: b.reclaim.pgscanAnon,
        pgscanFile: b.reclaim.pgscanFile,
        pgstealAnon: b.reclaim.pgstealAnon,
        pgstealFile: b.reclaim.pgstealFile,
        pgpginKiB: b.reclaim.cache.pgpginKiB + b.ptes.vmstat.pswpin * 4,
        pgpgoutKiB: b.reclaim.cache.pgpgoutKiB + b.ptes.vmstat.pswpout * 4,
        workingsetRefaultFile: b.reclaim.cache.refaults,
        workingsetActivateFile: b.reclaim.cache.activations,
        workingsetRestoreFile: b.reclaim.cache.restores,
      },
      vmstat: {
        thp_split_page: b.ptes.vmstat.thp_split_page,
        cow_ksm: b.ptes.vmstat.cow_ksm,
        pswpin: b.ptes.vmstat.pswpin,
        pswpout: b.ptes.vmstat.pswpout,
        thp_fault_alloc: mem.thpFaultAlloc,
        thp_fault_fallback: mem.thpFaultFallback,
      },
    },
    vms,
    series: run.samples,
    timeline: run.timeline.log,
    procfs: simProcfs(b),
    kernelLog: simKernelLog(b),
  };
}
