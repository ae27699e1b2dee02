/**
 * KSM on a two-node host (PhysMem with two NUMA nodes, built by Host): merge_across_nodes 1 keeps
 * one stable and one unstable tree, so equal pages on different nodes merge; 0 gives each node
 * its own trees (root_stable_tree[nid], root_unstable_tree[nid] in mm/ksm.c), so they do not.
 * Writing merge_across_nodes or max_page_sharing while KSM pages are shared fails with EBUSY
 * (merge_across_nodes_store, max_page_sharing_store). Expected counters are worked out by hand.
 */
import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm, type KsmSettings } from "./ksm.js";
import { ksmdShare } from "./ksm-cost.js";
import type { Vma } from "./mm.js";

const G = 1073741824;
const A = 11;
const B = 12;
const C = 13;

/** p0 on node 0 holds [A, B], p1 on node 1 [A, C], p2 on node 0 [A, C] (mbind MPOL_BIND). */
function twoNodes(settings: Partial<KsmSettings>) {
  const host = new Host({ memory: 2 * G, cpus: 2, nodes: 2 });
  expect(host.mem.nodes).toBe(2);
  const ksm = new Ksm(new HostPtes(host, new VmStat()), { run: 1, ...settings });
  const layout: Array<[number, number[]]> = [
    [0, [A, B]],
    [1, [A, C]],
    [0, [A, C]],
  ];
  const mms = layout.map(([node, pages], p) => {
    const mm = host.createProcess(`qemu-${p}`);
    const start = mm.mmap(2097152, { thp: false, policy: { mode: "bind", nodes: 1 << node } });
    mm.content = { token: (_v: Vma, i: number) => pages[i] ?? 0x7777 + 100 * p + i };
    for (let i = 0; i < pages.length; i++) mm.fault(start + i * 4096, true);
    for (let i = 0; i < pages.length; i++)
      expect(host.mem.nodeOf(mm.lookup(start + i * 4096))).toBe(node);
    ksm.madvise(mm, mm.vmas[0]);
    return mm;
  });
  const free0 = host.mem.freeFrames;
  const pfnA = (p: number) => mms[p].lookup(mms[p].vmas[0].start);
  return { host, ksm, mms, free0, pfnA };
}

describe("merge_across_nodes", () => {
  it("1 (the default): pages on different nodes merge through one pair of trees", () => {
    const { host, ksm, free0, pfnA } = twoNodes({});
    ksm.scan(1000); // scan 1: six first checksums, all volatile
    ksm.scan(1000);
    // p0: A and B go in the unstable tree; p1: A matches p0's A (p1's frame, on node 1, becomes
    // the KSM page), C goes in; p2: A merges into the stable node, C matches p1's C
    expect(ksm.counters()).toMatchObject({
      merge_across_nodes: 1,
      pages_shared: 2,
      pages_sharing: 3,
      pages_unshared: 1,
      pages_volatile: 0,
    });
    expect(host.mem.freeFrames).toBe(free0 + 3);
    expect(pfnA(0)).toBe(pfnA(1));
    expect(pfnA(2)).toBe(pfnA(1));
    expect(host.mem.nodeOf(pfnA(0))).toBe(1); // p0's guest page now lives on the other node
    ksm.assertInvariants();
    host.assertInvariants();
  });

  it("0: one stable and one unstable tree per node, so only same-node pages merge", () => {
    const { host, ksm, free0, pfnA } = twoNodes({ merge_across_nodes: 0 });
    ksm.scan(1000);
    ksm.scan(1000);
    // node 0's trees: p0 A, p0 B, then p2 A matches p0 A (p2's frame is the KSM page), p2 C
    // goes in; node 1's trees: p1 A and p1 C go in and find nothing there
    expect(ksm.counters()).toMatchObject({
      merge_across_nodes: 0,
      pages_shared: 1,
      pages_sharing: 1,
      pages_unshared: 4,
      pages_volatile: 0,
    });
    expect(host.mem.freeFrames).toBe(free0 + 1);
    expect(pfnA(0)).toBe(pfnA(2));
    expect(pfnA(1)).not.toBe(pfnA(0));
    expect(host.mem.nodeOf(pfnA(0))).toBe(0);
    ksm.scan(1000); // a third scan changes nothing: the trees still never meet
    expect(ksm.counters()).toMatchObject({ pages_shared: 1, pages_sharing: 1, pages_unshared: 4 });
    ksm.assertInvariants();
    host.assertInvariants();
  });

  it("cannot change while KSM pages are shared (EBUSY); after echo 2 > run it can", () => {
    const { ksm } = twoNodes({ merge_across_nodes: 0 });
    ksm.scan(1000);
    ksm.scan(1000);
    expect(ksm.setKnob("merge_across_nodes", 1)).toMatch(/^merge_across_nodes: .*EBUSY/);
    expect(ksm.setKnob("max_page_sharing", 10)).toMatch(/EBUSY/);
    expect(ksm.settings).toMatchObject({ merge_across_nodes: 0, max_page_sharing: 256 });
    expect(ksm.setKnob("merge_across_nodes", 2)).toMatch(/EINVAL/);
    expect(ksm.setKnob("max_page_sharing", 1)).toMatch(/EINVAL/);
    expect(ksm.setKnob("merge_across_nodes", 0)).toBeNull(); // unchanged: no check
    expect(ksm.setKnob("pages_to_scan", 5)).toBeNull(); // other knobs always take
    // echo 2 > run: unmerge_and_remove_all_rmap_items; then the store succeeds
    ksm.setKnob("run", 2);
    ksm.runUntil(0);
    expect(ksm.counters()).toMatchObject({ pages_shared: 0, pages_sharing: 0 });
    expect(ksm.setKnob("merge_across_nodes", 1)).toBeNull();
    expect(ksm.setKnob("run", 1)).toBeNull();
    ksm.setKnob("pages_to_scan", 1000);
    ksm.scan(1000); // fresh rmap_items: volatile
    ksm.scan(1000); // one tree now: as with merge_across_nodes 1 from the start
    expect(ksm.counters()).toMatchObject({ pages_shared: 2, pages_sharing: 3, pages_unshared: 1 });
    ksm.assertInvariants();
  });
});

