// Scenario validation: one test per kind of mistake, each error naming the file, line:column, key
// path, the value and what is accepted; overrides (--set/--vary); the shipped scenarios load.
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KvmemError } from "../units/errors.js";
import { DEFAULT_SCENARIO, loadScenario } from "./load.js";
import { applyAt, combinations, parseAssignment } from "./overrides.js";

const dir = mkdtempSync(join(tmpdir(), "kvmem-scn-"));
writeFileSync(
  join(dir, "vm.xml"),
  "<domain type='kvm'><name>x</name><memory unit='GiB'>1</memory></domain>\n",
);
const BASE = `name: t
host:
  memory: 4GiB
workloads:
  w: { pattern: uniform, footprint: 1MiB, accesses: 100 }
vms:
  - name: a
    domain: vm.xml
    workload: w
`;

function errorOf(yaml: string, overrides: Parameters<typeof loadScenario>[1] = []): string {
  const f = join(dir, `s${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, yaml);
  try {
    loadScenario(f, overrides);
  } catch (e) {
    expect(e).toBeInstanceOf(KvmemError);
    return (e as KvmemError).oneLine().replace(f, "S");
  }
  return "no error";
}

describe("scenario validation errors", () => {
  it("the base scenario loads, with defaults filled", () => {
    const f = join(dir, "ok.yaml");
    writeFileSync(f, BASE);
    const s = loadScenario(f);
    expect(s.scenario.host.memory).toBe(4 * 2 ** 30);
    expect(s.scenario.host.cpu.ept).toBe(true);
    expect(s.scenario.host.kernel.thp).toBe("madvise");
    expect(s.domains.get("a")?.xml).toContain("<memory unit='GiB'>1</memory>");
  });

  it.each([
    [
      "a misspelt enum value",
      BASE.replace("pattern: uniform", "pattern: unifrom"),
      "S:5:17: workloads.w.pattern: 'unifrom' is not accepted; accepted: sequential, strided, uniform, zipf, chase, trace (see docs/sim.md for the scenario format)",
    ],
    [
      "an unknown key",
      BASE.replace("  memory: 4GiB", "  memory: 4GiB\n  memroy: 1"),
      "S:4:3: host: unknown key 'memroy' (see docs/sim.md for the scenario format)",
    ],
    [
      "a wrong type",
      BASE.replace("  memory: 4GiB", "  memory: 4GiB\n  cpus: many"),
      "S:4:9: host.cpus: 'many': expected number, received string (see docs/sim.md for the scenario format)",
    ],
    [
      "an unknown unit",
      BASE.replace("4GiB", "4 gigs"),
      "S:3:11: host.memory: '4 gigs': not a size (libvirt accepts b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB) (see docs/sim.md for the scenario format)",
    ],
    [
      "a host size the simulator cannot hold",
      BASE.replace("4GiB", "1536MiB"),
      "S:3:11: host.memory: '1536MiB': must be a whole number of GiB, e.g. 16GiB",
    ],
    [
      "a missing required key",
      BASE.replace("  memory: 4GiB\n", "  cpus: 2\n"),
      "S:3:3: host.memory: missing: expected number, received undefined (see docs/sim.md for the scenario format)",
    ],
    [
      "an out-of-range number",
      BASE.replace("accesses: 100", "accesses: 100, writeRatio: 1.5"),
      "S:5:70: workloads.w.writeRatio: '1.5': Too big: expected number to be <=1 (see docs/sim.md for the scenario format)",
    ],
    [
      "a workload name that does not exist",
      BASE.replace("workload: w", "workload: nope"),
      "S:vms.a.workload: no workload named 'nope' (defined: w)",
    ],
    [
      "a domain file that does not exist",
      BASE.replace("vm.xml", "missing.xml"),
      "S: cannot read domain XML",
    ],
    [
      "both domain and xml",
      BASE.replace("    domain: vm.xml", "    domain: vm.xml\n    xml: <domain/>"),
      "S:7:5: vms[0]: ",
    ],
    [
      "a YAML syntax error",
      `${BASE}  - name: [unclosed\n`,
      "S:11:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
    [
      "a timeline event naming a VM that does not exist",
      `${BASE}timeline:\n  - { at: 5, setmem: { vm: b, target: 1GiB } }\n`,
      "S:timeline: event at 5 ms names VM 'b', which the scenario does not have (VMs: a)",
    ],
    [
      "duplicate VM names",
      BASE.replace("vms:\n", "vms:\n  - { name: a, domain: vm.xml, workload: w }\n"),
      "S:vms: two VMs are named 'a' (VM names must be unique)",
    ],
  ])("%s", (_what, yaml, expected) => {
    expect(errorOf(yaml)).toContain(expected);
  });

  it("a missing scenario file", () => {
    expect(() => loadScenario(join(dir, "nope.yaml"))).toThrow(
      /cannot read scenario '.*nope.yaml': no such file/,
    );
  });
});

describe("--set and --vary", () => {
  it("sets nested keys, with * over lists, values read as YAML scalars", () => {
    const o = { host: { cpu: { ept: true } }, vms: [{ name: "a" }, { name: "b" }] };
    applyAt(o, parseAssignment("host.cpu.ept=false", "--set").path, false);
    applyAt(o, ["vms", "*", "backing"], "2M");
    expect(o).toEqual({
      host: { cpu: { ept: false } },
      vms: [
        { name: "a", backing: "2M" },
        { name: "b", backing: "2M" },
      ],
    });
    expect(parseAssignment("host.cpus=8", "--set").values).toEqual([8]);
    expect(parseAssignment("host.cpu.ept=true,false", "--vary").values).toEqual([true, false]);
    expect(() => parseAssignment("host.cpu.ept", "--set")).toThrow(/is not key.path=value/);
    expect(() => applyAt({ vms: [] }, ["vms", "x", "y"], 1)).toThrow(/not an index/);
  });

  it("a --set that breaks the scenario is reported at its key", () => {
    const a = parseAssignment("host.cpu.vpid=maybe", "--set");
    expect(errorOf(BASE, [{ path: a.path, value: a.values[0], text: "" }])).toContain(
      "host.cpu.vpid: 'maybe': expected boolean, received string",
    );
  });

  it("combinations: every product, baseline first", () => {
    const c = combinations([
      { path: ["a"], values: [1, 2] },
      { path: ["b"], values: ["x", "y"] },
    ]);
    expect(c.map((x) => x.map((y) => y.text).join(" "))).toEqual([
      "a=1 b=x",
      "a=1 b=y",
      "a=2 b=x",
      "a=2 b=y",
    ]);
  });
});

describe("shipped scenarios", () => {
  const scenarios = readdirSync(new URL("../../scenarios/", import.meta.url)).filter((f) =>
    f.endsWith(".yaml"),
  );
  it.each(scenarios)("%s loads", (f) => {
    const s = loadScenario(new URL(`../../scenarios/${f}`, import.meta.url).pathname);
    expect(s.scenario.vms.length).toBeGreaterThan(0);
  });
  it("the default is scenarios/default.yaml", () => {
    expect(loadScenario(undefined).file).toBe(DEFAULT_SCENARIO);
  });
});
