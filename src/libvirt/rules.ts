/**
 * libvirt's semantic memory rules: what a schema-valid domain must still satisfy.
 *
 * How it works: each rule is a check over the parsed model (model.ts) that libvirt applies after
 * parsing, named after the libvirt function that applies it; a violation becomes a problem at the
 * element's line and column, with libvirt's own message. Errors are what libvirt refuses
 * (define or start fails); warnings are what libvirt silently changes (e.g. currentMemory above
 * memory is clamped) or only enforces later at runtime. Rules that need the host (hugetlbfs
 * mounts, host NUMA nodes) are in host.ts. Sources (libvirt 11.3.0):
 *   src/conf/domain_postparse.c  virDomainDefPostParseMemory
 *   src/conf/domain_validate.c   virDomainDefMemtuneValidate, virDomainMemoryDefValidate
 *   src/conf/numa_conf.c         virDomainNumaDefValidate
 *   src/qemu/qemu_domain.c       qemuDomainDefValidateMemoryHotplug, qemuDomainAlignMemorySizes
 *   shmem size check             (libvirt XML error; its exact function was not verified)
 *   src/hypervisor/domain_cgroup.c  hard_limit <= swap_hard_limit (runtime only)
 * Pure: no Node APIs.
 */

import { qemuAlignMemorySizes } from "./align.js";
import type { Domain, DomainProblem } from "./model.js";
import type { DomainSource } from "./reader.js";
import { locate } from "./reader.js";
import { checkHotplug, checkMemoryDevices, initialMemoryKiB } from "./rules-devices.js";
import { kibWords } from "./scaled.js";
import type { XmlElement } from "./xml.js";

export { memoryAlignmentKiB, qemuAlignMemorySizes } from "./align.js";
export { initialMemoryKiB } from "./rules-devices.js";

const PP = "virDomainDefPostParseMemory (domain_postparse.c)";
const MTV = "virDomainDefMemtuneValidate (domain_validate.c)";
const NV = "virDomainNumaDefValidate (numa_conf.c)";
const AL = "qemuDomainAlignMemorySizes (qemu_domain.c)";

