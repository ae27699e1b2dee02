/**
 * `kvmem sim --out DIR`'s files besides result.json: series.csv (one row per sample and VM,
 * with the host's KSM counters and the hugetlb/THP columns from sim-render-huge.ts) and
 * report.html, a self-contained page with uPlot charts of the same series (uPlot's JS and CSS
 * inlined) above the text report and the simulated /proc/meminfo.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { ScenarioResult } from "../scenario/summary.js";
import { HUGE_CSV_HEADER, hugeChart, hugeCsv } from "./sim-render-huge.js";

/** ksmd's share (%) of one CPU between sample i-1 (or the start) and sample i. */
function ksmdPercent(series: ScenarioResult["series"], i: number): number {
  const s = series[i];
  const prev = i > 0 ? series[i - 1] : null;
  const dt = prev ? s.t - prev.t : s.t;
  return dt > 0 ? (100 * (s.ksm.cpuMs - (prev?.ksm.cpuMs ?? 0))) / dt : 0;
}

/** The time series as CSV: one row per sample and VM. */
export function seriesCsv(r: ScenarioResult): string {
  const rows = [
    "t_ms,accesses,host_free_bytes,vm,rss_bytes,vm_accesses,cycles_per_access,tlb_hit_rate,exits," +
      "ksm_merging_pages,ksm_pages_shared,ksm_pages_sharing,ksm_pages_unshared,ksm_pages_volatile," +
      "ksmd_cpu_ms,ksmd_cpu_percent," +
      "balloon_bytes,guest_swap_bytes,guest_pgmajfault,host_pgmajfault,cow_ksm," +
      HUGE_CSV_HEADER,
  ];
  for (const [i, s] of r.series.entries()) {
    const ksmdPct = ksmdPercent(r.series, i);
    for (const v of s.vms)
      rows.push(
        [
          s.t.toFixed(4),
          s.accesses,
          s.hostFree,
          v.name,
          v.rss,
          v.accesses,
          v.cyclesPerAccess.toFixed(3),
          v.tlbHitRate.toFixed(5),
          v.exits,
          v.ksmMerging,
          s.ksm.shared,
          s.ksm.sharing,
          s.ksm.unshared,
          s.ksm.volatile,
          s.ksm.cpuMs.toFixed(4),
          ksmdPct.toFixed(3),
          v.balloon,
          v.guestSwap,
          v.guestMajorFaults,
          s.costs.pgmajfault,
          s.costs.cowKsm,
          ...hugeCsv(s),
        ].join(","),
      );
  }
  return `${rows.join("\n")}\n`;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A self-contained HTML report: tables and uPlot charts (uPlot's JS and CSS inlined). */
export function htmlReport(r: ScenarioResult, text: string): string {
  const req = createRequire(import.meta.url);
  const js = readFileSync(req.resolve("uplot/dist/uPlot.iife.min.js"), "utf8");
  const css = readFileSync(req.resolve("uplot/dist/uPlot.min.css"), "utf8");
  const names = r.vms.filter((v) => v.state === "running").map((v) => v.name);
  const t = r.series.map((s) => s.t);
  const pick = (f: (v: ScenarioResult["series"][number]["vms"][number]) => number) =>
    names.map((n) =>
      r.series.map((s) => {
        const v = s.vms.find((x) => x.name === n);
        return v ? f(v) : null;
      }),
    );
  interface Chart {
    title: string;
    data: Array<Array<number | null>>;
    extra: Array<{ label: string; data: number[]; stroke?: string }>;
  }
  const charts: Chart[] = [
    {
      title: "Resident memory per VM (MiB)",
      data: pick((v) => v.rss / 1048576),
      extra: [{ label: "host free", data: r.series.map((s) => s.hostFree / 1048576) }],
    },
    { title: "Cycles per access (cumulative)", data: pick((v) => v.cyclesPerAccess), extra: [] },
    { title: "TLB hit rate (cumulative)", data: pick((v) => v.tlbHitRate), extra: [] },
    { title: "VM exits (cumulative)", data: pick((v) => v.exits), extra: [] },
  ];
  if (r.host.vmstat.pswpout > 0)
    charts.push({
      title: "Swap used and host free (MiB)",
      data: [],
      extra: [
        { label: "swap used", stroke: "#d62728", data: r.series.map((s) => s.swapUsed / 1048576) },
        { label: "host free", stroke: "#2ca02c", data: r.series.map((s) => s.hostFree / 1048576) },
        {
          label: "page cache",
          stroke: "#1f77b4",
          data: r.series.map((s) => s.pageCache / 1048576),
        },
      ],
    });
  if (r.vms.some((v) => v.balloon && v.balloon.inflatedPages > 0))
    charts.push({
      title: "Balloon size per VM (MiB)",
      data: pick((v) => v.balloon / 1048576),
      extra: [{ label: "host free", data: r.series.map((s) => s.hostFree / 1048576) }],
    });
  if (r.vms.some((v) => v.guestSwap))
    charts.push({
      title: "Guest swap per VM (MiB, inside the guests)",
      data: pick((v) => v.guestSwap / 1048576),
      extra: [],
    });
  const last = r.series[r.series.length - 1];
  const guestMajor = last?.vms.some((v) => v.guestMajorFaults > 0) ?? false;
  if (last && (last.costs.pgmajfault > 0 || last.costs.cowKsm > 0 || guestMajor))
    charts.push({
      title: `What overcommit costs (cumulative): host major faults, KSM COW breaks${guestMajor ? "; per VM: the guest's own major faults (guest swap)" : ""}`,
      data: guestMajor ? pick((v) => v.guestMajorFaults) : [],
      extra: [
        {
          label: "host major faults (pgmajfault)",
          stroke: "#d62728",
          data: r.series.map((s) => s.costs.pgmajfault),
        },
        {
          label: "KSM COW breaks (cow_ksm)",
          stroke: "#9467bd",
          data: r.series.map((s) => s.costs.cowKsm),
        },
      ],
    });
  if (r.host.ksm.pages_scanned > 0) {
    const host = (
      label: string,
      stroke: string,
      f: (k: (typeof r.series)[number]["ksm"]) => number,
    ) => ({
      label,
      stroke,
      data: r.series.map((s) => f(s.ksm)),
    });
    charts.push(
      {
        title: "KSM: pages over time (/sys/kernel/mm/ksm)",
        data: [],
        extra: [
          host("pages_sharing", "#2ca02c", (k) => k.sharing),
          host("pages_shared", "#1f77b4", (k) => k.shared),
          host("pages_unshared", "#ff7f0e", (k) => k.unshared),
          host("pages_volatile", "#d62728", (k) => k.volatile),
          host("ksm_zero_pages", "#9467bd", (k) => k.zeroPages),
        ],
      },
      {
        title: "KSM: pages merged per VM (ksm_merging_pages)",
        data: pick((v) => v.ksmMerging),
        extra: [],
      },
      {
        // the cost model (sim/ksm-cost.ts): ksmd's share of its host CPU between samples
        title: `KSM: ksmd CPU time (% of CPU ${r.host.ksm.ksmd_cpu} between samples)`,
        data: [],
        extra: [
          {
            label: "ksmd",
            stroke: "#8c564b",
            data: r.series.map((_, i) => ksmdPercent(r.series, i)),
          },
        ],
      },
    );
  }
  const huge = hugeChart(r);
  if (huge) charts.push({ ...huge, data: [] });
  const payload = JSON.stringify({ t, names, charts });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kvmem sim: ${esc(r.scenario)}</title>
<style>${css}
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
.chart{margin:1.5em 0}</style></head><body>
<h1>kvmem sim: ${esc(r.scenario)}</h1>
<p>seed ${r.seed}; simulated ${r.host.simulatedMs.toFixed(2)} ms; ${r.host.accesses} accesses. Generated by kvmem.</p>
<div id="charts"></div>
<h2>Results</h2><pre>${esc(text)}</pre>
<h2>Simulated /proc/meminfo</h2><pre>${esc(r.procfs["/proc/meminfo"] ?? "")}</pre>
<script>${js}</script>
<script>
const D = ${payload};
const colors = ["#1f77b4","#2ca02c","#d62728","#ff7f0e","#9467bd","#17becf","#8c564b","#e377c2"];
for (const c of D.charts) {
  const div = document.createElement("div"); div.className = "chart";
  document.getElementById("charts").appendChild(div);
  const series = [{ label: "ms" }, ...(c.data.length ? D.names : []).map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 2 })),
    ...c.extra.map((e) => ({ label: e.label, stroke: e.stroke || "#999", width: e.stroke ? 2 : 1, dash: e.stroke ? undefined : [4, 4] }))];
  new uPlot({ title: c.title, width: 1000, height: 260, series, scales: { x: { time: false } } },
    [D.t, ...c.data, ...c.extra.map((e) => e.data)], div);
}
</script></body></html>
`;
}
