/** Run a loaded scenario to the end and summarise it (pure: the lab calls this in a worker). */
import { buildHost, type ScenarioInput } from "./build.js";
import { ScenarioRun } from "./run.js";
import { type ScenarioResult, summarize } from "./summary.js";

export function runScenario(
  input: ScenarioInput,
  onProgress?: (fraction: number) => void,
): ScenarioResult {
  const built = buildHost(input);
  const run = new ScenarioRun(built);
  run.runAll(onProgress);
  return summarize(built, run);
}

export type { ScenarioInput, ScenarioResult };
