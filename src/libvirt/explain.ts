/**
 * explainDomain: a domain's memory configuration in plain words, one short section per question
 * (what the guest sees, what the balloon may take back, what backs guest RAM, swap, KSM, hotplug,
 * NUMA, limits).
 *
 * How it works: every sentence is derived from the model (model.ts) by a rule whose source is
 * named here, so the text and the model cannot disagree:
 * - boot RAM: virDomainDefGetMemoryInitial (NUMA total, else memory minus devices) plus dimms and
 *   the plugged part (<requested>) of virtio-mem; nvdimm/virtio-pmem are persistent memory, not RAM.
 * - backing: qemuBuildMemoryBackendProps (src/qemu/qemu_command.c) picks memory-backend-file on
 *   hugetlbfs for <hugepages>, memory-backend-memfd for source memfd, memory-backend-file for
 *   source file, else memory-backend-ram (anonymous); access shared maps MAP_SHARED.
 * - swap: hugetlbfs pages are never swapped (Documentation/admin-guide/mm/hugetlbpage.rst);
 *   <locked/> mlocks guest RAM (-overcommit mem-lock=on); shared file pages are written back to
 *   their file instead of swap.
 * - KSM: QEMU marks guest RAM MADV_MERGEABLE unless libvirt passes mem-merge=off for
 *   <nosharepages/>; ksmd merges only private anonymous pages (mm/ksm.c), never hugetlbfs.
 * - balloon: virtio-balloon inflation frees 4 KiB guest pages; QEMU discards host memory only
 *   for whole host pages (hw/virtio/virtio-balloon.c), so with huge pages almost nothing returns
 *   to the host — the seed's "huge pages: no balloon reclaim".
 * Pure; returns data, the CLI prints it.
 */

import { qemuAlignMemorySizes } from "./align.js";
import type { Domain } from "./model.js";
import { byVerdict, ksmVerdict, ramParts, swapVerdict } from "./ramparts.js";
import { initialMemoryKiB } from "./rules-devices.js";
import { formatBitmap, kibWords } from "./scaled.js";

