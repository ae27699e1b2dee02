/**
 * The reading helpers shared by the parse*.ts files: a Reader that reads libvirt's value kinds
 * (scaled memory sizes, enums, on/off and yes/no switches, unsigned ints, node bitmaps) from
 * elements and records each failure as a positioned problem in libvirt's words, and `locate`,
 * which gives a problem its XPath-like path, line and column. Pure.
 */
import type { Domain, DomainProblem } from "./model.js";
import { parseBitmap, parseMemoryKiB, parseULL } from "./scaled.js";
import { attr, attrNode, elementPath, lineCol, type XmlDoc, type XmlElement } from "./xml.js";

/** The XML elements the model came from, for positions in later checks and for editing. */
export interface DomainSource {
  doc: XmlDoc;
  root: XmlElement | undefined;
  memory?: XmlElement;
  currentMemory?: XmlElement;
  maxMemory?: XmlElement;
  memoryBacking?: XmlElement;
  /** <page> elements (or the bare <hugepages>) in model order */
  hugepages: XmlElement[];
  /** cells in model (id) order */
  cells: XmlElement[];
  numatuneMemory?: XmlElement;
  memnodes: XmlElement[];
  memoryDevices: XmlElement[];
  memballoon?: XmlElement;
  shmems: XmlElement[];
}

export interface ParsedDomain {
  domain: Domain;
  problems: DomainProblem[];
  source: DomainSource;
}

export class Reader {
  problems: DomainProblem[] = [];
  constructor(readonly doc: XmlDoc) {}

  report(
    el: XmlElement | undefined,
    attrName: string | undefined,
    code: string,
    message: string,
    rule: string,
    severity: "error" | "warning" = "error",
  ): void {
    this.problems.push(locate(this.doc, el, attrName, { code, message, rule, severity }));
  }

  /** virDomainParseMemory on `<el unit=..>text</el>` or on attributes of el. */
  memory(el: XmlElement, valueAttr: string | undefined, unitAttr: string, rule: string) {
    const text = valueAttr ? attr(el, valueAttr) : el.text;
    if (text === undefined) return undefined;
    const what = valueAttr ? `./@${valueAttr}` : `./${el.name}[1]`;
    const r = parseMemoryKiB(text, attr(el, unitAttr), what);
    if (!r.ok) {
      const badUnit = r.error.startsWith("unknown suffix");
      this.report(el, badUnit ? unitAttr : valueAttr, "unit.invalid", r.error, rule);
      return undefined;
    }
    return r.value;
  }

  enumAttr<T extends string>(el: XmlElement, name: string, allowed: readonly T[], rule: string) {
    const v = attr(el, name);
    if (v === undefined) return undefined;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.report(
      el,
      name,
      "attr.invalid",
      `Invalid value for attribute '${name}' in element '${el.name}': '${v}'.`,
      rule,
    );
    return undefined;
  }

  onOff(
    el: XmlElement,
    name: string,
    rule: string,
    words: readonly [string, string] = ["on", "off"],
  ) {
    const v = this.enumAttr(el, name, words, rule);
    return v === undefined ? undefined : v === words[0];
  }

  bitmap(el: XmlElement, name: string, rule: string, text = attr(el, name)) {
    if (text === undefined) return undefined;
    const r = parseBitmap(text);
    if (!r.ok) {
      this.report(el, name, "bitmap.invalid", r.error, rule);
      return undefined;
    }
    return r.value;
  }

  uint(el: XmlElement, name: string | undefined, rule: string): number | undefined {
    const text = name ? attr(el, name) : el.text;
    if (text === undefined) return undefined;
    const v = parseULL(text);
    if (v === undefined || v > 0xffffffffn) {
      this.report(
        el,
        name,
        "number.invalid",
        `Invalid value for ${name ? `attribute '${name}'` : "element"} in element '${el.name}': '${text}'. Expected non-negative integer value`,
        rule,
      );
      return undefined;
    }
    return Number(v);
  }
}

/** Attach path, line and column of an element (or one of its attributes) to a problem. */
export function locate(
  doc: XmlDoc,
  el: XmlElement | undefined,
  attrName: string | undefined,
  p: Omit<DomainProblem, "path">,
): DomainProblem {
  if (!el) return { ...p, path: "/domain" };
  const a = attrName ? attrNode(el, attrName) : undefined;
  const pos = lineCol(doc, a ? a.start : el.start);
  return {
    ...p,
    path: elementPath(el) + (attrName ? `/@${attrName}` : ""),
    line: pos.line,
    column: pos.column,
  };
}
