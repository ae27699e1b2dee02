/** Run the kvmem CLI as a user does, in a child process (TypeScript through tsx). */
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

export function kvmem(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ["--import", "tsx", main, ...args], { encoding: "utf8" });
}
