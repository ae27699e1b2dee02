/**
 * editDomain: change a domain's memory settings and nothing else.
 *
 * How it works: each requested change becomes splices of the original text (splice.ts) at the
 * positions of the elements it touches, found through the parser's element tree (parse.ts):
 * sizes rewrite an element's text (keeping its unit when the new size is exact in it, else
 * writing KiB as libvirt does), switches add or remove an empty element, and missing containers
 * (<memoryBacking>, <maxMemory>, <memballoon>) are inserted where libvirt would print them, in the
 * document's own indentation, quotes and line ending. Everything outside the touched spans —
 * comments, order, whitespace, namespaces, unknown elements — is untouched, byte for byte. The
 * result is then parsed again and each requested value is read back from the model; a mismatch is
 * reported as a problem (so an edit that did not do what was asked is never written). Whether the
 * result is a valid domain is the caller's second check (validate.ts). Pure.
 * Element order follows libvirt's formatter, virDomainDefFormatInternal (domain_conf.c):
 * maxMemory, memory, currentMemory, blkiotune, memtune, memoryBacking, vcpu.
 */
import type { Domain, DomainProblem } from "./model.js";
import { parseDomain } from "./parse.js";
import { locate } from "./reader.js";
import { expressKiB, formatBitmap } from "./scaled.js";
import {
  appendChild,
  applySplices,
  childIndent,
  detectStyle,
  insertAfter,
  insertBefore,
  prependChild,
  removeElement,
  type Splice,
  type Style,
  setAttr,
  setText,
  tag,
} from "./splice.js";
import { attr, child, type XmlDoc, type XmlElement } from "./xml.js";

export interface EditRequest {
  memoryKiB?: number;
  currentKiB?: number;
  max?: { kib: number; slots?: number };
  hugepages?: { sizeKiB: number; nodeset?: number[] } | "none";
  balloon?: { model: "virtio"; autodeflate?: boolean; statsPeriod?: number } | "none";
  nosharepages?: boolean;
  locked?: boolean;
}

export interface EditResult {
  text: string;
  /** one line per change made, in plain words */
  changes: string[];
  /** problems that stop the edit (unparseable input, a change that did not take) */
  problems: DomainProblem[];
}

const fail = (message: string): DomainProblem => ({
  code: "edit.failed",
  path: "/domain",
  message,
  severity: "error",
  rule: "kvmem domain edit",
});

function sizeSplices(doc: XmlDoc, el: XmlElement, kib: number, st: Style): Splice[] {
  const unit = attr(el, "unit");
  const e = expressKiB(kib, unit ?? "KiB");
  const out = [setText(doc, el, e.value)];
  if (unit !== undefined && unit !== e.unit) out.push(setAttr(doc, el, "unit", e.unit, st));
  if (unit === undefined && e.unit !== "KiB") out.push(setAttr(doc, el, "unit", e.unit, st));
  return out;
}

/** The element after which a top-level memory element goes (libvirt's format order). */
function anchorAfter(root: XmlElement, names: string[]): XmlElement | undefined {
  for (const n of names) {
    const e = child(root, n);
    if (e) return e;
  }
  return undefined;
}

function insertTopLevel(
  doc: XmlDoc,
  root: XmlElement,
  markup: string,
  after: string[],
  st: Style,
): Splice {
  const a = anchorAfter(root, after);
  return a ? insertAfter(doc, a, markup, st) : prependChild(doc, root, markup, st);
}

