/**
 * Swap and reclaim: the watermarks as __setup_per_zone_wmarks computes them, direct reclaim when
 * RAM runs out, kswapd between low and high, swap-in as a major fault through EPT, what is never
 * swapped, and (fast-check) a page is never both swapped and resident while frames and slots
 * are conserved.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { vmOverRam } from "../../test/sim-vm.js";
import { ACCESS_READ } from "../x86/faults.js";
import { GUEST_4LEVEL } from "../x86/paging.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm } from "./ksm.js";
import type { Mm, Vma } from "./mm.js";
import { Reclaim } from "./reclaim.js";
import { STATUS_OK, WalkRecord } from "./record.js";

const G = 1073741824;
const M = 1048576;

function setup(swap: number, minFreeKbytes = 1024) {
  const host = new Host({ memory: G, cpus: 1 });
  const ptes = new HostPtes(host, new VmStat());
  const ksm = new Ksm(ptes, {});
  const reclaim = new Reclaim(ptes, ksm, { swapBytes: swap, minFreeKbytes });
  return { host, ptes, ksm, reclaim };
}

function filler(host: Host, reclaim: Reclaim, size: number, locked = false): Mm {
  const mm = host.createProcess("qemu");
  mm.mmap(size, { thp: false });
  mm.content = { token: (_v: Vma, i: number) => i + 1 };
  reclaim.register(mm, locked);
  return mm;
}

describe("reclaim and swap", () => {
  it("watermarks: min = min_free_kbytes / 4, low/high = min + 1x/2x max(min/4, pages/1000)", () => {
    const { reclaim } = setup(0, 1024);
    // 1 GiB = 262144 pages: tmp = max(64, 262) = 262
    expect([reclaim.min, reclaim.low, reclaim.high]).toEqual([256, 518, 780]);
    const big = setup(0, 65536).reclaim; // tmp = max(4096, 262) = 4096
    expect([big.min, big.low, big.high]).toEqual([16384, 20480, 24576]);
  });

  it("direct reclaim swaps cold pages out when RAM runs out; a touch reads them back", () => {
    const { host, ptes, reclaim } = setup(128 * M);
    const mm = filler(host, reclaim, G + 64 * M);
    const start = mm.vmas[0].start;
    const pages = (G + 64 * M) / 4096;
    for (let i = 0; i < pages; i++) mm.fault(start + i * 4096, true);
    // every page is resident or in swap, never both, never lost
    expect(mm.rss + reclaim.swapUsed).toBe(pages);
    expect(ptes.vmstat.pswpout).toBe(reclaim.swapUsed);
    expect(reclaim.allocstall).toBeGreaterThan(0);
    expect(host.mem.freeFrames).toBeLessThanOrEqual(reclaim.min + SWAP_BATCH);
    // the hand's first lap only cleared accessed bits: page 0 went out on the second lap
    expect(reclaim.isSwapped(mm, start / 4096)).toBe(true);
    const pfn = mm.fault(start, false); // do_swap_page
    expect(host.mem.token[pfn]).toBe(1);
    expect(ptes.vmstat.pswpin).toBe(1);
    expect(reclaim.pgmajfault).toBe(1);
    expect(reclaim.isSwapped(mm, start / 4096)).toBe(false);
    reclaim.assertInvariants();
    host.assertInvariants();
  });

  it("kswapd wakes below low; fresh pages need two looks; then it reclaims to high", () => {
    const { host, ptes, reclaim } = setup(256 * M);
    const mm = filler(host, reclaim, G);
    const start = mm.vmas[0].start;
    let i = 0;
    while (host.mem.freeFrames >= reclaim.low) mm.fault(start + i++ * 4096, true);
    const n = mm.rss;
    expect(reclaim.lists()).toEqual({
      inactiveAnon: n,
      activeAnon: 0,
      inactiveFile: 0,
      activeFile: 0,
    });
    reclaim.kswapd();
    expect(reclaim.pageoutrun).toBe(1);
    // every page still has the accessed bit of its fault: folio_check_references keeps it
    // (PG_referenced); balance_pgdat scans n >> p at priorities 12..1, reclaiming nothing
    let scans = 0;
    for (let p = 12; p >= 1; p--) scans += Math.floor(n / 2 ** p);
    expect([reclaim.pgscanKswapd, reclaim.pgstealKswapd, ptes.vmstat.pswpout]).toEqual([
      scans,
      0,
      0,
    ]);
    const free = host.mem.freeFrames;
    reclaim.kswapd(); // the second look finds the bits clear: out they go
    expect(reclaim.pageoutrun).toBe(2);
    expect(host.mem.freeFrames).toBeGreaterThanOrEqual(reclaim.high);
    expect(host.mem.freeFrames - free).toBe(reclaim.pgstealKswapd);
    expect(ptes.vmstat.pswpout).toBe(reclaim.pgstealKswapd);
    expect(reclaim.pgstealAnon).toBe(reclaim.pgstealKswapd);
    reclaim.kswapd(); // above low: asleep
    expect(reclaim.pageoutrun).toBe(2);
    reclaim.assertInvariants();
  });

  it("a page referenced at two looks in a row is activated; shrink_active_list deactivates", () => {
    const { host, reclaim } = setup(64 * M);
    const mm = filler(host, reclaim, 64 * M);
    const start = mm.vmas[0].start;
    for (let i = 0; i < 8; i++) mm.fault(start + i * 4096, true);
    const r = reclaim.anon;
    // first look: the fault's accessed bits: kept, PG_referenced set
    expect(r.shrinkInactive(8)).toEqual({ scanned: 8, reclaimed: 0 });
    // pages 0 and 1 are touched again (the CPU sets the pte's A bit)
    const pte = (i: number) => {
      const l = ptes4K(mm, start / 4096 + i);
      mm.setEntry(l.tableFrame, l.index, 1, (l.lo | 0x20) >>> 0, l.hi);
    };
    pte(0);
    pte(1);
    // second look: 0 and 1 referenced again with PG_referenced: activated; 2..7 reclaimed
    expect(r.shrinkInactive(8)).toEqual({ scanned: 8, reclaimed: 6 });
    expect(reclaim.lru.pgactivate).toBe(2);
    expect(reclaim.lists()).toMatchObject({ inactiveAnon: 0, activeAnon: 2 });
    r.shrinkActive(32);
    expect(reclaim.lists()).toMatchObject({ inactiveAnon: 2, activeAnon: 0 });
    expect([reclaim.lru.pgrefill, reclaim.lru.pgdeactivate]).toEqual([2, 2]);
    reclaim.assertInvariants();
  });

  it("swappiness 0 with enough page cache swaps no anon page; 200 swaps anon and keeps the cache", () => {
    const run = (swappiness: number) => {
      const { host, ptes, reclaim } = setup(256 * M);
      reclaim.sysctl.swappiness = swappiness;
      const mm = filler(host, reclaim, G);
      // 128 MiB of a disk image read twice: the whole cache is on the active file list, so
      // inactive file is low and get_scan_count balances by swappiness (SCAN_FRACT)
      const img = reclaim.cache.addImage("vm.img", 128 * M, "writeback");
      for (let round = 0; round < 2; round++)
        for (let p = 0; p < img.pages; p++) reclaim.cache.read(img, p);
      expect(reclaim.lists()).toMatchObject({ activeFile: 32768, inactiveFile: 0 });
      const start = mm.vmas[0].start;
      // 900 MiB of guest memory and 128 MiB of cache do not fit in 1 GiB
      for (let i = 0; i < (900 * M) / 4096; i++) mm.fault(start + i * 4096, true);
      for (let k = 0; k < 3; k++) reclaim.kswapd();
      reclaim.assertInvariants();
      return {
        pswpout: ptes.vmstat.pswpout,
        stealFile: reclaim.pgstealFile,
        cache: reclaim.cache.pages,
        balances: reclaim.balances,
      };
    };
    const zero = run(0);
    expect(zero.pswpout).toBe(0);
    expect(zero.stealFile).toBeGreaterThan(0);
    expect(zero.balances.equal + zero.balances.anon).toBe(0);
    const max = run(200);
    expect(max.pswpout).toBeGreaterThan(0);
    expect(max.stealFile).toBe(0);
    expect(max.cache).toBe(32768);
  });

  it("without swap, or for locked and hugetlbfs memory, nothing is swapped: the OOM killer acts", () => {
    const noSwap = setup(0);
    const mm = filler(noSwap.host, noSwap.reclaim, 64 * M);
    for (let i = 0; i < 1000; i++) mm.fault(mm.vmas[0].start + i * 4096, true);
    // nothing to reclaim: out_of_memory kills the only process (1000 pages + 4 page tables)
    expect(noSwap.reclaim.directReclaim()).toBe(1004);
    expect(noSwap.reclaim.swapUsed).toBe(0);
    expect(noSwap.reclaim.victims.map((v) => v.mm)).toEqual([mm]);
    const locked = setup(64 * M);
    const lm = filler(locked.host, locked.reclaim, 64 * M, true);
    for (let i = 0; i < 1000; i++) lm.fault(lm.vmas[0].start + i * 4096, true);
    expect(locked.reclaim.mlockedPages()).toBe(1000);
    locked.reclaim.directReclaim();
    expect(locked.reclaim.swapUsed).toBe(0);
    expect(locked.reclaim.pgstealDirect).toBe(0);
    const huge = setup(64 * M);
    huge.host.reserveHugePages(2097152, 8);
    const hm = huge.host.createProcess("q");
    hm.mmap(16 * M, { kind: "hugetlb", pageSize: 2097152 });
    huge.reclaim.register(hm, false);
    hm.fault(hm.vmas[0].start, true);
    const pool = huge.host.pools.get(2097152)!.free.length;
    huge.reclaim.directReclaim();
    expect(huge.reclaim.swapUsed).toBe(0);
    // killed: its huge page went back to the pool
    expect(huge.host.pools.get(2097152)!.free.length).toBe(pool + 1);
  });

  it.each([
    ["EPT", true],
    ["shadow paging", false],
  ])(
    "a swapped guest page: the spte is zapped; the guest's access is a major fault (%s)",
    (_n, ept) => {
      const { host, ptes, reclaim } = setup(64 * M);
      const mm = host.createProcess("qemu");
      const hva = mm.mmap(64 * M, { thp: false });
      mm.content = { token: (_v: Vma, i: number) => 1000 + i };
      reclaim.register(mm, false);
      const { vm, os } = vmOverRam(host, mm, hva, 64 * M, {
        name: "vm",
        ept,
        zones: { tableEndMiB: 8, end4KMiB: 32, end2MMiB: 32 },
      });
      const vcpu = vm.addVcpu();
      const p = os.process("init");
      os.map(p, 0x400, 3000, 1, { write: true, user: true, exec: false });
      const rec = new WalkRecord();
      const cpu = host.cpus[0];
      cpu.movCr3(vcpu, p.root, p.pcid, false, rec);
      expect(cpu.access(vcpu, 0x400, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
      // reclaim everything it can: two laps (accessed bits cleared, then out)
      while (reclaim.directReclaim() > 0 && !reclaim.isSwapped(mm, hva / 4096 + 3000));
      expect(reclaim.isSwapped(mm, hva / 4096 + 3000)).toBe(true);
      const exits = vm.exitCounts.reduce((a, b) => a + b, 0);
      const before = ptes.vmstat.pswpin;
      expect(cpu.access(vcpu, 0x400, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
      expect(host.mem.token[rec.pfn]).toBe(1000 + 3000);
      expect(ptes.vmstat.pswpin).toBeGreaterThan(before); // page tables may come back too
      expect(vm.exitCounts.reduce((a, b) => a + b, 0)).toBeGreaterThan(exits);
      reclaim.assertInvariants();
      host.assertInvariants();
    },
  );

  it("fast-check: frames and slots conserved, no page both swapped and resident", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(4095), fc.boolean()), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 8 }),
        (touches, swapMiB) => {
          const { host, reclaim } = setup(swapMiB * M);
          const mm = filler(host, reclaim, 16 * M);
          // squeeze RAM: a locked hog leaves room for 2,000 frames
          const hog = filler(host, reclaim, G, true);
          const free = host.mem.freeFrames - 2000 - 600; // a few hundred for page tables
          for (let i = 0; i < free; i++) hog.fault(hog.vmas[0].start + i * 4096, true);
          const seen = new Set<number>();
          for (const [page, write] of touches) {
            try {
              const pfn = mm.fault(mm.vmas[0].start + page * 4096, write);
              expect(host.mem.token[pfn]).toBe(page + 1);
              seen.add(page);
            } catch (e) {
              expect(String(e)).toContain("host out of memory");
              expect(reclaim.swapUsed).toBe(reclaim.slots);
            }
            reclaim.assertInvariants();
            expect(mm.rss + reclaim.swapUsed).toBe(seen.size);
            for (const p of seen) {
              const resident = mm.lookup(mm.vmas[0].start + p * 4096) >= 0;
              expect(resident !== reclaim.isSwapped(mm, mm.vmas[0].start / 4096 + p)).toBe(true);
            }
          }
          host.assertInvariants();
        },
      ),
      { numRuns: 4 },
    );
  });
});

const SWAP_BATCH = 32;

/** the 4K pte of page `vpn` of `mm` */
function ptes4K(mm: Mm, vpn: number): LeafRef {
  return findLeaf(mm.mem, mm, GUEST_4LEVEL, mm.root, vpn, new LeafRef());
}

