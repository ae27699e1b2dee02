// Reports over the real fixture trees in ../shared/corpus/procfs (prometheus/procfs,
// node_exporter, telegraf: see that README), checked against the report's schema.
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CORPUS, corpusPath } from "../../test/corpus.js";
import { hostReport } from "../cli/host.js";
import { DirProcFs } from "./fs-procfs.js";
import { HostReportSchema } from "./schema.js";

const trees = CORPUS
  ? readdirSync(corpusPath("procfs")).filter((d) => d !== "LICENSES" && !d.endsWith(".md"))
  : [];
const report = (tree: string) => hostReport(new DirProcFs(corpusPath(`procfs/${tree}`)));

describe.skipIf(!CORPUS)("host report over every corpus fixture tree", () => {
  it.each(trees)("%s: builds a report that satisfies the schema", (tree) => {
    const r = report(tree);
    expect(HostReportSchema.safeParse(r).success).toBe(true);
    expect(r.source.kind).toBe("root");
  });

  it("telegraf-hugepages: 2 sizes, 2 nodes, free capacity per node", () => {
    const h = report("telegraf-hugepages").hugepages;
    expect(h.numaNodes).toEqual([0, 1]);
    expect(h.pools.map((p) => [p.sizeKiB, p.nr, p.free])).toEqual([
      [2048, 2048, 883],
      [1048576, 8, 0],
    ]);
    expect(h.pools[0].nodes).toEqual([
      { node: 0, nr: 1024, free: 434, surplus: 0 },
      { node: 1, nr: 1024, free: 449, surplus: 0 },
    ]);
    // the fixture's own cross-check: per-node free adds up to the global free
    expect(h.pools[0].nodes.reduce((s, n) => s + n.free, 0)).toBe(h.pools[0].free);
  });

  it("node_exporter: KSM saves general_profit, hugetlbfs from mountinfo, zram swap, no MemAvailable", () => {
    const r = report("node_exporter");
    expect(r.overcommit.ksm).toMatchObject({
      available: true,
      savedBytes: 1044480,
      savedSource: "general_profit",
    });
    if (r.overcommit.ksm.available) expect(r.overcommit.ksm.values.pages_sharing).toBe(255);
    expect(r.hugepages.mountsSource).toBe("/proc/1/mountinfo");
    expect(r.hugepages.mounts.map((m) => m.mountPoint)).toEqual(["/dev/hugepages"]);
    expect(r.overcommit.swaps[0].filename).toBe("/dev/zram0");
    expect(r.memory.available && r.memory.free.available).toBe(
      r.memory.available && r.memory.meminfo.MemFree,
    );
  });

  it("telegraf-ksm: an older kernel without general_profit falls back to pages_sharing", () => {
    const k = report("telegraf-ksm").overcommit.ksm;
    expect(k).toMatchObject({
      available: true,
      savedSource: "pages_sharing",
      savedBytes: 28384 * 4096,
      rmapBytes: null,
    });
  });

  it("prometheus-procfs: Intel VMX with EPT and VPID in cpuinfo, but no KVM module loaded", () => {
    const r = report("prometheus-procfs");
    expect(r.virt.cpu.available && r.virt.cpu.flags.ept).toBe(true);
    expect(r.virt.tdp).toMatchObject({ inEffect: false, mode: "none" });
    expect(r.virt.tdp.reason).toContain("kvm_intel is not loaded");
    expect(r.findings.find((f) => f.id === "tdp-off")?.fix.text).toBe(
      "modprobe kvm_intel ept=1 vpid=1",
    );
    expect(r.overcommit.sysctl.swappiness).toBeTypeOf("number");
  });

  it("telegraf-hugepages-invalid: the bad line is reported, nothing crashes", () => {
    const r = report("telegraf-hugepages-invalid");
    expect(r.problems.some((p) => p.includes("sixtynine"))).toBe(true);
  });

  it("a tree without /proc/meminfo says why", () => {
    const r = report("telegraf-ksm");
    expect(r.memory).toEqual({ available: false, reason: "/proc/meminfo: no such file" });
    expect(r.virt.cpu).toEqual({ available: false, reason: "/proc/cpuinfo: no such file" });
  });
});
