// The --vary comparison tables: figures taken from each combination's result, ratios against the
// first, the memory table's sums (ballooned bytes, OOM kills) computed by hand below.
import { describe, expect, it } from "vitest";
import type { ScenarioResult } from "../scenario/summary.js";
import { varyText } from "./sim-vary.js";

const GiB = 2 ** 30;

function result(o: {
  cpa: number;
  exits: number;
  free: number;
  swap: number;
  pswpout: number;
  pswpin: number;
  sharing: number;
  cow: number;
  vms: Array<{ mem: number; actual: number | null; oom: boolean }>;
}): ScenarioResult {
  return {
    scenario: "t",
    host: {
      cyclesPerAccess: o.cpa,
      tlbHitRate: 0.5,
      referencesPerWalk: 4,
      exitsTotal: o.exits,
      kvmTablePages: 10,
      freeBytes: o.free,
      ksm: { pages_sharing: o.sharing, ksmd_cpu_ms: o.sharing / 1000 },
      ksmCowBreaks: o.cow,
      reclaim: { swapUsedBytes: o.swap },
      vmstat: { pswpout: o.pswpout, pswpin: o.pswpin },
    },
    vms: o.vms.map((v) => ({
      memoryBytes: v.mem,
      balloon: v.actual === null ? null : { actualBytes: v.actual },
      oomKilled: v.oom ? "Out of memory: Killed process 1000" : null,
    })),
  } as unknown as ScenarioResult;
}

describe("kvmem sim --vary tables", () => {
  const a = result({
    cpa: 50,
    exits: 100,
    free: GiB,
    swap: 0,
    pswpout: 0,
    pswpin: 0,
    sharing: 0,
    cow: 0,
    vms: [{ mem: 2 * GiB, actual: 2 * GiB, oom: false }],
  });
  const b = result({
    cpa: 125,
    exits: 250,
    free: 3 * GiB,
    swap: 256 * 2 ** 20,
    pswpout: 65536,
    pswpin: 300,
    sharing: 262144, // x 4 KiB = 1 GiB saved
    cow: 7,
    vms: [
      { mem: 2 * GiB, actual: 1.5 * GiB, oom: false }, // 512 MiB in the balloon
      { mem: 2 * GiB, actual: null, oom: true }, // no balloon device, killed
      { mem: 2 * GiB, actual: GiB, oom: true }, // 1 GiB in the balloon, killed
    ],
  });
  const text = varyText("t", ["x=1", "x=2"], [a, b]);
  const lines = text.split("\n");

  it("compares translation costs with ratios against the first combination", () => {
    expect(lines[0]).toBe("kvmem sim --vary: t, 2 combinations (ratios against the first)");
    expect(text).toMatch(/\n {2}1 {2}x=1 +50\.0 +1\.00x +50\.0% +4\.00 +100 +1\.00x +10\n/);
    expect(text).toMatch(/\n {2}2 {2}x=2 +125\.0 +2\.50x +50\.0% +4\.00 +250 +2\.50x +10\n/);
  });

  it("compares memory: free, swap, pswpout/in, KSM saved, COW breaks, ksmd CPU, ballooned, OOM kills", () => {
    expect(text).toContain("memory at the end of the run (# as above)");
    expect(text).toMatch(/\n {2}1 +1 GiB +0 B +0 +0 +0 B +0 +0 +0 B +0\n/);
    // ksmd ms: 262144 / 1000 = 262.144, printed whole
    expect(text).toMatch(/\n {2}2 +3 GiB +256 MiB +65536 +300 +1 GiB +7 +262 +1\.5 GiB +2\n?/);
  });

  it("stays within 100 columns", () => {
    expect(lines.filter((l) => l.length > 100)).toEqual([]);
  });

  it("long combinations are named once above the tables and numbered in them", () => {
    const long = [
      "vms.*.backing=4K vms.*.guest.pageSize=4K x.y.z=1",
      "vms.*.backing=2M vms.*.guest.pageSize=2M x.y.z=2",
    ];
    const t = varyText("t", long, [a, b]);
    expect(t.split("\n").filter((l) => l.length > 100)).toEqual([]);
    expect(t).toContain(`\n  1  ${long[0]}\n  2  ${long[1]}\n`);
    expect(t).toMatch(/\n {2}2 +125\.0 +2\.50x +50\.0% +4\.00 +250 +2\.50x +10\n/);
  });
});
