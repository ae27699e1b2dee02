// The simulated /proc/PID files of the QEMU processes agree with the run's own figures, and the
// inspector (src/inspect/qemu.ts) reads them back as it reads a real host's.
import { describe, expect, it } from "vitest";
import { runWith, scenarioFile } from "../../test/scenario-run.js";
import { MapProcFs } from "../inspect/procfs.js";
import { readQemuProcesses } from "../inspect/qemu.js";

const run = (file: string, sets: string[]) => runWith(scenarioFile(file), ...sets).result;

describe("simulated /proc/PID of the QEMU processes", () => {
  it("status: VmSwap is the VM's swap, VmRSS its anonymous pages; read back by the inspector", () => {
    const r = run("4-swap.yaml", ["workloads.app.accesses=20000"]);
    const q = readQemuProcesses(new MapProcFs(r.procfs));
    expect(q.processes.map((p) => [p.pid, p.guest])).toEqual([
      [1000, "vm1"],
      [1001, "vm2"],
      [1002, "vm3"],
    ]);
    expect(q.processes.some((p) => (p.vmSwapKiB ?? 0) > 0)).toBe(true);
    for (const [i, p] of q.processes.entries()) {
      const v = r.vms[i];
      expect(p.vmSwapKiB).toBe(v.swapBytes / 1024);
      // no hugetlbfs here: every resident page is anonymous, RSS is the VM's rss
      expect(p.hugetlbKiB).toBe(0);
      expect(p.rssAnonKiB).toBe(v.rssBytes / 1024);
      expect(p.vmRssKiB).toBe(p.rssAnonKiB! + p.rssFileKiB! + p.rssShmemKiB!);
    }
  });

  it("ksm_stat equals the run's per-VM KSM figures; hugetlbfs pages are outside RSS", () => {
    const r = run("4-ksm.yaml", ["workloads.os.accesses=20000", "duration=300"]);
    const q = readQemuProcesses(new MapProcFs(r.procfs));
    expect(q.processes).toHaveLength(4);
    // the run's figures are ksm_stat's and the VM's COW breaks
    for (const [i, p] of q.processes.entries()) expect(r.vms[i].ksm).toMatchObject(p.ksm!);
    const h = run("4-balloon.yaml", ["workloads.job.accesses=2000", "duration=10"]);
    const hp = readQemuProcesses(new MapProcFs(h.procfs)).processes.find((p) => p.guest === "vm2");
    // vm2 is hugetlbfs-backed: its resident memory shows in HugetlbPages, not VmRSS
    expect(hp?.hugetlbKiB).toBe(h.vms[1].rssBytes / 1024);
    expect(hp?.vmRssKiB).toBe(0);
    // and its high-water mark leaves them out too (VmHWM >= VmRSS, but not the hugetlb pages)
    const status = h.procfs[`/proc/${hp?.pid}/status`];
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    expect(hwm).toBeLessThan(hp!.hugetlbKiB!);
  });
});
