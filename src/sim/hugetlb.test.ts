// Surplus huge pages (hugetlbpage.rst): gathered within nr_overcommit_hugepages, all or none,
// and freed to the buddy allocator while the pool has surplus.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import { gatherSurplus, releaseHugePage, returnUnusedSurplus } from "./hugetlb.js";

const M2 = 2097152;

describe("hugetlb surplus pages", () => {
  it("gathers within nr_overcommit_hugepages and gives them back to the buddy allocator", () => {
    const host = new Host({ memory: 1073741824, cpus: 1 });
    host.reserveHugePages(M2, 100);
    const pool = host.pools.get(M2)!;
    pool.overcommit = 50;
    const free = host.mem.freeFrames;
    expect(gatherSurplus(host, M2, 60)).toBe(false); // over nr_overcommit_hugepages: none
    expect(pool.total).toBe(100);
    expect(gatherSurplus(host, M2, 30)).toBe(true);
    expect([pool.total, pool.surplus, pool.free.length]).toEqual([130, 30, 130]);
    expect(host.mem.freeFrames).toBe(free - 30 * 512);
    expect(gatherSurplus(host, M2, 21)).toBe(false); // 30 + 21 > 50
    const head = pool.free.pop()!;
    releaseHugePage(host, M2, head); // surplus: back to the buddy allocator
    expect([pool.total, pool.surplus, pool.free.length]).toEqual([129, 29, 129]);
    expect(host.mem.freeFrames).toBe(free - 29 * 512);
    // with no surplus left, a freed huge page goes back to the pool
    for (let i = 0; i < 29; i++) releaseHugePage(host, M2, pool.free.pop()!);
    expect([pool.total, pool.surplus]).toEqual([100, 0]);
    const h = pool.free.pop()!;
    releaseHugePage(host, M2, h);
    expect([pool.total, pool.free.length]).toEqual([100, 100]);
    host.assertInvariants();
  });
});

describe("hugetlb pools per NUMA node", () => {
  const G = 1073741824;
  it("spreads vm.nr_hugepages round-robin from next_nid_to_alloc and continues there", () => {
    const host = new Host({ memory: 4 * G, cpus: 2, nodes: 2 });
    expect(host.reserveHugePages(M2, 5)).toBe(5);
    const pool = host.pools.get(M2)!;
    // pages 0, 2, 4 on node 0; 1, 3 on node 1
    expect([...pool.totalNode]).toEqual([3, 2]);
    // the next page goes to node 1 (next_nid_to_alloc moved on)
    host.reserveHugePages(M2, 1);
    expect([...pool.totalNode]).toEqual([3, 3]);
    expect([pool.freeOn(host.mem, 0), pool.freeOn(host.mem, 1)]).toEqual([3, 3]);
    host.assertInvariants();
  });

  it("skips a node without a free 2M block, and takes the per-node form on one node only", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    // 512 x 2M fill node 0 (1 GiB) exactly
    expect(host.reserveHugePagesOnNode(M2, 0, 600)).toBe(512);
    const pool = host.pools.get(M2)!;
    expect([...pool.totalNode]).toEqual([512, 0]);
    // round-robin: node 0 has no block left, so every page lands on node 1
    expect(host.reserveHugePages(M2, 3)).toBe(3);
    expect([...pool.totalNode]).toEqual([512, 3]);
    host.assertInvariants();
  });

  it("dequeues with a nodemask, most recently freed first per node", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    host.reserveHugePages(M2, 4); // free list: n0, n1, n0, n1
    const pool = host.pools.get(M2)!;
    const [a, b, c, d] = pool.free;
    expect(pool.dequeue(host.mem, 0, 0b10)).toBe(d); // bound to node 1: its latest page
    expect(pool.dequeue(host.mem, 1, 0b11)).toBe(b); // node 1's zonelist: node 1 first
    expect(pool.dequeue(host.mem, 1, 0b11)).toBe(c); // node 1 empty: falls back to node 0
    expect(pool.dequeue(host.mem, 0, 0b10)).toBe(-1);
    expect(pool.free).toEqual([a]);
  });

  it("gathers surplus on the current node first and frees it only from nodes with surplus", () => {
    const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
    host.reserveHugePages(M2, 2); // one per node
    const pool = host.pools.get(M2)!;
    pool.overcommit = 10;
    expect(gatherSurplus(host, M2, 3, 1)).toBe(true);
    expect([...pool.surplusNode, ...pool.totalNode]).toEqual([0, 3, 1, 4]);
    // a page of node 0 (no surplus there) goes back to the pool; one of node 1 to the buddy allocator
    const n0 = pool.dequeue(host.mem, 0, 0b01);
    const n1 = pool.dequeue(host.mem, 1, 0b10);
    const free = host.mem.nodeFree[1];
    releaseHugePage(host, M2, n0);
    releaseHugePage(host, M2, n1);
    expect([pool.total, pool.surplus, ...pool.surplusNode]).toEqual([4, 2, 0, 2]);
    expect(host.mem.nodeFree[1]).toBe(free + 512);
    // bound to node 0 only: node 0 cannot hold 600 more 2M pages (1 GiB = 512), none are added
    pool.overcommit = 1000;
    expect(gatherSurplus(host, M2, 600, 0, 0b01)).toBe(false);
    expect(pool.surplus).toBe(2);
    expect(returnUnusedSurplus(host, M2, 5)).toBe(2);
    expect([pool.total, pool.surplus]).toEqual([2, 0]);
    host.assertInvariants();
  });
});

