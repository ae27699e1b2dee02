/**
 * Byte-preserving XML changes: replace a value, set or insert an attribute, insert or remove an
 * element, all as splices of the original text at positions from the element tree (xml.ts).
 *
 * How it works: a change is {start, end, text} over the original string; all changes of one edit
 * are computed against the same original and applied from the end backwards, so earlier offsets
 * stay valid. New markup copies the document's own conventions: its line ending ("\r\n" if it has
 * any), its attribute quote character (of the first attribute in the document, else libvirt's
 * single quote), and the indentation of the surrounding elements (the whitespace that starts their
 * lines; one level = the root's first child's indentation, else two spaces). Removing an element
 * that sits alone on its line removes the whole line. Nothing outside the spans changes.
 */
import type { XmlDoc, XmlElement } from "./xml.js";

export interface Splice {
  start: number;
  end: number;
  text: string;
}

/**
 * Apply splices of one original text. Insertions at the same offset keep their list order in the
 * result (the later one is applied first, so the earlier one ends up before it).
 */
export function applySplices(text: string, splices: readonly Splice[]): string {
  const sorted = splices
    .map((s, i) => ({ s, i }))
    .sort((a, b) => b.s.start - a.s.start || b.s.end - a.s.end || b.i - a.i)
    .map((x) => x.s);
  let out = text;
  let limit = Number.POSITIVE_INFINITY;
  for (const s of sorted) {
    if (s.end > limit) throw new Error(`overlapping edits at ${s.start}-${s.end}`);
    out = out.slice(0, s.start) + s.text + out.slice(s.end);
    limit = s.start;
  }
  return out;
}

export interface Style {
  nl: string;
  quote: string;
  unit: string;
}

export function detectStyle(doc: XmlDoc): Style {
  const nl = doc.text.includes("\r\n") ? "\r\n" : "\n";
  let quote = "'";
  const first = findFirst(doc.root, (e) => e.attrs.length > 0);
  if (first) quote = doc.text[first.attrs[0].valueStart - 1] === '"' ? '"' : "'";
  let unit = "  ";
  const root = doc.root;
  if (root?.children[0]) {
    const rootIndent = indentOf(doc, root) ?? "";
    const childIndent = indentOf(doc, root.children[0]);
    if (childIndent !== undefined && childIndent.length > rootIndent.length) {
      unit = childIndent.slice(rootIndent.length);
    }
  }
  return { nl, quote, unit };
}

function findFirst(
  el: XmlElement | undefined,
  pred: (e: XmlElement) => boolean,
): XmlElement | undefined {
  if (!el) return undefined;
  if (pred(el)) return el;
  for (const c of el.children) {
    const f = findFirst(c, pred);
    if (f) return f;
  }
  return undefined;
}

function lineStart(text: string, offset: number): number {
  const nl = text.lastIndexOf("\n", offset - 1);
  return nl + 1;
}

/** The whitespace before the element on its line, or undefined if other text precedes it. */
export function indentOf(doc: XmlDoc, el: XmlElement): string | undefined {
  const ls = lineStart(doc.text, el.start);
  const before = doc.text.slice(ls, el.start);
  return /^[ \t]*$/.test(before) ? before : undefined;
}

/** Indentation for a child of `parent`. */
export function childIndent(doc: XmlDoc, parent: XmlElement, st: Style): string {
  for (const c of parent.children) {
    const i = indentOf(doc, c);
    if (i !== undefined) return i;
  }
  return (indentOf(doc, parent) ?? "") + st.unit;
}

