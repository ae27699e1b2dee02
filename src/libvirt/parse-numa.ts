/**
 * Guest NUMA cells and <numatune>, read as libvirt reads them.
 *
 * How it works: virDomainNumaDefParseXML (src/conf/numa_conf.c) takes the cells of
 * ./cpu/numa[1]; a cell's id defaults to its position and must be below the number of cells, each
 * id once ("Exactly one 'cell' element per guest NUMA cell allowed..."), so the model is indexed
 * by id; memory is virDomainParseMemory of @memory/@unit; memAccess shared|private and discard
 * yes|no are enums; vCPU sets of two cells may not overlap. virDomainNumatuneParseXML then reads
 * <numatune><memory> (mode strict|preferred|interleave|restrictive, default strict; placement
 * static|auto, defaulting to static when a nodeset is given or the vCPU placement is static, see
 * virDomainNumatuneSet) and virDomainNumatuneNodeParseXML the <memnode> elements, which need guest
 * cells and an existing cellid. An empty nodeset (e.g. "0,^0") is "Invalid value of 'nodeset'".
 */
import type { Domain, NumaCell, NumaMode, Numatune } from "./model.js";
import type { DomainSource, Reader } from "./reader.js";
import { attr, child, childrenNamed, descend, type XmlElement } from "./xml.js";

const R_NUMA = "virDomainNumaDefParseXML (numa_conf.c)";
const R_NT = "virDomainNumatuneParseXML (numa_conf.c)";
const R_NODE = "virDomainNumatuneNodeParseXML (numa_conf.c)";
const MODES: readonly NumaMode[] = ["strict", "preferred", "interleave", "restrictive"];

export function parseNuma(r: Reader, root: XmlElement, d: Domain, src: DomainSource) {
  const numa = descend(root, "cpu", "numa");
  if (!numa) return;
  const cells = childrenNamed(numa, "cell");
  if (cells.length === 0) {
    r.report(numa, undefined, "numa.no-cells", "NUMA topology defined without NUMA cells", R_NUMA);
    return;
  }
  const byId: Array<{ cell: NumaCell; el: XmlElement } | undefined> = new Array(cells.length);
  cells.forEach((el, i) => {
    const id = attr(el, "id") === undefined ? i : r.uint(el, "id", R_NUMA);
    if (id === undefined) return;
    if (id >= cells.length) {
      r.report(
        el,
        "id",
        "numa.cell-ids",
        "Exactly one 'cell' element per guest NUMA cell allowed, non-contiguous ranges or ranges not starting from 0 are not allowed",
        R_NUMA,
      );
      return;
    }
    if (byId[id]) {
      r.report(
        el,
        "id",
        "numa.cell-duplicate",
        `Duplicate NUMA cell info for cell id '${id}'`,
        R_NUMA,
      );
      return;
    }
    const cpus = r.bitmap(el, "cpus", R_NUMA);
    let memoryKiB = 0;
    if (attr(el, "memory") === undefined) {
      r.report(
        el,
        undefined,
        "numa.cell-memory",
        "missing element or attribute './@memory'",
        R_NUMA,
      );
    } else memoryKiB = r.memory(el, "memory", "unit", R_NUMA) ?? 0;
    const memAccess = r.enumAttr(el, "memAccess", ["shared", "private"] as const, R_NUMA);
    const discard = r.onOff(el, "discard", R_NUMA, ["yes", "no"] as const);
    const cell: NumaCell = {
      id,
      cpus: cpus?.length ? cpus : undefined,
      memoryKiB,
      memAccess,
      discard,
    };
    for (const other of byId) {
      if (other?.cell.cpus && cell.cpus?.some((c) => other.cell.cpus!.includes(c))) {
        r.report(
          el,
          "cpus",
          "numa.cpus-overlap",
          `NUMA cells ${id} and ${other.cell.id} have overlapping vCPU ids`,
          R_NUMA,
        );
      }
    }
    byId[id] = { cell, el };
  });
  for (const e of byId) {
    if (!e) continue;
    d.numa.push(e.cell);
    src.cells.push(e.el);
  }
}

