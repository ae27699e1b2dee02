/**
 * Whole-scenario figures: simulated accesses per second of wall time for the default scenario
 * (after its warm-up), and memory used per simulated GiB of guest RAM for a 64 GiB host with
 * 16 VMs of 4 GiB (scenarios/big-host.yaml). Single-threaded; run from the compiled dist/ when
 * present (tsx adds getter indirection to every imported binding on the hot path).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/scenario/", import.meta.url));
type Mods = {
  load: typeof import("../src/scenario/load.js");
  build: typeof import("../src/scenario/build.js");
  run: typeof import("../src/scenario/run.js");
};

async function mods(): Promise<Mods & { from: string }> {
  if (existsSync(`${dist}run.js`)) {
    return {
      load: await import(`${dist}load.js`),
      build: await import(`${dist}build.js`),
      run: await import(`${dist}run.js`),
      from: "dist (compiled)",
    };
  }
  return {
    load: await import("../src/scenario/load.js"),
    build: await import("../src/scenario/build.js"),
    run: await import("../src/scenario/run.js"),
    from: "src (tsx)",
  };
}

export async function run(): Promise<void> {
  const m = await mods();
  console.log(`modules from ${m.from}`);
  for (const name of ["default.yaml", "big-host.yaml"]) {
    const file = fileURLToPath(new URL(`../scenarios/${name}`, import.meta.url));
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const built = m.build.buildHost(m.load.loadScenario(file));
    const t1 = performance.now();
    const r = new m.run.ScenarioRun(built);
    const t2 = performance.now();
    r.runAll();
    const t3 = performance.now();
    const accesses = r.states.reduce((a, st) => a + st.counters[m.run.C.accesses], 0);
    const guestGiB = built.vms.reduce((a, v) => a + v.memory, 0) / 2 ** 30;
    const touchedGiB = built.vms.reduce((a, v) => a + (v.mm?.rss ?? 0) * 4096, 0) / 2 ** 30;
    const rss = process.memoryUsage().rss;
    console.log(
      `${name}: ${built.vms.length} VMs, ${guestGiB} GiB guest RAM (${touchedGiB.toFixed(1)} GiB touched) on ${built.scenario.host.memory / 2 ** 30} GiB host`,
    );
    console.log(
      `  build ${(t1 - t0).toFixed(0)} ms, warm-up ${(t2 - t1).toFixed(0)} ms, run ${(t3 - t2).toFixed(0)} ms: ${(accesses / ((t3 - t2) / 1000) / 1e6).toFixed(2)} M simulated accesses/s`,
    );
    console.log(
      `  process RSS ${(rss / 2 ** 20).toFixed(0)} MiB (+${((rss - rss0) / 2 ** 20).toFixed(0)} MiB), ${((rss - rss0) / 2 ** 20 / guestGiB).toFixed(1)} MiB per simulated GiB of guest RAM`,
    );
  }
}