export interface ExplainSection {
  /** short label: "boot", "balloon", "backing", ... */
  topic: string;
  text: string;
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;

/** hugetlbfs page size in words; undefined = the host's default huge page size */
const pageWords = (kib: number | undefined) =>
  kib === undefined ? "default-size (usually 2 MiB)" : kibWords(kib);

export function bootRamKiB(d: Domain): number {
  const dimms = d.memoryDevices
    .filter((m) => m.model === "dimm")
    .reduce((s, m) => s + m.sizeKiB, 0);
  const vmem = d.memoryDevices
    .filter((m) => m.model === "virtio-mem")
    .reduce((s, m) => s + (m.requestedKiB ?? 0), 0);
  return Math.max(0, initialMemoryKiB(d)) + dimms + vmem;
}

/** Is guest RAM backed by hugetlbfs (any page entry bigger than 4 KiB)? */
export function usesHugetlb(d: Domain): boolean {
  return (d.memoryBacking.hugepages ?? []).some((p) => p.sizeKiB === undefined || p.sizeKiB > 4);
}

export function explainDomain(d: Domain): ExplainSection[] {
  const out: ExplainSection[] = [];
  const say = (topic: string, text: string) => out.push({ topic, text });
  const mb = d.memoryBacking;
  const boot = bootRamKiB(d);
  const devs = d.memoryDevices;

  say(
    "guest",
    `${d.name ?? "(unnamed)"}: ${d.type ?? "?"} domain, ${d.arch ?? "default"} guest, ${plural(d.vcpus.max, "vCPU")}` +
      (d.vcpus.current !== d.vcpus.max ? ` (${d.vcpus.current} online at boot)` : ""),
  );
  const exact = (kib: number) => `${kibWords(kib)}${kib % 1024 ? ` (${kib} KiB)` : ""}`;
  let bootText = `The guest sees ${exact(boot)} of RAM at boot`;
  const parts: string[] = [`${kibWords(Math.max(0, initialMemoryKiB(d)))} base memory`];
  for (const m of devs) {
    if (m.model === "dimm") parts.push(`a ${kibWords(m.sizeKiB)} dimm`);
    if (m.model === "virtio-mem")
      parts.push(
        `${kibWords(m.requestedKiB ?? 0)} plugged of a ${kibWords(m.sizeKiB)} virtio-mem device`,
      );
  }
  if (parts.length > 1) bootText += ` (${parts.join(" + ")})`;
  bootText += `; <memory> is ${kibWords(d.memoryKiB)}${d.memoryFromNuma ? " (no <memory>: libvirt adds up the NUMA cells)" : ""}.`;
  const q = qemuAlignMemorySizes(d);
  const init = Math.max(0, initialMemoryKiB(d));
  if (q.initialKiB !== init && !q.overflow) {
    bootText += ` QEMU is given ${q.initialKiB} KiB of base memory: libvirt rounds it up to ${kibWords(q.alignKiB)} steps.`;
  }
  const pmem = devs.filter((m) => m.model === "nvdimm" || m.model === "virtio-pmem");
  if (pmem.length)
    bootText += ` Plus ${kibWords(pmem.reduce((s, m) => s + m.sizeKiB, 0))} of persistent memory (${pmem.map((m) => m.model).join(", ")}).`;
  say("boot", bootText);

  const b = d.memballoon;
  if (b.model === "none") {
    say(
      "balloon",
      "No balloon device: the host cannot take memory back from the running guest" +
        (d.currentMemoryKiB < d.memoryKiB
          ? `, and currentMemory (${kibWords(d.currentMemoryKiB)}) has no effect.`
          : "."),
    );
  } else {
    const lend = d.memoryKiB - d.currentMemoryKiB;
    let t = `${b.model}${b.implicit ? " (added by libvirt: no <memballoon> in the file)" : ""}. `;
    t +=
      lend > 0
        ? `It starts inflated by ${kibWords(lend)}, so the guest can use ${kibWords(d.currentMemoryKiB)} (currentMemory). `
        : "It starts deflated (currentMemory = memory). ";
    t += `virsh setmem moves that target anywhere up to memory (${kibWords(d.memoryKiB)}); the guest hands what lies above it back to the host.`;
    if (b.autodeflate)
      t += " autodeflate: the guest deflates the balloon itself when it runs out of memory.";
    if (b.freePageReporting)
      t +=
        " freePageReporting: the guest reports free pages so the host can reclaim them without a balloon target.";
    if (b.statsPeriod) t += ` Memory statistics every ${plural(b.statsPeriod, "second")}.`;
    const hugeParts = ramParts(d).filter((p) => p.huge);
    if (hugeParts.length) {
      const all = hugeParts.length === ramParts(d).length;
      const which = all
        ? "guest RAM is"
        : `guest node${hugeParts.length > 1 ? "s" : ""} ${formatBitmap(hugeParts.flatMap((p) => p.nodes ?? []))} ${hugeParts.length > 1 ? "are" : "is"}`;
      t += ` But ${which} on huge pages: the host gets memory back only when the balloon covers whole huge pages, so in practice no balloon reclaim${all ? "" : " there"}.`;
    }
    say("balloon", t);
  }

  say("backing", backingText(d));
  const perCell = d.numa.filter((c) => c.memAccess);
  if (perCell.length)
    say(
      "backing",
      `Per-cell access: ${perCell.map((c) => `cell ${c.id} ${c.memAccess}`).join(", ")}.`,
    );
  if (mb.allocation === "immediate")
    say(
      "allocation",
      `All guest RAM is allocated when QEMU starts (prealloc${mb.allocationThreads ? `, ${plural(mb.allocationThreads, "thread")}` : ""}).`,
    );
  if (mb.discard || d.numa.some((c) => c.discard))
    say(
      "discard",
      "Memory is discarded (given back to the host) when QEMU frees it, e.g. after hot-unplug or shutdown.",
    );

  const ram = ramParts(d);
  say(
    "swap",
    byVerdict(ram, (p) => swapVerdict(d, p)),
  );
  say(
    "KSM",
    byVerdict(ram, (p) => ksmVerdict(d, p)),
  );

  if (d.maxMemory && d.maxMemory.kib > 0) {
    const used = devs.filter((m) => m.model === "dimm" || m.model === "nvdimm").length;
    const room =
      d.maxMemory.kib - Math.max(0, initialMemoryKiB(d)) - devs.reduce((s, m) => s + m.sizeKiB, 0);
    const free = d.maxMemory.slots - used;
    const more = kibWords(Math.max(0, room));
    say(
      "hotplug",
      free > 0
        ? `maxMemory ${kibWords(d.maxMemory.kib)} with ${plural(d.maxMemory.slots, "slot")} (${used} used): up to ${more} more can be hot-plugged, as dimms (one slot each) or virtio-mem.`
        : `maxMemory ${kibWords(d.maxMemory.kib)}, no free dimm slot: up to ${more} more only through virtio-mem (or virtio-pmem) devices.`,
    );
  } else say("hotplug", "No <maxMemory>: memory cannot be hot-plugged.");
  for (const m of devs.filter((x) => x.model === "virtio-mem")) {
    say(
      "hotplug",
      `virtio-mem on node ${m.node ?? "-"}: resizable 0..${kibWords(m.sizeKiB)} in ${kibWords(m.blockKiB ?? 0)} blocks, ${kibWords(m.requestedKiB ?? 0)} requested.`,
    );
  }

  if (d.numa.length) {
    say(
      "NUMA",
      d.numa
        .map(
          (c) =>
            `cell ${c.id}: ${kibWords(c.memoryKiB)}${c.cpus ? `, vCPUs ${formatBitmap(c.cpus)}` : ""}`,
        )
        .join("; "),
    );
  }
  const nt = d.numatune;
  if (nt?.memory) {
    say(
      "numatune",
      nt.memory.placement === "auto"
        ? `Guest memory placed on host nodes numad advises (${nt.memory.mode}).`
        : `Guest memory ${nt.memory.mode} on host nodes ${formatBitmap(nt.memory.nodeset ?? [])}.`,
    );
  }
  for (const m of nt?.memnodes ?? [])
    say("numatune", `Guest cell ${m.cellid}: ${m.mode} on host nodes ${formatBitmap(m.nodeset)}.`);

  const lim = (v: number | "unlimited" | undefined) =>
    v === undefined ? undefined : v === "unlimited" ? "unlimited" : kibWords(v);
  const mt = d.memtune;
  const lims = [
    ["hard_limit", lim(mt.hardLimit)],
    ["soft_limit", lim(mt.softLimit)],
    ["swap_hard_limit", lim(mt.swapHardLimit)],
    ["min_guarantee", lim(mt.minGuarantee)],
  ].filter(([, v]) => v !== undefined);
  if (lims.length)
    say(
      "memtune",
      `cgroup limits on the QEMU process: ${lims.map(([k, v]) => `${k} ${v}`).join(", ")}.`,
    );
  return out;
}

function backingText(d: Domain): string {
  const mb = d.memoryBacking;
  const shared = mb.access === "shared" ? "shared (MAP_SHARED)" : "private";
  if (usesHugetlb(d)) {
    const pages = mb.hugepages ?? [];
    const claimed = new Set(pages.flatMap((p) => p.nodeset ?? []));
    const bits = pages.map((p) => {
      if (!p.nodeset) {
        const rest = d.numa.filter((c) => !claimed.has(c.id));
        return `${pageWords(p.sizeKiB)} pages for ${d.numa.length === 0 ? "all guest RAM" : rest.length ? `guest node${rest.length > 1 ? "s" : ""} ${formatBitmap(rest.map((c) => c.id))}` : "no remaining node"}`;
      }
      return `${pageWords(p.sizeKiB)} pages for guest node${p.nodeset.length > 1 ? "s" : ""} ${formatBitmap(p.nodeset)}`;
    });
    const plain = ramParts(d).filter((p) => !p.huge && p.nodes);
    if (plain.length) {
      const n = plain.flatMap((p) => p.nodes ?? []);
      bits.push(
        `guest node${n.length > 1 ? "s" : ""} ${formatBitmap(n)} on ordinary 4 KiB pages (no <page> covers ${n.length > 1 ? "them" : "it"})`,
      );
    }
    const src = mb.source === "memfd" ? "memfd with huge pages" : "hugetlbfs files";
    return `Huge pages from the host's pool (${src}): ${bits.join("; ")}; ${shared}. Reserved up front from nr_hugepages, not THP.`;
  }
  if (mb.hugepages?.length)
    return `Pages of the system page size (4 KiB): <hugepages> asks for ${kibWords(4)} pages, i.e. ordinary memory; ${shared}.`;
  if (mb.source === "memfd")
    return `memfd (shmem) memory, 4 KiB pages (THP only if shmem_enabled allows); ${shared}.`;
  if (mb.source === "file")
    return `A file per guest RAM block (memory_backing_dir in qemu.conf), 4 KiB pages; ${shared}.`;
  return `Anonymous host memory, 4 KiB pages, THP-eligible (transparent huge pages when /sys/kernel/mm/transparent_hugepage/enabled allows); ${shared}.`;
}
