// NUMA allocation: zonelists, nodemasks and the numastat counters (mm/page_alloc.c
// zone_statistics, Documentation/admin-guide/numastat.rst), memory policies (mm/mempolicy.c),
// THP fault events (mm/huge_memory.c). Expected values are worked out by hand in the comments.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import {
  KIND_ANON,
  NUMA_FOREIGN,
  NUMA_HIT,
  NUMA_INTERLEAVE_HIT,
  NUMA_LOCAL,
  NUMA_MISS,
  NUMA_OTHER,
  PhysMem,
} from "./memory.js";
import { ALL_NODES, interleaveNid, maskNodes, nodemask } from "./numa.js";

const G = 1073741824;
const M2 = 2097152;
const NODE = 262144; // frames per GiB node
const stat = (m: PhysMem, node: number) =>
  [NUMA_HIT, NUMA_MISS, NUMA_FOREIGN, NUMA_INTERLEAVE_HIT, NUMA_LOCAL, NUMA_OTHER].map(
    (i) => m.numaStat[node * 6 + i],
  );

describe("node-aware allocation", () => {
  it("splits memory into contiguous nodes", () => {
    const m = new PhysMem(4 * G, 2);
    expect([m.nodes, m.nodeFrames(0), m.nodeOf(2 * NODE - 1), m.nodeOf(2 * NODE)]).toEqual([
      2,
      2 * NODE,
      0,
      1,
    ]);
    expect(() => new PhysMem(3 * G, 2)).toThrow(/whole GiB per NUMA node/);
  });

  it("takes the preferred node first and counts numa_hit/local_node there", () => {
    const m = new PhysMem(2 * G, 2);
    const p = m.allocFrom(0, KIND_ANON, 1, ALL_NODES, 1);
    expect(m.nodeOf(p)).toBe(1);
    // [hit, miss, foreign, interleave_hit, local, other]
    expect(stat(m, 1)).toEqual([1, 0, 0, 0, 1, 0]);
    expect(stat(m, 0)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(m.nodeFree[1]).toBe(NODE - 1);
  });

  it("bind: the local zonelist within the mask; a hit on the bound node, other_node for a remote CPU", () => {
    const m = new PhysMem(2 * G, 2);
    const p = m.allocFrom(9, KIND_ANON, 0, nodemask([1]), 0);
    expect(m.nodeOf(p)).toBe(1);
    // the first node of zonelist(0) in {1} is node 1: numa_hit on 1; the CPU is on node 0: other_node
    expect(stat(m, 1)).toEqual([1, 0, 0, 0, 0, 1]);
  });

  it("falls back to the next node when the preferred one is full: numa_miss there, numa_foreign on the preferred", () => {
    const m = new PhysMem(2 * G, 2);
    expect(m.nodeOf(m.allocFrom(18, KIND_ANON, 1, ALL_NODES, 1))).toBe(1); // node 1 full now
    const p = m.allocFrom(0, KIND_ANON, 1, ALL_NODES, 1);
    expect(m.nodeOf(p)).toBe(0);
    expect(stat(m, 0)).toEqual([0, 1, 0, 0, 0, 1]); // miss on 0, other_node on 0 (CPU on 1)
    expect(stat(m, 1)).toEqual([1, 0, 1, 0, 1, 0]); // the 1G hit earlier, then foreign
    // bound to the full node: nothing, and nothing counted
    expect(m.allocFrom(0, KIND_ANON, 0, nodemask([1]), 0)).toBe(-1);
    expect(stat(m, 1)).toEqual([1, 0, 1, 0, 1, 0]);
    m.assertInvariants();
  });

  it("keeps a 4K cursor per node", () => {
    const m = new PhysMem(2 * G, 2);
    const a = m.allocFrom(0, KIND_ANON, 0, ALL_NODES, 0);
    const b = m.allocFrom(0, KIND_ANON, 1, ALL_NODES, 1);
    const c = m.allocFrom(0, KIND_ANON, 0, ALL_NODES, 0);
    expect([a, b, c]).toEqual([0, NODE, 1]);
    m.free(a, 0);
    expect(m.allocFrom(0, KIND_ANON, 0, ALL_NODES, 0)).toBe(0);
  });

  it("conserves frames per node under random allocations and frees (fast-check)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            order: fc.constantFrom(0 as const, 9 as const, 18 as const),
            pref: fc.integer({ min: 0, max: 2 }),
            mask: fc.integer({ min: 1, max: 7 }),
            free: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const m = new PhysMem(3 * G, 3);
          const held: Array<[number, 0 | 9 | 18]> = [];
          let allocs = 0;
          for (const op of ops) {
            if (op.free && held.length) {
              const [pfn, order] = held.pop()!;
              m.free(pfn, order);
              continue;
            }
            const pfn = m.allocFrom(op.order, KIND_ANON, op.pref, op.mask, op.pref);
            if (pfn < 0) continue;
            allocs++;
            // only inside the mask
            expect((op.mask >>> m.nodeOf(pfn)) & 1).toBe(1);
            held.push([pfn, op.order]);
          }
          m.assertInvariants();
          const free = m.nodeFree.reduce((a, b) => a + b, 0);
          expect(free).toBe(m.freeFrames);
          // every allocation is a hit or a miss, and local or other, exactly once
          let hm = 0;
          let lo = 0;
          for (let n = 0; n < 3; n++) {
            const s = stat(m, n);
            hm += s[0] + s[1];
            lo += s[4] + s[5];
          }
          expect([hm, lo]).toEqual([allocs, allocs]);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe("memory policies", () => {
  it("interleave_nid picks the (ilx mod n)-th node of the set", () => {
    const m = nodemask([1, 3, 4]);
    expect([0, 1, 2, 3, 4].map((i) => interleaveNid(m, i))).toEqual([1, 3, 4, 1, 3]);
    expect(maskNodes(m)).toEqual([1, 3, 4]);
  });

  it("a bound VMA faults on its nodes; an interleaved one alternates and counts interleave_hit", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    const mm = host.createProcess("qemu");
    const bound = mm.mmap(16384, { policy: { mode: "bind", nodes: nodemask([1]) } });
    const inter = mm.mmap(16384, { policy: { mode: "interleave", nodes: nodemask([0, 1]) } });
    const nodes = (base: number) =>
      [0, 1, 2, 3].map((i) => host.mem.nodeOf(mm.fault(base + i * 4096, true)));
    expect(nodes(bound)).toEqual([1, 1, 1, 1]);
    const before = [0, 1].map((n) => host.mem.numaStat[n * 6 + NUMA_INTERLEAVE_HIT]);
    // page i of the VMA goes to node i mod 2 (ilx = offset / 4 KiB)
    expect(nodes(inter)).toEqual([0, 1, 0, 1]);
    const after = [0, 1].map((n) => host.mem.numaStat[n * 6 + NUMA_INTERLEAVE_HIT]);
    expect([after[0] - before[0], after[1] - before[1]]).toEqual([2, 2]);
    host.assertInvariants();
  });

  it("preferred vs preferred-many when the preferred node is full: miss/foreign vs a local hit", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    host.mem.allocFrom(18, KIND_ANON, 1, ALL_NODES, 1); // node 1 full
    const mm = host.createProcess("qemu"); // runs on node 0; its page tables are on node 0
    const one = nodemask([1]);
    const pref = mm.mmap(4096, { policy: { mode: "preferred", nodes: one } });
    const many = mm.mmap(4096, { policy: { mode: "preferred-many", nodes: one } });
    const before = [stat(host.mem, 0), stat(host.mem, 1)];
    const delta = () => [0, 1].map((n) => stat(host.mem, n).map((v, i) => v - before[n][i]));
    // MPOL_PREFERRED {1}: node 1's zonelist, node 1 full -> node 0: miss there, foreign on node 1;
    // plus the three page-table pages of the fault (PDPT, PD, PT: local policy, hits on node 0)
    expect(host.mem.nodeOf(mm.fault(pref, true))).toBe(0);
    expect(delta()).toEqual([
      [3, 1, 0, 0, 4, 0],
      [0, 0, 1, 0, 0, 0],
    ]);
    // MPOL_PREFERRED_MANY {1}: nothing in {1}; then the local zonelist: node 0, a hit; plus a PD
    // and a PT (this VMA is 1 GiB below the other: same PDPT, another PD)
    before[0] = stat(host.mem, 0);
    before[1] = stat(host.mem, 1);
    expect(host.mem.nodeOf(mm.fault(many, true))).toBe(0);
    expect(delta()).toEqual([
      [3, 0, 0, 0, 3, 0],
      [0, 0, 0, 0, 0, 0],
    ]);
  });

  it("the local policy allocates on the task's node (homeNode)", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    expect([host.nodeOfCpu(0), host.nodeOfCpu(1)]).toEqual([0, 1]);
    const mm = host.createProcess("qemu");
    mm.homeNode = 1;
    const hva = mm.mmap(8192);
    expect(host.mem.nodeOf(mm.fault(hva, true))).toBe(1);
  });
});

describe("THP fault events (/proc/vmstat)", () => {
  it("thp_fault_alloc per 2M fault, thp_fault_fallback when no 2M block is free", () => {
    const host = new Host({ memory: G, cpus: 1 });
    const mm = host.createProcess("qemu");
    const hva = mm.mmap(4 * M2, { thp: true });
    // two faults in one 2M range: one THP; a fault in the next range: a second
    mm.fault(hva, true);
    mm.fault(hva + 4096, true);
    mm.fault(hva + M2, false);
    expect([host.mem.thpFaultAlloc, host.mem.thpFaultFallback]).toEqual([2, 0]);
    // take every free 2M block: what is left are 4K frames in partly used blocks
    const m = host.mem;
    while (m.allocFrom(9, KIND_ANON, 0, ALL_NODES, 0) >= 0) {}
    expect(m.freeFrames).toBeGreaterThan(0);
    const rss = mm.rss;
    mm.fault(hva + 2 * M2, true);
    // fallback: the fault is served with one 4K page
    expect([m.thpFaultAlloc, m.thpFaultFallback, mm.rss - rss]).toEqual([2, 1, 1]);
  });

  it("no THP attempt (and no fallback event) when the aligned 2M range is not inside the VMA", () => {
    const host = new Host({ memory: G, cpus: 1 });
    const mm = host.createProcess("qemu");
    const hva = mm.mmap(M2 + 8192, { thp: true });
    mm.fault(hva + M2, true); // the range [hva + 2M, hva + 4M) sticks out of the VMA
    expect([host.mem.thpFaultAlloc, host.mem.thpFaultFallback, mm.rss]).toEqual([0, 0, 1]);
  });
});
