// Timeline events: a VM that boots later, one that stops, a workload phase, a runtime setting,
// and load-time errors for events that cannot apply.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runScenario } from "./index.js";
import { loadScenario } from "./load.js";

const dir = mkdtempSync(join(tmpdir(), "kvmem-tl-"));
const XML = "<domain type='kvm'><name>x</name><memory unit='GiB'>1</memory></domain>";
function scenario(timeline: string, extra = ""): string {
  const f = join(dir, `t${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    f,
    `name: tl
seed: 5
samples: 20
host: { memory: 4GiB, cpus: 1 }
workloads:
  a: { pattern: uniform, footprint: 2MiB, accesses: 20000 }
  b: { pattern: sequential, footprint: 1MiB, accesses: 30000 }
vms:
  - { name: one, xml: "${XML}", workload: a }
  - { name: two, xml: "${XML}", workload: a }
${extra}timeline:
${timeline}
`,
  );
  return f;
}
const acc = (r: ReturnType<typeof runScenario>, vm: string) =>
  r.vms.find((v) => v.name === vm)?.accesses;

describe("timeline", () => {
  it("a VM whose first event is start boots then, not before", () => {
    const r = runScenario(loadScenario(scenario("  - { at: 0.05, start: two }")));
    expect(r.timeline).toEqual([{ at: 0.05, event: "start two", applied: true, note: "" }]);
    expect(acc(r, "two")).toBe(20000);
    // before 0.05 ms only `one` ran
    const early = r.series.filter((s) => s.t < 0.05);
    expect(early.length).toBeGreaterThan(0);
    for (const s of early) expect(s.vms.find((v) => v.name === "two")?.accesses).toBe(0);
  });

  it("stop ends a VM's run early; start resumes it", () => {
    const stopped = runScenario(loadScenario(scenario("  - { at: 0.05, stop: one }")));
    expect(acc(stopped, "one")).toBeLessThan(20000);
    expect(acc(stopped, "one")).toBeGreaterThan(0);
    expect(acc(stopped, "two")).toBe(20000);
    const resumed = runScenario(
      loadScenario(scenario("  - { at: 0.05, stop: one }\n  - { at: 0.2, start: one }")),
    );
    expect(acc(resumed, "one")).toBe(20000);
    expect(resumed.timeline.map((e) => [e.event, e.applied])).toEqual([
      ["stop one", true],
      ["start one", true],
    ]);
  });

  it("a workload phase replaces the VM's workload", () => {
    const r = runScenario(
      loadScenario(scenario("  - { at: 0.05, workload: { vm: one, use: b } }")),
    );
    const one = acc(r, "one") ?? 0;
    expect(one).toBeGreaterThan(30000);
    expect(one).toBeLessThan(50000);
    expect(r.timeline[0]).toMatchObject({ event: "workload one -> b", applied: true });
  });

  it("a runtime setting changes the simulated /proc", () => {
    const r = runScenario(
      loadScenario(scenario('  - { at: 0.01, set: { "host.kernel.swappiness": 10 } }')),
    );
    expect(r.procfs["/proc/sys/vm/swappiness"]).toBe("10\n");
    expect(r.timeline[0]).toMatchObject({ event: "set host.kernel.swappiness=10", applied: true });
  });

  it("events that cannot apply are load-time errors", () => {
    expect(() => loadScenario(scenario('  - { at: 1, set: { "host.memory": 8 } }'))).toThrow(
      /sets 'host.memory', which cannot change at run time/,
    );
    expect(() => loadScenario(scenario("  - { at: 1, workload: { vm: one, use: nope } }"))).toThrow(
      /uses workload 'nope', which the scenario does not define/,
    );
    expect(() => loadScenario(scenario("  - { at: 1, stop: three }"))).toThrow(/names VM 'three'/);
  });
});
