// U32Map against a JS Map as the reference model (fast-check): any sequence of sets, deletes,
// deletes of a key only while it maps to a given value, and clears over a small key space (so
// that probe runs collide and wrap) reads back the same.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { U32Map } from "./u32map.js";

describe("U32Map", () => {
  it("agrees with Map under random set/delete/clear", () => {
    const key = fc.oneof(fc.nat(40), fc.constantFrom(0, 0x40000000, 0x80000000, 0xffffffff));
    const op = fc.oneof(
      fc.tuple(fc.constant("set" as const), key, fc.nat(3)),
      fc.tuple(fc.constant("del" as const), key, fc.constant(0)),
      fc.tuple(fc.constant("delIf" as const), key, fc.nat(3)),
      fc.tuple(fc.constant("clear" as const), fc.constant(0), fc.constant(0)),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const m = new U32Map(2);
        const ref = new Map<number, number>();
        for (const [o, k, v] of ops) {
          if (o === "set") {
            m.set(k, v);
            ref.set(k, v);
          } else if (o === "del") expect(m.delete(k)).toBe(ref.delete(k));
          else if (o === "delIf")
            expect(m.deleteIf(k, v)).toBe(ref.get(k) === v ? ref.delete(k) : false);
          else {
            m.clear();
            ref.clear();
          }
          expect(m.size).toBe(ref.size);
        }
        for (let k = 0; k <= 40; k++) expect(m.get(k)).toBe(ref.get(k) ?? -1);
        for (const k of [0x40000000, 0x80000000, 0xffffffff])
          expect(m.get(k)).toBe(ref.get(k) ?? -1);
      }),
      { numRuns: 300 },
    );
  });
});