export function editDomain(xmlText: string, req: EditRequest): EditResult {
  const parsed = parseDomain(xmlText);
  const { doc, root } = parsed.source;
  if (!root || parsed.problems.some((p) => p.code === "xml.malformed" || p.code === "xml.root")) {
    return {
      text: xmlText,
      changes: [],
      problems: parsed.problems.filter((p) => p.severity === "error"),
    };
  }
  if (req.memoryKiB !== undefined && parsed.domain.numa.length > 0) {
    // virsh setmaxmem --config refuses the same way: the cells decide the boot memory
    const p = locate(doc, parsed.source.cells[0] ?? root, undefined, {
      ...fail(
        "initial memory size of a domain with NUMA nodes cannot be modified with this API; change the memory of the <cpu><numa><cell> elements instead",
      ),
      rule: "qemuDomainSetMemoryFlags (qemu_driver.c)",
    });
    return { text: xmlText, changes: [], problems: [p] };
  }
  const memoryAfter = req.memoryKiB ?? parsed.domain.memoryKiB;
  if (req.currentKiB !== undefined && req.currentKiB > memoryAfter) {
    // virsh setmem --config refuses this; in the XML libvirt would silently lower it
    const p = locate(doc, child(root, "memory") ?? root, undefined, {
      ...fail(
        `cannot set memory higher than max memory (currentMemory ${req.currentKiB} KiB > memory ${memoryAfter} KiB)`,
      ),
      rule: "qemuDomainSetMemoryFlags (qemu_driver.c)",
    });
    return { text: xmlText, changes: [], problems: [p] };
  }
  const st = detectStyle(doc);
  const sp: Splice[] = [];
  const changes: string[] = [];
  const kibTag = (name: string, kib: number, extra: Array<[string, string]> = []) =>
    `${tag(name, [...extra, ["unit", "KiB"]], st, false)}${kib}</${name}>`;
  const before = parsed.domain;

  // maxMemory first: libvirt prints maxMemory, memory, currentMemory, and insertions at one
  // offset keep their order
  if (req.max) {
    const el = child(root, "maxMemory");
    const slots = req.max.slots;
    if (el) {
      sp.push(...sizeSplices(doc, el, req.max.kib, st));
      if (slots !== undefined) sp.push(setAttr(doc, el, "slots", String(slots), st));
    } else {
      const markup = kibTag(
        "maxMemory",
        req.max.kib,
        slots !== undefined ? [["slots", String(slots)]] : [],
      );
      const mem = child(root, "memory");
      sp.push(
        mem
          ? insertBefore(doc, mem, markup, st)
          : insertTopLevel(doc, root, markup, ["uuid", "name"], st),
      );
    }
    changes.push(
      `maxMemory: ${before.maxMemory ? `${before.maxMemory.kib} KiB, ${before.maxMemory.slots} slots` : "none"} -> ${req.max.kib} KiB, ${slots ?? before.maxMemory?.slots ?? 0} slots`,
    );
  }

  if (req.memoryKiB !== undefined) {
    const el = child(root, "memory");
    if (el) sp.push(...sizeSplices(doc, el, req.memoryKiB, st));
    else
      sp.push(
        insertTopLevel(
          doc,
          root,
          kibTag("memory", req.memoryKiB),
          ["maxMemory", "uuid", "name"],
          st,
        ),
      );
    changes.push(`memory: ${before.memoryKiB} KiB -> ${req.memoryKiB} KiB`);
  }
  if (req.currentKiB !== undefined) {
    const el = child(root, "currentMemory");
    if (el) sp.push(...sizeSplices(doc, el, req.currentKiB, st));
    else
      sp.push(
        insertTopLevel(
          doc,
          root,
          kibTag("currentMemory", req.currentKiB),
          ["memory", "maxMemory", "uuid", "name"],
          st,
        ),
      );
    changes.push(`currentMemory: ${before.currentMemoryKiB} KiB -> ${req.currentKiB} KiB`);
  }
  // <memoryBacking> children: one insertion point for all new children
  const mb = child(root, "memoryBacking");
  const newBacking: string[] = [];
  const backingChanges: Splice[] = [];
  if (req.hugepages !== undefined) {
    const hp = child(mb, "hugepages");
    if (req.hugepages === "none") {
      if (hp) backingChanges.push(removeElement(doc, hp));
      changes.push(`hugepages: ${hp ? "removed" : "none already"}`);
    } else {
      const pa: Array<[string, string]> = [
        ["size", String(req.hugepages.sizeKiB)],
        ["unit", "KiB"],
      ];
      if (req.hugepages.nodeset) pa.push(["nodeset", formatBitmap(req.hugepages.nodeset)]);
      const page = tag("page", pa, st, true);
      if (hp) {
        const hInd = indentOfOr(doc, hp);
        const inner = `${st.nl}${hInd}${st.unit}${page}${st.nl}${hInd}`;
        backingChanges.push(
          hp.selfClosing
            ? {
                start: hp.start,
                end: hp.end,
                text: `${doc.text.slice(hp.start, hp.end).replace(/\s*\/>$/, ">")}${inner}</hugepages>`,
              }
            : { start: hp.openEnd, end: hp.closeStart, text: inner },
        );
      } else
        newBacking.push(`<hugepages>${st.nl}@@IND@@${st.unit}${page}${st.nl}@@IND@@</hugepages>`);
      changes.push(
        `hugepages: ${req.hugepages.sizeKiB} KiB pages${req.hugepages.nodeset ? ` for guest NUMA nodes ${formatBitmap(req.hugepages.nodeset)}` : ""}`,
      );
    }
  }
  for (const [name, want] of [
    ["nosharepages", req.nosharepages],
    ["locked", req.locked],
  ] as const) {
    if (want === undefined) continue;
    const el = child(mb, name);
    if (want && !el) newBacking.push(tag(name, [], st, true));
    if (!want && el) backingChanges.push(removeElement(doc, el));
    changes.push(`${name}: ${want ? "on" : "off"}`);
  }
  if (newBacking.length) {
    if (mb) {
      // one splice for all new children (a self-closing <memoryBacking/> is rewritten once)
      const cInd = mb.children.length ? childIndent(doc, mb, st) : indentOfOr(doc, mb) + st.unit;
      const markup = newBacking.map((m) => m.replaceAll("@@IND@@", cInd)).join(`${st.nl}${cInd}`);
      backingChanges.push(appendChild(doc, mb, markup, st));
    } else {
      const ind = indentOfOr(doc, child(root, "memory") ?? root.children[0] ?? root);
      const inner = newBacking
        .map((m) => `${st.nl}${ind}${st.unit}${m.replaceAll("@@IND@@", ind + st.unit)}`)
        .join("");
      sp.push(
        insertTopLevel(
          doc,
          root,
          `<memoryBacking>${inner}${st.nl}${ind}</memoryBacking>`,
          ["memtune", "blkiotune", "currentMemory", "memory", "maxMemory", "uuid", "name"],
          st,
        ),
      );
    }
  }
  // removing the last child of <memoryBacking> removes the element (unless it holds a comment)
  if (mb && backingChanges.length && newBacking.length === 0) {
    const removed = backingChanges.filter((s) => s.text === "").length;
    const hasComment = doc.text.slice(mb.openEnd, mb.closeStart).includes("<!--");
    if (removed === mb.children.length && !hasComment)
      backingChanges.splice(0, backingChanges.length, removeElement(doc, mb));
  }
  sp.push(...mergeAppends(backingChanges));

  if (req.balloon !== undefined) sp.push(...balloonSplices(doc, root, req.balloon, st, changes));

  const text = applySplices(xmlText, sp);
  const problems = verify(parseDomain(text).domain, req);
  return { text, changes, problems };
}

