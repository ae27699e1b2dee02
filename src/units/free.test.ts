import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CORPUS, corpusPath } from "../../test/corpus.js";
import { parseMeminfo } from "../inspect/parse.js";
import { freeFigures, freeScale, freeTable, printfFloat1 } from "./free.js";

describe("printf %.1f of a float, as glibc prints it", () => {
  it.each([
    [1.25, "1.2"], // exact tie in binary: round half to even
    [1.75, "1.8"], // exact tie: to even
    [0.25, "0.2"],
    [1.35, "1.4"], // float(1.35) = 1.35000002...
    [0.05, "0.1"], // float(0.05) = 0.0500000007...
    [9.95, "9.9"], // float(9.95) = 9.94999980...
    [15.449, "15.4"],
    [0, "0.0"],
  ])("%s -> %s", (x, s) => expect(printfFloat1(x)).toBe(s));
});

describe.skipIf(!CORPUS)("free(1) figures and scaling (procps-ng 4)", () => {
  // telegraf's fixture (plugins/inputs/mem/testdata/normal/proc/meminfo): a 16 GiB host
  const text = readFileSync(corpusPath("procfs/telegraf-mem/proc/meminfo"), "utf8");
  const m = parseMeminfo(text).value;
  const f = freeFigures(m);

  it("computes used = total - available, buff/cache = Buffers + Cached + SReclaimable", () => {
    expect(f.total).toBe(16201888);
    expect(f.used).toBe(16201888 - 14221924);
    expect(f.buffCache).toBe(2328512 + 10074816 + 1878340);
    expect(f.shared).toBe(655156);
    expect(f.swapUsed).toBe(4194300 - 4186844);
  });

  it("prints -g truncated and -h with procps's width rules", () => {
    // 16201888 KiB = 15.45 GiB: -g truncates to 15; -h "15.5Gi" is 6 chars > 5, so "15Gi"
    expect(freeScale(f.total, { unit: "g" })).toBe("15");
    expect(freeScale(f.total, { unit: "h" })).toBe("15Gi");
    // used 1979964 KiB = 1.888 GiB -> "1.9Gi"
    expect(freeScale(f.used, { unit: "h" })).toBe("1.9Gi");
    // 0 KiB -> "0B"; 1 KiB = 1024 B does not fit "%lldB" in 4 chars -> "1.0Ki"
    expect(freeScale(0, { unit: "h" })).toBe("0B");
    expect(freeScale(1, { unit: "h" })).toBe("1.0Ki");
    expect(freeScale(f.total, { unit: "m" })).toBe("15822");
    expect(freeScale(f.total, { unit: "k" })).toBe("16201888");
    expect(freeScale(f.total, { unit: "b" })).toBe(String(16201888 * 1024));
    // --si: 16590733312 B = 16.6 GB -> "16.6G" is 5 chars > 4 -> "16G"
    expect(freeScale(f.total, { unit: "h", si: true })).toBe("16G");
  });

  it("falls back to MemFree when MemAvailable is absent (node_exporter fixture)", () => {
    const ne = parseMeminfo(
      readFileSync(corpusPath("procfs/node_exporter/proc/meminfo"), "utf8"),
    ).value;
    expect(ne.MemAvailable).toBeUndefined();
    const nf = freeFigures(ne);
    expect(nf.available).toBe(ne.MemFree);
    expect(nf.used).toBe(ne.MemTotal - ne.MemFree);
  });

  it("lays the table out like free: %-9s label, %11s, then ' %11s'", () => {
    const t = freeTable(f, { unit: "g" }).split("\n");
    expect(t[0]).toBe(
      "               total        used        free      shared  buff/cache   available",
    );
    expect(t[1]).toBe(
      "Mem:              15           1           1           0          13          13",
    );
    expect(t[2]).toBe("Swap:              3           0           3");
  });

  it("matches the real free -g on this machine", () => {
    let real: string;
    try {
      real = execFileSync("free", ["-g"], { encoding: "utf8" });
    } catch {
      return; // procps not installed: nothing to compare with
    }
    const ours = freeTable(freeFigures(parseMeminfo(readFileSync("/proc/meminfo", "utf8")).value), {
      unit: "g",
    });
    // GiB figures do not move between the two reads on an idle machine; compare total and swap
    expect(ours.split("\n")[0]).toBe(real.split("\n")[0]);
    expect(ours.split("\n")[1].slice(0, 20)).toBe(real.split("\n")[1].slice(0, 20));
    expect(ours.split("\n")[2]).toBe(real.split("\n")[2]);
  });
});