describe("ksmd's CPU time (ksm-cost.ts)", () => {
  it("prices each checksum, comparison and merge of a small scan, worked out by hand", () => {
    const host = new Host({ memory: G, cpus: 1 });
    const ksm = new Ksm(new HostPtes(host, new VmStat()), { run: 1, pages_to_scan: 1000 });
    for (const [p, pages] of [
      [A, B],
      [A, C],
    ].entries()) {
      const mm = host.createProcess(`qemu-${p}`);
      const start = mm.mmap(2097152, { thp: false });
      mm.content = { token: (_v: Vma, i: number) => pages[i] };
      for (let i = 0; i < pages.length; i++) mm.fault(start + i * 4096, true);
      ksm.madvise(mm, mm.vmas[0]);
    }
    ksm.scan(1000); // 4 pages: walk 300 + checksum 2,000 each, all volatile
    expect([ksm.scanCycles, ksm.compareCycles, ksm.mergeCycles]).toEqual([9200, 0, 0]);
    ksm.scan(1000);
    // p0 A: trees empty, no comparison; p0 B: unstable tree of 1, one different page (200);
    // p1 A: stable tree empty; unstable tree of 2, depth 2: one different page and the identical
    // one (200 + 2,500); p1's page write-protected (3,000), p0's A merged into it:
    // pages_identical 2,500, write_protect_page + replace_page 6,000; p1 C: stable tree of 1
    // (200), unstable tree of 1 (B; p0 A left it) (200)
    expect(ksm.scanCycles).toBe(9200 * 2);
    expect(ksm.compareCycles).toBe(200 + 2700 + 2500 + 200 + 200);
    expect(ksm.mergeCycles).toBe(3000 + 6000);
    expect(ksm.cpuCycles).toBe(18400 + 5800 + 9000);
    expect(ksm.cpuMs()).toBeCloseTo((33200 / 3e9) * 1000, 12);
  });
});

describe("ksmd's share of its CPU (CFS weights)", () => {
  it("a batch lasts its cycles divided by nice 5's share beside nice-0 vCPU threads", () => {
    expect(ksmdShare(0)).toBe(1);
    expect(ksmdShare(1)).toBe(335 / (335 + 1024));
    expect(ksmdShare(2)).toBe(335 / (335 + 2048));
    const host = new Host({ memory: G, cpus: 1 });
    const ksm = new Ksm(new HostPtes(host, new VmStat()), { run: 1, pages_to_scan: 2 });
    const mm = host.createProcess("qemu");
    const start = mm.mmap(2097152, { thp: false });
    mm.content = { token: (_v: Vma, i: number) => 100 + i };
    for (let i = 0; i < 5; i++) mm.fault(start + i * 4096, true);
    ksm.madvise(mm, mm.vmas[0]);
    ksm.cpuShare = ksmdShare(1);
    // the batch at 0: 2 first visits, 2 x 2,300 cycles = 1.533 us of CPU; at 24.65% of the CPU
    // it lasts 6.22 us, then ksmd sleeps 20 ms: the next batch is due at 20.00622 ms
    ksm.runUntil(20.0062);
    expect(ksm.pagesScanned).toBe(2);
    ksm.runUntil(20.00623);
    expect(ksm.pagesScanned).toBe(4);
  });
});
