/**
 * `kvmem sim`: run a scenario (the embedded default when none is given) and report per VM and
 * for the host; `--vary` runs every combination on worker threads and compares them.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { runScenario } from "../scenario/index.js";
import { loadScenario } from "../scenario/load.js";
import {
  type Assignment,
  combinations,
  parseAssignment,
  setOverrides,
} from "../scenario/overrides.js";
import type { ScenarioResult } from "../scenario/summary.js";
import { KvmemError } from "../units/errors.js";
import { action } from "./run.js";
import { renderSim } from "./sim-render.js";
import { htmlReport, seriesCsv } from "./sim-report.js";
import { varyText } from "./sim-vary.js";

interface SimOptions {
  set: string[];
  vary: string[];
  json?: boolean;
  out?: string;
  chart: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** Write a file atomically (temp + rename), so a failed run leaves nothing half-written. */
function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function register(program: Command): void {
  program
    .command("sim")
    .description("run a scenario: VMs from libvirt XML with workloads on a simulated KVM host")
    .argument("[scenario]", "scenario YAML (default: scenarios/default.yaml)")
    .option("--set <key.path=value>", "override a scenario key (repeatable)", collect, [])
    .option(
      "--vary <key.path=v1,v2,...>",
      "run every combination and compare (repeatable)",
      collect,
      [],
    )
    .option("--json", "print the results as JSON (docs/sim.md)")
    .option("--out <dir>", "write series.csv, result.json and report.html into DIR")
    .option("--no-chart", "no terminal chart")
    .action(
      action(async (file: string | undefined, opts: SimOptions) => {
        const sets = setOverrides(opts.set);
        if (opts.vary.length > 0) return vary(file, sets, opts);
        const loaded = loadScenario(file, sets);
        const bar =
          process.stderr.isTTY && !opts.json
            ? new SingleBar({
                format: "simulating [{bar}] {percentage}% | ETA {eta}s",
                hideCursor: true,
              })
            : null;
        bar?.start(100, 0);
        const result = runScenario(loaded, (f) => bar?.update(Math.floor(f * 100)));
        bar?.stop();
        const text = renderSim(result, { chart: opts.chart, color: process.stdout.isTTY });
        if (opts.out) writeOut(opts.out, result, text);
        process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : text);
        return 0;
      }),
    );
}

function writeOut(dir: string, r: ScenarioResult, text: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new KvmemError({
      code: "E_IO",
      input: "--out",
      message: `cannot create '${dir}': ${(e as Error).message}`,
      hint: "a writable directory",
    });
  }
  writeAtomic(join(dir, "series.csv"), seriesCsv(r));
  writeAtomic(join(dir, "result.json"), `${JSON.stringify(r, null, 2)}\n`);
  writeAtomic(join(dir, "report.html"), htmlReport(r, text));
}

async function vary(
  file: string | undefined,
  sets: Assignment[],
  opts: SimOptions,
): Promise<number> {
  const combos = combinations(opts.vary.map((v) => parseAssignment(v, "--vary")));
  // validate every combination before starting any work
  for (const c of combos) loadScenario(file, [...sets, ...c]);
  const results: Array<ScenarioResult | undefined> = new Array(combos.length);
  const workers = Math.max(1, Math.min(availableParallelism(), combos.length));
  const bar =
    process.stderr.isTTY && !opts.json
      ? new SingleBar({ format: "combinations [{bar}] {value}/{total}", hideCursor: true })
      : null;
  bar?.start(combos.length, 0);
  let next = 0;
  let done = 0;
  const isTs = import.meta.url.endsWith(".ts");
  const script = new URL(isTs ? "./sim-worker-tsx.mjs" : "./sim-worker.js", import.meta.url);
  const runOne = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(script, {
        workerData: { file, overrides: [...sets, ...combos[i]] },
        execArgv: [],
      });
      w.once("message", (m: { ok: boolean; result?: ScenarioResult; error?: string }) => {
        if (m.ok) results[i] = m.result;
        else
          reject(
            new KvmemError({
              code: "E_SCENARIO",
              input: combos[i].map((a) => a.text).join(" "),
              message: m.error ?? "failed",
              hint: "",
            }),
          );
        void w.terminate();
        done++;
        bar?.update(done);
        resolve();
      });
      w.once("error", reject);
    });
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < combos.length) await runOne(next++);
    }),
  );
  bar?.stop();
  const rs = results as ScenarioResult[];
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        rs.map((r, i) => ({ combination: combos[i].map((a) => a.text), result: r })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  process.stdout.write(
    varyText(
      rs[0].scenario,
      combos.map((c) => c.map((a) => a.text).join(" ")),
      rs,
    ),
  );
  return 0;
}