function indentOfOr(doc: XmlDoc, el: XmlElement): string {
  const t = doc.text;
  const ls = t.lastIndexOf("\n", el.start - 1) + 1;
  const b = t.slice(ls, el.start);
  return /^[ \t]*$/.test(b) ? b : "";
}

/** Several appends at one offset become one splice, in order. */
function mergeAppends(s: Splice[]): Splice[] {
  const out: Splice[] = [];
  for (const x of s) {
    const same = out.find((o) => o.start === x.start && o.end === x.end && o.start === o.end);
    if (same && x.start === x.end) same.text += x.text;
    else out.push({ ...x });
  }
  return out;
}

function balloonSplices(
  doc: XmlDoc,
  root: XmlElement,
  want: NonNullable<EditRequest["balloon"]>,
  st: Style,
  changes: string[],
): Splice[] {
  const devices = child(root, "devices");
  const el = child(devices, "memballoon");
  if (want === "none") {
    changes.push("memballoon: none");
    const markup = tag("memballoon", [["model", "none"]], st, true);
    if (el) return [{ start: el.start, end: el.end, text: markup }];
    return devices ? [appendChild(doc, devices, markup, st)] : [];
  }
  const words = [`model virtio`];
  if (want.autodeflate !== undefined) words.push(`autodeflate ${want.autodeflate ? "on" : "off"}`);
  if (want.statsPeriod !== undefined) words.push(`stats period ${want.statsPeriod} s`);
  changes.push(`memballoon: ${words.join(", ")}`);
  if (!el) {
    const a: Array<[string, string]> = [["model", "virtio"]];
    if (want.autodeflate !== undefined) a.push(["autodeflate", want.autodeflate ? "on" : "off"]);
    const dInd = devices ? indentOfOr(doc, devices) : childIndent(doc, root, st);
    const bInd = devices?.children.length ? childIndent(doc, devices, st) : dInd + st.unit;
    const stats = tag("stats", [["period", String(want.statsPeriod)]], st, true);
    const markup =
      want.statsPeriod === undefined
        ? tag("memballoon", a, st, true)
        : `${tag("memballoon", a, st, false)}${st.nl}${bInd}${st.unit}${stats}${st.nl}${bInd}</memballoon>`;
    if (!devices)
      return [
        appendChild(doc, root, `<devices>${st.nl}${bInd}${markup}${st.nl}${dInd}</devices>`, st),
      ];
    return [appendChild(doc, devices, markup, st)];
  }
  const out: Splice[] = [];
  if (attr(el, "model") !== "virtio") out.push(setAttr(doc, el, "model", "virtio", st));
  if (want.autodeflate !== undefined)
    out.push(setAttr(doc, el, "autodeflate", want.autodeflate ? "on" : "off", st));
  if (want.statsPeriod !== undefined) {
    const stats = child(el, "stats");
    if (stats) out.push(setAttr(doc, stats, "period", String(want.statsPeriod), st));
    else if (el.selfClosing) {
      // rebuild only the start tag's closing: <memballoon .../> -> <memballoon ...> <stats/> </memballoon>
      const ind = indentOfOr(doc, el);
      const statsTag = tag("stats", [["period", String(want.statsPeriod)]], st, true);
      const closeAt = doc.text.lastIndexOf("/", el.end - 1);
      out.push({
        start: closeAt,
        end: el.end,
        text: `>${st.nl}${ind}${st.unit}${statsTag}${st.nl}${ind}</memballoon>`,
      });
    } else
      out.push(
        appendChild(doc, el, tag("stats", [["period", String(want.statsPeriod)]], st, true), st),
      );
  }
  return out;
}

