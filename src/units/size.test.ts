import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KvmemError } from "./errors.js";
import {
  formatBytes,
  libvirtUnitFactor,
  parseLibvirtMemoryKiB,
  parseScaled,
  parseSize,
} from "./size.js";

const ctx = { input: "test.xml", place: "3:5" };

describe("libvirt units (virScaleInteger, formatdomain.rst 'Memory Allocation')", () => {
  it.each([
    ["b", 1n], // bytes
    ["bytes", 1n],
    ["KB", 1000n], // kilobytes, SI
    ["k", 1024n], // kibibytes
    ["KiB", 1024n],
    ["MB", 10n ** 6n],
    ["M", 2n ** 20n],
    ["MiB", 2n ** 20n],
    ["GB", 10n ** 9n],
    ["G", 2n ** 30n],
    ["GiB", 2n ** 30n],
    ["TB", 10n ** 12n],
    ["T", 2n ** 40n],
    ["TiB", 2n ** 40n],
    ["PB", 10n ** 15n],
    ["P", 2n ** 50n],
    ["PiB", 2n ** 50n],
    ["EB", 10n ** 18n],
    ["E", 2n ** 60n],
    ["EiB", 2n ** 60n],
    ["kib", 1024n], // libvirt compares case-insensitively (STRCASEEQ / c_tolower)
    ["gb", 10n ** 9n],
  ])("%s = %s bytes", (unit, factor) => {
    expect(libvirtUnitFactor(unit)).toBe(factor);
  });

  it.each(["KiBB", "Ki", "x", "Kbit", "MiBs", "GI B"])("rejects '%s'", (u) => {
    expect(libvirtUnitFactor(u)).toBeUndefined();
  });

  it("defaults to KiB for memory and rounds bytes up to whole KiB (virDomainParseMemory)", () => {
    expect(parseLibvirtMemoryKiB("2097152", undefined, ctx)).toBe(2097152);
    expect(parseLibvirtMemoryKiB("1025", "b", ctx)).toBe(2);
    expect(parseLibvirtMemoryKiB("1024", "b", ctx)).toBe(1);
    expect(parseLibvirtMemoryKiB("1", "MB", ctx)).toBe(977); // 10^6 / 1024 = 976.56 -> 977
    expect(parseLibvirtMemoryKiB("2", "GiB", ctx)).toBe(2097152);
  });

  it("errors name the input, the place and what is accepted", () => {
    try {
      parseScaled("2", "GiBs", 1024n, ctx);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KvmemError);
      const err = e as KvmemError;
      expect(err.code).toBe("E_UNIT");
      expect(err.oneLine()).toBe(
        "test.xml:3:5: unknown unit 'GiBs' (libvirt accepts b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB)",
      );
    }
    expect(() => parseScaled("-1", "KiB", 1024n, ctx)).toThrow(/not a non-negative integer/);
    expect(() => parseScaled("1.5", "GiB", 1024n, ctx)).toThrow(/not a non-negative integer/);
    expect(() => parseScaled("9", "EiB", 1024n, ctx)).toThrow(/value too large: 9EiB/); // > LLONG_MAX
    expect(() => parseScaled("7", "EiB", 1024n, ctx)).toThrow(/too large for kvmem/); // > 2^53
  });

  it("parses command-line sizes", () => {
    expect(parseSize("2G", ctx)).toBe(2 * 2 ** 30);
    expect(parseSize("2 GiB", ctx)).toBe(2 * 2 ** 30);
    expect(parseSize("512", ctx)).toBe(512 * 1024);
    expect(parseSize("4K", ctx)).toBe(4096);
    expect(() => parseSize("two gigs", ctx)).toThrow(KvmemError);
    expect(() => parseSize("", ctx)).toThrow(/not a size/);
  });

  it("property: value x factor round-trips through every unit name", () => {
    const units = ["b", "KB", "k", "KiB", "MB", "M", "MiB", "GB", "G", "GiB", "TB", "TiB"];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(...units), (n, u) => {
        const f = libvirtUnitFactor(u)!;
        const bytes = parseScaled(String(n), u, 1024n, ctx);
        expect(BigInt(bytes)).toBe(BigInt(n) * f);
        // KiB rounding is the ceiling of bytes / 1024
        expect(parseLibvirtMemoryKiB(String(n), u, ctx)).toBe(Math.ceil(bytes / 1024));
      }),
    );
  });

  it("property: formatBytes gives back the exact size", () => {
    const back: Record<string, number> = {
      B: 1,
      KiB: 2 ** 10,
      MiB: 2 ** 20,
      GiB: 2 ** 30,
      TiB: 2 ** 40,
      PiB: 2 ** 50,
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 12 }),
        (n, shift) => {
          const bytes = n * 2 ** shift;
          fc.pre(bytes <= Number.MAX_SAFE_INTEGER);
          const [v, u] = formatBytes(bytes).split(" ");
          expect(Number(v) * back[u]).toBe(bytes);
        },
      ),
    );
  });
});
