// The exporter over real loopback sockets: a child process serving a built --root tree.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvmem } from "../../test/cli.js";
import { buildTree, domainXml, writeTree } from "../../test/hosttree.js";
import { parseListen } from "./server.js";

const main = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

/** Parse the text exposition format: {name, labels, value} per sample, plus TYPE lines. */
function parseExposition(text: string) {
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types.set(t[1], t[2]);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not exposition format: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function waitForLine(child: ChildProcess, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${re}: ${buf}`)), 15000);
    child.stderr?.on("data", (d: Buffer) => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve(buf);
      }
    });
  });
}

describe("kvmem exporter", () => {
  let child: ChildProcess;
  let port: number;
  const root = writeTree(
    buildTree({
      numaNodes: 2,
      hugepages: {
        2048: {
          nr: 1024,
          free: 512,
          nodes: [
            { nr: 512, free: 256 },
            { nr: 512, free: 256 },
          ],
        },
        1048576: { nr: 0, free: 0 },
      },
      ksm: {
        run: 1,
        pages_sharing: 300,
        pages_shared: 10,
        full_scans: 7,
        pages_scanned: 9000,
        pages_skipped: 12,
        ksm_zero_pages: 5,
        general_profit: 305 * 4096 - 1000 * 64,
      },
      modules: { kvm_intel: { ept: "Y", vpid: "N" } },
      domains: {
        vm1: domainXml({ name: "vm1", memoryKiB: 1048576, hugepages: "<hugepages/>" }),
        vm2: domainXml({ name: "vm2", memoryKiB: 2097152, currentKiB: 1048576 }),
      },
      files: {
        "/proc/3000/cmdline": "/usr/bin/qemu-system-x86_64\0-name\0guest=vm2,debug-threads=on\0",
        "/proc/3000/status":
          "Name:\tqemu-system-x86\nVmRSS:\t  900000 kB\nRssAnon:\t  899000 kB\nRssFile:\t    1000 kB\nRssShmem:\t       0 kB\nVmSwap:\t   65536 kB\nHugetlbPages:\t       0 kB\n",
        "/proc/3000/ksm_stat":
          "ksm_rmap_items 1000\nksm_zero_pages 0\nksm_merging_pages 800\nksm_process_profit 3212800\n",
      },
    }),
  );

  beforeAll(async () => {
    port = await freePort();
    child = spawn(
      process.execPath,
      ["--import", "tsx", main, "exporter", "--listen", `127.0.0.1:${port}`, "--root", root],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    await waitForLine(child, /serving http/);
  });
  afterAll(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });

  it("serves valid exposition with the host's meaning", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const { samples, types } = parseExposition(await res.text());
    const get = (name: string, labels: Record<string, string> = {}) =>
      samples.find(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )?.value;
    expect(get("kvmem_memory_total_bytes")).toBe(16 * 1024 * 1024 * 1024);
    expect(get("kvmem_tdp_enabled", { mode: "EPT" })).toBe(1);
    expect(get("kvmem_vpid_enabled")).toBe(0);
    expect(get("kvmem_hugepages_total", { pagesize: "2M" })).toBe(1024);
    expect(get("kvmem_hugepages_node_free", { pagesize: "2M", node: "1" })).toBe(256);
    expect(get("kvmem_hugepages_free_bytes", { pagesize: "2M" })).toBe(512 * 2 * 1024 * 1024);
    expect(get("kvmem_ksm_pages_sharing")).toBe(300);
    expect(get("kvmem_ksm_full_scans_total")).toBe(7);
    expect(types.get("kvmem_ksm_full_scans_total")).toBe("counter");
    expect(get("kvmem_ksm_pages_skipped_total")).toBe(12);
    expect(get("kvmem_ksm_ksm_zero_pages")).toBe(5);
    expect(get("kvmem_ksm_general_profit_bytes")).toBe(305 * 4096 - 64000);
    expect(get("kvmem_domain_memory_bytes", { domain: "vm2" })).toBe(2 * 1024 ** 3);
    expect(get("kvmem_domain_current_memory_bytes", { domain: "vm2" })).toBe(1024 ** 3);
    expect(get("kvmem_domain_info", { domain: "vm1", backing: "hugetlbfs-2M" })).toBe(1);
    expect(get("kvmem_finding", { id: "vpid-off", severity: "warning" })).toBe(1);
    expect(get("kvmem_finding", { id: "balloon-cannot-reclaim" })).toBe(1);
    // the QEMU process of vm2 (/proc/3000): status in KiB, exported in bytes
    const q = { domain: "vm2", pid: "3000" };
    expect(get("kvmem_qemu_resident_bytes", q)).toBe(900000 * 1024);
    expect(get("kvmem_qemu_resident_file_bytes", q)).toBe(1000 * 1024);
    expect(get("kvmem_qemu_swap_bytes", q)).toBe(65536 * 1024);
    expect(get("kvmem_qemu_ksm_merging_pages", q)).toBe(800);
    expect(get("kvmem_qemu_ksm_profit_bytes", q)).toBe(800 * 4096 - 1000 * 64);
    expect(get("kvmem_finding", { id: "guest-memory-in-swap" })).toBe(1);
    expect(get("kvmem_check", { check: "if VPID is in effect", status: "WARN" })).toBe(1);
    // every metric name follows the conventions: kvmem_ prefix, counters end in _total
    for (const [name, type] of types) {
      expect(name.startsWith("kvmem_")).toBe(true);
      if (type === "counter") expect(name.endsWith("_total")).toBe(true);
    }
  });

  it("reads the host afresh on every scrape", async () => {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(`${root}/sys/kernel/mm/ksm/pages_sharing`, "301\n");
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^kvmem_ksm_pages_sharing 301$/m);
  });

  it("404 for other paths, 405 for POST, / links to /metrics", async () => {
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: "POST" })).status).toBe(405);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toContain('href="/metrics"');
  });

  it("survives a client that hangs up mid-scrape", async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = new Socket();
        s.connect(port, "127.0.0.1", () => {
          s.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
          s.destroy();
          resolve();
        });
      });
    }
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
  });

  it("a port in use is one line and a non-zero exit", async () => {
    const r = kvmem("exporter", "--listen", `127.0.0.1:${port}`, "--root", root);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      `kvmem: --listen: 127.0.0.1:${port} is already in use (stop the other listener or choose another port)`,
    );
  });

  it("SIGTERM stops it cleanly (exit 0)", async () => {
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("--listen parsing", () => {
  it.each([
    ["127.0.0.1:9477", { host: "127.0.0.1", port: 9477 }],
    ["[::1]:9477", { host: "::1", port: 9477 }],
    [":9477", { host: "0.0.0.0", port: 9477 }],
    ["localhost:0", { host: "localhost", port: 0 }],
  ])("%s", (t, want) => expect(parseListen(t)).toEqual(want));

  it.each(["9477", "127.0.0.1:", "127.0.0.1:99999", "a b:1", "[::1:9477"])("rejects %s", (t) => {
    expect(() => parseListen(t)).toThrow(/is not an address to listen on/);
  });

  it("a bad address on the command line exits 2 with one line", () => {
    const r = kvmem("exporter", "--listen", "nowhere");
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      "kvmem: --listen: 'nowhere' is not an address to listen on (HOST:PORT with a port 0-65535, e.g. 127.0.0.1:9477, [::1]:9477 or :9477)",
    );
  });

  it("an address not on this machine", () => {
    const r = kvmem("exporter", "--listen", "192.0.2.1:9477");
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(
      /^kvmem: --listen: 192\.0\.2\.1 is not an address of this machine/,
    );
  });
});
