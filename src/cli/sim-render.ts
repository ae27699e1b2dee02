/**
 * `kvmem sim`'s text report: the per-VM table, the host line, then one block per mechanism
 * that did anything (hugetlb/THP/NUMA from sim-render-huge.ts, KSM, virtio-balloon, page cache
 * and LRU, host swap, guest swap), exits by reason, shadow tables, and an asciichart of cycles
 * per access. Tables fit 100 columns; longer prose lines are wrapped by fitWidth. The CSV and
 * HTML renderings of the same result are in sim-report.ts.
 */
import asciichart from "asciichart";
import type { ScenarioResult } from "../scenario/summary.js";
import { formatBytesHuman } from "../units/size.js";
import { renderHugepages } from "./sim-render-huge.js";
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
