/**
 * RelaxNG validation against libvirt's own domain schema (domain.rng and its includes).
 *
 * How it works: libxml2's RelaxNG validator, compiled to WebAssembly (npm xmllint-wasm, the same
 * engine as `xmllint --relaxng` and libvirt's virt-xml-validate), is given the schema files as an
 * in-memory file set and the domain text under a fixed name. libxml2 reports "file:line: element
 * X: Relax-NG validity error : ..." lines; each becomes a problem at that line, with the column of
 * the element X that starts on that line (from the positioned tree), rule "RelaxNG domain.rng".
 * Lines without a position ("Extra element cpu in interleave") are attached to the next located
 * line as detail. The schema texts are passed in (node.ts reads them from disk), so this module
 * has no file access of its own. Schemas: libvirt 11.3.0 src/conf/schemas, see
 * schemas/libvirt/README.md.
 */
import { validateXML } from "xmllint-wasm";
import type { DomainProblem } from "./model.js";
import { elementPath, lineCol, type XmlDoc, type XmlElement } from "./xml.js";

export interface SchemaFile {
  fileName: string;
  contents: string;
}

export interface SchemaSet {
  /** where the files came from (a directory), for messages */
  origin: string;
  /** entry point first (domain.rng), then every included file */
  files: SchemaFile[];
}

/** The include closure of domain.rng (libvirt-schemas README). */
export const DOMAIN_SCHEMA_FILES = [
  "domain.rng",
  "domainoverrides.rng",
  "domaincommon.rng",
  "basictypes.rng",
  "storagecommon.rng",
  "networkcommon.rng",
  "cputypes.rng",
  "nwfilter_params.rng",
  "privatedata.rng",
] as const;

function elementsOnLine(
  doc: XmlDoc,
  line: number,
  name: string | undefined,
): XmlElement | undefined {
  let found: XmlElement | undefined;
  const walk = (e: XmlElement) => {
    if (found) return;
    if (lineCol(doc, e.start).line === line && (name === undefined || e.name === name)) {
      found = e;
      return;
    }
    e.children.forEach(walk);
  };
  if (doc.root) walk(doc.root);
  return found;
}

/** Validate `xmlText` (already parsed as `doc`) against the schema set. */
export async function validateSchema(
  xmlText: string,
  doc: XmlDoc,
  schemas: SchemaSet,
): Promise<DomainProblem[]> {
  return (await validateSchemaMany([{ text: xmlText, doc }], schemas))[0];
}

/**
 * Validate several documents in one run of the engine (compiling domain.rng once costs far more
 * than checking a document). Returns the problems of each document, in order.
 */
export async function validateSchemaMany(
  docs: ReadonlyArray<{ text: string; doc: XmlDoc }>,
  schemas: SchemaSet,
): Promise<DomainProblem[][]> {
  const out: DomainProblem[][] = docs.map(() => []);
  if (docs.length === 0) return out;
  const [main, ...rest] = schemas.files;
  const names = docs.map((_, i) => `domain-${i}.xml`);
  const result = await validateXML({
    xml: docs.map((d, i) => ({ fileName: names[i], contents: d.text })),
    schema: [main],
    preload: rest,
    extension: "relaxng",
    initialMemoryPages: 512,
    maxMemoryPages: 16384,
  });
  if (result.valid) return out;
  let pending: string[] = [];
  const failed = new Set<number>();
  for (const e of result.errors) {
    const msg = e.message.replace(/Relax-NG validity error : /g, "").trim();
    const failMatch = /^(domain-(\d+)\.xml) fails to validate$/.exec(msg);
    if (failMatch) {
      failed.add(Number(failMatch[2]));
      continue;
    }
    if (!e.loc) {
      pending.push(msg);
      continue;
    }
    const idx = names.indexOf(e.loc.fileName);
    if (idx < 0) continue;
    const doc = docs[idx].doc;
    const m = /^element ([^:\s]+): (.*)$/.exec(msg);
    const name = m?.[1];
    const el =
      elementsOnLine(doc, e.loc.lineNumber, name) ??
      elementsOnLine(doc, e.loc.lineNumber, undefined);
    const text = [m ? `element ${name}: ${m[2]}` : msg, ...pending].join("; ");
    pending = [];
    out[idx].push({
      code: "schema.invalid",
      path: el ? elementPath(el) : "/",
      message: text,
      severity: "error",
      rule: "RelaxNG domain.rng",
      line: e.loc.lineNumber,
      column: el ? lineCol(doc, el.start).column : 1,
    });
  }
  for (const i of failed) {
    if (out[i].length === 0) {
      out[i].push({
        code: "schema.invalid",
        path: "/",
        message: pending.join("; ") || "fails to validate against domain.rng",
        severity: "error",
        rule: "RelaxNG domain.rng",
        line: 1,
        column: 1,
      });
    }
  }
  return out;
}
