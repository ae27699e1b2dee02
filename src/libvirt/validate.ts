/**
 * validateDomain: the verdict on one domain XML text, in the order libvirt forms it.
 *
 * How it works: (1) well-formedness and the parser's own checks (parse.ts: units, enums, cell
 * numbering, numatune syntax), (2) the RelaxNG schema (schema.ts, when schemas are given; this is
 * what virt-xml-validate and libvirt's virschematest check), (3) the semantic post-parse and
 * validate rules (rules.ts), (4) with host facts, the start-time host checks (host.ts). Problems
 * are sorted by position; errors decide validity, warnings never do. Malformed XML stops after (1)
 * because nothing else can be read. Pure apart from the schema engine (xmllint-wasm).
 */
import { checkHost, type HostMemoryFacts } from "./host.js";
import type { Domain, DomainProblem } from "./model.js";
import { parseDomain } from "./parse.js";
import { checkRules } from "./rules.js";
import { type SchemaSet, validateSchemaMany } from "./schema.js";

export interface ValidateOptions {
  /** RelaxNG schema files; without them the schema step is skipped */
  schemas?: SchemaSet;
  /** host facts for the --host checks */
  host?: HostMemoryFacts;
}

export interface Verdict {
  domain: Domain;
  problems: DomainProblem[];
  valid: boolean;
}

function byPosition(a: DomainProblem, b: DomainProblem): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
}

/** Everything except the schema: synchronous, for callers that only need the semantic verdict. */
export function checkDomain(xmlText: string, host?: HostMemoryFacts): Verdict {
  const { domain, problems, source } = parseDomain(xmlText);
  const all = [...problems];
  if (source.root && !problems.some((p) => p.code === "xml.malformed" || p.code === "xml.root")) {
    all.push(...checkRules(domain, source));
    if (host) all.push(...checkHost(domain, source, host));
  }
  all.sort(byPosition);
  return { domain, problems: all, valid: !all.some((p) => p.severity === "error") };
}

export async function validateDomain(
  xmlText: string,
  opts: ValidateOptions = {},
): Promise<Verdict> {
  return (await validateDomains([xmlText], opts))[0];
}

/** Validate several documents; the schema engine runs once for all of them. */
export async function validateDomains(
  texts: readonly string[],
  opts: ValidateOptions = {},
): Promise<Verdict[]> {
  const parsed = texts.map((t) => parseDomain(t));
  const wellFormed = parsed.map((p, i) => ({ p, i })).filter(({ p }) => p.source.root);
  const schemaProblems = opts.schemas
    ? await validateSchemaMany(
        wellFormed.map(({ p, i }) => ({ text: texts[i], doc: p.source.doc })),
        opts.schemas,
      )
    : [];
  return parsed.map(({ domain, problems, source }, i) => {
    if (!source.root) return { domain, problems, valid: false };
    const all = [...problems];
    const k = wellFormed.findIndex((w) => w.i === i);
    if (opts.schemas) all.push(...schemaProblems[k]);
    if (source.root.name === "domain") {
      all.push(...checkRules(domain, source));
      if (opts.host) all.push(...checkHost(domain, source, opts.host));
    }
    all.sort(byPosition);
    return { domain, problems: all, valid: !all.some((p) => p.severity === "error") };
  });
}
