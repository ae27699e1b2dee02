import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import { KIND_FREE, KIND_THP, PhysMem } from "./memory.js";

const G = 1073741824;
const M2 = 2097152;

describe("host physical memory", () => {
  it("allocates naturally aligned blocks and conserves frames", () => {
    const m = new PhysMem(4 * G);
    const a = m.alloc(0, 2);
    const b = m.alloc(9, 2);
    const c = m.alloc(18, 2);
    expect(b % 512).toBe(0);
    expect(c % 262144).toBe(0);
    expect(m.freeFrames).toBe(m.nframes - 1 - 512 - 262144);
    m.free(b, 9);
    m.free(a, 0);
    m.free(c, 18);
    expect(m.freeFrames).toBe(m.nframes);
    expect(m.kind[b]).toBe(KIND_FREE);
    m.assertInvariants();
  });

  it("gives bytes only to frames that need them, zeroed on reuse", () => {
    const m = new PhysMem(G);
    const p = m.alloc(0, 1);
    expect(m.entryLo(p, 3)).toBe(0);
    m.writeEntry(p, 3, 0xdead, 0xbeef);
    expect([m.entryLo(p, 3), m.entryHi(p, 3)]).toEqual([0xdead, 0xbeef]);
    m.free(p, 0);
    const q = m.alloc(0, 1);
    expect(q).toBe(p);
    expect(m.entryLo(q, 3)).toBe(0);
    m.assertInvariants();
  });

  it("runs out of 1G blocks honestly", () => {
    const m = new PhysMem(G);
    m.alloc(0, 1);
    expect(m.alloc(18, 4)).toBe(-1);
  });
});

describe("host mm: anonymous, THP and hugetlbfs faults", () => {
  it("anonymous memory without THP maps 4K pages", () => {
    const host = new Host({ memory: 2 * G });
    const mm = host.createProcess("p");
    const hva = mm.mmap(4 * M2);
    const lvl = new Int32Array(1);
    const pfn = mm.fault(hva + 5 * 4096, true);
    expect(mm.lookup(hva + 5 * 4096, lvl)).toBe(pfn);
    expect(lvl[0]).toBe(1);
    expect(mm.lookup(hva + 6 * 4096)).toBe(-1);
    mm.assertInvariants();
  });

  it("THP: an aligned 2M range inside the VMA gets a huge page; the rest falls back to 4K", () => {
    const host = new Host({ memory: 2 * G });
    const mm = host.createProcess("p");
    const hva = mm.mmap(3 * M2 + 4096 * 8, { thp: true });
    const lvl = new Int32Array(1);
    const pfn = mm.fault(hva + 4096 * 3, false);
    mm.lookup(hva, lvl);
    expect(lvl[0]).toBe(2);
    expect(host.mem.kind[pfn]).toBe(KIND_THP);
    expect((pfn - 3) % 512).toBe(0);
    mm.fault(hva + 3 * M2 + 4096, false); // the tail is smaller than 2M
    mm.lookup(hva + 3 * M2 + 4096, lvl);
    expect(lvl[0]).toBe(1);
    expect(mm.rss).toBe(512 + 1);
    mm.assertInvariants();
  });

  it("hugetlbfs takes pages from the pool and SIGBUSes when it is empty", () => {
    const host = new Host({ memory: 4 * G });
    expect(host.reserveHugePages(G, 2)).toBe(2);
    const mm = host.createProcess("p");
    const hva = mm.mmap(3 * G, { kind: "hugetlb", pageSize: G });
    expect(hva % G).toBe(0);
    const lvl = new Int32Array(1);
    mm.fault(hva + 12345 * 4096, false);
    mm.lookup(hva, lvl);
    expect(lvl[0]).toBe(3);
    mm.fault(hva + G, false);
    expect(() => mm.fault(hva + 2 * G, false)).toThrow(/SIGBUS/);
    expect(() => mm.fault(hva - 4096, false)).toThrow(/SIGSEGV/);
    host.assertInvariants();
  });
});
