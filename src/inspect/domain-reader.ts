/**
 * The adapter from src/libvirt's domain model to the report's domain summary: which guest RAM
 * each huge page size backs (src/libvirt ramParts: a <page> with a nodeset backs those guest NUMA
 * cells, the one without a nodeset every other cell; a page without a size is the host's default
 * huge page size), and the host NUMA nodes a strict <numatune><memory> binds it to.
 */
import { parseDomain, ramParts } from "../libvirt/index.js";
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
    // what backs each guest node's RAM, as libvirt decides it (src/libvirt ramParts)
    const bySize = new Map<number, { nodes: number[]; kib: number; all: boolean }>();
    for (const part of ramParts(d)) {
      if (!part.huge) continue;
      const size = part.huge.sizeKiB ?? defaultHugeKiB ?? 2048;
      const e = bySize.get(size) ?? { nodes: [], kib: 0, all: false };
      e.kib += part.kib;
      if (part.nodes) e.nodes.push(...part.nodes);
      else e.all = true;
      bySize.set(size, e);
    }
    const hugepages: DomainSummary["hugepages"] = [...bySize.entries()].map(([sizeKiB, e]) => ({
      sizeKiB,
      nodeset: e.all ? null : e.nodes.join(","),
      backedKiB: e.kib,
    }));
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