describe("pool invariants (fast-check)", () => {
  it("per-node counts sum to the global ones and frames are conserved through any sequence", () => {
    const G = 1073741824;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("reserve" as const), n: fc.integer({ min: 0, max: 40 }) }),
            fc.record({
              op: fc.constant("onNode" as const),
              node: fc.integer({ min: 0, max: 2 }),
              n: fc.integer({ min: 0, max: 40 }),
            }),
            fc.record({
              op: fc.constant("surplus" as const),
              n: fc.integer({ min: 0, max: 30 }),
              local: fc.integer({ min: 0, max: 2 }),
              mask: fc.integer({ min: 1, max: 7 }),
            }),
            fc.record({
              op: fc.constant("take" as const),
              pref: fc.integer({ min: 0, max: 2 }),
              mask: fc.integer({ min: 1, max: 7 }),
            }),
            fc.record({ op: fc.constant("release" as const) }),
          ),
          { maxLength: 40 },
        ),
        (ops) => {
          const host = new Host({ memory: 3 * G, cpus: 3, nodes: 3 });
          host.reserveHugePages(M2, 0);
          const pool = host.pools.get(M2)!;
          pool.overcommit = 50;
          const inUse: number[] = [];
          for (const o of ops) {
            if (o.op === "reserve") host.reserveHugePages(M2, o.n);
            else if (o.op === "onNode") host.reserveHugePagesOnNode(M2, o.node, o.n);
            else if (o.op === "surplus") gatherSurplus(host, M2, o.n, o.local, o.mask);
            else if (o.op === "take") {
              const pfn = pool.dequeue(host.mem, o.pref, o.mask);
              if (pfn >= 0) {
                // only from the mask's nodes
                expect((o.mask >>> host.mem.nodeOf(pfn)) & 1).toBe(1);
                inUse.push(pfn);
              }
            } else if (inUse.length) releaseHugePage(host, M2, inUse.pop()!);
          }
          host.assertInvariants(); // per-node sums, surplus <= total, free pages are hugetlb
          const freeN = [0, 1, 2].map((n) => pool.freeOn(host.mem, n));
          expect(freeN.reduce((a, b) => a + b, 0)).toBe(pool.free.length);
          expect(pool.free.length + inUse.length).toBe(pool.total);
          expect(pool.surplus).toBeLessThanOrEqual(50);
          // every pool page (free or in use) holds 512 frames out of the buddy allocator
          expect(host.mem.freeFrames + pool.total * 512).toBeLessThanOrEqual(host.mem.nframes);
        },
      ),
      { numRuns: 60 },
    );
  });
});
