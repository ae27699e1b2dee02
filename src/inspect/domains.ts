/**
 * Section 5: the libvirt domains of the host. Persistent definitions live in
 * /etc/libvirt/qemu/NAME.xml, running domains' live XML in /run/libvirt/qemu/NAME.xml (libvirt's
 * qemu driver: configDir and stateDir). A domain found in /run is running; its hugepages are
 * already taken from the pool, so only domains that are defined but not running need free pages.
 * Totals compare the domains with the host: overcommit = sum(currentMemory) / MemTotal.
 */
import type { ProcFs } from "./procfs.js";
import type { DomainSummary, HostReport } from "./schema.js";

export const DOMAIN_DIRS = ["/etc/libvirt/qemu", "/run/libvirt/qemu"] as const;

/** Turns a domain XML's text into the summary the report needs (src/libvirt does the parsing). */
export type DomainReader = (
  xml: string,
  file: string,
  state: "running" | "defined",
) => DomainSummary;

type Domains = HostReport["domains"];
type Hugepages = HostReport["hugepages"];

export function readDomains(
  fs: ProcFs,
  reader: DomainReader,
  memTotalKiB: number | undefined,
  huge: Hugepages,
): Domains {
  const dirs: Domains["dirs"] = [];
  const byName = new Map<string, DomainSummary>();
  for (const dir of DOMAIN_DIRS) {
    const l = fs.list(dir);
    if (!l.ok) {
      dirs.push({ dir, found: 0, reason: l.reason });
      continue;
    }
    const files = l.names.filter((n) => n.endsWith(".xml"));
    dirs.push({ dir, found: files.length, reason: null });
    const state = dir.startsWith("/run") ? "running" : "defined";
    for (const f of files) {
      const path = `${dir}/${f}`;
      const r = fs.read(path);
      if (!r.ok) continue;
      const d = reader(r.text, path, state);
      // the live XML of a running domain replaces its persistent definition
      if (state === "running" || !byName.has(d.name)) byName.set(d.name, d);
    }
  }
  const domains = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { dirs, domains, totals: domainTotals(domains, memTotalKiB, huge) };
}

/** The KiB of a domain's RAM backed by hugepages of each size. */
export function hugepageKiBBySize(d: DomainSummary): Map<number, number> {
  const out = new Map<number, number>();
  for (const h of d.hugepages) out.set(h.sizeKiB, (out.get(h.sizeKiB) ?? 0) + h.backedKiB);
  return out;
}

export function domainTotals(
  domains: DomainSummary[],
  memTotalKiB: number | undefined,
  huge: Hugepages,
): Domains["totals"] {
  let memoryKiB = 0;
  let currentMemoryKiB = 0;
  let balloonHeadroomKiB = 0;
  let unswappableKiB = 0;
  const need = new Map<number, { all: number; notRunning: number }>();
  for (const d of domains) {
    memoryKiB += d.memoryKiB;
    currentMemoryKiB += d.currentMemoryKiB;
    const huge = d.hugepages.length > 0;
    if (huge || d.locked) unswappableKiB += d.memoryKiB;
    if (d.balloon.model !== "none" && !huge && !d.locked) {
      balloonHeadroomKiB += Math.max(0, d.memoryKiB - d.currentMemoryKiB);
    }
    for (const [size, kib] of hugepageKiBBySize(d)) {
      const pages = Math.ceil(kib / size);
      const e = need.get(size) ?? { all: 0, notRunning: 0 };
      e.all += pages;
      if (d.state !== "running") e.notRunning += pages;
      need.set(size, e);
    }
  }
  const hugepageDemand = [...need.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([sizeKiB, n]) => {
      const pool = huge.pools.find((p) => p.sizeKiB === sizeKiB);
      return {
        sizeKiB,
        pagesNeeded: n.all,
        poolNr: pool?.nr ?? 0,
        poolFree: pool?.free ?? 0,
        pagesNeededNotRunning: n.notRunning,
        mounted: huge.mounts.some((m) => m.pageSizeKiB === sizeKiB),
      };
    });
  return {
    memoryKiB,
    currentMemoryKiB,
    overcommitRatio: memTotalKiB ? currentMemoryKiB / memTotalKiB : null,
    hugepageDemand,
    balloonHeadroomKiB,
    unswappableKiB,
  };
}
