// Guest swap in a whole scenario (scenarios/4-guest-swap.yaml with a 200 MiB working set): a
// guest ballooned below its working set swaps, and every view of it agrees (dommemstat in KiB
// from the driver's bytes, the guest's /proc/meminfo and free -g, the result, the series); the
// guest without swap runs out of puff with its balloon latency pending; under shadow paging the
// gpte stores trap and INVLPG exits. Also the scenario error for swap with huge guest pages.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWith, runInput } from "../../test/scenario-run.js";
import type { KvmemError } from "../units/errors.js";
import { loadScenario } from "./load.js";

const file = new URL("../../scenarios/4-guest-swap.yaml", import.meta.url).pathname;
const MiB = 1048576;

function run(...sets: string[]) {
  const input = loadWith(
    file,
    "workloads.app.accesses=20000",
    "workloads.app.footprint=200MiB",
    "duration=9000",
    ...sets,
  );
  // the guests' 4K data zone is 2016 MiB (page tables take 32 MiB): with a 200 MiB working set
  // 1816 MiB are free; a 168 MiB target asks the balloon for 1880 MiB, 64 MiB more than that
  for (const ev of input.scenario.timeline) {
    if ("setmem" in ev) ev.setmem.target = 168 * MiB;
    if ("workload" in ev) ev.at = 8000;
  }
  const { built, result } = runInput(input);
  return { built, r: result };
}

describe("guest swap in kvmem sim", () => {
  for (const ept of [true, false]) {
    it(`a balloon below the working set makes the guest swap; every view agrees (${ept ? "EPT" : "shadow"})`, () => {
      const { built, r } = run(`host.cpu.ept=${ept}`);
      const [vm1, vm2] = r.vms;
      const g = vm1.guestSwap!;
      // the balloon reached its target only because the guest swapped
      expect(vm1.balloon?.actualBytes).toBe(168 * MiB);
      // 200 MiB of working set in the 136 MiB the balloon leaves: at least 64 MiB (16384 pages)
      // stays in swap
      expect(g.pswpout - g.pswpin).toBeGreaterThanOrEqual(16384);
      expect(vm1.balloon?.latency.reached).toBe(1);
      expect(vm1.balloon?.latency.pendingSinceMs).toBeNull();
      expect(g.pswpout).toBeGreaterThan(0);
      expect(g.usedBytes).toBe((g.pswpout - g.pswpin) * 4096);
      // the second phase re-reads the working set: major faults, one per swap-in
      expect(g.pswpin).toBeGreaterThan(0);
      expect(g.pgmajfault).toBe(g.pswpin);
      // dommemstat: the driver reports bytes (pages_to_bytes), libvirt prints KiB
      const d = vm1.guest!.dommemstat;
      expect(d.swap_out).toBe(g.pswpout * 4);
      expect(d.swap_in).toBe(g.pswpin * 4);
      expect(d.major_fault).toBe(g.pgmajfault);
      expect(d.minor_fault).toBe(g.pgfault);
      // the series' last sample has the guest's major faults the result has
      const lastVm1 = r.series[r.series.length - 1].vms.find((v) => v.name === "vm1");
      expect(lastVm1?.guestMajorFaults).toBe(g.pgmajfault);
      expect(vm1.guest!.meminfo).toContain(`SwapTotal:       ${1024 * 1024} kB\n`);
      expect(vm1.guest!.meminfo).toContain(
        `SwapFree:       ${String(1024 * 1024 - g.usedBytes / 1024).padStart(8)} kB\n`,
      );
      // free -g: 1 GiB of swap, the used part rounded to whole GiB as free(1) prints it
      expect(vm1.guest!.freeG).toMatch(/^Swap: +1 +\d +\d$/m);
      // the last sample holds the guest's swap
      const last = r.series[r.series.length - 1].vms.find((v) => v.name === "vm1")!;
      expect(last.guestSwap).toBe(g.usedBytes);
      // one I/O exit per virtio-blk request (a write batch or a swap-in read)
      expect(vm1.exits.IO_INSTRUCTION).toBe(g.requests);
      if (!ept) expect(vm1.exits.INVLPG).toBeGreaterThan(0);
      // vm2 has no swap: its balloon took the free pages, then ran out of puff
      expect(vm2.guestSwap).toBeNull();
      expect(vm2.guest!.dommemstat.swap_out).toBe(0);
      expect(vm2.balloon?.latency).toMatchObject({ reached: 0, pendingSinceMs: 100 });
      expect(vm2.balloon?.note).toContain("no free memory");
      built.host.assertInvariants();
      for (const v of built.vms) v.balloon?.assertInvariants();
      // a generous limit: under shadow paging every balloon discard and trapped gpte store
      // flushes the VM's TLB entries, slow on a loaded machine
    }, 60000);
  }

  it("refuses swap with huge guest pages, in one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "kvmem-gs-"));
    const f = join(dir, "s.yaml");
    writeFileSync(
      f,
      `host: { memory: 4GiB }
vms:
  - name: a
    xml: "<domain type='kvm'><name>a</name><memory unit='GiB'>1</memory></domain>"
    workload: { pattern: uniform }
    guest: { pageSize: 2M, swap: 1GiB }
`,
    );
    let msg = "no error";
    try {
      loadScenario(f);
    } catch (e) {
      msg = (e as KvmemError).oneLine().replace(f, "S");
    }
    expect(msg).toBe(
      "S:6:34: vms[0].guest.swap: '1GiB': guest swap needs 4K guest pages (kvmem's guest swaps only 4 KiB data pages) (see docs/sim.md for the scenario format)",
    );
  });
});
