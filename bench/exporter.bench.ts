/**
 * Exporter scrape latency on this machine: an in-process exporter over loopback reading the live
 * host, scraped N times in sequence; prints median, p95 and max wall time per scrape (ms), and
 * the time to build the report alone.
 */
import type { AddressInfo } from "node:net";
import { hostReport } from "../src/cli/host.js";
import { renderMetrics } from "../src/exporter/metrics.js";
import { createExporterServer, listen } from "../src/exporter/server.js";
import { DirProcFs } from "../src/inspect/fs-procfs.js";

const pct = (xs: number[], p: number) =>
  xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

export async function run(): Promise<void> {
  const fs = new DirProcFs("/");
  const N = 200;
  const build: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    hostReport(fs);
    build.push(performance.now() - t0);
  }
  const server = createExporterServer(
    async () => {
      const t0 = performance.now();
      const r = hostReport(fs);
      return renderMetrics(r, (performance.now() - t0) / 1000);
    },
    () => {},
  );
  await listen(server, { host: "127.0.0.1", port: 0 });
  const port = (server.address() as AddressInfo).port;
  const scrape: number[] = [];
  let bytes = 0;
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    bytes = (await res.text()).length;
    scrape.push(performance.now() - t0);
  }
  server.close();
  build.sort((a, b) => a - b);
  scrape.sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(2);
  console.log(
    `report build (live host), ${N} runs: median ${f(pct(build, 50))} ms, p95 ${f(pct(build, 95))} ms, max ${f(build[N - 1])} ms`,
  );
  console.log(
    `scrape over loopback, ${N} scrapes: median ${f(pct(scrape, 50))} ms, p95 ${f(pct(scrape, 95))} ms, max ${f(scrape[N - 1])} ms (${bytes} bytes)`,
  );
}
