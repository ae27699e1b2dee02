/** Text and HTML renderings of scenario results (tables within 100 columns, charts). */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import asciichart from "asciichart";
import type { ScenarioResult } from "../scenario/summary.js";
import { formatBytesHuman } from "../units/size.js";
import { HUGE_CSV_HEADER, hugeChart, hugeCsv, renderHugepages } from "./sim-render-huge.js";
import { table, WIDTH, wrap } from "./text.js";

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number, d = 1) => x.toFixed(d);

export function renderSim(r: ScenarioResult, opts: { chart: boolean; color?: boolean }): string {
  const out: string[] = [];
  const h = r.host;
  out.push(
    `kvmem sim: ${r.scenario} (seed ${r.seed}): ${formatBytesHuman(h.memoryBytes)} host, ${h.cpus} CPUs, ${h.ept ? "EPT" : "shadow paging"}, VPID ${h.vpid ? "on" : "off"}\n`,
  );
  out.push(`simulated ${num(h.simulatedMs, 2)} ms, ${h.accesses} accesses\n\n`);
  const failed = r.vms.filter((v) => v.state === "failed");
  for (const v of failed) out.push(`  ${v.name}: failed to start: ${v.error}\n`);
  for (const v of r.vms)
    if (v.oomKilled) out.push(`  ${v.name}: killed by the host's OOM killer ${v.oomKilled}\n`);
  const ok = r.vms.filter((v) => v.state === "running");
  out.push(
    table(
      ok.map((v) => [
        v.name,
        `${v.backing}/${v.guestPageSize}`,
        String(v.accesses),
        pct(v.tlb.l1HitRate),
        pct(v.tlb.hitRate),
        num(v.referencesPerWalk, 2),
        num(v.cyclesPerAccess),
        `${v.exitsTotal}/${v.eptViolations}`,
        v.mmu === "shadow" ? `${v.kvmTablePages} shd` : `${v.kvmTablePages} EPT`,
        formatBytesHuman(v.rssBytes),
      ]),
      {
        header: [
          "vm",
          "host/guest",
          "accesses",
          "L1 hit",
          "TLB hit",
          "refs/walk",
          "cyc/acc",
          "exits/EPT",
          "KVM tbl",
          "RSS",
        ],
      },
    ),
  );
  out.push(
    `  host: TLB hit ${pct(h.tlbHitRate)}, ${num(h.referencesPerWalk, 2)} refs/walk, ${num(h.cyclesPerAccess)} cycles/access, ${h.exitsTotal} exits\n`,
    `        ${h.kvmTablePages} KVM table pages, ${formatBytesHuman(h.freeBytes)} free\n`,
  );
  out.push(renderHugepages(r));
  out.push(renderKsm(r));
  out.push(renderBalloons(r));
  out.push(renderPageCache(r));
  out.push(renderSwap(r));
  out.push(renderGuestSwap(r));
  out.push("\n  exits by reason\n");
  out.push(
    table(
      ok.map((v) => [
        v.name,
        Object.entries(v.exits)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ") || "none",
      ]),
    ),
  );
  const shadow = ok.filter((v) => v.shadowTablesPerProcess);
  if (shadow.length) {
    out.push("\n  shadow page tables per guest address space (one EPT table = N shadow tables)\n");
    out.push(
      table(
        shadow.map((v) => [
          v.name,
          Object.entries(v.shadowTablesPerProcess ?? {})
            .map(([p, n]) => `${p}: ${n}`)
            .join(", "),
        ]),
      ),
    );
  }
  if (opts.chart && r.series.length > 2) {
    out.push("\n  cycles per access over the run (cumulative), one line per VM\n");
    const series = ok.map((v) =>
      r.series.map((s) => s.vms.find((x) => x.name === v.name)?.cyclesPerAccess ?? 0),
    );
    const colors = [
      asciichart.blue,
      asciichart.green,
      asciichart.red,
      asciichart.yellow,
      asciichart.magenta,
      asciichart.cyan,
    ];
    out.push(
      `${asciichart.plot(
        series.map((s) => downsample(s, 70)),
        {
          height: 10,
          colors: opts.color ? colors.slice(0, series.length) : undefined,
          format: (x: number) => x.toFixed(0).padStart(7),
        },
      )}\n`,
    );
    if (opts.color)
      out.push(
        `  ${ok.map((v, i) => `${["blue", "green", "red", "yellow", "magenta", "cyan"][i % 6]}: ${v.name}`).join("  ")}\n`,
      );
    else out.push(`  lines: ${ok.map((v) => v.name).join(", ")} (colours on a terminal)\n`);
  }
  return fitWidth(out.join(""));
}

