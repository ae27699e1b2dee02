/**
 * The page cache: QEMU's cache modes (O_DIRECT for none/directsync, O_DSYNC for writethrough),
 * folio_mark_accessed's two-step activation, Dirty, Buffers for a block device, pgpgin/pgpgout
 * in KiB, and shrink_inactive_list/shrink_active_list over the file lists, with hand-counted
 * figures.
 */
import { describe, expect, it } from "vitest";
import { LRU_ACTIVE_FILE, LRU_INACTIVE_FILE, Lru, PG_REFERENCED } from "./lru.js";
import { KIND_FILE, PhysMem } from "./memory.js";
import { PageCache } from "./pagecache.js";

function setup() {
  const mem = new PhysMem(1073741824);
  const lru = new Lru(mem);
  const cache = new PageCache(mem, lru, () => mem.alloc(0, KIND_FILE));
  return { mem, lru, cache };
}

describe("the page cache", () => {
  it("a read misses once, is referenced, and a second read activates it (pgactivate)", () => {
    const { mem, lru, cache } = setup();
    const img = cache.addImage("vm1.img", 16 * 4096, "writeback");
    const free = mem.freeFrames;
    expect(cache.read(img, 3)).toBe(false);
    const pfn = img.pfnOf[3];
    expect(lru.lru[pfn]).toBe(LRU_INACTIVE_FILE);
    expect(lru.flags[pfn]).toBe(PG_REFERENCED);
    expect([img.diskReads, cache.pgpginKiB, mem.freeFrames]).toEqual([1, 4, free - 1]);
    expect(cache.read(img, 3)).toBe(true); // referenced and inactive: folio_activate
    expect([lru.lru[pfn], lru.flags[pfn], lru.pgactivate]).toEqual([LRU_ACTIVE_FILE, 0, 1]);
    expect(cache.read(img, 3)).toBe(true); // active: only PG_referenced again
    expect([lru.lru[pfn], lru.flags[pfn], lru.pgactivate]).toEqual([LRU_ACTIVE_FILE, 1, 1]);
    expect([img.reads, img.readHits, img.diskReads, cache.pgpginKiB]).toEqual([3, 2, 1, 4]);
    cache.assertInvariants();
    lru.assertInvariants();
  });

  it("cache='none' and 'directsync' bypass the page cache (O_DIRECT); I/O is still counted", () => {
    for (const mode of ["none", "directsync"] as const) {
      const { cache, mem } = setup();
      const free = mem.freeFrames;
      const img = cache.addImage("d.img", 16 * 4096, mode);
      cache.read(img, 1);
      cache.read(img, 1);
      cache.write(img, 2);
      expect([cache.pages, mem.freeFrames, img.diskReads, img.diskWrites]).toEqual([0, free, 2, 1]);
      expect([cache.pgpginKiB, cache.pgpgoutKiB]).toEqual([8, 4]);
    }
  });

  it("writeback writes dirty a cached page; writethrough writes through and keeps it clean", () => {
    const { cache } = setup();
    const wb = cache.addImage("wb.img", 16 * 4096, "writeback");
    cache.write(wb, 5);
    cache.write(wb, 5);
    expect([cache.pages, cache.dirty, wb.diskWrites, cache.pgpgoutKiB]).toEqual([1, 1, 0, 0]);
    const wt = cache.addImage("wt.img", 16 * 4096, "writethrough");
    cache.write(wt, 5);
    expect([cache.pages, cache.dirty, wt.diskWrites, cache.pgpgoutKiB]).toEqual([2, 1, 1, 4]);
    cache.assertInvariants();
  });

  it("a block device's pages are Buffers", () => {
    const { cache } = setup();
    const blk = cache.addImage("/dev/vg/vm1", 16 * 4096, "writeback", true);
    cache.read(blk, 0);
    cache.read(blk, 1);
    expect([cache.pages, cache.buffers]).toEqual([2, 2]);
    cache.assertInvariants();
  });

  it("shrink_inactive_list: clean pages dropped, dirty ones written back first, from the tail", () => {
    const { cache, mem } = setup();
    const img = cache.addImage("vm.img", 16 * 4096, "writeback");
    cache.read(img, 0); // oldest: referenced, clean
    cache.write(img, 1); // dirty, not referenced
    cache.read(img, 2); // newest
    const free = mem.freeFrames;
    const r = cache.shrinkInactive(2);
    expect(r).toEqual({ scanned: 2, reclaimed: 2, written: 1 });
    expect([img.pfnOf[0], img.pfnOf[1]]).toEqual([-1, -1]);
    expect(img.pfnOf[2]).toBeGreaterThanOrEqual(0);
    expect([mem.freeFrames, cache.dirty, cache.pgpgoutKiB, img.diskWrites]).toEqual([
      free + 2,
      0,
      4,
      1,
    ]);
    // a re-read is a disk read again
    cache.read(img, 0);
    expect(img.diskReads).toBe(3);
    cache.assertInvariants();
  });

  it("a dirty page with PG_referenced is kept (FOLIOREF_RECLAIM_CLEAN)", () => {
    const { cache, lru } = setup();
    const img = cache.addImage("vm.img", 16 * 4096, "writeback");
    cache.write(img, 7);
    cache.read(img, 7); // marks it referenced
    expect(cache.shrinkInactive(1)).toEqual({ scanned: 1, reclaimed: 0, written: 0 });
    expect(lru.flags[img.pfnOf[7]] & PG_REFERENCED).toBe(0); // tested and cleared
    expect(cache.shrinkInactive(1)).toEqual({ scanned: 1, reclaimed: 1, written: 1 });
    cache.assertInvariants();
  });

  it("shrink_active_list deactivates from the active tail (pgrefill, pgdeactivate)", () => {
    const { cache, lru } = setup();
    const img = cache.addImage("vm.img", 16 * 4096, "writeback");
    for (const p of [0, 1]) {
      cache.read(img, p);
      cache.read(img, p);
    }
    expect(lru.sizes()).toMatchObject({ activeFile: 2, inactiveFile: 0 });
    expect(cache.shrinkActive(5)).toBe(2);
    expect(lru.sizes()).toMatchObject({ activeFile: 0, inactiveFile: 2 });
    expect([lru.pgrefill, lru.pgdeactivate]).toEqual([2, 2]);
    lru.assertInvariants();
  });

  it("a refault within the workingset starts active; a distant one inactive (shadow entries)", () => {
    const { cache, lru } = setup();
    const img = cache.addImage("vm.img", 16 * 4096, "writeback");
    cache.read(img, 0);
    cache.read(img, 1);
    cache.read(img, 2);
    cache.read(img, 2); // activated: the nonresident age is 1
    expect(cache.nonresidentAge).toBe(1);
    expect(cache.shrinkInactive(1).reclaimed).toBe(1); // page 0 out: age 2, shadow 2
    expect(img.shadow[0]).toBe(2 * 2 + 0);
    // distance 2 - 2 = 0 <= the workingset (1 active file page, no swap): activated, age 3
    cache.read(img, 0);
    expect([cache.refaults, cache.activations, cache.restores]).toEqual([1, 1, 0]);
    expect(lru.lru[img.pfnOf[0]]).toBe(LRU_ACTIVE_FILE);
    expect([cache.nonresidentAge, img.shadow[0]]).toEqual([3, -1]);
    // page 1 goes (age 4, shadow 8); four more pages go through and out (ages 5..8)
    expect(cache.shrinkInactive(1).reclaimed).toBe(1);
    for (let p = 3; p < 7; p++) cache.read(img, p);
    expect(cache.shrinkInactive(4).reclaimed).toBe(4);
    expect(cache.nonresidentAge).toBe(8);
    // distance 8 - 4 = 4 > 2 active file pages: refaulted, not activated
    cache.read(img, 1);
    expect([cache.refaults, cache.activations]).toEqual([2, 1]);
    expect(lru.lru[img.pfnOf[1]]).toBe(LRU_INACTIVE_FILE);
    cache.assertInvariants();
  });

  it("a page deactivated, evicted and refaulted was workingset: restored, charged to file_cost", () => {
    const { cache, lru } = setup();
    const img = cache.addImage("vm.img", 16 * 4096, "writeback");
    cache.read(img, 5);
    cache.read(img, 5); // active (age 1)
    cache.read(img, 6);
    cache.read(img, 6); // active (age 2)
    expect(cache.shrinkActive(1)).toBe(1); // page 5 (the active tail) deactivated: PG_workingset
    expect(cache.shrinkInactive(1).reclaimed).toBe(1); // evicted: age 3, shadow 3 x 2 + 1
    expect(img.shadow[5]).toBe(7);
    cache.read(img, 5); // distance 0 <= 1 active page: activated and restored
    expect([cache.refaults, cache.activations, cache.restores]).toEqual([1, 1, 1]);
    // lru_note_cost_refault: one page of I/O = 32, halved at once: the LRU holds 1 page before
    // the refaulted one is added (floor(1 / 4) = 0 < 32)
    expect(lru.fileCost).toBe(16);
    cache.assertInvariants();
  });

  it("host files at boot: clean, referenced, on the inactive list", () => {
    const { cache, lru } = setup();
    expect(cache.fillHostFiles(100)).toBe(100);
    expect(lru.sizes()).toMatchObject({ inactiveFile: 100, activeFile: 0 });
    expect(cache.shrinkInactive(40)).toEqual({ scanned: 40, reclaimed: 40, written: 0 });
    expect(cache.pages).toBe(60);
    cache.assertInvariants();
  });
});