export function parseNumatune(
  r: Reader,
  root: XmlElement,
  d: Domain,
  src: DomainSource,
  placementStatic: boolean,
) {
  const nts = childrenNamed(root, "numatune");
  if (nts.length > 1)
    r.report(nts[1], undefined, "numatune.multiple", "only one numatune is supported", R_NT);
  const nt = nts[0];
  const mem = child(nt, "memory");
  const tune: Numatune = { memory: undefined, memnodes: [] };
  if (mem) {
    src.numatuneMemory = mem;
    const mode = r.enumAttr(mem, "mode", MODES, R_NT) ?? "strict";
    let placement = r.enumAttr(mem, "placement", ["static", "auto"] as const, R_NT);
    let nodeset = r.bitmap(mem, "nodeset", R_NT);
    if (nodeset && nodeset.length === 0) {
      r.report(
        mem,
        "nodeset",
        "nodeset.empty",
        `Invalid value of 'nodeset': ${attr(mem, "nodeset")}`,
        R_NT,
      );
      nodeset = undefined;
    }
    // virDomainNumatuneSet: default placement follows the nodeset / vcpu placement
    placement ??= nodeset || placementStatic ? "static" : "auto";
    if (placement === "static" && !nodeset && attr(mem, "nodeset") === undefined) {
      r.report(
        mem,
        undefined,
        "numatune.static-nodeset",
        "nodeset for NUMA memory tuning must be set if 'placement' is 'static'",
        "virDomainNumatuneSet (numa_conf.c)",
      );
    }
    if (placement === "auto") nodeset = undefined;
    tune.memory = { mode, placement, nodeset };
  }
  const memnodes = childrenNamed(nt, "memnode");
  if (memnodes.length > 0) {
    if (tune.memory?.placement === "auto") {
      r.report(
        memnodes[0],
        undefined,
        "numatune.memnode-auto",
        "Per-node binding is not compatible with automatic NUMA placement.",
        R_NODE,
      );
    } else if (d.numa.length === 0) {
      r.report(
        memnodes[0],
        undefined,
        "numatune.memnode-no-cells",
        "Element 'memnode' is invalid without any guest NUMA cells",
        R_NODE,
      );
    } else {
      for (const el of memnodes) {
        if (attr(el, "cellid") === undefined) {
          r.report(
            el,
            undefined,
            "numatune.cellid",
            "Missing required attribute 'cellid' in element 'memnode'",
            R_NODE,
          );
          continue;
        }
        const cellid = r.uint(el, "cellid", R_NODE);
        if (cellid === undefined) continue;
        if (cellid >= d.numa.length) {
          r.report(
            el,
            "cellid",
            "numatune.cellid",
            "Argument 'cellid' in memnode element must correspond to existing guest's NUMA cell",
            R_NODE,
          );
          continue;
        }
        if (tune.memnodes.some((m) => m.cellid === cellid)) {
          r.report(
            el,
            "cellid",
            "numatune.cellid",
            `Multiple memnode elements with cellid ${cellid}`,
            R_NODE,
          );
          continue;
        }
        const mode = r.enumAttr(el, "mode", MODES, R_NODE) ?? "strict";
        if (attr(el, "nodeset") === undefined) {
          r.report(
            el,
            undefined,
            "numatune.nodeset",
            "Missing required nodeset attribute in memnode element",
            R_NODE,
          );
          continue;
        }
        const nodeset = r.bitmap(el, "nodeset", R_NODE);
        if (!nodeset) continue;
        if (nodeset.length === 0) {
          r.report(
            el,
            "nodeset",
            "nodeset.empty",
            `Invalid value of 'nodeset': ${attr(el, "nodeset")}`,
            R_NODE,
          );
          continue;
        }
        tune.memnodes.push({ cellid, mode, nodeset });
        src.memnodes.push(el);
      }
    }
  }
  if (tune.memory || tune.memnodes.length) d.numatune = tune;
}
