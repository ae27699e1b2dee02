import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACC_EXEC, ACC_READ, ACC_WRITE, EV_EXIT, EV_SWITCH, EventBatch } from "./batch.js";
import { initialContent, writtenContent } from "./content.js";
import { parseLackey, TraceWorkload } from "./lackey.js";
import { type PatternSpec, SyntheticWorkload, Zipf, zeta } from "./patterns.js";
import { Prng } from "./prng.js";

const spec = (o: Partial<PatternSpec>): PatternSpec => ({
  pattern: "uniform",
  footprint: 1 << 20,
  base: 0x7f0000000000,
  granularity: 64,
  stride: 4096,
  theta: 0.99,
  accesses: 10000,
  writeRatio: 0,
  processes: 1,
  switchEvery: 0,
  ioExitsPerMillion: 0,
  seed: 1,
  ...o,
});

function drain(w: SyntheticWorkload | TraceWorkload) {
  const b = new EventBatch(1000);
  const events: Array<[number, number, number]> = [];
  for (;;) {
    b.reset();
    if (w.fill(b, b.capacity) === 0) break;
    for (let i = 0; i < b.count; i++) events.push([b.kind[i], b.addr[i], b.arg[i]]);
  }
  return events;
}

describe("synthetic patterns", () => {
  it("the same seed gives the same events; another seed different ones", () => {
    const a = drain(new SyntheticWorkload(spec({ pattern: "zipf", writeRatio: 0.3 })));
    const b = drain(new SyntheticWorkload(spec({ pattern: "zipf", writeRatio: 0.3 })));
    const c = drain(new SyntheticWorkload(spec({ pattern: "zipf", writeRatio: 0.3, seed: 2 })));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it("sequential walks lines in order and wraps", () => {
    const ev = drain(
      new SyntheticWorkload(spec({ pattern: "sequential", footprint: 256, accesses: 6 })),
    );
    expect(ev.map((e) => e[1] - 0x7f0000000000)).toEqual([0, 64, 128, 192, 0, 64]);
  });

  it("strided jumps by the stride and shifts a line each lap", () => {
    const ev = drain(
      new SyntheticWorkload(
        spec({
          pattern: "strided",
          footprint: 4 * 4096,
          stride: 4096,
          granularity: 64,
          accesses: 6,
        }),
      ),
    );
    expect(ev.map((e) => e[1] - 0x7f0000000000)).toEqual([0, 4096, 8192, 12288, 64, 4160]);
  });

  it("property: every access stays inside the footprint, aligned to the granularity", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("sequential", "strided", "uniform", "zipf", "chase" as const),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 0, max: 1000 }),
        (pattern, lines, seed) => {
          const s = spec({
            pattern: pattern as PatternSpec["pattern"],
            footprint: lines * 64,
            accesses: 300,
            seed,
          });
          for (const [, a] of drain(new SyntheticWorkload(s))) {
            const off = a - s.base;
            expect(off).toBeGreaterThanOrEqual(0);
            expect(off).toBeLessThan(lines * 64);
            expect(off % 64).toBe(0);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("property: pointer chase visits every line exactly once per lap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3000 }),
        fc.integer({ min: 0, max: 10000 }),
        (lines, seed) => {
          const ev = drain(
            new SyntheticWorkload(
              spec({ pattern: "chase", footprint: lines * 64, accesses: lines, seed }),
            ),
          );
          expect(new Set(ev.map((e) => e[1])).size).toBe(lines);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("zipf: the hottest rank has probability 1/zeta(n); zeta's tail approximation is exact enough", () => {
    const n = 1000;
    const z = new Zipf(n, 0.99, new Prng(7));
    let hits = 0;
    const N = 200000;
    for (let i = 0; i < N; i++) if (z.rank() === 0) hits++;
    const p = 1 / zeta(n, 0.99);
    expect(Math.abs(hits / N - p)).toBeLessThan(0.01);
    let exact = 0;
    for (let i = 1; i <= 3_000_000; i++) exact += 1 / i ** 0.99;
    expect(Math.abs(zeta(3_000_000, 0.99) - exact) / exact).toBeLessThan(1e-9);
  });

  it("read/write mix, context switches and I/O exits", () => {
    const ev = drain(
      new SyntheticWorkload(
        spec({
          writeRatio: 0.25,
          processes: 3,
          switchEvery: 100,
          ioExitsPerMillion: 1000,
          accesses: 20000,
        }),
      ),
    );
    const acc = ev.filter((e) => e[0] === ACC_READ || e[0] === ACC_WRITE);
    expect(acc).toHaveLength(20000);
    const w = acc.filter((e) => e[0] === ACC_WRITE).length / acc.length;
    expect(Math.abs(w - 0.25)).toBeLessThan(0.02);
    const sw = ev.filter((e) => e[0] === EV_SWITCH);
    expect(sw[0][2]).toBe(0);
    expect(sw.length).toBe(1 + Math.floor((20000 - 1) / 100));
    expect(new Set(sw.map((e) => e[2]))).toEqual(new Set([0, 1, 2]));
    expect(ev.filter((e) => e[0] === EV_EXIT)).toHaveLength(19); // one per 1000 accesses, after each full 1000
  });
});

describe("lackey traces", () => {
  it("parses the recorded fixture (valgrind 3.19 lackey on /bin/true)", () => {
    const t = parseLackey(
      readFileSync(new URL("../../test/fixtures/lackey-true.trace", import.meta.url), "utf8"),
    );
    // 2358 I + 446 L + 170 S + 20 M (each M is a load and a store)
    expect(t.count).toBe(2358 + 446 + 170 + 2 * 20);
    expect(t.skipped).toBe(18); // valgrind's ==PID== lines
    expect(t.problems).toEqual([]);
    expect(t.kind[0]).toBe(ACC_EXEC);
    expect(t.addr[0]).toBe(0x0401ab70); // the first record: "I  0401ab70,3"
    expect(t.size[0]).toBe(3);
  });

  it("reads exact records and reports bad ones with their line", () => {
    const t = parseLackey(
      "I  04010173,3\n L 7ffd0000cafe,8\n S 04222cb0,4\n M 0421e600,8\n L zz,8\nhello\n",
      "x.trace",
    );
    expect(Array.from(t.addr)).toEqual([
      0x04010173, 0x7ffd0000cafe, 0x04222cb0, 0x0421e600, 0x0421e600,
    ]);
    expect(Array.from(t.kind)).toEqual([ACC_EXEC, ACC_READ, ACC_WRITE, ACC_READ, ACC_WRITE]);
    expect(Array.from(t.size)).toEqual([3, 8, 4, 8, 8]);
    expect(t.problems).toEqual([
      {
        code: "E_PARSE",
        path: "x.trace:5",
        message: "bad lackey record 'L zz,8' (expected e.g. ' L 04222cac,8')",
      },
    ]);
    expect(t.skipped).toBe(1);
  });

  it("replays a trace, data only, looping to the access count", () => {
    const t = parseLackey("I  1000,3\n L 2000,8\n S 3000,4\n");
    const ev = drain(new TraceWorkload(t, 5, false));
    expect(ev.map((e) => [e[0], e[1]])).toEqual([
      [ACC_READ, 0x2000],
      [ACC_WRITE, 0x3000],
      [ACC_READ, 0x2000],
      [ACC_WRITE, 0x3000],
      [ACC_READ, 0x2000],
    ]);
  });

  it("parses a trace recorded now with this machine's valgrind", () => {
    const dir = mkdtempSync(join(tmpdir(), "lackey-"));
    const log = join(dir, "t.txt");
    try {
      execFileSync(
        "valgrind",
        ["--tool=lackey", "--trace-mem=yes", `--log-file=${log}`, "/bin/true"],
        { stdio: "ignore" },
      );
    } catch {
      return; // valgrind not installed here: the fixture test above covers the format
    }
    const text = readFileSync(log, "utf8");
    const t = parseLackey(text);
    expect(t.problems).toEqual([]);
    const records = text.split("\n").filter((l) => /^(I |\s[LSM] )/.test(l));
    const modifies = records.filter((l) => l.startsWith(" M")).length;
    expect(t.count).toBe(records.length + modifies);
  });
});

describe("content tokens", () => {
  it("images share, unique does not, zero is the zero page, writes diverge", () => {
    const img = { kind: "image" as const, image: "debian-12", shared: 1 };
    expect(initialContent(img, 1, 42)).toBe(initialContent(img, 2, 42));
    expect(initialContent(img, 1, 42)).not.toBe(initialContent(img, 1, 43));
    expect(initialContent({ kind: "unique" }, 1, 42)).not.toBe(
      initialContent({ kind: "unique" }, 2, 42),
    );
    expect(initialContent({ kind: "zero" }, 1, 42)).toBe(0);
    expect(initialContent({ kind: "constant", value: 5 }, 1, 1)).toBe(
      initialContent({ kind: "constant", value: 5 }, 2, 9),
    );
    expect(writtenContent(1, 42, 1)).not.toBe(writtenContent(1, 42, 2));
    const half = { kind: "image" as const, image: "x", shared: 0.5 };
    let same = 0;
    for (let g = 0; g < 10000; g++)
      if (initialContent(half, 1, g) === initialContent(half, 2, g)) same++;
    expect(Math.abs(same / 10000 - 0.5)).toBeLessThan(0.03);
  });
});
