// KSM in a whole scenario: the example scenario's guests share their image, unique data does
// not, <nosharepages/> opts a VM out, and the simulated sysfs says what the model counts; the
// final counters equal a prediction made from the pages' contents with KSM off.
import { describe, expect, it } from "vitest";
import { loadWith, runInput } from "../../test/scenario-run.js";
import { hostReport } from "../cli/host.js";
import { MapProcFs } from "../inspect/procfs.js";
import { KIND_ANON, KIND_THP } from "../sim/memory.js";
import type { Mm } from "../sim/mm.js";
import { buildHost } from "./build.js";
import { runScenario } from "./index.js";
import { ScenarioRun } from "./run.js";

const file = new URL("../../scenarios/4-ksm.yaml", import.meta.url).pathname;
const SMALL = [
  "workloads.os.footprint=8MiB",
  "workloads.os.accesses=20000",
  "workloads.os.dirtyRate=0",
  "host.kernel.ksm.smart_scan=0",
  "host.kernel.ksm.pages_to_scan=100000",
  "host.kernel.ksm.sleep_millisecs=10",
  "duration=100",
];
const load = (...sets: string[]) => loadWith(file, ...SMALL, ...sets);

/** Contents of the anonymous pages mapped in each process: token -> copies. */
function contents(mem: { kind: Uint8Array; token: Uint32Array }, mms: Mm[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const mm of mms) {
    const vma = mm.vmas[0];
    for (let hva = vma.start; hva < vma.end; hva += 4096) {
      const pfn = mm.lookup(hva);
      if (pfn < 0 || (mem.kind[pfn] !== KIND_ANON && mem.kind[pfn] !== KIND_THP)) continue;
      m.set(mem.token[pfn], (m.get(mem.token[pfn]) ?? 0) + 1);
    }
  }
  return m;
}

describe("KSM in kvmem sim", () => {
  it("merges every content held more than once, as predicted from the pages with KSM off", () => {
    const off = buildHost(load("host.kernel.ksm.run=0"));
    new ScenarioRun(off).runAll();
    let shared = 0;
    let sharing = 0;
    for (const n of contents(
      off.host.mem,
      off.vms.map((v) => v.mm!),
    ).values()) {
      if (n < 2) continue;
      const nodes = Math.ceil(n / 256); // max_page_sharing 256: dups of a chain
      shared += nodes;
      sharing += n - nodes;
    }
    expect(sharing).toBeGreaterThan(1000);
    const { built: on, result: r } = runInput(load());
    expect(r.host.ksm.full_scans).toBeGreaterThanOrEqual(3);
    expect(r.host.ksm.pages_shared).toBe(shared);
    expect(r.host.ksm.pages_sharing).toBe(sharing);
    // the frames KSM gave back are free on the host, less one page table per THP it split
    expect(r.host.vmstat.thp_split_page).toBeGreaterThan(0);
    expect(r.host.freeBytes - off.host.mem.freeFrames * 4096).toBe(
      (sharing - r.host.vmstat.thp_split_page) * 4096,
    );
    on.ksm.assertInvariants();
    on.host.assertInvariants();
    // the sysfs files say the same, and the inspector reads them
    expect(r.procfs["/sys/kernel/mm/ksm/pages_sharing"]).toBe(`${sharing}\n`);
    expect(r.procfs["/sys/kernel/mm/ksm/general_profit"]).toBe(
      `${sharing * 4096 - countItems(r) * 64}\n`,
    );
    const report = hostReport(new MapProcFs(r.procfs, { kind: "sim", kernelLog: r.kernelLog }));
    const ksm = report.overcommit.ksm;
    expect(ksm.available && ksm.values.pages_sharing).toBe(sharing);
    expect(ksm.available && ksm.values.general_profit).toBe(r.host.ksm.general_profit);
  });

  it("shares nothing between guests with unique data, nor for a VM with <nosharepages/>", () => {
    const r = runScenario(load("workloads.os.content=unique"));
    expect(r.host.ksm.pages_sharing).toBe(0);
    expect(r.host.ksm.pages_scanned).toBeGreaterThan(0);
    const input = load();
    const xml = input.domains
      .get("vm1")!
      .xml.replace("<devices>", "<memoryBacking><nosharepages/></memoryBacking>\n  <devices>");
    input.domains.set("vm1", { ...input.domains.get("vm1")!, xml });
    const n = runScenario(input);
    expect(n.vms[0].ksm).toBeNull();
    expect(n.vms[1].ksm?.mergingPages).toBeGreaterThan(0);
  });

  it("echo 1 > run at 50 ms (a timeline event while the host idles): merging starts then", () => {
    const input = load("host.kernel.ksm.run=0", "duration=150", "samples=30");
    input.scenario.timeline.push({ at: 50, set: { "host.kernel.ksm.run": 1 } });
    const r = runScenario(input);
    const before = r.series.filter((x) => x.t < 50);
    expect(before.length).toBeGreaterThan(5);
    expect(before.every((x) => x.ksm.sharing === 0 && x.ksm.volatile === 0)).toBe(true);
    expect(r.host.ksm.pages_sharing).toBeGreaterThan(1000);
    expect(r.timeline).toContainEqual({
      at: 50,
      event: "set host.kernel.ksm.run=1",
      applied: true,
      note: "",
    });
  });

  it("a guest writing merged pages breaks the sharing (COW), counted in cow_ksm", () => {
    const r = runScenario(load("workloads.os.dirtyRate=20000", "duration=200"));
    expect(r.host.ksmCowBreaks).toBeGreaterThan(0);
    expect(r.host.vmstat.cow_ksm).toBe(r.host.ksmCowBreaks);
    expect(r.procfs["/proc/vmstat"]).toContain(`cow_ksm ${r.host.ksmCowBreaks}\n`);
    const last = r.series[r.series.length - 1];
    expect(last.ksm.sharing).toBe(r.host.ksm.pages_sharing);
  });
});

