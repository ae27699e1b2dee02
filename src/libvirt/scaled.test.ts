/**
 * libvirt's numbers against libvirt's own factors and limits.
 * Reference: docs/formatdomain.rst "Memory Allocation" (unit table), src/util/virutil.c
 * virScaleInteger, src/conf/domain_conf.c virDomainParseMemory / virDomainParseMemoryLimit,
 * src/util/virbitmap.c virBitmapParse.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  expressKiB,
  formatBitmap,
  MEMORY_UNLIMITED_KIB,
  parseBitmap,
  parseMemoryKiB,
  parseMemoryLimitKiB,
} from "./scaled.js";

// formatdomain.rst: "b"/"bytes" bytes; KB = 1000; k/KiB = 1024; MB = 10^6; M/MiB = 2^20; ...
const UNITS: Array<[string, bigint]> = [
  ["b", 1n], // bytes
  ["bytes", 1n], // bytes, long form
  ["KB", 1000n], // kilobytes (SI)
  ["k", 1024n], // kibibytes
  ["KiB", 1024n], // kibibytes
  ["MB", 1000n ** 2n], // megabytes
  ["M", 1024n ** 2n], // mebibytes
  ["MiB", 1024n ** 2n], // mebibytes
  ["GB", 1000n ** 3n], // gigabytes
  ["G", 1024n ** 3n], // gibibytes
  ["GiB", 1024n ** 3n], // gibibytes
  ["TB", 1000n ** 4n], // terabytes
  ["T", 1024n ** 4n], // tebibytes
  ["TiB", 1024n ** 4n], // tebibytes
  ["PB", 1000n ** 5n], // petabytes
  ["P", 1024n ** 5n], // pebibytes
  ["PiB", 1024n ** 5n], // pebibytes
  ["EB", 1000n ** 6n], // exabytes
  ["E", 1024n ** 6n], // exbibytes
  ["EiB", 1024n ** 6n], // exbibytes
];
const LLONG_MAX = (1n << 63n) - 1n;

/** The reference: bytes = value * factor, refused above LLONG_MAX; KiB rounded up; < 2^53. */
function reference(value: bigint, factor: bigint): number | "error" {
  const bytes = value * factor;
  if (bytes > LLONG_MAX) return "error";
  const kib = (bytes + 1023n) / 1024n;
  if (kib >= 1n << 53n) return "error";
  return Number(kib);
}

describe("virDomainParseMemory units", () => {
  it.each(UNITS)("1 %s", (unit, factor) => {
    expect(parseMemoryKiB("1", unit, "x")).toEqual({
      ok: true,
      value: Number((factor + 1023n) / 1024n),
    });
  });

  it("no unit means KiB", () => {
    expect(parseMemoryKiB("2097152", undefined, "x")).toEqual({ ok: true, value: 2097152 });
  });

  it("matches the reference for every unit and value (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...UNITS),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        ([unit, factor], v) => {
          const got = parseMemoryKiB(v.toString(), unit, "x");
          const want = reference(v, factor);
          if (want === "error") expect(got.ok).toBe(false);
          else expect(got).toEqual({ ok: true, value: want });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("units are case-insensitive as virScaleInteger compares them (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...UNITS),
        fc.bigInt({ min: 0n, max: 1n << 20n }),
        ([unit], v) => {
          const mixed = unit
            .split("")
            .map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase()))
            .join("");
          const a = parseMemoryKiB(v.toString(), mixed, "x");
          const b = parseMemoryKiB(v.toString(), unit, "x");
          expect(a.ok ? a.value : "refused").toEqual(b.ok ? b.value : "refused");
        },
      ),
    );
  });

  it("the largest size libvirt keeps is 2^53 - 1 KiB (memory-align-fail.xml uses it)", () => {
    expect(parseMemoryKiB("9007199254740991", "KiB", "x")).toEqual({
      ok: true,
      value: 9007199254740991,
    });
    expect(parseMemoryKiB("9007199254740992", "KiB", "x").ok).toBe(false); // 2^63 bytes
    // LLONG_MAX bytes scale fine but round up to 2^53 KiB: virDomainParseMemory's own refusal
    expect(parseMemoryKiB("9223372036854775807", "b", "x")).toEqual({
      ok: false,
      error: "size value too large",
    });
    expect(parseMemoryKiB("8", "EiB", "x").ok).toBe(false); // 2^63 bytes > LLONG_MAX
  });

  it.each([
    ["12", "XB", "unknown suffix 'XB'"], // not a libvirt unit
    ["12", "KiBB", "unknown suffix 'KiBB'"], // trailing garbage in the unit
    ["-1", "KiB", "Invalid value '-1' for element or attribute 'x'"], // virStrToLong_ullp refuses a sign
    ["1.5", "GiB", "Invalid value '1.5' for element or attribute 'x'"], // integers only
    ["12 ", "KiB", "Invalid value '12 ' for element or attribute 'x'"], // nothing may follow
  ])("refuses %j %j", (v, u, msg) => {
    expect(parseMemoryKiB(v, u, "x")).toEqual({ ok: false, error: msg });
  });
});

describe("virDomainParseMemoryLimit (memtune)", () => {
  it("memtune.xml's swap_hard_limit 1048576 KB is 1024000 KiB (libvirt's normalized output)", () => {
    expect(parseMemoryLimitKiB("1048576", "KB", "x")).toEqual({ ok: true, value: 1024000 });
  });
  it("2^53-1 KiB is unlimited, and larger byte counts are refused", () => {
    expect(parseMemoryLimitKiB("9007199254740991", "KiB", "x")).toEqual({
      ok: true,
      value: MEMORY_UNLIMITED_KIB,
    });
    expect(parseMemoryLimitKiB("9007199254740992", "KiB", "x").ok).toBe(false);
  });
});

describe("expressKiB (what edit writes)", () => {
  it("round-trips through the parser in the preferred unit when exact, else KiB (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.constantFrom(...UNITS.map((u) => u[0])),
        (kib, unit) => {
          const e = expressKiB(kib, unit);
          expect(parseMemoryKiB(e.value, e.unit, "x")).toEqual({ ok: true, value: kib });
          const exact = (BigInt(kib) * 1024n) % UNITS.find((u) => u[0] === unit)![1] === 0n;
          expect(e.unit).toBe(exact ? unit : "KiB");
        },
      ),
    );
  });
});

describe("virBitmapParse / virBitmapFormat", () => {
  it.each([
    ["0-3", [0, 1, 2, 3]], // range
    ["0,2-3", [0, 2, 3]], // list with range
    ["1-2,5-7,^6", [1, 2, 5, 7]], // exclusion after inclusion (numatune-memnode-invalid-mode.xml)
    ["0,^0", []], // empty: numatune-memory-invalid-nodeset.xml
    ["^0,0", [0]], // items apply left to right
  ])("%s", (text, bits) => {
    expect(parseBitmap(text)).toEqual({ ok: true, value: bits });
  });
  it.each(["", "a", "3-1", "^1-2", "16384", "1,,2"])("refuses %j", (text) => {
    expect(parseBitmap(text).ok).toBe(false);
  });
  it("format then parse is the identity on sets (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 40 }),
        (bits) => {
          const sorted = [...bits].sort((a, b) => a - b);
          expect(parseBitmap(formatBitmap(bits))).toEqual({ ok: true, value: sorted });
        },
      ),
    );
  });
});
