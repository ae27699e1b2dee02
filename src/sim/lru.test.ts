/**
 * The LRU lists' rules, each with numbers computed by hand from mm/vmscan.c and mm/swap.c
 * (torvalds/linux 538d5baa): inactive_is_low's ratio, prepare_scan_control's cache_trim_mode and
 * file_is_tiny, get_scan_count's balances and SCAN_FRACT arithmetic, lru_note_cost's decay,
 * and the file lists' links.
 */
import { describe, expect, it } from "vitest";
import {
  DEACTIVATE_ANON,
  DEACTIVATE_FILE,
  getScanCount,
  inactiveIsLow,
  intSqrt,
  LRU_ACTIVE_FILE,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  Lru,
  type LruSizes,
  prepareScanControl,
} from "./lru.js";
import { KIND_FILE, PhysMem } from "./memory.js";

const sizes = (ia: number, aa: number, inf: number, af: number): LruSizes => ({
  inactiveAnon: ia,
  activeAnon: aa,
  inactiveFile: inf,
  activeFile: af,
});

describe("inactive_is_low", () => {
  it.each([
    // under 1 GiB of both lists the ratio is 1: low when inactive < active
    [4096, 8192, true],
    [8192, 8192, false],
    // 400000 pages = 1 GiB (gb 1): ratio int_sqrt(10) = 3
    [100000, 300000, false], // 300000 < 300000 is false
    [99999, 300001, true], // 299997 < 300001
    // 2621440 pages = 10 GiB (gb 10): ratio int_sqrt(100) = 10
    [238313, 2383127, false], // 2383130 < 2383127 is false
    [238312, 2383128, true], // 2383120 < 2383128
    // 8 pages fewer is 9 GiB: ratio int_sqrt(90) = 9
    [238313, 2383119, true], // 2144817 < 2383119
  ])("inactive %i, active %i: %s", (inactive, active, low) => {
    expect(inactiveIsLow(inactive, active)).toBe(low);
  });

  it("int_sqrt is the floor of the square root", () => {
    expect([0, 1, 3, 4, 10, 99, 100, 101].map(intSqrt)).toEqual([0, 1, 1, 2, 3, 9, 10, 10]);
  });
});

describe("prepare_scan_control", () => {
  it("deactivates a list whose inactive side is low", () => {
    const sc = prepareScanControl(sizes(8192, 4096, 4096, 8192), 100, 1000, 12);
    expect(sc.mayDeactivate).toBe(DEACTIVATE_FILE);
    expect(prepareScanControl(sizes(100, 200, 10, 5), 0, 0, 0).mayDeactivate).toBe(DEACTIVATE_ANON);
  });

  it("file refaults since the last run deactivate the file list and end cache_trim_mode", () => {
    const sc = prepareScanControl(sizes(8192, 0, 8192, 0), 100, 1000, 12, true);
    expect(sc).toMatchObject({ mayDeactivate: DEACTIVATE_FILE, cacheTrimMode: false });
  });

  it("cache_trim_mode: inactive file >> priority and the file list not low", () => {
    expect(prepareScanControl(sizes(8192, 0, 8192, 0), 100, 1000, 12).cacheTrimMode).toBe(true);
    // 4095 >> 12 = 0: too little inactive file at this priority
    expect(prepareScanControl(sizes(8192, 0, 4095, 0), 100, 1000, 12).cacheTrimMode).toBe(false);
    expect(prepareScanControl(sizes(8192, 0, 4095, 0), 100, 1000, 11).cacheTrimMode).toBe(true);
  });

  it("file_is_tiny: file + free at or below high, anon not low, inactive anon >> priority", () => {
    expect(prepareScanControl(sizes(8192, 0, 10, 0), 100, 1000, 12).fileIsTiny).toBe(true);
    expect(prepareScanControl(sizes(8192, 0, 10, 0), 991, 1000, 12).fileIsTiny).toBe(false);
    expect(prepareScanControl(sizes(8192, 0, 10, 0), 990, 1000, 12).fileIsTiny).toBe(true);
    // inactive anon low: anon is being deactivated, no force
    expect(prepareScanControl(sizes(10, 8192, 10, 0), 100, 1000, 12).fileIsTiny).toBe(false);
  });
});

