/**
 * The walker against an independent reference model: random mappings are written into real
 * tables; the model keeps them as a list and answers with plain boolean logic (SDM 4.6 rules
 * restated, no shared code with walk.ts beyond the entry encoders).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  EPT_R,
  EPT_W,
  EPT_X,
  MT_WB,
  makeEptHi,
  makeEptLeafLo,
  makeEptTableLo,
  QUAL_FETCH,
  QUAL_READ,
  QUAL_WRITE,
} from "./ept.js";
import { PF_I, PF_P, PF_RSVD, PF_U, PF_W } from "./faults.js";
import { EPT_4LEVEL, GUEST_4LEVEL, GUEST_5LEVEL, type PagingMode } from "./paging.js";
import {
  makePteHi,
  makePteLo,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
  pteReservedHi,
} from "./pte.js";
import { descend, type TableSpace } from "./tables.js";
import {
  DIM_NATIVE,
  ST_EPT_MISCONFIG,
  ST_EPT_VIOLATION,
  ST_OK,
  ST_PF,
  type TableMemory,
  WalkOut,
  walk,
} from "./walk.js";

const PAGES = [0, 1, 512, 262144];

/** Table bytes for these tests: x86/ stays below sim/ (a few hundred table pages at most). */
class TestMemory implements TableMemory {
  words = new Uint32Array(1024 * 2048);
  slotOf = new Int32Array(1 << 20).fill(-1);
  private next = 1;
  alloc(): number {
    const pfn = this.next++;
    this.slotOf[pfn] = (pfn - 1) * 1024;
    return pfn;
  }
  writeEntry(pfn: number, index: number, lo: number, hi: number): void {
    this.words[this.slotOf[pfn] + index * 2] = lo;
    this.words[this.slotOf[pfn] + index * 2 + 1] = hi;
  }
  entryLo(pfn: number, index: number): number {
    return this.words[this.slotOf[pfn] + index * 2];
  }
}

function space(mem: TestMemory, ept: boolean): TableSpace {
  return {
    tablePfn: (f) => f,
    allocTable: () => {
      return mem.alloc();
    },
    tableEntryLo: (c) => (ept ? makeEptTableLo(c) : makePteLo(c, PTE_P | PTE_RW | PTE_US | PTE_A)),
    tableEntryHi: (c) => (ept ? makeEptHi(c) : makePteHi(c, false)),
    setEntry: (t, i, _l, lo, hi) => mem.writeEntry(t, i, lo, hi),
  };
}

interface Mapping {
  vpn: number;
  level: number;
  frame: number;
  w: boolean;
  u: boolean;
  x: boolean;
}

const mappingArb = (maxRegion: number) =>
  fc.record({
    region: fc.integer({ min: 0, max: maxRegion }),
    level: fc.integer({ min: 1, max: 3 }),
    slot: fc.integer({ min: 0, max: 262143 }),
    frame: fc.integer({ min: 0, max: 2 ** 30 }),
    w: fc.boolean(),
    u: fc.boolean(),
    x: fc.boolean(),
  });

function build(
  mode: PagingMode,
  raw: Array<{
    region: number;
    level: number;
    slot: number;
    frame: number;
    w: boolean;
    u: boolean;
    x: boolean;
  }>,
) {
  const mem = new TestMemory();
  const sp = space(mem, false);
  const root = sp.allocTable(mode.levels);
  const maps: Mapping[] = [];
  const used = new Set<number>();
  for (const r of raw) {
    if (used.has(r.region)) continue; // one mapping per 1G region: no overlaps
    used.add(r.region);
    const pages = PAGES[r.level];
    const vpn = r.region * 262144 + (r.slot - (r.slot % pages));
    const frame = r.frame - (r.frame % pages);
    const table = descend(mem, sp, mode, root, vpn, r.level);
    const flags = PTE_P | (r.w ? PTE_RW : 0) | (r.u ? PTE_US : 0) | (r.level > 1 ? PTE_PS : 0);
    mem.writeEntry(table, (vpn / pages) & 511, makePteLo(frame, flags), makePteHi(frame, !r.x));
    maps.push({ vpn, level: r.level, frame, w: r.w, u: r.u, x: r.x });
  }
  return { mem, root, maps };
}

