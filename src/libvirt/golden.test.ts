/**
 * Golden output: `kvmem domain` (the plain-words explanation) and `kvmem domain validate` over
 * every file of ../shared/corpus/libvirt-domains/valid and invalid, as a user sees them. The
 * golden files are reviewed text; after an intended change, regenerate and review the diff with
 *
 *   KVMEM_ACCEPT=1 npx vitest run src/libvirt/golden.test.ts && git diff src/libvirt/golden
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
// the corpus wherever it is (test/corpus.ts), named relative to the repository in the commands;
// the golden text always says ../shared/corpus/libvirt-domains, as it is laid out here
const CORPUS_REL = relative(ROOT, corpusSubdir("libvirt-domains")).replace(/\/$/, "");
const SHOWN_REL = "../shared/corpus/libvirt-domains";
const have = existsSync(`${ROOT}${CORPUS_REL}`);
const GOLDEN = fileURLToPath(new URL("./golden/", import.meta.url));

function run(args: string[]): string {
  // run from the repository root with corpus paths relative to it, so the text is machine-independent
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return `$ kvmem ${args.join(" ")}\n${r.stdout}${r.stderr}exit ${r.status}\n`
    .split(CORPUS_REL)
    .join(SHOWN_REL);
}

function golden(name: string, text: string) {
  const path = `${GOLDEN}${name}`;
  if (process.env.KVMEM_ACCEPT === "1") writeFileSync(path, text);
  expect(text).toBe(readFileSync(path, "utf8"));
}

describe.skipIf(!have)("golden CLI text", () => {
  const files = (sub: string) =>
    readdirSync(`${ROOT}${CORPUS_REL}/${sub}`)
      .filter((f) => f.endsWith(".xml"))
      .map((f) => `${CORPUS_REL}/${sub}/${f}`);
  it("kvmem domain <every valid file>", () => {
    golden("explain-valid.txt", run(["domain", ...files("valid")]));
  }, 60_000);
  it("kvmem domain validate <every valid and invalid file>", () => {
    golden(
      "validate-corpus.txt",
      run(["domain", "validate", ...files("valid"), ...files("invalid")]),
    );
  }, 60_000);
});