describe("get_scan_count", () => {
  const lists = sizes(8192, 4096, 4096, 8192); // file inactive low: no cache trim
  const sc = (prio: number) => prepareScanControl(lists, 100, 1000, prio);

  it("SCAN_FRACT at swappiness 60 with no costs: ap 60, fp 140 of (size >> priority)", () => {
    const c = getScanCount(lists, sc(2), 2, 60, true, 0, 0);
    expect(c.balance).toBe("fract");
    expect([c.ap, c.fp]).toEqual([60, 140]);
    // 2048 x 60 / 200 = 614.4, 1024 x 60 / 200 = 307.2, 1024 x 140 / 200, 2048 x 140 / 200
    expect(c.nr).toEqual([614, 307, 716, 1433]);
  });

  it("SCAN_FRACT with costs: anon_cost 100, file_cost 300", () => {
    // total 400; anon 500, file 700; total 1200; ap = 60 x 1201 / 501 = 143,
    // fp = 140 x 1201 / 701 = 239; inactive anon 2048 x 143 / 382 = 766
    const c = getScanCount(lists, sc(2), 2, 60, true, 100, 300);
    expect([c.ap, c.fp]).toEqual([143, 239]);
    expect(c.nr[0]).toBe(766);
  });

  it("swappiness 0 scans no anon, 200 no file (global reclaim)", () => {
    const zero = getScanCount(lists, sc(2), 2, 0, true, 100, 300);
    expect([zero.ap, zero.fp]).toEqual([0, 342]); // 200 x 1201 / 701
    expect(zero.nr).toEqual([0, 0, 1024, 2048]);
    const max = getScanCount(lists, sc(2), 2, 200, true, 100, 300);
    expect(max.fp).toBe(0);
    expect(max.nr).toEqual([2048, 1024, 0, 0]);
  });

  it("no swap: SCAN_FILE; priority 0: SCAN_EQUAL unless swappiness is 0", () => {
    expect(getScanCount(lists, sc(2), 2, 60, false, 0, 0)).toMatchObject({
      balance: "file",
      nr: [0, 0, 1024, 2048],
    });
    expect(getScanCount(lists, sc(0), 0, 60, true, 0, 0)).toMatchObject({
      balance: "equal",
      nr: [8192, 4096, 4096, 8192],
    });
    expect(getScanCount(lists, sc(0), 0, 0, true, 0, 0).balance).toBe("fract");
  });

  it("file_is_tiny forces SCAN_ANON even at swappiness 0; cache_trim_mode SCAN_FILE", () => {
    const tiny = sizes(8192, 0, 10, 0);
    const t = getScanCount(tiny, prepareScanControl(tiny, 100, 1000, 12), 12, 0, true, 0, 0);
    expect(t).toMatchObject({ balance: "anon", nr: [2, 0, 0, 0] });
    const cache = sizes(8192, 0, 8192, 0);
    const f = getScanCount(cache, prepareScanControl(cache, 100, 1000, 12), 12, 200, true, 0, 0);
    expect(f).toMatchObject({ balance: "file", nr: [0, 0, 2, 0] });
  });
});

describe("the lists", () => {
  it("lru_note_cost: io x 32 + rotated; both halved past a quarter of the LRU pages", () => {
    const lru = new Lru(new PhysMem(1073741824));
    lru.setAnon(0, 400, LRU_INACTIVE_ANON); // 400 pages: the limit is 100
    lru.noteCost(false, 1, 10);
    expect([lru.anonCost, lru.fileCost]).toEqual([42, 0]);
    lru.noteCost(true, 2, 0); // 64: 106 > 100
    expect([lru.anonCost, lru.fileCost]).toEqual([21, 32]);
    lru.noteCost(true, 0, 0); // no cost: nothing
    expect([lru.anonCost, lru.fileCost]).toEqual([21, 32]);
  });

  it("file pages are added at the head and scanned from the tail; sizes follow", () => {
    const mem = new PhysMem(1073741824);
    const lru = new Lru(mem);
    const pfns = [0, 1, 2].map(() => mem.alloc(0, KIND_FILE));
    for (const p of pfns) lru.addFile(p, LRU_INACTIVE_FILE);
    expect(lru.fileTail(LRU_INACTIVE_FILE)).toBe(pfns[0]);
    lru.delFile(pfns[0]);
    lru.addFile(pfns[0], LRU_ACTIVE_FILE);
    expect(lru.fileTail(LRU_INACTIVE_FILE)).toBe(pfns[1]);
    expect(lru.sizes()).toEqual(sizes(0, 0, 2, 1));
    lru.assertInvariants();
    lru.delFile(pfns[1]);
    lru.delFile(pfns[2]);
    expect(lru.fileTail(LRU_INACTIVE_FILE)).toBe(-1);
    mem.free(pfns[1], 0);
    mem.free(pfns[2], 0);
    lru.assertInvariants();
  });
});
