// The whole-host simulator: determinism, the seed's claims in the right direction with the default
// TLB, a hugepage VM that cannot start, and the simulated /proc read back by the inspector.
import { describe, expect, it } from "vitest";
import { loadWith, scenarioFile } from "../../test/scenario-run.js";
import { hostReport } from "../cli/host.js";
import { parseMeminfo } from "../inspect/parse.js";
import { MapProcFs } from "../inspect/procfs.js";
import { HostReportSchema } from "../inspect/schema.js";
import { QEMU_HUGEPAGE_ERROR } from "./build.js";
import { runScenario } from "./index.js";

const run = (name: string, ...sets: string[]) => runScenario(loadWith(scenarioFile(name), ...sets));

describe("kvmem sim", () => {
  it("is deterministic: the same scenario and seed give the same JSON; another seed differs", () => {
    const a = run("2-vpid.yaml", "workloads.io.accesses=20000");
    const b = run("2-vpid.yaml", "workloads.io.accesses=20000");
    const c = run("2-vpid.yaml", "workloads.io.accesses=20000", "seed=99");
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.host.cyclesPerAccess).not.toBe(c.host.cyclesPerAccess);
  });

  it("seed section 2: EPT beats shadow paging on a page-table-heavy workload with many CR3 switches", () => {
    const ept = run("2-ept-vs-shadow.yaml", "workloads.forky.accesses=60000");
    const shadow = run(
      "2-ept-vs-shadow.yaml",
      "workloads.forky.accesses=60000",
      "host.cpu.ept=false",
    );
    expect(ept.host.cyclesPerAccess).toBeLessThan(shadow.host.cyclesPerAccess);
    expect(shadow.vms[0].exits.CR_ACCESS).toBeGreaterThan(100);
    expect(ept.vms[0].exits.CR_ACCESS).toBeUndefined();
    // one EPT table tree per VM; one shadow tree per guest address space
    const perProc = Object.values(shadow.vms[0].shadowTablesPerProcess ?? {});
    expect(perProc).toHaveLength(16);
    expect(perProc.every((n) => n > 0)).toBe(true);
    expect(ept.vms[0].shadowTablesPerProcess).toBeNull();
  });

  it("seed section 2: VPID beats no VPID when exits are frequent", () => {
    const on = run("2-vpid.yaml", "workloads.io.accesses=60000");
    const off = run("2-vpid.yaml", "workloads.io.accesses=60000", "host.cpu.vpid=false");
    expect(on.host.tlbHitRate).toBeGreaterThan(off.host.tlbHitRate);
    expect(on.host.cyclesPerAccess).toBeLessThan(off.host.cyclesPerAccess);
    expect(on.vms[0].vpid).toBe(true);
    expect(off.vms[0].vpid).toBe(false);
  });

  it("seed section 3: 2M beats 4K on a large random footprint", () => {
    const small = run("3-hugepages.yaml", "workloads.big.accesses=40000", "vms.0.backing=4K");
    const big = run("3-hugepages.yaml", "workloads.big.accesses=40000", "vms.0.backing=2M");
    const both = run(
      "3-hugepages.yaml",
      "workloads.big.accesses=40000",
      "vms.0.backing=2M",
      "vms.0.guest.pageSize=2M",
    );
    expect(big.host.referencesPerWalk).toBeLessThan(small.host.referencesPerWalk);
    expect(big.host.cyclesPerAccess).toBeLessThan(small.host.cyclesPerAccess);
    expect(both.host.tlbHitRate).toBeGreaterThan(0.9);
    expect(big.vms[0].kvmTablePages).toBeLessThan(small.vms[0].kvmTablePages);
  });

  it("a hugepage VM whose pool is too small fails to start with QEMU's error; the rest runs", () => {
    const r = run(
      "default.yaml",
      "host.kernel.hugepages.2M=100",
      "workloads.web.accesses=2000",
      "workloads.batch.accesses=2000",
      "workloads.web.footprint=8MiB",
      "workloads.batch.footprint=8MiB",
    );
    const vm4 = r.vms.find((v) => v.name === "vm4");
    expect(vm4?.state).toBe("failed");
    expect(vm4?.error).toContain(QEMU_HUGEPAGE_ERROR);
    expect(r.vms.filter((v) => v.state === "running")).toHaveLength(3);
  });

  it("the simulated host's /proc and /sys read back through kvmem host", () => {
    const r = run(
      "default.yaml",
      "workloads.web.accesses=2000",
      "workloads.batch.accesses=2000",
      "workloads.web.footprint=8MiB",
      "workloads.batch.footprint=64MiB",
    );
    const fs = new MapProcFs(r.procfs, { kind: "sim", label: "default", kernelLog: r.kernelLog });
    const report = hostReport(fs);
    expect(HostReportSchema.safeParse(report).success).toBe(true);
    expect(report.virt.tdp).toMatchObject({ inEffect: true, mode: "EPT" });
    expect(report.virt.vpid.inEffect).toBe(true);
    expect(report.domains.domains.map((d) => d.name)).toEqual(["vm1", "vm2", "vm3", "vm4"]);
    expect(report.domains.domains.every((d) => d.state === "running")).toBe(true);
    const pool = report.hugepages.pools.find((p) => p.sizeKiB === 2048);
    expect(pool?.nr).toBe(1024);
    // vm4's 2 GiB reserved the whole pool at mmap time; 33 pages faulted in: 32 for its 64 MiB
    // footprint (guest frames 32-96 MiB) and 1 for the guest's page tables at 1 MiB
    expect(pool?.free).toBe(1024 - 33);
    expect(pool?.resv).toBe(1024 - 33);
    const mi = parseMeminfo(r.procfs["/proc/meminfo"]).value;
    // frames are conserved: free + anon + tables + hugetlb = total
    expect(mi.MemFree + mi.AnonPages + mi.PageTables + mi.SecPageTables + mi.Hugetlb).toBe(
      mi.MemTotal,
    );
    expect(report.memory.available && report.memory.boot.available).toBe(true);
  });

  it("EPT off is a finding on the simulated host too", () => {
    const r = run(
      "1-memory.yaml",
      "host.cpu.ept=false",
      "workloads.app.accesses=1000",
      "workloads.app.footprint=4MiB",
    );
    const report = hostReport(new MapProcFs(r.procfs, { kind: "sim" }));
    expect(report.findings.find((f) => f.id === "tdp-off")?.fix.text.split("\n")[0]).toBe(
      "modprobe -r kvm_intel && modprobe kvm_intel ept=1",
    );
  });
});