/** Read each requested value back from the edited model. */
function verify(d: Domain, req: EditRequest): DomainProblem[] {
  const out: DomainProblem[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) out.push(fail(`the edited domain does not read back as asked: ${what}`));
  };
  if (req.memoryKiB !== undefined)
    check(d.memoryKiB === req.memoryKiB || d.memoryFromNuma, "memory");
  if (req.currentKiB !== undefined)
    check(d.currentMemoryWrittenKiB === req.currentKiB, "currentMemory");
  if (req.max)
    check(
      d.maxMemory?.kib === req.max.kib &&
        (req.max.slots === undefined || d.maxMemory.slots === req.max.slots),
      "maxMemory",
    );
  if (req.hugepages === "none") check(d.memoryBacking.hugepages === undefined, "hugepages none");
  else if (req.hugepages) {
    const p = d.memoryBacking.hugepages;
    check(p?.length === 1 && p[0].sizeKiB === req.hugepages.sizeKiB, "hugepages");
  }
  if (req.nosharepages !== undefined)
    check(d.memoryBacking.nosharepages === req.nosharepages, "nosharepages");
  if (req.locked !== undefined) check(d.memoryBacking.locked === req.locked, "locked");
  if (req.balloon === "none") check(d.memballoon.model === "none", "memballoon none");
  else if (req.balloon) {
    const b = d.memballoon;
    check(b.model === "virtio", "memballoon model");
    if (req.balloon.autodeflate !== undefined)
      check(b.autodeflate === req.balloon.autodeflate, "autodeflate");
    if (req.balloon.statsPeriod !== undefined)
      check(b.statsPeriod === req.balloon.statsPeriod, "stats period");
  }
  return out;
}
