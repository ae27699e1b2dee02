// Surplus huge pages (hugetlbpage.rst): gathered within nr_overcommit_hugepages, all or none,
// and freed to the buddy allocator while the pool has surplus.
import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import { gatherSurplus, releaseHugePage } from "./hugetlb.js";

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
