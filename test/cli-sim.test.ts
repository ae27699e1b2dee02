// kvmem sim as a user runs it: text, --json, --out files, --vary over worker threads, errors.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kvmem } from "./cli.js";

const small = ["--set", "workloads.io.accesses=5000"];
const scn = new URL("../scenarios/2-vpid.yaml", import.meta.url).pathname;

describe("kvmem sim (CLI)", () => {
  it("prints per-VM and host results within 100 columns", () => {
    const r = kvmem("sim", scn, ...small, "--no-chart");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("kvmem sim: 2-vpid (seed 3)");
    expect(r.stdout).toMatch(/vm1\s+thp\/4K\s+5000/);
    expect(r.stdout).toContain("exits by reason");
    expect(r.stdout.split("\n").filter((l) => l.length > 100)).toEqual([]);
  });

  it("--json is the documented result with the simulated procfs", () => {
    const r = kvmem("sim", scn, ...small, "--json");
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).toEqual([
      "scenario",
      "seed",
      "host",
      "vms",
      "series",
      "timeline",
      "procfs",
      "kernelLog",
    ]);
    expect(j.vms[0]).toMatchObject({
      name: "vm1",
      state: "running",
      mmu: "ept",
      vpid: true,
      accesses: 5000,
    });
    expect(j.procfs["/proc/meminfo"]).toMatch(/^MemTotal: {8}8388608 kB\n/); // "%-16s%8lu kB"
    expect(j.procfs["/sys/module/kvm_intel/parameters/vpid"]).toBe("Y\n");
  });

  it("--out writes series.csv, result.json and a self-contained report.html", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "kvmem-out-")), "run");
    const r = kvmem("sim", scn, ...small, "--out", dir, "--no-chart");
    expect(r.status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(["report.html", "result.json", "series.csv"]);
    const csv = readFileSync(join(dir, "series.csv"), "utf8").split("\n");
    expect(csv[0]).toMatch(
      /^t_ms,accesses,host_free_bytes,vm,rss_bytes,vm_accesses,cycles_per_access,tlb_hit_rate,exits,ksm_merging_pages,ksm_pages_shared,ksm_pages_sharing,ksm_pages_unshared,ksm_pages_volatile,ksmd_cpu_ms,ksmd_cpu_percent,/,
    );
    expect(csv.length).toBeGreaterThan(10);
    const html = readFileSync(join(dir, "report.html"), "utf8");
    expect(html).toContain("new uPlot(");
    expect(html).not.toMatch(/<script[^>]+src=/); // nothing fetched from elsewhere
  });

  it("--vary runs every combination and prints ratios against the first", () => {
    const r = kvmem("sim", scn, ...small, "--vary", "host.cpu.vpid=true,false");
    expect(r.status).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("kvmem sim --vary: 2-vpid, 2 combinations (ratios against the first)");
    expect(r.stdout).toMatch(/host\.cpu\.vpid=true\s+\S+\s+1\.00x/);
    expect(r.stdout).toMatch(/host\.cpu\.vpid=false\s+\S+\s+[1-9]\.\d\dx/);
  });

  it("a scenario typo is one line naming file:line:col and the key, exit 1", () => {
    const f = join(mkdtempSync(join(tmpdir(), "kvmem-bad-")), "bad.yaml");
    writeFileSync(f, readFileSync(scn, "utf8").replace("pattern: zipf", "pattern: zipff"));
    const r = kvmem("sim", f);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^kvmem: .*bad\.yaml:\d+:\d+: workloads\.io\.pattern: 'zipff' is not accepted; accepted: sequential, strided, uniform, zipf, chase, trace/,
    );
  });

  it("a bad --set and a bad --vary are usage errors", () => {
    expect(kvmem("sim", scn, "--set", "nonsense").status).toBe(2);
    const r = kvmem("sim", scn, "--vary", "host.cpu.vpid=yes,no");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("host.cpu.vpid: 'yes': expected boolean");
  });

  it("--out into a path that cannot be a directory fails without leaving files", () => {
    const base = mkdtempSync(join(tmpdir(), "kvmem-f-"));
    const file = join(base, "afile");
    writeFileSync(file, "x");
    const r = kvmem("sim", scn, ...small, "--out", join(file, "sub"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^kvmem: --out: cannot create/);
    expect(existsSync(join(file, "sub"))).toBe(false);
  });

  it("kvmem host --sim reads the simulated host", () => {
    const r = kvmem("host", "--sim", scn, ...small, "--check");
    expect(r.stdout).toMatch(/two-dimensional paging \(EPT\/NPT\) is in effect\s+: PASS/);
    expect(r.stdout).toMatch(/if VPID is in effect\s+: PASS/);
  });

  it("kvmem translate --scenario --vm takes the VM's configuration from the scenario", () => {
    const d = new URL("../scenarios/default.yaml", import.meta.url).pathname;
    const r = kvmem(
      "translate",
      "--scenario",
      d,
      "--vm",
      "vm4",
      "--json",
      "read",
      "0x7f0000001000",
    );
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    // vm4 is the hugepage-backed guest of the default scenario: EPT maps it with 2M pages
    expect(j.config).toMatchObject({ ept: true, vpid: true, backing: "2M", pwc: true });
    expect(j.accesses[0].pageSize).toMatchObject({ guest: "4K", ept: "2M", tlb: "4K" });
    const vm1 = JSON.parse(
      kvmem("translate", "--scenario", d, "--vm", "vm1", "--json", "read", "0x7f0000001000").stdout,
    );
    expect(vm1.config.backing).toBe("thp");
    const bad = kvmem("translate", "--scenario", d, "--vm", "nope", "read", "0x1000");
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe(
      "kvmem: --vm: scenario default has no VM 'nope' (VMs: vm1, vm2, vm3, vm4)",
    );
  });
});
