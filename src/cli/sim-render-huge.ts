/**
 * `kvmem sim` renderings of the hugetlb pools, THP and NUMA placement: a text block (when the
 * host has pools or NUMA nodes), CSV columns and a report.html chart of the pools and
 * AnonHugePages over time. The counters mean what /proc/meminfo, /sys/devices/system/node and
 * /proc/vmstat say (docs/overcommit.md "Huge pages and NUMA").
 */
import type { ScenarioResult } from "../scenario/summary.js";
import { formatBytesHuman } from "../units/size.js";

const SIZES = [
  ["2M", 2097152],
  ["1G", 1073741824],
] as const;

/** The text block, or "" when the host has neither hugetlb pools nor several NUMA nodes. */
export function renderHugepages(r: ScenarioResult): string {
  const h = r.host;
  const out: string[] = [];
  const multi = h.numa.length > 1;
  for (const [key] of SIZES) {
    const p = h.hugepages[key];
    if (!p || (p.total === 0 && p.overcommit === 0)) continue;
    const nodes = multi
      ? ` (${p.nodes.map((n) => `node${n.node} ${n.free}/${n.total} free${n.surplus ? `, ${n.surplus} surp` : ""}`).join("; ")})`
      : "";
    out.push(
      `  hugetlb ${key}: HugePages_Total ${p.total}, Free ${p.free}, Rsvd ${p.reserved}, Surp ${p.surplus}${nodes}\n`,
    );
  }
  if (out.length === 0 && !multi) return "";
  const v = h.vmstat;
  const anon = r.series.at(-1)?.anonHuge ?? 0;
  out.push(
    `  THP: AnonHugePages ${formatBytesHuman(anon)}; thp_fault_alloc ${v.thp_fault_alloc}, thp_fault_fallback ${v.thp_fault_fallback}, thp_split_page ${v.thp_split_page}\n`,
  );
  if (multi) {
    const st = (k: string) => h.numa.reduce((a, n) => a + (n.numastat[k] ?? 0), 0);
    out.push(
      `  NUMA: ${h.numa.map((n) => `node${n.node} ${formatBytesHuman(n.freeBytes)} free`).join(", ")}; numa_hit ${st("numa_hit")}, numa_miss ${st("numa_miss")}, numa_foreign ${st("numa_foreign")}, numa_other ${st("other_node")}\n`,
    );
    const place = r.vms.map((vm) => {
      const pl = vm.numa.placement;
      const where = pl.length
        ? pl.map((p) => `${p.mode} ${p.hostNodes.join(",")}`).join(" + ")
        : `local (node ${vm.numa.homeNode})`;
      return `${vm.name} ${where}${vm.state === "failed" ? " (failed)" : ""}`;
    });
    out.push(`  placement: ${place.join(", ")}\n`);
  }
  return `\n${out.join("")}`;
}

/** CSV header columns and one sample's values (host-wide, repeated on each VM's row). */
export const HUGE_CSV_HEADER =
  "hugepages_2m_total,hugepages_2m_free,hugepages_2m_rsvd,hugepages_2m_surp," +
  "hugepages_1g_total,hugepages_1g_free,hugepages_1g_rsvd,hugepages_1g_surp,anon_huge_bytes";

export function hugeCsv(s: ScenarioResult["series"][number]): Array<number> {
  const a = s.hugepages["2M"];
  const b = s.hugepages["1G"];
  return [a.total, a.free, a.rsvd, a.surp, b.total, b.free, b.rsvd, b.surp, s.anonHuge];
}

/** report.html: the pools (MiB of each size's pages) and AnonHugePages over time. */
export function hugeChart(
  r: ScenarioResult,
): { title: string; extra: Array<{ label: string; data: number[]; stroke: string }> } | null {
  const has = (k: "2M" | "1G") => r.series.some((s) => s.hugepages[k].total > 0);
  const thp = r.series.some((s) => s.anonHuge > 0);
  if (!has("2M") && !has("1G") && !thp) return null;
  const MiB = 1048576;
  const extra: Array<{ label: string; data: number[]; stroke: string }> = [];
  const colors = { total: "#1f77b4", free: "#2ca02c", rsvd: "#ff7f0e", surp: "#d62728" };
  for (const [key, size] of SIZES) {
    if (!has(key)) continue;
    for (const f of ["total", "free", "rsvd", "surp"] as const)
      extra.push({
        label: `${key} HugePages_${f[0].toUpperCase()}${f.slice(1)}`,
        stroke: key === "1G" ? `${colors[f]}88` : colors[f],
        data: r.series.map((s) => (s.hugepages[key][f] * size) / MiB),
      });
  }
  if (thp)
    extra.push({
      label: "AnonHugePages",
      stroke: "#9467bd",
      data: r.series.map((s) => s.anonHuge / MiB),
    });
  return { title: "Hugepage pools and THP (MiB): /proc/meminfo over time", extra };
}
