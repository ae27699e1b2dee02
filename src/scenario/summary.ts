/**
 * The results of a scenario run as one JSON-ready object (documented in docs/sim.md): per VM
 * (summary-vm.ts) and for the host: totals over the running VMs (accesses, TLB hit rate,
 * references per walk, cycles per access, exits, KVM's tables), hugetlb pools and NUMA nodes,
 * KSM's sysfs counters with ksmd's CPU time, the daemons' decisions, swap/reclaim/LRU/page cache
 * counters and /proc/vmstat; the time series; and the simulated host's /proc and /sys text.
 * Pure: no Node APIs.
 */
import { KSM_COW_CYCLES } from "../sim/ksm-cost.js";
import type { KsmtunedDecision } from "../sim/ksmtuned.js";
import type { MomDecision, MomKsmDecision } from "../sim/mom.js";
import { type BuiltHost, hugeReserved } from "./build.js";
import { simKernelLog, simProcfs } from "./procfs.js";
import type { Sample, ScenarioRun } from "./run.js";
import { type VmResult, vmResult } from "./summary-vm.js";
import type { TimelineEntry } from "./timeline.js";

export type { VmResult } from "./summary-vm.js";

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

export function summarize(b: BuiltHost, run: ScenarioRun): ScenarioResult {
  const vms: VmResult[] = b.vms.map((sv) => vmResult(b, run, sv));
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
