// Memory accounting across every mechanism at once (issue 6's invariants), as a property over
// random overcommitted hosts built from scenarios/4-overcommit.yaml: KSM, swap, kswapd and direct
// reclaim, THP splits and the OOM killer all acting on the same frames. After every few quanta
// of a real run: every module's own invariants hold (frames conserved and never double counted,
// a swapped page is never resident, KSM mapcounts equal ptes, ballooned pages unmapped), and
// the simulated /proc/meminfo adds up: MemTotal = MemFree + every owner of a frame.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadWith } from "../../test/scenario-run.js";
import { parseMeminfo } from "../inspect/parse.js";
import { buildHost } from "./build.js";
import { simProcfs } from "./procfs.js";
import { ScenarioRun } from "./run.js";

const file = new URL("../../scenarios/4-overcommit.yaml", import.meta.url).pathname;

const build = (sets: string[]) => buildHost(loadWith(file, ...sets));

/** MemTotal less everything kvmem gives a frame to, as the kernel's /proc/meminfo shows it. */
function unaccountedKiB(meminfo: string): number {
  const m = parseMeminfo(meminfo).value as Record<string, number>;
  const owners = [
    "MemFree",
    "AnonPages", // includes AnonHugePages (THP) and KSM pages
    "Buffers",
    "Cached", // the page cache, Shmem included
    "PageTables",
    "SecPageTables", // KVM's EPT / shadow tables
    "KernelStack",
    "Slab",
    "Hugetlb", // the hugetlb pools, free or not, all sizes
  ];
  return owners.reduce((a, k) => a - (m[k] ?? 0), m.MemTotal!);
}

describe("accounting over a whole overcommitted run", () => {
  it("frames are conserved and /proc/meminfo adds up after every step", () => {
    fc.assert(
      fc.property(
        fc.record({
          memory: fc.constantFrom(2, 3),
          swap: fc.constantFrom("0", "512MiB", "2GiB"),
          ksm: fc.constantFrom(0, 1),
          scan: fc.constantFrom(2000, 20000),
          footprintMiB: fc.constantFrom(256, 512, 768),
          shared: fc.constantFrom(0, 0.5, 0.9),
          seed: fc.integer({ min: 1, max: 1000 }),
        }),
        (p) => {
          const pages = (p.footprintMiB * 1048576) / 4096;
          const b = build([
            `host.memory=${p.memory}GiB`,
            `host.swap=${p.swap}`,
            `host.kernel.ksm.run=${p.ksm}`,
            `host.kernel.ksm.pages_to_scan=${p.scan}`,
            `workloads.load.footprint=${p.footprintMiB}MiB`,
            `workloads.load.accesses=${pages}`,
            `workloads.load.content.shared=${p.shared}`,
            `seed=${p.seed}`,
            "duration=400",
          ]);
          const run = new ScenarioRun(b);
          const check = () => {
            b.host.assertInvariants();
            b.reclaim.assertInvariants();
            b.ksm.assertInvariants();
            for (const v of b.vms) v.balloon?.assertInvariants();
            expect(unaccountedKiB(simProcfs(b)["/proc/meminfo"])).toBe(0);
          };
          check();
          while (!run.step(64)) check();
          run.runAll();
          check();
        },
      ),
      { numRuns: 6, seed: 20261126 },
    );
  }, 120_000);
});
