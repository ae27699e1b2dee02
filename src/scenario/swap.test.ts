// Swap in a whole scenario (scenarios/4-swap.yaml): the counters agree across the result, the
// simulated /proc/swaps, /proc/meminfo and /proc/vmstat; a <locked/> guest is never swapped;
// without swap the OOM killer kills the biggest guest.
import { describe, expect, it } from "vitest";
import { loadWith, runInput } from "../../test/scenario-run.js";
import { parseMeminfo } from "../inspect/parse.js";

const file = new URL("../../scenarios/4-swap.yaml", import.meta.url).pathname;

const load = (...sets: string[]) => loadWith(file, "workloads.app.accesses=20000", ...sets);

describe("swap in kvmem sim", () => {
  it("swaps when the guests outgrow RAM; every view of swap agrees; a locked guest stays", () => {
    const input = load();
    const vm3 = input.domains.get("vm3")!;
    input.domains.set("vm3", {
      ...vm3,
      xml: vm3.xml.replace("<devices>", "<memoryBacking><locked/></memoryBacking>\n  <devices>"),
    });
    const { built, result: r } = runInput(input);
    const used = r.host.reclaim.swapUsedBytes;
    expect(used).toBeGreaterThan(0);
    expect(r.host.vmstat.pswpout).toBeGreaterThan(0);
    expect(r.vms.reduce((a, v) => a + v.swapBytes, 0)).toBe(used);
    expect(r.vms[2].swapBytes).toBe(0); // <locked/>
    const mi = parseMeminfo(r.procfs["/proc/meminfo"]).value;
    expect(mi.SwapTotal! - mi.SwapFree!).toBe(used / 1024);
    expect(mi.Mlocked).toBe(r.vms[2].rssBytes / 1024);
    expect(r.procfs["/proc/swaps"]).toContain(`\t${4 * 1048576}\t\t${used / 1024}\t\t-2\n`);
    expect(r.procfs["/proc/vmstat"]).toContain(`pswpout ${r.host.vmstat.pswpout}\n`);
    expect(r.procfs["/proc/vmstat"]).toContain(`pswpin ${r.host.vmstat.pswpin}\n`);
    // major faults in the measured run are swap-ins, each priced in cycles per access
    const major = r.vms.reduce((a, v) => a + v.majorFaults, 0);
    expect(major).toBeLessThanOrEqual(r.host.vmstat.pswpin);
    built.reclaim.assertInvariants();
    built.host.assertInvariants();
    // the series' costs end where /proc/vmstat does and never go down
    const last = r.series[r.series.length - 1];
    expect(last.costs.pgmajfault).toBe(r.host.reclaim.pgmajfault);
    expect(r.procfs["/proc/vmstat"]).toContain(`pgmajfault ${last.costs.pgmajfault}\n`);
    expect(last.costs.cowKsm).toBe(r.host.vmstat.cow_ksm);
    for (let i = 1; i < r.series.length; i++)
      expect(r.series[i].costs.pgmajfault).toBeGreaterThanOrEqual(r.series[i - 1].costs.pgmajfault);
  });

  it("without swap the OOM killer kills the biggest guest, as the kernel reports it", () => {
    const { built: b, result: r } = runInput(load("host.swap=0"));
    const killed = r.vms.filter((v) => v.oomKilled);
    expect(killed).toHaveLength(1);
    expect(killed[0].oomKilled).toMatch(
      /^at [\d.]+ ms: Out of memory: Killed process 100\d \(qemu-system-x86\) total-vm:2097152kB, anon-rss:\d+kB, file-rss:0kB, shmem-rss:0kB, UID:107 pgtables:\d+kB oom_score_adj:0$/,
    );
    expect(killed[0].rssBytes).toBe(0);
    expect(r.kernelLog).toContain("Out of memory: Killed process");
    // the others ran their workloads to the end
    for (const v of r.vms.filter((x) => !x.oomKilled)) expect(v.accesses).toBe(20000);
    b.host.assertInvariants();
  });
});

describe("oVirt MOM's balloon rules in kvmem sim", () => {
  it("under host pressure, shrinks every guest with balloon statistics by 5% per interval", () => {
    const input = load("duration=250");
    input.scenario.host.policies.mom = { intervalS: 0.1 };
    const { result: r } = runInput(input);
    const mom = r.host.mom!;
    expect(mom.length).toBeGreaterThanOrEqual(3);
    const first = mom.filter((d) => d.atMs === 100);
    expect(first.map((d) => d.guest)).toEqual(["vm1", "vm2", "vm3"]);
    for (const d of first) {
      expect(d.hostFreePercent).toBeLessThan(0.2);
      expect(d.balloonCurKiB).toBe(2097152);
      expect(d.targetKiB).toBe(Math.floor(2097152 * 0.95)); // the 5% step binds
    }
    expect(r.vms[0].balloon!.targetBytes).toBeLessThan(2048 * 1048576);
  });
});
