/**
 * The schema verdict agrees with the native tools libvirt users run:
 * - `xmllint --noout --relaxng schemas/libvirt/domain.rng FILE` (libxml2-utils), on the corpus and
 *   on edited corpus files, with the vendored libvirt 11.3.0 schemas;
 * - `virt-xml-validate FILE domain` (libvirt-clients), which uses the schemas installed in
 *   /usr/share/libvirt/schemas, compared with kvmem given `--schemas` that same directory (its
 *   libvirt version may be older than 11.3.0 and refuse newer elements: both must agree anyway).
 * Each block is skipped, with the reason printed, when its tool is not installed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { editDomain } from "./edit.js";
import { loadSchemas, vendoredSchemaDir } from "./node.js";
import { validateSchemaMany } from "./schema.js";
import { parseXml } from "./xml.js";

const CORPUS = corpusSubdir("libvirt-domains");
const have = existsSync(CORPUS);
const corpus = have
  ? ["valid", "invalid", "normalized-output", "other"].flatMap((s) =>
      readdirSync(CORPUS + s)
        .filter((f) => f.endsWith(".xml"))
        .map((f) => `${CORPUS}${s}/${f}`),
    )
  : [];

function onPath(tool: string): boolean {
  const r = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
  const ok = r.status === 0;
  if (!ok) console.log(`skipping the ${tool} cross-check: ${tool} is not installed`);
  return ok;
}

async function kvmemSchemaVerdicts(paths: string[], dir?: string): Promise<boolean[]> {
  const docs = paths.map((p) => {
    const text = readFileSync(p, "utf8");
    return { text, doc: parseXml(text) };
  });
  const res = await validateSchemaMany(docs, loadSchemas(dir));
  return res.map((problems) => problems.length === 0);
}

/** Edited variants of the valid corpus files, written to a temp dir. */
function editedCorpus(): string[] {
  const dir = mkdtempSync(join(tmpdir(), "kvmem-edited-"));
  return corpus
    .filter((p) => p.includes("/valid/"))
    .map((p, i) => {
      const r = editDomain(readFileSync(p, "utf8"), {
        currentKiB: 65536,
        locked: i % 2 === 0,
        nosharepages: true,
        balloon: { model: "virtio", autodeflate: true, statsPeriod: 5 },
        hugepages: i % 3 === 0 ? "none" : { sizeKiB: 2048 },
      });
      const out = join(dir, `edited-${i}.xml`);
      writeFileSync(out, r.text);
      return out;
    });
}

describe.skipIf(!have || !onPath("xmllint"))(
  "agrees with native xmllint --relaxng (vendored 11.3.0 schemas)",
  () => {
    it("on every corpus file and every edited valid file", async () => {
      const paths = [...corpus, ...editedCorpus()];
      const ours = await kvmemSchemaVerdicts(paths);
      const rng = join(vendoredSchemaDir(), "domain.rng");
      const theirs = paths.map(
        (p) => spawnSync("xmllint", ["--noout", "--relaxng", rng, p]).status === 0,
      );
      expect(ours).toEqual(theirs);
      // and the corpus README's count: only the -invalid. input fails the schema
      expect(paths.filter((_, i) => !theirs[i]).map((p) => p.split("/").pop())).toEqual([
        "hugepages-memaccess-invalid.xml",
      ]);
    }, 120_000);
  },
);

const INSTALLED = "/usr/share/libvirt/schemas";
describe.skipIf(!have || !onPath("virt-xml-validate") || !existsSync(`${INSTALLED}/domain.rng`))(
  "agrees with virt-xml-validate (installed libvirt schemas)",
  () => {
    it("on every corpus file and every edited valid file", async () => {
      const paths = [...corpus, ...editedCorpus()];
      const ours = await kvmemSchemaVerdicts(paths, INSTALLED);
      const theirs = paths.map((p) => spawnSync("virt-xml-validate", [p, "domain"]).status === 0);
      console.log(
        `virt-xml-validate: ${execFileSync("virt-xml-validate", ["--version"], { encoding: "utf8" }).trim()}; refuses ${theirs.filter((t) => !t).length} of ${paths.length}`,
      );
      expect(ours).toEqual(theirs);
    }, 120_000);
  },
);
