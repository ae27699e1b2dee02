/**
 * Shared setup for scenario tests: load a scenario file with `--set` overrides as the CLI does
 * (setOverrides), build its host, run it to the end and summarise it.
 */
import { type BuiltHost, buildHost, type ScenarioInput } from "../src/scenario/build.js";
import { loadScenario } from "../src/scenario/load.js";
import { setOverrides } from "../src/scenario/overrides.js";
import { ScenarioRun } from "../src/scenario/run.js";
import { type ScenarioResult, summarize } from "../src/scenario/summary.js";

/** A file under scenarios/ by name (e.g. "4-swap.yaml"). */
export const scenarioFile = (name: string) =>
  new URL(`../scenarios/${name}`, import.meta.url).pathname;

/** `file` loaded with `sets` (key.path=value each) applied in order, as `--set` does. */
export function loadWith(file: string, ...sets: string[]): ScenarioInput {
  return loadScenario(file, setOverrides(sets));
}

/** Build the host of a loaded scenario, run it to the end and summarise it. */
export function runInput(input: ScenarioInput): {
  built: BuiltHost;
  run: ScenarioRun;
  result: ScenarioResult;
} {
  const built = buildHost(input);
  const run = new ScenarioRun(built);
  run.runAll();
  return { built, run, result: summarize(built, run) };
}

/** loadWith, then runInput. */
export function runWith(file: string, ...sets: string[]) {
  return runInput(loadWith(file, ...sets));
}