/** Escape text for an attribute value in the given quote. */
export function escapeAttr(v: string, quote: string): string {
  let s = v.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  s = quote === "'" ? s.replace(/'/g, "&apos;") : s.replace(/"/g, "&quot;");
  return s;
}

/** Build a start tag / empty element from name and attributes in the document's style. */
export function tag(
  name: string,
  attrs: Array<[string, string]>,
  st: Style,
  selfClose: boolean,
): string {
  const a = attrs
    .map(([k, v]) => ` ${k}=${st.quote}${escapeAttr(v, st.quote)}${st.quote}`)
    .join("");
  return `<${name}${a}${selfClose ? "/" : ""}>`;
}

/** Set attribute `name` on `el` (replace its value, or add it at the end of the start tag). */
export function setAttr(
  doc: XmlDoc,
  el: XmlElement,
  name: string,
  value: string,
  st: Style,
): Splice {
  const a = el.attrs.find((x) => x.name === name);
  const q = a ? doc.text[a.valueStart - 1] : st.quote;
  if (a) return { start: a.valueStart, end: a.valueEnd, text: escapeAttr(value, q) };
  const last = el.attrs[el.attrs.length - 1];
  const at = last ? last.end : el.start + 1 + el.name.length;
  return { start: at, end: at, text: ` ${name}=${q}${escapeAttr(value, q)}${q}` };
}

/** Remove attribute `name` (with the whitespace before it). */
export function removeAttr(doc: XmlDoc, el: XmlElement, name: string): Splice | undefined {
  const a = el.attrs.find((x) => x.name === name);
  if (!a) return undefined;
  let s = a.start;
  while (s > el.start && /\s/.test(doc.text[s - 1])) s--;
  return { start: s, end: a.end, text: "" };
}

/** Replace the character content of a text-only element (or expand `<x/>` to `<x>v</x>`). */
export function setText(doc: XmlDoc, el: XmlElement, value: string): Splice {
  const v = value.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  if (el.selfClosing) {
    const open = doc.text.slice(el.start, el.end).replace(/\s*\/>$/, ">");
    return { start: el.start, end: el.end, text: `${open}${v}</${el.name}>` };
  }
  return { start: el.openEnd, end: el.closeStart, text: v };
}

/** Insert `markup` as a new sibling right after `after`, on its own line. */
export function insertAfter(doc: XmlDoc, after: XmlElement, markup: string, st: Style): Splice {
  const ind = indentOf(doc, after) ?? "";
  // a comment or blanks after the element on its line stay with it: insert at the line's end
  const t = doc.text;
  let le = t.indexOf("\n", after.end);
  if (le < 0) le = t.length;
  if (t[le - 1] === "\r") le--;
  const at = /^(?:\s|<!--(?:(?!-->)[\s\S])*-->)*$/.test(t.slice(after.end, le)) ? le : after.end;
  return { start: at, end: at, text: `${st.nl}${ind}${markup}` };
}

/** Insert `markup` as a new sibling right before `before`, on its own line. */
export function insertBefore(doc: XmlDoc, before: XmlElement, markup: string, st: Style): Splice {
  const ind = indentOf(doc, before);
  if (ind === undefined) return { start: before.start, end: before.start, text: markup };
  return { start: before.start, end: before.start, text: `${markup}${st.nl}${ind}` };
}

/** Insert `markup` as the last child of `parent`. */
export function appendChild(doc: XmlDoc, parent: XmlElement, markup: string, st: Style): Splice {
  const last = parent.children[parent.children.length - 1];
  if (last) return insertAfter(doc, last, markup, st);
  const pInd = indentOf(doc, parent) ?? "";
  const cInd = pInd + st.unit;
  if (parent.selfClosing) {
    const open = doc.text.slice(parent.start, parent.end).replace(/\s*\/>$/, ">");
    return {
      start: parent.start,
      end: parent.end,
      text: `${open}${st.nl}${cInd}${markup}${st.nl}${pInd}</${parent.name}>`,
    };
  }
  const inner = doc.text.slice(parent.openEnd, parent.closeStart);
  if (/^\s*$/.test(inner)) {
    return {
      start: parent.openEnd,
      end: parent.closeStart,
      text: `${st.nl}${cInd}${markup}${st.nl}${pInd}`,
    };
  }
  return { start: parent.closeStart, end: parent.closeStart, text: markup };
}

/** Insert `markup` as the first child of `parent`. */
export function prependChild(doc: XmlDoc, parent: XmlElement, markup: string, st: Style): Splice {
  const first = parent.children[0];
  if (first) return insertBefore(doc, first, markup, st);
  return appendChild(doc, parent, markup, st);
}

/** Remove an element; when it is alone on its line, remove the line. */
export function removeElement(doc: XmlDoc, el: XmlElement): Splice {
  const t = doc.text;
  const ls = lineStart(t, el.start);
  let le = t.indexOf("\n", el.end);
  if (le < 0) le = t.length;
  const before = t.slice(ls, el.start);
  const after = t.slice(el.end, le).replace(/\r$/, "");
  if (/^[ \t]*$/.test(before) && /^[ \t]*$/.test(after) && ls > 0) {
    // take the line break that precedes the line, keep the one that ends it
    const prevNl = t[ls - 2] === "\r" ? ls - 2 : ls - 1;
    return {
      start: prevNl,
      end:
        el.end + (t.slice(el.end, le).length - t.slice(el.end, le).replace(/^[ \t]*/, "").length),
      text: "",
    };
  }
  return { start: el.start, end: el.end, text: "" };
}
