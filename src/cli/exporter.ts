/** `kvmem exporter`: the host report at /metrics for Prometheus, read afresh on every scrape. */
import type { Command } from "commander";
import { renderMetrics } from "../exporter/metrics.js";
import { createExporterServer, listen, parseListen, stopOnSignals } from "../exporter/server.js";
import { hostReport, openRoot } from "./host.js";
import { action } from "./run.js";

export function register(program: Command): void {
  program
    .command("exporter")
    .description("serve the host report as Prometheus metrics at /metrics")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:9477")
    .option("--root <dir>", "read a captured tree instead of this machine")
    .action(
      action(async (opts: { listen: string; root?: string }) => {
        const addr = parseListen(opts.listen);
        const fs = openRoot(opts.root);
        const server = createExporterServer(
          async () => {
            const t0 = performance.now();
            const report = hostReport(fs);
            return renderMetrics(report, (performance.now() - t0) / 1000);
          },
          (msg) => process.stderr.write(`kvmem exporter: ${msg}\n`),
        );
        const bound = await listen(server, addr);
        const shown = bound.host.includes(":") ? `[${bound.host}]` : bound.host;
        process.stderr.write(`kvmem exporter: serving http://${shown}:${bound.port}/metrics\n`);
        stopOnSignals(server, (s) => process.stderr.write(s));
        return undefined;
      }),
    );
}
