/**
 * A small XML element tree that remembers where every piece came from.
 *
 * How it works: saxes (a streaming, well-formedness-checking XML parser) reports each start and
 * end tag together with the offset just past its '>'. The tag's first character is the last '<'
 * before that offset ('<' may not appear unescaped inside a tag, XML 1.0 §2.4 / §3.1), so every
 * element gets exact source spans: [start, openEnd) for the start tag, [closeStart, end) for the
 * end tag. Attribute value spans are recovered by scanning the start tag's own text. Nothing is
 * re-serialized: editors splice the original string at these offsets, so comments, whitespace,
 * quoting style, namespaces (qemu:commandline) and unknown elements are kept byte for byte.
 * Offsets are UTF-16 code-unit indexes into the input string (what saxes' `position` counts).
 * Sources: XML 1.0 (Fifth Edition); saxes README ("position", "opentag", "closetag").
 */
import { SaxesParser } from "saxes";

export interface XmlAttr {
  name: string;
  /** decoded value (entities resolved) */
  value: string;
  /** span of the whole `name="value"` text */
  start: number;
  end: number;
  /** span of the value between the quotes */
  valueStart: number;
  valueEnd: number;
}

export interface XmlElement {
  name: string;
  attrs: XmlAttr[];
  children: XmlElement[];
  parent: XmlElement | undefined;
  /** offset of '<' of the start tag */
  start: number;
  /** offset just past '>' of the start tag */
  openEnd: number;
  /** offset of '<' of the end tag (== openEnd-ish for self-closing: equals end) */
  closeStart: number;
  /** offset just past the end tag ('>' of `</x>` or of `<x/>`) */
  end: number;
  selfClosing: boolean;
  /** concatenated character data directly inside this element */
  text: string;
}

export interface XmlDoc {
  text: string;
  root: XmlElement | undefined;
  /** well-formedness error, if any (then root is undefined) */
  error?: { message: string; offset: number };
  lineStarts: number[];
}

export function attr(el: XmlElement | undefined, name: string): string | undefined {
  return el?.attrs.find((a) => a.name === name)?.value;
}

export function attrNode(el: XmlElement, name: string): XmlAttr | undefined {
  return el.attrs.find((a) => a.name === name);
}

export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

export function childrenNamed(el: XmlElement | undefined, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name) : [];
}

/** Follow a path of child names, first match at each step (XPath `./a[1]/b[1]`). */
export function descend(el: XmlElement | undefined, ...names: string[]): XmlElement | undefined {
  let cur = el;
  for (const n of names) cur = child(cur, n);
  return cur;
}

/** An XPath-like path naming an element, with 1-based indexes among same-named siblings. */
export function elementPath(el: XmlElement): string {
  const parts: string[] = [];
  for (let e: XmlElement | undefined = el; e; e = e.parent) {
    const p = e.parent;
    if (p) {
      const same = p.children.filter((c) => c.name === e!.name);
      parts.push(same.length > 1 ? `${e.name}[${same.indexOf(e) + 1}]` : e.name);
    } else parts.push(e.name);
  }
  return `/${parts.reverse().join("/")}`;
}

function computeLineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/** 1-based line and column of an offset. */
export function lineCol(doc: XmlDoc, offset: number): { line: number; column: number } {
  const ls = doc.lineStarts;
  let lo = 0;
  let hi = ls.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ls[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - ls[lo] + 1 };
}

const ATTR_RE = /([^\s=/<>]+)\s*=\s*("([^"]*)"|'([^']*)')/g;

function scanAttrs(text: string, start: number, openEnd: number, decoded: Record<string, string>) {
  const tag = text.slice(start, openEnd);
  const out: XmlAttr[] = [];
  ATTR_RE.lastIndex = 0;
  // skip the element name
  const nameEnd = tag.search(/[\s/>]/);
  ATTR_RE.lastIndex = nameEnd < 0 ? tag.length : nameEnd;
  for (let m = ATTR_RE.exec(tag); m; m = ATTR_RE.exec(tag)) {
    const name = m[1];
    const valueStart = start + m.index + m[0].length - m[2].length + 1;
    out.push({
      name,
      value: decoded[name] ?? m[3] ?? m[4] ?? "",
      start: start + m.index,
      end: start + m.index + m[0].length,
      valueStart,
      valueEnd: valueStart + m[2].length - 2,
    });
  }
  return out;
}

/** Parse XML text into a positioned element tree. Never throws on bad input. */
export function parseXml(text: string): XmlDoc {
  const doc: XmlDoc = { text, root: undefined, lineStarts: computeLineStarts(text) };
  const parser = new SaxesParser({ position: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  parser.on("opentag", (node) => {
    const openEnd = parser.position;
    const start = text.lastIndexOf("<", openEnd - 1);
    const decoded: Record<string, string> = {};
    for (const [k, v] of Object.entries(node.attributes)) decoded[k] = String(v);
    const parent = stack[stack.length - 1];
    const el: XmlElement = {
      name: node.name,
      attrs: scanAttrs(text, start, openEnd, decoded),
      children: [],
      parent,
      start,
      openEnd,
      closeStart: openEnd,
      end: openEnd,
      selfClosing: node.isSelfClosing,
      text: "",
    };
    if (parent) parent.children.push(el);
    else root = el;
    stack.push(el);
  });
  parser.on("closetag", (node) => {
    const el = stack.pop();
    if (!el) return;
    el.end = parser.position;
    el.closeStart = node.isSelfClosing ? el.end : text.lastIndexOf("<", el.end - 1);
  });
  const onText = (t: string) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  };
  parser.on("text", onText);
  parser.on("cdata", onText);
  try {
    parser.write(text).close();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // saxes messages look like "file:line:col: message"; keep the message part
    const m = /^(?:[^:]*:)?\d+:\d+: (.*)$/s.exec(msg);
    doc.error = { message: (m ? m[1] : msg).split("\n")[0], offset: parser.position };
    return doc;
  }
  doc.root = root;
  return doc;
}
