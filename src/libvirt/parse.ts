/**
 * parseDomain: libvirt domain XML text -> the memory model (model.ts), plus every problem found.
 *
 * How it works: the text is parsed into a positioned element tree (xml.ts); each memory element
 * is then read the way libvirt's parser reads it, in the same order, with the same units and
 * defaults: virDomainDefParseMemory (memory, maxMemory+slots, currentMemory, memoryBacking,
 * memtune; domain_conf.c), virDomainHugepagesParseXML, virDomainNumaDefParseXML (cells must be
 * numbered 0..n-1, memAccess/discard enums; numa_conf.c), virDomainNumatuneParseXML and
 * virDomainNumatuneNodeParseXML (numa_conf.c), virDomainMemoryDefParseXML,
 * virDomainMemballoonDefParseXML and virDomainShmemDefParseXML (domain_conf.c). Then the
 * post-parse steps that change values: virDomainDefPostParseMemtune (a hugepage nodeset of just
 * "0" without guest NUMA is dropped) and virDomainDefPostParseMemory (no <memory>: total = NUMA
 * cells + memory devices; currentMemory 0 or above total -> total) from domain_postparse.c.
 * Where libvirt stops at its first error, this collects all of them and keeps going with the
 * value libvirt would have had. Messages use libvirt's own words, so they can be compared with
 * the `.err` files of libvirt's test suite. Pure: no Node APIs, never throws on input.
 */
import type { Domain, HugePage, MemLimit } from "./model.js";
import { parseDevices } from "./parse-devices.js";
import { parseNuma, parseNumatune } from "./parse-numa.js";
import { type DomainSource, type ParsedDomain, Reader } from "./reader.js";
import { MEMORY_UNLIMITED_KIB, parseMemoryLimitKiB, parseULL } from "./scaled.js";
import { attr, child, childrenNamed, descend, lineCol, parseXml } from "./xml.js";

export type { DomainSource, ParsedDomain } from "./reader.js";
export { locate } from "./reader.js";

const R_MEM = "virDomainDefParseMemory (domain_conf.c)";
const R_HP = "virDomainHugepagesParseXML (domain_conf.c)";

function emptyDomain(): Domain {
  return {
    type: undefined,
    name: undefined,
    uuid: undefined,
    arch: undefined,
    machine: undefined,
    memoryKiB: 0,
    memoryFromNuma: false,
    dumpCore: undefined,
    currentMemoryKiB: 0,
    currentMemoryWrittenKiB: undefined,
    maxMemory: undefined,
    memoryBacking: {
      hugepages: undefined,
      nosharepages: false,
      locked: false,
      source: undefined,
      access: undefined,
      allocation: undefined,
      allocationThreads: undefined,
      discard: false,
    },
    memtune: {
      hardLimit: undefined,
      softLimit: undefined,
      swapHardLimit: undefined,
      minGuarantee: undefined,
    },
    numatune: undefined,
    numa: [],
    memoryDevices: [],
    memballoon: {
      model: "none",
      autodeflate: undefined,
      freePageReporting: undefined,
      statsPeriod: undefined,
      implicit: true,
    },
    disks: [],
    shmems: [],
    vcpus: { max: 1, current: 1 },
  };
}

/**
 * Parse a domain XML document. `fileName` only labels problems for callers that print them;
 * problems carry path, line and column. Never throws on bad input.
 */
