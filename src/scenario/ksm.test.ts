// KSM in a whole scenario: the example scenario's guests share their image, unique data does
// not, <nosharepages/> opts a VM out, and the simulated sysfs says what the model counts; the
// final counters equal a prediction made from the pages' contents with KSM off.
import { describe, expect, it } from "vitest";
import { hostReport } from "../cli/host.js";
import { MapProcFs } from "../inspect/procfs.js";
import { KIND_ANON, KIND_THP } from "../sim/memory.js";
import type { Mm } from "../sim/mm.js";
import { buildHost } from "./build.js";
import { runScenario } from "./index.js";
import { loadScenario } from "./load.js";
import { parseAssignment } from "./overrides.js";
import { ScenarioRun } from "./run.js";
import { summarize } from "./summary.js";

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
const load = (...sets: string[]) =>
  loadScenario(
    file,
    [...SMALL, ...sets].map((x) => {
      const a = parseAssignment(x, "--set");
      return { path: a.path, value: a.values[0], text: x };
    }),
  );

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
    const on = buildHost(load());
    const run = new ScenarioRun(on);
    run.runAll();
    const r = summarize(on, run);
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
    loadScenario(
      file,
      ["host.kernel.ksm.run=1", "duration=500", "samples=25", ...sets].map((x) => {
        const a = parseAssignment(x, "--set");
        return { path: a.path, value: a.values[0], text: x };
      }),
    );

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
