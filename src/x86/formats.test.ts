import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeEptp,
  EPT_FIELDS,
  EPT_LARGE,
  eptBadMemType,
  eptFrame,
  eptIsWriteOnly,
  eptLeafFrame,
  eptMemType,
  MT_WB,
  makeEptHi,
  makeEptLeafLo,
  makeEptp,
  makeEptTableLo,
} from "./ept.js";
import {
  isExecuteDisable,
  makePteHi,
  makePteLo,
  PTE_A,
  PTE_FIELDS,
  PTE_P,
  PTE_PS,
  PTE_RW,
  pteFlagNames,
  pteFrame,
  pteLeafFrame,
  pteReservedHi,
} from "./pte.js";

function checkFields(fields: ReadonlyArray<{ name: string; lo: number; hi: number }>) {
  let lo = 0;
  let hi = 0;
  for (const f of fields) {
    expect((lo & f.lo) >>> 0, `${f.name} overlaps in the low half`).toBe(0);
    expect((hi & f.hi) >>> 0, `${f.name} overlaps in the high half`).toBe(0);
    lo = (lo | f.lo) >>> 0;
    hi = (hi | f.hi) >>> 0;
  }
  return { lo, hi };
}

describe("x86 PTE format (SDM vol. 3A 4.5)", () => {
  it("fields do not overlap and cover all 64 bits", () => {
    const { lo, hi } = checkFields(PTE_FIELDS);
    // bit 12 is address in a 4K PTE and PAT in a large leaf; every bit is named once
    expect(lo).toBe(0xffffffff);
    expect(hi).toBe(0xffffffff);
  });

  it("frame and flags round-trip for any 40-bit frame", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 - 1 }),
        fc.integer({ min: 0, max: 0x1ff }),
        fc.boolean(),
        (frame, flags, xd) => {
          const lo = makePteLo(frame, flags);
          const hi = makePteHi(frame, xd);
          expect(pteFrame(lo, hi)).toBe(frame);
          expect(lo & 0xfff).toBe(flags);
          expect(isExecuteDisable(hi)).toBe(xd);
        },
      ),
    );
  });

  it("large leaves drop the low frame bits (2M: 9 bits, 1G: 18 bits)", () => {
    const frame = 0x123456789;
    const lo = makePteLo(frame, PTE_P | PTE_PS);
    const hi = makePteHi(frame, false);
    expect(pteLeafFrame(lo, hi, 2)).toBe(frame - (frame % 512));
    expect(pteLeafFrame(lo, hi, 3)).toBe(frame - (frame % 262144));
  });

  it("reserved hi bits for MAXPHYADDR 46 are address bits 46..51", () => {
    expect(pteReservedHi(46)).toBe(0x000fc000);
    expect(pteReservedHi(52)).toBe(0);
  });

  it("names flags in bit order", () => {
    expect(pteFlagNames(PTE_P | PTE_RW | PTE_A, 0x80000000, true)).toEqual(["P", "RW", "A", "XD"]);
  });
});

describe("EPT entry format (SDM vol. 3C 29.3.2)", () => {
  it("fields do not overlap and cover all 64 bits", () => {
    const { lo, hi } = checkFields(EPT_FIELDS);
    expect(lo).toBe(0xffffffff);
    expect(hi).toBe(0xffffffff);
  });

  it("leaf encoding round-trips frame, rights, memory type and large bit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 - 1 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 7 }),
        (f, level, rwx) => {
          const frame = f - (f % (level === 1 ? 1 : level === 2 ? 512 : 262144));
          const lo = makeEptLeafLo(frame, level, rwx, MT_WB, true);
          const hi = makeEptHi(frame);
          expect(eptLeafFrame(lo, hi, level)).toBe(frame);
          expect(lo & 7).toBe(rwx);
          expect(eptMemType(lo)).toBe(MT_WB);
          expect((lo & EPT_LARGE) !== 0).toBe(level > 1);
        },
      ),
    );
  });

  it("table entries are RWX and point at the child", () => {
    const lo = makeEptTableLo(0xabcdef);
    expect(lo & 7).toBe(7);
    expect(eptFrame(lo, makeEptHi(0xabcdef))).toBe(0xabcdef);
  });

  it("recognises misconfigurations: W without R, reserved memory types", () => {
    expect(eptIsWriteOnly(0b110)).toBe(true); // KVM's MMIO spte (W|X)
    expect(eptIsWriteOnly(0b011)).toBe(false);
    for (const mt of [2, 3, 7]) expect(eptBadMemType(mt << 3)).toBe(true);
    for (const mt of [0, 1, 4, 5, 6]) expect(eptBadMemType(mt << 3)).toBe(false);
  });

  it("EPTP round-trips root, walk length and A/D enable", () => {
    for (const levels of [4, 5] as const) {
      const p = makeEptp(0x12345, levels, true);
      expect(decodeEptp(p.lo, p.hi)).toEqual({ memType: 6, levels, ad: true, rootFrame: 0x12345 });
    }
  });
});