function countItems(r: { vms: Array<{ ksm: { rmapItems: number } | null }> }): number {
  return r.vms.reduce((a, v) => a + (v.ksm?.rmapItems ?? 0), 0);
}

describe("ksmtuned in kvmem sim", () => {
  const input = (...sets: string[]) =>
    loadWith(file, "host.kernel.ksm.run=1", "duration=500", "samples=25", ...sets);

  it("stops ksmd on a host with memory to spare (committed + thres < MemTotal)", () => {
    const i = input("workloads.os.dirtyRate=0");
    i.scenario.host.policies.ksmtuned = {
      ...{ monitorIntervalS: 0.1, sleepMsec: 10, npagesBoost: 300, npagesDecay: -50 },
      ...{ npagesMin: 64, npagesMax: 1250, thresCoef: 20, thresConst: 2097152 },
    };
    const r = runScenario(i);
    const log = r.host.ksmtuned!;
    expect(log[0]).toMatchObject({ atMs: 100, run: 0 });
    expect(log[0].committedKiB).toBe(r.vms.reduce((a, v) => a + v.rssBytes / 1024, 0));
    expect(r.host.ksm.run).toBe(0);
    // no batch after the stop: the counters froze at 100 ms
    const later = r.series.filter((s) => s.t > 120).map((s) => s.ksm.fullScans);
    expect(new Set(later).size).toBe(1);
  });

  it("starts and boosts ksmd on a 4 GiB host whose free memory is under thres", () => {
    const i = input("host.memory=4GiB", "workloads.os.dirtyRate=0");
    i.scenario.host.policies.ksmtuned = {
      ...{ monitorIntervalS: 0.1, sleepMsec: 10, npagesBoost: 300, npagesDecay: -50 },
      ...{ npagesMin: 64, npagesMax: 1250, thresCoef: 20, thresConst: 2097152 },
    };
    const r = runScenario(i);
    const first = r.host.ksmtuned![0];
    // sleep = 10 x 16 GiB / 4 GiB = 40 ms; thres = max(4 GiB x 20%, 2 GiB) = 2 GiB
    expect(first).toMatchObject({ run: 1, pagesToScan: 300, sleepMillisecs: 40 });
    expect(first.freeKiB).toBeLessThan(2097152);
    expect(r.host.ksm.sleep_millisecs).toBe(40);
  });
});

