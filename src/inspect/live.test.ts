// The live machine: kvmem host's figures against /proc/meminfo and /proc/cpuinfo read here
// independently (plain line matching, not kvmem's parsers).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hostReport } from "../cli/host.js";
import { DirProcFs } from "./fs-procfs.js";
import { HostReportSchema } from "./schema.js";

describe("kvmem host on this machine", () => {
  const r = hostReport(new DirProcFs("/"));
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)?.[1]);

  it("satisfies the schema", () => {
    expect(HostReportSchema.safeParse(r).success).toBe(true);
    expect(r.source).toEqual({ kind: "live", label: "/" });
  });

  it("MemTotal, SwapTotal and the hugepage pool match /proc/meminfo", () => {
    if (!r.memory.available) throw new Error(r.memory.reason);
    expect(r.memory.meminfo.MemTotal).toBe(field("MemTotal"));
    expect(r.memory.free.total).toBe(field("MemTotal"));
    expect(r.memory.free.swapTotal).toBe(field("SwapTotal"));
    const def = r.hugepages.pools.find((p) => p.sizeKiB === field("Hugepagesize"));
    expect(def?.nr).toBe(field("HugePages_Total"));
  });

  it("CPU count, vendor and flags match /proc/cpuinfo", () => {
    if (!r.virt.cpu.available) throw new Error(r.virt.cpu.reason);
    expect(r.virt.cpu.cpus).toBe((cpuinfo.match(/^processor\s*:/gm) ?? []).length);
    expect(r.virt.cpu.vendor).toBe(/^vendor_id\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim());
    const flags = new Set(/^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim().split(/\s+/));
    for (const f of ["vmx", "svm", "pdpe1gb", "la57", "hypervisor"])
      expect(r.virt.cpu.flags[f]).toBe(flags.has(f));
  });

  it("the tdp verdict agrees with the module parameters on disk", () => {
    const read = (p: string) => {
      try {
        return readFileSync(p, "utf8").trim();
      } catch {
        return undefined;
      }
    };
    const ept = read("/sys/module/kvm_intel/parameters/ept");
    const npt = read("/sys/module/kvm_amd/parameters/npt");
    const expected =
      ept !== undefined ? ept === "Y" : npt !== undefined ? npt === "1" || npt === "Y" : false;
    expect(r.virt.tdp.inEffect).toBe(expected);
  });
});