export function parseDomain(xmlText: string, fileName = "domain.xml"): ParsedDomain {
  void fileName;
  const doc = parseXml(xmlText);
  const r = new Reader(doc);
  const d = emptyDomain();
  const src: DomainSource = {
    doc,
    root: doc.root,
    hugepages: [],
    cells: [],
    memnodes: [],
    memoryDevices: [],
    shmems: [],
  };
  if (doc.error) {
    const pos = lineCol(doc, Math.max(0, Math.min(doc.error.offset, xmlText.length)));
    r.problems.push({
      code: "xml.malformed",
      path: "/",
      message: `malformed XML: ${doc.error.message}`,
      severity: "error",
      rule: "XML 1.0 well-formedness (virXMLParse)",
      ...pos,
    });
    return { domain: d, problems: r.problems, source: src };
  }
  const root = doc.root!;
  if (root.name !== "domain") {
    r.report(
      root,
      undefined,
      "xml.root",
      `unexpected root element <${root.name}>, expecting <domain>`,
      "virDomainDefParseNode (domain_conf.c)",
    );
    return { domain: d, problems: r.problems, source: src };
  }
  d.type = attr(root, "type");
  d.name = child(root, "name")?.text.trim();
  d.uuid = child(root, "uuid")?.text.trim();
  const osType = descend(root, "os", "type");
  d.arch = attr(osType, "arch");
  d.machine = attr(osType, "machine");

  // <memory>, <maxMemory>, <currentMemory> (virDomainDefParseMemory)
  src.memory = child(root, "memory");
  if (src.memory) {
    d.memoryKiB = r.memory(src.memory, undefined, "unit", R_MEM) ?? 0;
    d.dumpCore = r.onOff(src.memory, "dumpCore", R_MEM);
  }
  src.maxMemory = child(root, "maxMemory");
  if (src.maxMemory) {
    const kib = r.memory(src.maxMemory, undefined, "unit", R_MEM) ?? 0;
    const slotsText = attr(src.maxMemory, "slots");
    const slotsV = slotsText === undefined ? 0n : parseULL(slotsText);
    if (slotsV === undefined || slotsV > 0xffffffffn)
      r.report(
        src.maxMemory,
        "slots",
        "number.invalid",
        "Failed to parse memory slot count",
        R_MEM,
      );
    const slots = slotsV === undefined || slotsV > 0xffffffffn ? 0 : Number(slotsV);
    d.maxMemory = { kib, slots };
  }
  src.currentMemory = child(root, "currentMemory");
  if (src.currentMemory)
    d.currentMemoryWrittenKiB = r.memory(src.currentMemory, undefined, "unit", R_MEM);

  // <memoryBacking>
  const mb = child(root, "memoryBacking");
  src.memoryBacking = mb;
  if (mb) {
    const hp = child(mb, "hugepages");
    if (hp) {
      const pages = childrenNamed(hp, "page");
      const list: HugePage[] = [];
      if (pages.length === 0) {
        list.push({ sizeKiB: undefined, nodeset: undefined });
        src.hugepages.push(hp);
      }
      for (const p of pages) {
        let size = r.memory(p, "size", "unit", R_HP);
        if (attr(p, "size") === undefined)
          r.report(p, undefined, "hugepages.size", "missing hugepage size", R_HP);
        if (size === 0) {
          r.report(p, "size", "hugepages.size", "hugepage size can't be zero", R_HP);
          size = undefined;
        }
        let nodeset = r.bitmap(p, "nodeset", R_HP);
        if (nodeset && nodeset.length === 0) {
          r.report(
            p,
            "nodeset",
            "nodeset.empty",
            `Invalid value of 'nodeset': ${attr(p, "nodeset")}`,
            R_HP,
          );
          nodeset = undefined;
        }
        list.push({ sizeKiB: size, nodeset });
        src.hugepages.push(p);
      }
      d.memoryBacking.hugepages = list;
    }
    d.memoryBacking.nosharepages = child(mb, "nosharepages") !== undefined;
    d.memoryBacking.locked = child(mb, "locked") !== undefined;
    d.memoryBacking.discard = child(mb, "discard") !== undefined;
    // unknown values: VIR_ERR_CONFIG_UNSUPPORTED "unknown memoryBacking/<elem>/<attr> '<value>'"
    const backingEnum = <T extends string>(
      elName: string,
      attrName: string,
      allowed: readonly T[],
    ) => {
      const el = child(mb, elName);
      const v = attr(el, attrName);
      if (!el || v === undefined || v === "") return undefined;
      if ((allowed as readonly string[]).includes(v)) return v as T;
      r.report(
        el,
        attrName,
        "attr.invalid",
        `unknown memoryBacking/${elName}/${attrName} '${v}'`,
        R_MEM,
      );
      return undefined;
    };
    d.memoryBacking.source = backingEnum("source", "type", ["anonymous", "file", "memfd"] as const);
    d.memoryBacking.access = backingEnum("access", "mode", ["shared", "private"] as const);
    d.memoryBacking.allocation = backingEnum("allocation", "mode", [
      "immediate",
      "ondemand",
    ] as const);
    const al = child(mb, "allocation");
    const threads = attr(al, "threads");
    if (al && threads !== undefined) {
      const t = parseULL(threads);
      if (t === undefined || t > 0xffffffffn)
        r.report(
          al,
          "threads",
          "number.invalid",
          "Failed to parse memory allocation threads",
          R_MEM,
        );
      else d.memoryBacking.allocationThreads = Number(t);
    }
  }

  // <memtune> (virDomainParseMemoryLimit)
  const mt = child(root, "memtune");
  if (mt) {
    const lim = (name: string): MemLimit | undefined => {
      const el = child(mt, name);
      if (!el) return undefined;
      const v = parseMemoryLimitKiB(el.text, attr(el, "unit"), `./memtune/${name}`);
      if (!v.ok) {
        r.report(
          el,
          v.error.startsWith("unknown suffix") ? "unit" : undefined,
          "unit.invalid",
          v.error,
          "virDomainParseMemoryLimit (domain_conf.c)",
        );
        return undefined;
      }
      return v.value >= MEMORY_UNLIMITED_KIB ? "unlimited" : v.value;
    };
    d.memtune = {
      hardLimit: lim("hard_limit"),
      softLimit: lim("soft_limit"),
      swapHardLimit: lim("swap_hard_limit"),
      // min_guarantee is a plain virDomainParseMemory value: no "unlimited"
      minGuarantee: (() => {
        const el = child(mt, "min_guarantee");
        return el
          ? r.memory(el, undefined, "unit", "virDomainDefTunablesParse (domain_conf.c)")
          : undefined;
      })(),
    };
  }

  // <vcpu>
  const vcpu = child(root, "vcpu");
  if (vcpu) {
    const max = r.uint(vcpu, undefined, "virDomainVcpuParse (domain_conf.c)") ?? 1;
    const cur = r.uint(vcpu, "current", "virDomainVcpuParse (domain_conf.c)") ?? max;
    d.vcpus = { max, current: cur };
  }

  parseNuma(r, root, d, src);
  parseNumatune(r, root, d, src, attr(vcpu, "placement") !== "auto");
  parseDevices(r, root, d, src);

  // virDomainDefPostParseMemtune: nodeset "0" and nothing else, without guest NUMA -> no nodeset
  if (d.numa.length === 0) {
    for (const p of d.memoryBacking.hugepages ?? []) {
      if (p.nodeset?.every((b) => b === 0)) p.nodeset = undefined;
    }
  }
  // virDomainDefPostParseMemory: total from NUMA when <memory> is absent or 0
  const numaKiB = d.numa.reduce((s, c) => s + c.memoryKiB, 0);
  const devKiB = d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0);
  if (d.memoryKiB === 0 && numaKiB > 0) {
    d.memoryKiB = numaKiB + devKiB;
    d.memoryFromNuma = true;
  }
  const cur = d.currentMemoryWrittenKiB ?? 0;
  d.currentMemoryKiB = cur === 0 || cur > d.memoryKiB ? d.memoryKiB : cur;
  return { domain: d, problems: r.problems, source: src };
}