/**
 * The page cache and the LRU lists, when the host has a page cache: each VM's disk I/O (cache
 * mode, reads the cache served), the lists, and how reclaim split its scanning (swappiness).
 */
function renderPageCache(r: ScenarioResult): string {
  const s = r.host.reclaim;
  const disks = r.vms.filter((x) => x.disk);
  if (disks.length === 0 && s.pageCacheBytes === 0 && s.pgstealFile === 0) return "";
  const l = s.lru;
  const mib = (pages: number) => formatBytesHuman(pages * 4096);
  const bal = Object.entries(s.scanBalance)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return (
    `\n  page cache: ${formatBytesHuman(s.pageCacheBytes)} (${formatBytesHuman(s.dirtyBytes)} dirty); ` +
    `LRU: active anon ${mib(l.activeAnon)}, inactive anon ${mib(l.inactiveAnon)}, ` +
    `active file ${mib(l.activeFile)}, inactive file ${mib(l.inactiveFile)}\n` +
    `    vm.swappiness ${s.swappiness}: pgscan anon ${s.pgscanAnon}, file ${s.pgscanFile}; ` +
    `pgsteal anon ${s.pgstealAnon}, file ${s.pgstealFile}; pgactivate ${s.pgactivate}, ` +
    `pgdeactivate ${s.pgdeactivate}; workingset_refault_file ${s.workingsetRefaultFile} ` +
    `(activated ${s.workingsetActivateFile})\n` +
    `    reclaim passes by get_scan_count balance: ${bal || "none"}\n` +
    (disks.length
      ? table(
          disks.map((x) => {
            const d = x.disk!;
            return [
              x.name,
              d.cache,
              String(d.reads),
              d.reads ? pct(d.readHits / d.reads) : "-",
              String(d.writes),
              String(d.diskReads),
              String(d.diskWrites),
              formatBytesHuman(d.pageCacheBytes),
            ];
          }),
          {
            header: [
              "vm",
              "cache",
              "reads",
              "cache hit",
              "writes",
              "disk reads",
              "disk writes",
              "cached",
            ],
          },
        )
      : "")
  );
}

/** Swap and reclaim, when anything was swapped: the host's counters and each VM's share. */
function renderSwap(r: ScenarioResult): string {
  const s = r.host.reclaim;
  const v = r.host.vmstat;
  if (v.pswpout === 0 && v.pswpin === 0) return "";
  const w = s.watermarks;
  const vms = r.vms.filter((x) => x.state === "running");
  return (
    `\n  swap: ${formatBytesHuman(s.swapUsedBytes)} used of ${formatBytesHuman(s.swapTotalBytes)}; ` +
    `pswpout ${v.pswpout}, pswpin ${v.pswpin} (major faults), kswapd runs ${s.kswapdRuns}, ` +
    `direct reclaims ${s.allocstall}, THP splits ${v.thp_split_page}\n` +
    `    watermarks (pages): min ${w.min}, low ${w.low}, high ${w.high}\n` +
    table(
      vms.map((x) => [
        x.name,
        formatBytesHuman(x.swapBytes),
        String(x.majorFaults),
        formatBytesHuman(x.rssBytes),
      ]),
      { header: ["vm", "in swap", "major faults", "RSS"] },
    )
  );
}

/**
 * The guests' own swap, when any guest has a swap disk: what each guest swapped, its faults,
 * and the host RSS beside it (the frames a guest freed by swapping stay backed on the host).
 */