describe("ksmd's CPU time and merge_across_nodes in kvmem sim", () => {
  it("ksmd's cycles are taken from the vCPU on its host CPU, and reported", () => {
    // guests with unique data: ksmd only scans (nothing merges, no COW), so the VMs do exactly
    // the same work with ksmd on or off; duration 0: no idle time to hide ksmd's batches in
    const sets = ["workloads.os.content.shared=0", "duration=0"];
    const runs = [0, 1].map((on) => {
      const { built: b, run, result: r } = runInput(load(`host.kernel.ksm.run=${on}`, ...sets));
      return { b, run, r };
    });
    const [off, on] = runs;
    expect(on.r.host.ksm.pages_sharing).toBe(0);
    expect(on.b.ksm.cpuCycles).toBeGreaterThan(0);
    expect(off.b.ksm.cpuCycles).toBe(0);
    for (let i = 0; i < on.r.vms.length; i++) expect(on.r.vms[i].cycles).toBe(off.r.vms[i].cycles);
    // ksmd ran on CPU 0 (one vCPU per CPU: the lowest index); only that CPU's clock moved on
    const k = on.run.ksmdCpu;
    expect(k).toBe(0);
    expect(on.run.clock[k] - off.run.clock[k]).toBe(on.b.ksm.cpuCycles);
    for (let c = 1; c < on.run.clock.length; c++) expect(on.run.clock[c]).toBe(off.run.clock[c]);
    // the result: ms at the host's 3 GHz, % of one CPU over the simulated time, the parts
    const ks = on.r.host.ksm;
    expect(ks.ksmd_cpu_ms).toBeCloseTo((on.b.ksm.cpuCycles / 3e9) * 1000, 9);
    expect(ks.ksmd_cpu_percent).toBeCloseTo((100 * ks.ksmd_cpu_ms) / on.r.host.simulatedMs, 9);
    expect(ks.ksmd_cpu_ms).toBeLessThanOrEqual(on.r.host.simulatedMs); // one CPU at most
    expect(ks.ksmd_scan_ms + ks.ksmd_compare_ms + ks.ksmd_merge_ms).toBeCloseTo(ks.ksmd_cpu_ms, 9);
    expect(on.r.series[on.r.series.length - 1].ksm.cpuMs).toBeCloseTo(ks.ksmd_cpu_ms, 9);
  });

  it("a guest's writes to KSM pages cost its vCPU KSM_COW_CYCLES each", () => {
    // the workload runs again at 80 ms, after ksmd merged the guests' pages: half its
    // accesses are writes
    const input = load("workloads.os.writeRatio=0.5", "duration=120");
    for (const vm of ["vm1", "vm2"])
      input.scenario.timeline.push({ at: 80, workload: { vm, use: "os" } });
    const r = runScenario(input);
    const breaks = r.vms.reduce((a, v) => a + (v.ksm?.cowBreaks ?? 0), 0);
    expect(breaks).toBeGreaterThan(0);
    for (const v of r.vms) expect(v.ksm?.cowBreakCycles).toBe((v.ksm?.cowBreaks ?? 0) * 3000);
    expect(r.host.ksm.vcpu_cow_break_ms).toBeCloseTo((breaks * 3000 * 1000) / 3e9, 9);
  });

  it("a timeline `set` of merge_across_nodes takes before merging, EBUSY after (as sysfs)", () => {
    const input = load("duration=100");
    input.scenario.timeline.push(
      { at: 0, set: { "host.kernel.ksm.merge_across_nodes": 0 } },
      { at: 60, set: { "host.kernel.ksm.merge_across_nodes": 1 } },
    );
    const r = runScenario(input);
    expect(r.timeline[0]).toMatchObject({ at: 0, applied: true, note: "" });
    expect(r.timeline[1]).toMatchObject({ at: 60, applied: false });
    expect(r.timeline[1].note).toMatch(/^merge_across_nodes: write error: .*EBUSY/);
    expect(r.host.ksm.merge_across_nodes).toBe(0);
    expect(r.host.ksm.pages_shared).toBeGreaterThan(0);
  });
});
