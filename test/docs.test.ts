// The shipped docs stay true: the JSON schema matches the code, and the Grafana dashboard and the
// alert rules only use metrics the exporter really serves.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hostReport } from "../src/cli/host.js";
import { renderMetrics } from "../src/exporter/metrics.js";
import { hostReportJsonSchema } from "../src/inspect/schema.js";
import { domainXml, treeFs } from "./hosttree.js";

const doc = (p: string) => readFileSync(new URL(`../docs/${p}`, import.meta.url), "utf8");

describe("docs", () => {
  it("host-report.schema.json is the schema the code has (regenerate: kvmem host --json-schema)", () => {
    expect(JSON.parse(doc("host-report.schema.json"))).toEqual(hostReportJsonSchema());
  });

  it("the dashboard and alerts use only metrics the exporter serves", async () => {
    const r = hostReport(
      treeFs({
        numaNodes: 2,
        ksm: { run: 1, pages_sharing: 3, full_scans: 1, pages_scanned: 10, general_profit: 1 },
        swaps: [{ file: "/dev/sda2", sizeKiB: 1024, usedKiB: 0 }],
        domains: { a: domainXml({ name: "a", hugepages: "<hugepages/>" }) },
      }),
    );
    const { text } = await renderMetrics(r, 0.001);
    const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const used = new Set<string>();
    for (const src of [doc("grafana-dashboard.json"), doc("kvmem-alerts.yml")]) {
      for (const m of src.matchAll(/\bkvmem_[a-z0-9_]+/g)) used.add(m[0]);
    }
    expect(used.size).toBeGreaterThan(10);
    for (const m of used) expect(served, `${m} is not served`).toContain(m);
  });
});
