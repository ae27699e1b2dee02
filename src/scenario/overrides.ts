/**
 * `--set key.path=value` and `--vary key.path=v1,v2,...` over a scenario's raw (pre-validation)
 * object. Paths use dots and numeric indexes (`vms.0.backing`); `*` in a path applies to every
 * element of an array or every key of a map (`vms.*.backing=2M`). Values are read as YAML
 * scalars (true, 42, 2GiB stays a string). Pure: no Node APIs.
 */
import { parse as parseYaml } from "yaml";
import { KvmemError } from "../units/errors.js";

export interface Assignment {
  path: string[];
  value: unknown;
  text: string;
}

export function parseAssignment(
  text: string,
  flag: "--set" | "--vary",
): { path: string[]; values: unknown[] } {
  const eq = text.indexOf("=");
  if (eq <= 0 || eq === text.length - 1) {
    throw new KvmemError({
      code: "E_USAGE",
      input: flag,
      message: `'${text}' is not key.path=value`,
      hint:
        flag === "--set" ? "e.g. --set host.cpu.ept=false" : "e.g. --vary host.cpu.ept=true,false",
    });
  }
  const path = text.slice(0, eq).split(".");
  const raw = text.slice(eq + 1);
  const parts = flag === "--vary" ? raw.split(",") : [raw];
  return { path, values: parts.map((p) => parseYaml(p) as unknown) };
}

/** `--set` arguments (key.path=value each) as assignments, in order. */
export function setOverrides(sets: string[]): Assignment[] {
  return sets.map((s) => {
    const a = parseAssignment(s, "--set");
    return { path: a.path, value: a.values[0], text: s };
  });
}

/** Apply `value` at `path` in `obj` (mutating), creating maps on the way; `*` fans out. */
export function applyAt(obj: unknown, path: string[], value: unknown, full = path.join(".")): void {
  if (path.length === 0) return;
  const [head, ...rest] = path;
  if (obj === null || typeof obj !== "object") {
    throw new KvmemError({
      code: "E_USAGE",
      input: "--set",
      message: `cannot set '${full}': '${head}' is inside a plain value`,
      hint: "set a key of a map or an element of a list",
    });
  }
  const o = obj as Record<string, unknown>;
  const keys = head === "*" ? Object.keys(o) : [head];
  if (head === "*" && keys.length === 0) {
    throw new KvmemError({
      code: "E_USAGE",
      input: "--set",
      message: `'${full}': '*' matches nothing`,
      hint: "the list or map is empty",
    });
  }
  for (const k of keys) {
    if (Array.isArray(o) && !/^\d+$/.test(k)) {
      throw new KvmemError({
        code: "E_USAGE",
        input: "--set",
        message: `'${full}': '${k}' is not an index of a list`,
        hint: "use a number or *",
      });
    }
    if (rest.length === 0) o[k] = value;
    else {
      if (o[k] === undefined) o[k] = {};
      applyAt(o[k], rest, value, full);
    }
  }
}

/** Every combination of the --vary values, in order (the first combination is the baseline). */
export function combinations(varies: Array<{ path: string[]; values: unknown[] }>): Assignment[][] {
  let out: Assignment[][] = [[]];
  for (const v of varies) {
    const next: Assignment[][] = [];
    for (const combo of out) {
      for (const value of v.values)
        next.push([
          ...combo,
          { path: v.path, value, text: `${v.path.join(".")}=${String(value)}` },
        ]);
    }
    out = next;
  }
  return out;
}