/** The model: SDM 4.6 for CR0.WP=1, EFER.NXE=1, no SMEP/SMAP. */
function reference(
  maps: Mapping[],
  vpn: number,
  access: number,
): { frame: number } | { fault: number } {
  const m = maps.find((x) => vpn >= x.vpn && vpn < x.vpn + PAGES[x.level]);
  if (!m) return { fault: access };
  const user = (access & PF_U) !== 0;
  const write = (access & PF_W) !== 0;
  const fetch = (access & PF_I) !== 0;
  if (user && !m.u) return { fault: access | PF_P };
  if (write && !m.w) return { fault: access | PF_P };
  if (fetch && !m.x) return { fault: access | PF_P };
  return { frame: m.frame + (vpn - m.vpn) };
}

describe("walker vs reference model (x86 format)", () => {
  for (const mode of [GUEST_4LEVEL, GUEST_5LEVEL]) {
    it(`${mode.name}: random tables, random accesses`, () => {
      fc.assert(
        fc.property(
          fc.array(mappingArb(2000), { minLength: 1, maxLength: 12 }),
          fc.array(
            fc.tuple(
              fc.nat(40),
              fc.integer({ min: 0, max: 262143 }),
              fc.constantFrom(0, PF_W, PF_I, PF_U, PF_U | PF_W, PF_U | PF_I),
            ),
            {
              minLength: 1,
              maxLength: 20,
            },
          ),
          (raw, probes) => {
            const { mem, root, maps } = build(mode, raw);
            const out = new WalkOut();
            out.setAd = false;
            for (const [pick, off, access] of probes) {
              const m = maps[pick % maps.length];
              // half the probes inside a mapping, half anywhere in its 1G region
              const vpn =
                pick % 2 === 0 ? m.vpn + (off % PAGES[m.level]) : m.vpn - (m.vpn % 262144) + off;
              out.reset();
              const got = walk(out, mem, mode, root, vpn, access, DIM_NATIVE, null, 0, -1);
              const want = reference(maps, vpn, access);
              if ("frame" in want) {
                expect(got).toBe(want.frame);
                expect(out.status).toBe(ST_OK);
              } else {
                expect(got).toBe(-1);
                expect(out.status).toBe(ST_PF);
                expect(out.errorCode).toBe(want.fault);
              }
              expect(out.guestRefs).toBe(out.n);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }

  it("sets A on every level used and D on the leaf of a write, not in probe mode", () => {
    const { mem, root, maps } = build(GUEST_4LEVEL, [
      { region: 3, level: 1, slot: 7, frame: 99, w: true, u: true, x: true },
    ]);
    const out = new WalkOut();
    out.setAd = false;
    walk(out, mem, GUEST_4LEVEL, root, maps[0].vpn, PF_W, DIM_NATIVE, null, 0, -1);
    const leafTable = out.tablePfn[3];
    expect(mem.entryLo(leafTable, out.indexOf(3)) & (PTE_A | PTE_D)).toBe(0);
    out.reset();
    out.setAd = true;
    walk(out, mem, GUEST_4LEVEL, root, maps[0].vpn, PF_W, DIM_NATIVE, null, 0, -1);
    expect(mem.entryLo(leafTable, out.indexOf(3)) & (PTE_A | PTE_D)).toBe(PTE_A | PTE_D);
    for (let s = 0; s < 3; s++)
      expect(mem.entryLo(out.tablePfn[s], out.indexOf(s)) & PTE_A).toBe(PTE_A);
  });

  it("reserved bits: PS in a PML4E, address bits above MAXPHYADDR, XD without NXE", () => {
    const mem = new TestMemory();
    const sp = space(mem, false);
    const root = sp.allocTable(4);
    const out = new WalkOut();
    out.setAd = false;
    out.rsvdHi = pteReservedHi(46);
    mem.writeEntry(root, 0, makePteLo(5, PTE_P | PTE_PS), 0); // PS at level 4 is reserved
    walk(out, mem, GUEST_4LEVEL, root, 0, 0, DIM_NATIVE, null, 0, -1);
    expect(out.errorCode).toBe(PF_P | PF_RSVD);
    out.reset();
    mem.writeEntry(root, 1, makePteLo(5, PTE_P | PTE_RW), 1 << 15); // address bit 47
    walk(out, mem, GUEST_4LEVEL, root, 1 * 2 ** 27, PF_W, DIM_NATIVE, null, 0, -1);
    expect(out.errorCode).toBe(PF_P | PF_RSVD | PF_W);
    out.reset();
    out.rsvdHi = 0;
    out.nxe = false;
    mem.writeEntry(root, 2, makePteLo(5, PTE_P), 0x80000000);
    walk(out, mem, GUEST_4LEVEL, root, 2 * 2 ** 27, 0, DIM_NATIVE, null, 0, -1);
    expect(out.errorCode).toBe(PF_P | PF_RSVD);
  });

  it("CR0.WP=0 lets supervisor writes through read-only pages, not user writes", () => {
    const { mem, root, maps } = build(GUEST_4LEVEL, [
      { region: 1, level: 2, slot: 0, frame: 512, w: false, u: true, x: true },
    ]);
    const out = new WalkOut();
    out.setAd = false;
    out.wp = false;
    expect(walk(out, mem, GUEST_4LEVEL, root, maps[0].vpn, PF_W, DIM_NATIVE, null, 0, -1)).toBe(
      512,
    );
    out.reset();
    expect(
      walk(out, mem, GUEST_4LEVEL, root, maps[0].vpn, PF_W | PF_U, DIM_NATIVE, null, 0, -1),
    ).toBe(-1);
    expect(out.errorCode).toBe(PF_P | PF_W | PF_U);
  });
});

describe("walker on EPT tables (SDM vol. 3C 29.3.3)", () => {
  function eptTables(rwx: number, level: number, memType = MT_WB) {
    const mem = new TestMemory();
    const sp = space(mem, true);
    const root = sp.allocTable(4);
    const gfn = 0x40000 + 0x200;
    const table = descend(mem, sp, EPT_4LEVEL, root, gfn, level);
    const pages = PAGES[level];
    mem.writeEntry(
      table,
      (gfn / pages) & 511,
      makeEptLeafLo(0x1000 * 512, level, rwx, memType, true),
      makeEptHi(0x1000 * 512),
    );
    return { mem, root, gfn };
  }

  it("translates with the rights of the leaf and reports a violation with qualification bits", () => {
    const cases: Array<[number, number, boolean]> = [
      // rwx, access, allowed
      [EPT_R | EPT_W | EPT_X, QUAL_WRITE, true],
      [EPT_R, QUAL_READ, true],
      [EPT_R, QUAL_WRITE, false], // read-only: write violates
      [EPT_R | EPT_W, QUAL_FETCH, false], // not executable
      [EPT_X, QUAL_FETCH, true], // execute-only is allowed (with the capability)
    ];
    for (const [rwx, access, allowed] of cases) {
      const { mem, root, gfn } = eptTables(rwx, 2);
      const out = new WalkOut();
      out.setAd = false;
      const pfn = walk(out, mem, EPT_4LEVEL, root, gfn, access, 1, null, 0, 0);
      if (allowed) {
        expect(pfn).toBe(0x1000 * 512);
        expect(out.eLevel).toBe(2);
        expect(out.eptRefs).toBe(3);
      } else {
        expect(out.status).toBe(ST_EPT_VIOLATION);
        // bits 0..2: the access; 3..5: what the entries allowed
        expect(out.errorCode).toBe(access | (rwx << 3));
      }
    }
  });

  it("W without R and reserved memory types are misconfigurations", () => {
    for (const [rwx, mt] of [
      [EPT_W, MT_WB],
      [EPT_W | EPT_X, MT_WB],
      [EPT_R, 2],
      [EPT_R, 7],
    ]) {
      const { mem, root, gfn } = eptTables(rwx, 1, mt);
      const out = new WalkOut();
      walk(out, mem, EPT_4LEVEL, root, gfn, QUAL_READ, 1, null, 0, 0);
      expect(out.status).toBe(ST_EPT_MISCONFIG);
    }
  });

  it("a missing entry is a violation with no rights", () => {
    const mem = new TestMemory();
    const root = space(mem, true).allocTable(4);
    const out = new WalkOut();
    walk(out, mem, EPT_4LEVEL, root, 123, QUAL_READ, 1, null, 0, 0);
    expect(out.status).toBe(ST_EPT_VIOLATION);
    expect(out.errorCode).toBe(QUAL_READ);
    expect(out.eptRefs).toBe(1);
  });
});