function renderGuestSwap(r: ScenarioResult): string {
  const vms = r.vms.filter((v) => v.state === "running" && v.guestSwap);
  if (vms.length === 0) return "";
  const b = formatBytesHuman;
  return `\n  guest swap (inside the VMs: double paging, the host keeps backing what a guest swapped)\n${table(
    vms.map((v) => {
      const g = v.guestSwap!;
      return [
        v.name,
        b(g.totalBytes),
        b(g.usedBytes),
        String(g.pswpout),
        String(g.pswpin),
        String(g.pgmajfault),
        String(g.pgfault),
        String(g.requests),
        b(v.rssBytes),
      ];
    }),
    {
      header: [
        "vm",
        "swap",
        "used",
        "pswpout",
        "pswpin",
        "pgmajfault",
        "pgfault",
        "blk reqs",
        "host RSS",
      ],
    },
  )}`;
}

/** Each balloon that moved: target, size, what the host got back, and why not when it did not. */
function renderBalloons(r: ScenarioResult): string {
  const vms = r.vms.filter(
    (v) => v.balloon && (v.balloon.inflatedPages > 0 || v.balloon.reportedBytes > 0),
  );
  if (vms.length === 0) return "";
  const mib = (b: number) => formatBytesHuman(b);
  const rows = vms.map((v) => {
    const b = v.balloon!;
    return [
      v.name,
      mib(b.targetBytes),
      mib(b.actualBytes),
      String(b.inflatedPages),
      String(b.deflatedPages),
      mib(b.hostFreedBytes),
      String(b.hugePagesToPool),
      mib(b.reportedBytes),
      String(b.oomDeflations),
      b.latency.reached ? `${b.latency.lastMs.toFixed(0)} ms` : "-",
    ];
  });
  const lat = (v: (typeof vms)[number]) => {
    const l = v.balloon!.latency;
    if (l.targetChanges <= 1 && l.pendingSinceMs === null) return "";
    const parts = [
      l.reached > 0
        ? `${l.reached} reached (mean ${l.meanMs.toFixed(0)} ms, max ${l.maxMs.toFixed(0)} ms)`
        : "none reached",
    ];
    if (l.superseded > 0) parts.push(`${l.superseded} superseded by a newer target`);
    if (l.pendingSinceMs !== null)
      parts.push(`the target set at ${l.pendingSinceMs.toFixed(0)} ms not reached yet`);
    const n = l.targetChanges;
    return `    ${v.name}: balloon latency, ${n} target change${n === 1 ? "" : "s"}: ${parts.join(", ")}\n`;
  };
  const notes = vms
    .map((v) => (v.balloon!.note ? `    ${v.name}: ${v.balloon!.note}\n` : "") + lat(v))
    .join("");
  return `\n  virtio-balloon\n${table(rows, {
    header: [
      "vm",
      "target",
      "actual",
      "inflated",
      "deflated",
      "host freed",
      "huge->pool",
      "reported",
      "oom defl",
      "latency",
    ],
  })}${notes}`;
}

