import fc from "fast-check";
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  alignUp,
  asGpa,
  canonicalize,
  formatHex,
  type Gpa,
  gfnToGpa,
  gpaToGfn,
  type Hva,
  isCanonical,
  parseAddress,
  parsePhysAddress,
  splitVa,
} from "./address.js";
import type { KvmemError } from "./errors.js";

const ctx = { input: "ACCESS", place: "1" };

describe("addresses", () => {
  it("parses hex with 0x and _ separators", () => {
    expect(parseAddress("0xffff_8880_0000_1000", ctx)).toBe(0xffff888000001000n);
    expect(parseAddress("7f0000001000", ctx)).toBe(0x7f0000001000n);
    expect(parseAddress("0X10", ctx)).toBe(16n);
  });

  it.each(["", "0x", "0xg1", "_1", "1__0", "0x1_0000_0000_0000_0000"])("rejects '%s'", (s) => {
    const line = (() => {
      try {
        parseAddress(s, ctx);
      } catch (e) {
        return (e as KvmemError).oneLine();
      }
      return "no error";
    })();
    expect(line).toMatch(/^ACCESS:1: '.*' is (not an address|wider than 64 bits) \(/);
  });

  it("physical addresses stop at 52 bits", () => {
    expect(parsePhysAddress("0xf_ffff_ffff_ffff", ctx)).toBe(2 ** 52 - 1);
    expect(() => parsePhysAddress("0x10_0000_0000_0000", ctx)).toThrow(/52-bit/);
  });

  it.each([
    [0x00007fffffffffffn, 48, true], // top of the lower half
    [0x0000800000000000n, 48, false], // first non-canonical
    [0xffff800000000000n, 48, true], // bottom of the upper half
    [0xffff888000001000n, 48, true], // the direct map
    [0xff00000000000000n, 48, false],
    [0x00ffffffffffffffn, 57, true], // top of the 57-bit lower half
    [0x0100000000000000n, 57, false],
    [0xff00000000000000n, 57, true],
    [0x0000800000000000n, 57, true], // non-canonical for 48 bits, fine for LA57
  ] as const)("isCanonical(%s, %d) = %s", (va, bits, ok) => {
    expect(isCanonical(va, bits)).toBe(ok);
  });

  it("property: canonicalize gives a canonical address with the same low bits", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.constantFrom(48 as const, 57 as const),
        (va, bits) => {
          const c = canonicalize(va, bits);
          expect(isCanonical(c, bits)).toBe(true);
          const mask = (1n << BigInt(bits)) - 1n;
          expect(c & mask).toBe(va & mask);
        },
      ),
    );
  });

  it("formats hex, grouped", () => {
    expect(formatHex(0xffff888000001000n, { group: true })).toBe("0xffff_8880_0000_1000");
    expect(formatHex(0x1000, { width: 8 })).toBe("0x00001000");
  });

  it("page numbers and splitting", () => {
    expect(gpaToGfn(asGpa(0x12345678))).toBe(0x12345);
    expect(gfnToGpa(gpaToGfn(asGpa(0x12345678)))).toBe(0x12345000);
    expect(splitVa(0xffff888000001234n)).toEqual({
      vpn: Number((0xffff888000001234n & ((1n << 57n) - 1n)) >> 12n),
      offset: 0x234,
    });
    expect(alignUp(4097, 4096)).toBe(8192);
  });

  it("a Gpa is not an Hva (branded types)", () => {
    expectTypeOf<Gpa>().not.toEqualTypeOf<Hva>();
    // @ts-expect-error a bare number is not a Gpa
    gpaToGfn(0x1000);
  });
});