describe("the OOM killer", () => {
  it("kills the process with the highest badness, reports it as the kernel does, frees it all", () => {
    const { host, reclaim } = setup(0);
    const a = filler(host, reclaim, G);
    const b = filler(host, reclaim, G);
    for (let i = 0; i < (600 * M) / 4096; i++) a.fault(a.vmas[0].start + i * 4096, true);
    const free = host.mem.freeFrames;
    // b grows until RAM runs out: a (600 MiB) is the biggest, so a dies and b goes on
    for (let i = 0; i < (700 * M) / 4096; i++) b.fault(b.vmas[0].start + i * 4096, true);
    expect(reclaim.victims).toHaveLength(1);
    expect(reclaim.victims[0].mm).toBe(a);
    // 300 page tables + PMD + PUD + PGD for 600 MiB of 4K pages in one 1 GiB-aligned VMA
    expect(reclaim.victims[0].message).toBe(
      "Out of memory: Killed process 1000 (qemu-system-x86) total-vm:1048576kB, anon-rss:614400kB, file-rss:0kB, shmem-rss:0kB, UID:107 pgtables:1212kB oom_score_adj:0",
    );
    expect(a.rss).toBe(0);
    expect(a.killed).toBe(true);
    expect(() => a.fault(a.vmas[0].start, false)).toThrow(/SIGKILL/);
    expect(b.rss).toBe((700 * M) / 4096);
    expect(host.mem.freeFrames).toBeGreaterThan(free - (700 * M) / 4096 + (600 * M) / 4096 - 400);
    host.assertInvariants();
  });
});