/** KSM's sysfs counters and each VM's ksm_stat, when ksmd ran or any VM is mergeable. */
function renderKsm(r: ScenarioResult): string {
  const k = r.host.ksm;
  if (k.run === 0 && k.pages_scanned === 0) return "";
  const mib = (pages: number) => formatBytesHuman(pages * 4096);
  const lines = [
    `\n  KSM (run ${k.run}, ${k.pages_to_scan} pages every ${k.sleep_millisecs} ms): ` +
      `${k.full_scans} full scans, ${k.pages_scanned} pages scanned, ${k.pages_skipped} skipped\n`,
    `    pages_shared ${k.pages_shared}, pages_sharing ${k.pages_sharing} (${mib(k.pages_sharing)} saved), ` +
      `pages_unshared ${k.pages_unshared}, pages_volatile ${k.pages_volatile}\n`,
    `    ksm_zero_pages ${k.ksm_zero_pages}, stable_node_chains ${k.stable_node_chains}, ` +
      `stable_node_dups ${k.stable_node_dups}, general_profit ${formatBytesHuman(Math.max(0, k.general_profit))}` +
      `${k.general_profit < 0 ? ` (negative: ${k.general_profit} bytes)` : ""}, COW breaks ${r.host.ksmCowBreaks}, ` +
      `THP splits ${r.host.vmstat.thp_split_page}\n`,
    // the cost model (sim/ksm-cost.ts): ksmd's host CPU time, and the vCPUs' time in COW breaks
    `    ksmd CPU time ${k.ksmd_cpu_ms.toFixed(1)} ms (${k.ksmd_cpu_percent.toFixed(2)}% of CPU ` +
      `${k.ksmd_cpu}): scan+checksum ${k.ksmd_scan_ms.toFixed(1)} ms, compare ` +
      `${k.ksmd_compare_ms.toFixed(1)} ms, merge ${k.ksmd_merge_ms.toFixed(1)} ms; COW breaks ` +
      `${k.vcpu_cow_break_ms.toFixed(1)} ms of vCPU time\n`,
  ];
  const tuned = r.host.ksmtuned;
  if (tuned && tuned.length > 0) {
    const d = tuned[tuned.length - 1];
    lines.push(
      `    ksmtuned: ${tuned.length} decisions; last at ${d.atMs} ms: committed ${d.committedKiB} kB, ` +
        `free ${d.freeKiB} kB -> ${d.run ? `start, pages_to_scan ${d.pagesToScan}, sleep ${d.sleepMillisecs} ms` : "stop"}\n`,
    );
  }
  const mk = r.host.momKsm;
  if (mk && mk.length > 0) {
    const d = mk[mk.length - 1];
    lines.push(
      `    MOM KSM rules: ${mk.length} decisions; last at ${d.atMs} ms: mem_free avg ` +
        `${Math.round(d.memFreeAvgKiB)} kB, shareable ${Math.round(d.shareableKiB)} kB -> ` +
        `${d.run ? `run, pages_to_scan ${d.pagesToScan}, sleep ${d.sleepMillisecs} ms` : "stop"}\n`,
    );
  }
  const vms = r.vms.filter((v) => v.state === "running");
  lines.push(
    table(
      vms.map((v) => [
        v.name,
        v.ksm ? String(v.ksm.rmapItems) : "not mergeable",
        v.ksm ? String(v.ksm.mergingPages) : "",
        v.ksm ? String(v.ksm.zeroPages) : "",
        v.ksm ? formatBytesHuman(Math.max(0, v.ksm.processProfitBytes)) : "",
        v.ksm ? String(v.ksm.cowBreaks) : "",
      ]),
      {
        header: [
          "vm",
          "ksm_rmap_items",
          "ksm_merging_pages",
          "ksm_zero_pages",
          "profit",
          "COW breaks",
        ],
      },
    ),
  );
  return lines.join("");
}

/**
 * Wrap prose lines longer than WIDTH at spaces, continuing two columns deeper than the line's
 * indent (tables are laid out to fit already).
 */
function fitWidth(text: string): string {
  return text
    .split("\n")
    .flatMap((line) => {
      if (line.length <= WIDTH) return [line];
      const indent = /^ */.exec(line)?.[0].length ?? 0;
      return wrap(line.trim(), WIDTH - indent - 2).map(
        (l, i) => " ".repeat(i ? indent + 2 : indent) + l,
      );
    })
    .join("\n");
}

function downsample(xs: number[], n: number): number[] {
  if (xs.length <= n) return xs;
  return Array.from({ length: n }, (_, i) => xs[Math.floor((i * (xs.length - 1)) / (n - 1))]);
}

/** The time series as CSV: one row per sample and VM. */
export function seriesCsv(r: ScenarioResult): string {
  const rows = [
    "t_ms,accesses,host_free_bytes,vm,rss_bytes,vm_accesses,cycles_per_access,tlb_hit_rate,exits," +
      "ksm_merging_pages,ksm_pages_shared,ksm_pages_sharing,ksm_pages_unshared,ksm_pages_volatile," +
      "ksmd_cpu_ms,ksmd_cpu_percent," +
      "balloon_bytes,guest_swap_bytes," +
      HUGE_CSV_HEADER,
  ];
  for (const [i, s] of r.series.entries()) {
    // ksmd's share of one CPU since the previous sample
    const prev = i > 0 ? r.series[i - 1] : null;
    const dt = prev ? s.t - prev.t : s.t;
    const ksmdPct = dt > 0 ? (100 * (s.ksm.cpuMs - (prev?.ksm.cpuMs ?? 0))) / dt : 0;
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
            data: r.series.map((s, i) => {
              const p = i > 0 ? r.series[i - 1] : null;
              const dt = p ? s.t - p.t : s.t;
              return dt > 0 ? (100 * (s.ksm.cpuMs - (p?.ksm.cpuMs ?? 0))) / dt : 0;
            }),
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