export function checkRules(d: Domain, src: DomainSource): DomainProblem[] {
  const out: DomainProblem[] = [];
  const err = (
    el: XmlElement | undefined,
    a: string | undefined,
    code: string,
    message: string,
    rule: string,
  ) => out.push(locate(src.doc, el ?? src.root, a, { code, message, rule, severity: "error" }));
  const warn = (
    el: XmlElement | undefined,
    a: string | undefined,
    code: string,
    message: string,
    rule: string,
  ) => out.push(locate(src.doc, el ?? src.root, a, { code, message, rule, severity: "warning" }));

  // --- virDomainDefPostParseMemory
  const numaKiB = d.numa.reduce((s, c) => s + c.memoryKiB, 0);
  const devKiB = d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0);
  if (!d.memoryFromNuma && devKiB > d.memoryKiB) {
    err(
      src.memory,
      undefined,
      "memory.devices-exceed-total",
      "Total size of memory devices exceeds the total memory size",
      PP,
    );
  }
  if (initialMemoryKiB(d) <= 0 && devKiB <= d.memoryKiB) {
    err(
      src.memory,
      undefined,
      "memory.missing",
      "Memory size must be specified via <memory> or in the <numa> configuration",
      PP,
    );
  }
  const cur = d.currentMemoryWrittenKiB;
  if (cur !== undefined && cur > d.memoryKiB && d.memoryKiB > 0) {
    warn(
      src.currentMemory,
      undefined,
      "current.above-memory",
      `currentMemory ${kibWords(cur)} is above memory ${kibWords(d.memoryKiB)}; libvirt silently lowers it to ${d.memoryKiB} KiB`,
      PP,
    );
  }
  if (d.maxMemory && d.maxMemory.kib === 0 && d.maxMemory.slots > 0) {
    err(
      src.maxMemory,
      "slots",
      "max.slots-without-max",
      "maximum memory size must be specified when specifying number of memory slots",
      PP,
    );
  }
  if (d.maxMemory && d.maxMemory.kib > 0 && d.maxMemory.kib < d.memoryKiB) {
    err(
      src.maxMemory,
      undefined,
      "max.below-total",
      "maximum memory size must be equal or greater than the actual memory size",
      PP,
    );
  }
  if (numaKiB > 0 && !d.memoryFromNuma && d.memoryKiB !== numaKiB + devKiB) {
    warn(
      src.memory,
      undefined,
      "memory.numa-mismatch",
      `memory ${d.memoryKiB} KiB differs from the NUMA cells (${numaKiB} KiB) plus memory devices (${devKiB} KiB): the guest boots with the cells' memory, and a define with ABI update rewrites memory to ${numaKiB + devKiB} KiB`,
      PP,
    );
  }

  // --- virDomainDefMemtuneValidate: hugepage nodesets
  const pages = d.memoryBacking.hugepages ?? [];
  const lastNode = d.numa.length - 1;
  pages.forEach((p, i) => {
    const el = src.hugepages[i];
    for (let j = 0; j < i; j++) {
      const q = pages[j];
      if (p.nodeset && q.nodeset && p.nodeset.some((b) => q.nodeset!.includes(b))) {
        err(
          el,
          "nodeset",
          "hugepages.nodeset-intersect",
          `nodeset attribute of hugepages of sizes ${p.sizeKiB ?? 0} and ${q.sizeKiB ?? 0} intersect`,
          MTV,
        );
        return;
      }
      if (!p.nodeset && !q.nodeset) {
        err(
          el,
          undefined,
          "hugepages.two-masters",
          `two master hugepages detected: ${p.sizeKiB ?? 0} and ${q.sizeKiB ?? 0}`,
          MTV,
        );
        return;
      }
    }
    const missing = p.nodeset?.find((b) => b > lastNode);
    if (missing !== undefined)
      err(el, "nodeset", "hugepages.node-missing", `hugepages: node ${missing} not found`, MTV);
  });

  // --- virDomainNumaDefValidate: restrictive mode must match
  const nt = d.numatune;
  if (nt) {
    nt.memnodes.forEach((m, i) => {
      const memMode = nt.memory?.mode ?? "strict";
      if (memMode === "restrictive" && m.mode !== "restrictive") {
        err(
          src.memnodes[i],
          "mode",
          "numatune.restrictive",
          "'restrictive' mode is required in memnode element when mode is 'restrictive' in memory element",
          NV,
        );
      } else if (m.mode === "restrictive" && memMode !== "restrictive") {
        err(
          src.memnodes[i],
          "mode",
          "numatune.restrictive",
          "'restrictive' mode is required in memory element when mode is 'restrictive' in memnode element",
          NV,
        );
      }
    });
  }

  checkMemoryDevices(d, src, err);
  checkHotplug(d, src, err);

  // --- qemuDomainAlignMemorySizes: sizes are rounded up and must stay below 2^53 KiB
  const ov = qemuAlignMemorySizes(d).overflow;
  if (ov) {
    const el = {
      cell: src.cells[ov.index],
      initial: src.memory,
      max: src.maxMemory,
      module: src.memoryDevices[ov.index],
    }[ov.what];
    err(el, ov.what === "cell" ? "memory" : undefined, `align.${ov.what}-overflow`, ov.message, AL);
  }

  // --- shmem: ivshmem needs a power-of-two size of at least 1 MiB
  d.shmems.forEach((s, i) => {
    const b = s.sizeBytes;
    if (b !== undefined && b !== 0 && (b < 1024 * 1024 || (BigInt(b) & (BigInt(b) - 1n)) !== 0n)) {
      err(
        src.shmems[i],
        undefined,
        "shmem.size",
        "shmem size must be a power of 2 and at least 1 MiB (1024 KiB)",
        "shmem size check (libvirt reports it as an XML error; the exact function was not verified)",
      );
    }
  });

  // --- memtune: enforced by virDomainCgroupSetMemoryLimitParameters at runtime only
  const { hardLimit, swapHardLimit } = d.memtune;
  if (
    typeof hardLimit === "number" &&
    typeof swapHardLimit === "number" &&
    hardLimit > swapHardLimit
  ) {
    warn(
      undefined,
      undefined,
      "memtune.hard-above-swap",
      "memory hard_limit tunable value must be lower than or equal to swap_hard_limit (checked when the limits are applied, not at define)",
      "virDomainCgroupSetMemoryLimitParameters (domain_cgroup.c)",
    );
  }
  if (d.memballoon.model === "none" && d.memballoon.statsPeriod !== undefined) {
    warn(
      src.memballoon,
      undefined,
      "balloon.stats-none",
      "stats period is ignored: there is no balloon device (model='none')",
      "qemuDomainSetMemoryStatsPeriod (qemu_driver.c)",
    );
  }
  return out;
}
