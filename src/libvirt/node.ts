/**
 * The only file in src/libvirt that touches the disk (Node APIs): it finds and reads the RelaxNG
 * schema files, and it offers a HostTree over a directory (the live "/" or a captured --root).
 *
 * How it works: schemas are looked up as `--schemas DIR` when given, else the copy vendored in the
 * repository (schemas/libvirt, found relative to this module: two levels up from src/libvirt or
 * dist/libvirt). Every file of the domain.rng include closure must be present; a missing one is
 * reported by name. The HostTree reads files below the root and lists directories, returning
 * undefined for anything missing or unreadable (host.ts decides what absence means).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { KvmemError } from "../units/errors.js";
import type { HostTree } from "./host.js";
import { DOMAIN_SCHEMA_FILES, type SchemaSet } from "./schema.js";

export function vendoredSchemaDir(): string {
  return resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "schemas", "libvirt");
}

/**
 * Load domain.rng and every other .rng file of `dir` (default: the vendored copy). Other libvirt
 * versions include different files (e.g. /usr/share/libvirt/schemas), so the whole directory is
 * offered to the engine; domain.rng and the 11.3.0 include closure must be readable.
 */
export function loadSchemas(dir?: string): SchemaSet {
  const origin = dir ?? vendoredSchemaDir();
  const hint = `--schemas DIR must be a libvirt schema directory holding ${DOMAIN_SCHEMA_FILES.join(", ")}`;
  let names: string[];
  try {
    names = readdirSync(origin).filter((n) => n.endsWith(".rng"));
  } catch {
    throw new KvmemError({
      code: "E_IO",
      input: origin,
      message: "cannot read the libvirt RelaxNG schema directory",
      hint,
    });
  }
  for (const need of DOMAIN_SCHEMA_FILES) {
    if (!names.includes(need)) {
      throw new KvmemError({
        code: "E_IO",
        input: join(origin, need),
        message: "libvirt RelaxNG schema file missing",
        hint,
      });
    }
  }
  const ordered = ["domain.rng", ...names.filter((n) => n !== "domain.rng").sort()];
  const files = ordered.map((fileName) => ({
    fileName,
    contents: readFileSync(join(origin, fileName), "utf8"),
  }));
  return { origin, files };
}

/** A HostTree over a directory ("/" for the live host). */
export function diskHostTree(root: string): HostTree {
  return {
    read(path) {
      try {
        return readFileSync(join(root, path), "utf8");
      } catch {
        return undefined;
      }
    },
    list(path) {
      try {
        return readdirSync(join(root, path));
      } catch {
        return undefined;
      }
    },
  };
}
