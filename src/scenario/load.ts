/**
 * Load a scenario: YAML text -> (overrides applied) -> validated Scenario, with each VM's domain
 * XML and any trace files read from disk relative to the scenario file. Errors name the file,
 * the line:column of the offending key (from the YAML source map) and the key path.
 * The embedded default scenario is scenarios/default.yaml.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import { KvmemError } from "../units/errors.js";
import { type Assignment, applyAt } from "./overrides.js";
import { parseScenarioObject, type Scenario, ScenarioSchema, scenarioProblems } from "./schema.js";

export interface LoadedScenario {
  file: string;
  scenario: Scenario;
  /** domain XML text and its file name, per VM name */
  domains: Map<string, { xml: string; file: string }>;
  /** lackey trace text per trace path */
  traces: Map<string, string>;
}

const RUNTIME_SETTINGS =
  /^host\.kernel\.(ksm\.(run|pages_to_scan|sleep_millisecs|max_page_sharing|merge_across_nodes|use_zero_pages|smart_scan)|swappiness)$/;

export const DEFAULT_SCENARIO = fileURLToPath(
  new URL("../../scenarios/default.yaml", import.meta.url),
);

function readText(path: string, what: string, from: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KvmemError({
      code: "E_IO",
      input: from,
      message: `cannot read ${what} '${path}': ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (e as Error).message}`,
      hint: "paths in a scenario are relative to the scenario file",
    });
  }
}

export function loadScenario(
  file: string | undefined,
  overrides: Assignment[] = [],
): LoadedScenario {
  const path = resolve(file ?? DEFAULT_SCENARIO);
  const text = readText(path, "scenario", file ?? "scenario");
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = lc.linePos(e.pos[0]);
    throw new KvmemError({
      code: "E_SCENARIO",
      input: path,
      place: `${pos.line}:${pos.col}`,
      message: `YAML: ${e.message.split("\n")[0]}`,
      hint: "fix the YAML syntax",
    });
  }
  const raw = doc.toJS() as unknown;
  for (const a of overrides) applyAt(raw, a.path, a.value);
  const r = ScenarioSchema.safeParse(raw);
  if (!r.success) {
    const problems = scenarioProblems(r.error, raw);
    const first = problems[0];
    // find the line of the deepest existing node on the path
    const keys = first.path
      .replace(/\[(\d+)\]/g, ".$1")
      .split(".")
      .filter(Boolean);
    const unknown = /^unknown key '([^']+)'/.exec(first.message);
    if (unknown) keys.push(unknown[1]);
    let place = "";
    for (let n = keys.length; n > 0 && !place; n--) {
      const at = keys.slice(0, n).map((k) => (/^\d+$/.test(k) ? Number(k) : k));
      const node = (unknown && n === keys.length ? keyNode(doc, at) : doc.getIn(at, true)) as
        | { range?: [number, number, number] }
        | undefined;
      if (node?.range) {
        const p = lc.linePos(node.range[0]);
        place = `${p.line}:${p.col}`;
      }
    }
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
    throw new KvmemError({
      code: "E_SCENARIO",
      input: path,
      place,
      message: `${first.path}: ${first.message}${more}`,
      hint: "see docs/sim.md for the scenario format",
    });
  }
  const scenario = r.data;
  const base = dirname(path);
  const rel = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const domains = new Map<string, { xml: string; file: string }>();
  const names = new Set<string>();
  for (const vm of scenario.vms) {
    if (names.has(vm.name))
      throw new KvmemError({
        code: "E_SCENARIO",
        input: path,
        place: `vms`,
        message: `two VMs are named '${vm.name}'`,
        hint: "VM names must be unique",
      });
    names.add(vm.name);
    if (typeof vm.workload === "string" && !(vm.workload in scenario.workloads)) {
      throw new KvmemError({
        code: "E_SCENARIO",
        input: path,
        place: `vms.${vm.name}.workload`,
        message: `no workload named '${vm.workload}'`,
        hint: `defined: ${Object.keys(scenario.workloads).join(", ") || "none"}`,
      });
    }
    if (vm.domain)
      domains.set(vm.name, {
        xml: readText(rel(vm.domain), "domain XML", path),
        file: rel(vm.domain),
      });
    else domains.set(vm.name, { xml: vm.xml ?? "", file: `${path}#${vm.name}` });
  }
  const traces = new Map<string, string>();
  const allWorkloads = [
    ...Object.values(scenario.workloads),
    ...scenario.vms.map((v) => v.workload).filter((w) => typeof w !== "string"),
  ];
  for (const w of allWorkloads) {
    if (typeof w === "string" || w.pattern !== "trace") continue;
    if (!w.trace)
      throw new KvmemError({
        code: "E_SCENARIO",
        input: path,
        place: "workloads",
        message: "a trace workload needs 'trace: FILE'",
        hint: "a valgrind lackey trace",
      });
    if (!traces.has(w.trace)) traces.set(w.trace, readText(rel(w.trace), "trace", path));
  }
  for (const ev of scenario.timeline) {
    if ("set" in ev) {
      for (const key of Object.keys(ev.set)) {
        if (!RUNTIME_SETTINGS.test(key)) {
          throw new KvmemError({
            code: "E_SCENARIO",
            input: path,
            place: "timeline",
            message: `event at ${ev.at} ms sets '${key}', which cannot change at run time`,
            hint: "host.kernel.ksm.{run,pages_to_scan,sleep_millisecs,max_page_sharing,merge_across_nodes,use_zero_pages,smart_scan} or host.kernel.swappiness",
          });
        }
      }
    }
    if ("workload" in ev && !(ev.workload.use in scenario.workloads)) {
      throw new KvmemError({
        code: "E_SCENARIO",
        input: path,
        place: "timeline",
        message: `event at ${ev.at} ms uses workload '${ev.workload.use}', which the scenario does not define`,
        hint: `defined: ${Object.keys(scenario.workloads).join(", ") || "none"}`,
      });
    }
    const vmName =
      "setmem" in ev
        ? ev.setmem.vm
        : "start" in ev
          ? ev.start
          : "stop" in ev
            ? ev.stop
            : "workload" in ev
              ? ev.workload.vm
              : undefined;
    if (vmName !== undefined && !names.has(vmName)) {
      throw new KvmemError({
        code: "E_SCENARIO",
        input: path,
        place: "timeline",
        message: `event at ${ev.at} ms names VM '${vmName}', which the scenario does not have`,
        hint: `VMs: ${[...names].join(", ")}`,
      });
    }
  }
  return { file: path, scenario, domains, traces };
}

/** The key node (not the value) of the last path element, to point at an unknown key itself. */
function keyNode(doc: ReturnType<typeof parseDocument>, path: Array<string | number>): unknown {
  const parent = doc.getIn(path.slice(0, -1), true) as
    | { items?: Array<{ key?: { value?: unknown; range?: unknown } }> }
    | undefined;
  return parent?.items?.find((p) => p.key?.value === path[path.length - 1])?.key;
}

export { parseScenarioObject };
