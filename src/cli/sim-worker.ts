/** A worker thread that runs one scenario combination for `kvmem sim --vary`. */
import { parentPort, workerData } from "node:worker_threads";
import { runScenario } from "../scenario/index.js";
import { loadScenario } from "../scenario/load.js";
import type { Assignment } from "../scenario/overrides.js";
import { isKvmemError } from "../units/errors.js";

const { file, overrides } = workerData as { file: string | undefined; overrides: Assignment[] };
try {
  const r = runScenario(loadScenario(file, overrides));
  parentPort?.postMessage({ ok: true, result: { ...r, procfs: {}, series: [], kernelLog: "" } });
} catch (e) {
  parentPort?.postMessage({
    ok: false,
    error: isKvmemError(e) ? e.oneLine() : e instanceof Error ? e.message : String(e),
  });
}
