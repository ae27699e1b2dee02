/**
 * The adapter from src/libvirt's domain model to the report's domain summary: which guest RAM
 * each huge page size backs (libvirt: a <page> with a nodeset backs those guest NUMA cells, the
 * one without a nodeset backs every other cell; a page without a size is the host's default huge
 * page size — virDomainHugepagesParseXML / qemuBuildMemoryBackendProps), and the host NUMA nodes
 * a strict <numatune><memory> binds it to.
 */
import { parseDomain } from "../libvirt/parse.js";
import type { DomainReader } from "./domains.js";
import type { DomainSummary } from "./schema.js";

export function libvirtDomainReader(defaultHugeKiB: number | null): DomainReader {
  return (xml, file, state): DomainSummary => {
    const { domain: d, problems } = parseDomain(xml, file);
    const base =
      file
        .split("/")
        .pop()
        ?.replace(/\.xml$/, "") ?? file;
    const hugepages: DomainSummary["hugepages"] = [];
    const pages = d.memoryBacking.hugepages ?? [];
    const devicesKiB = d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0);
    const initialKiB = Math.max(0, d.memoryKiB - devicesKiB);
    if (pages.length > 0) {
      const sizeOf = (s: number | undefined) => s ?? defaultHugeKiB ?? 2048;
      const master = pages.find((p) => p.nodeset === undefined);
      const backed = new Map<(typeof pages)[number], number>();
      if (d.numa.length === 0) {
        const p = master ?? pages.find((x) => x.nodeset?.includes(0));
        if (p) backed.set(p, initialKiB);
      } else {
        for (const cell of d.numa) {
          const p = pages.find((x) => x.nodeset?.includes(cell.id)) ?? master;
          if (p) backed.set(p, (backed.get(p) ?? 0) + cell.memoryKiB);
        }
      }
      for (const p of pages) {
        hugepages.push({
          sizeKiB: sizeOf(p.sizeKiB),
          nodeset: p.nodeset ? p.nodeset.join(",") : null,
          backedKiB: backed.get(p) ?? 0,
        });
      }
    }
    const mem = d.numatune?.memory;
    const hostNodes =
      mem &&
      mem.placement === "static" &&
      mem.nodeset &&
      (mem.mode === "strict" || mem.mode === "restrictive")
        ? mem.nodeset
        : null;
    const b = d.memballoon;
    return {
      name: d.name ?? base,
      file,
      state,
      memoryKiB: d.memoryKiB,
      currentMemoryKiB: d.currentMemoryKiB,
      maxMemoryKiB: d.maxMemory?.kib ?? null,
      hugepages,
      hostNodes,
      locked: d.memoryBacking.locked,
      nosharepages: d.memoryBacking.nosharepages,
      source: d.memoryBacking.source ?? "anonymous",
      access: d.memoryBacking.access ?? "private",
      balloon: {
        model: b.model,
        autodeflate: b.autodeflate ?? false,
        freePageReporting: b.freePageReporting ?? false,
        statsPeriod: b.statsPeriod ?? null,
      },
      problems: problems
        .filter((p) => p.severity === "error")
        .map((p) => `${p.line ?? "?"}:${p.column ?? "?"}: ${p.message}`),
    };
  };
}
