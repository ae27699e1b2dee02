/**
 * `kvmem sim --vary` text: one row per combination, two tables. The first compares what the
 * translation costs (cycles per access, TLB, walks, exits, KVM tables); the second what the
 * host's memory did (free at the end, swap, major faults, KSM's sharing and its price in COW
 * breaks and ksmd CPU time, the balloons, OOM kills), so that overcommit policies (ksmd's knobs, swappiness, MOM, ksmtuned,
 * balloon targets) can be compared side by side. Ratios are against the first combination.
 */
import type { ScenarioResult } from "../scenario/summary.js";
import { formatBytesHuman } from "../units/size.js";
import { table, WIDTH } from "./text.js";

const ratio = (x: number, b: number) => (b === 0 ? "-" : `${(x / b).toFixed(2)}x`);

export function varyText(scenario: string, names: string[], rs: ScenarioResult[]): string {
  const base = rs[0].host;
  let out = `kvmem sim --vary: ${scenario}, ${names.length} combinations (ratios against the first)\n\n`;
  const costs = (withNames: boolean) =>
    table(
      rs.map((r, i) => [
        String(i + 1),
        ...(withNames ? [names[i]] : []),
        r.host.cyclesPerAccess.toFixed(1),
        ratio(r.host.cyclesPerAccess, base.cyclesPerAccess),
        `${(r.host.tlbHitRate * 100).toFixed(1)}%`,
        r.host.referencesPerWalk.toFixed(2),
        String(r.host.exitsTotal),
        ratio(r.host.exitsTotal, base.exitsTotal),
        String(r.host.kvmTablePages),
      ]),
      {
        header: [
          "#",
          ...(withNames ? ["combination"] : []),
          "cyc/acc",
          "ratio",
          "TLB hit",
          "refs/walk",
          "exits",
          "ratio",
          "KVM tables",
        ],
      },
    );
  let t = costs(true);
  if (t.split("\n").some((l) => l.length > WIDTH)) {
    // long combinations: name them once above, number them in the tables
    out += names.map((n, i) => `  ${i + 1}  ${n}\n`).join("");
    out += "\n";
    t = costs(false);
  }
  out += t;
  out += "\nmemory at the end of the run (# as above)\n";
  out += table(
    rs.map((r, i) => {
      const k = r.host.ksm;
      let ballooned = 0;
      let oom = 0;
      for (const v of r.vms) {
        if (v.balloon) ballooned += v.memoryBytes - v.balloon.actualBytes;
        if (v.oomKilled) oom++;
      }
      return [
        String(i + 1),
        formatBytesHuman(r.host.freeBytes),
        formatBytesHuman(r.host.reclaim.swapUsedBytes),
        String(r.host.vmstat.pswpout),
        String(r.host.vmstat.pswpin),
        // pages_sharing: guest pages that map a KSM page another one already holds (ksm.rst)
        formatBytesHuman((k.pages_sharing ?? 0) * 4096),
        String(r.host.ksmCowBreaks),
        // ksmd's CPU time by the cost model (sim/ksm-cost.ts), ms of simulated time
        (k.ksmd_cpu_ms ?? 0).toFixed(0),
        formatBytesHuman(ballooned),
        String(oom),
      ];
    }),
    {
      header: [
        "#",
        "host free",
        "swap used",
        "pswpout",
        "pswpin",
        "KSM saved",
        "COW breaks",
        "ksmd ms",
        "ballooned",
        "OOM kills",
      ],
    },
  );
  return out;
}
