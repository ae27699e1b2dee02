/**
 * Where the shared test corpus is (../shared/corpus: libvirt's test domains and schemas, procfs
 * fixtures; see its READMEs for sources). It is read in place, never copied into the repo.
 * Looked up in order: $KVMEM_CORPUS, <repo>/../shared/corpus, /work/shared/corpus.
 * Tests that need it use `describe.skipIf(!CORPUS)`, so a clone without the corpus skips them
 * visibly instead of failing.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));

export const CORPUS: string | undefined = [
  process.env.KVMEM_CORPUS,
  join(repo, "..", "shared", "corpus"),
  "/work/shared/corpus",
].find((p): p is string => p !== undefined && existsSync(join(p, "procfs")));

/** Absolute path of a corpus file; only call inside tests guarded by CORPUS. */
export function corpusPath(rel: string): string {
  if (!CORPUS) throw new Error("the shared corpus is not available (set KVMEM_CORPUS)");
  return join(CORPUS, rel);
}

/**
 * A corpus subdirectory as an absolute path ending in "/", or a path that does not exist when
 * the corpus is missing (tests then skip on `existsSync`).
 */
export function corpusSubdir(sub: string): string {
  return CORPUS ? `${join(CORPUS, sub)}/` : "/nonexistent-kvmem-corpus/";
}
