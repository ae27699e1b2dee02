/**
 * ksmtuned's adjust(), worked by hand from the script: a 16 GiB host (16777216 KiB) has
 * sleep = 10 x 16777216 / 16777216 = 10 ms and thres = max(16777216 x 20 / 100, 2097152) =
 * 3355443 KiB.
 */
import { describe, expect, it } from "vitest";
import { KSM_DEFAULTS } from "./ksm.js";
import { KSMTUNED_DEFAULTS, Ksmtuned } from "./ksmtuned.js";

const T = 16777216;

describe("ksmtuned", () => {
  it("derives sleep and thres from MemTotal", () => {
    const k = new Ksmtuned(KSMTUNED_DEFAULTS, T);
    expect([k.sleep, k.thres]).toEqual([10, 3355443]);
    const small = new Ksmtuned(KSMTUNED_DEFAULTS, 4194304); // 4 GiB: sleep 40, thres 2097152
    expect([small.sleep, small.thres]).toEqual([40, 2097152]);
  });

  it("stops ksmd when memory is plentiful, boosts when free is low, decays otherwise", () => {
    const k = new Ksmtuned(KSMTUNED_DEFAULTS, T);
    const s = { ...KSM_DEFAULTS, run: 1 as const };
    k.adjust(60000, 4000000, 12000000, s); // 4000000 + 3355443 < T and free > thres: stop
    expect(s.run).toBe(0);
    k.adjust(120000, 14000000, 2000000, s); // committed + thres > T, free < thres: boost 0+300
    expect([s.run, s.pages_to_scan, s.sleep_millisecs]).toEqual([1, 300, 10]);
    k.adjust(180000, 14000000, 2000000, s); // boost again: 600
    expect(s.pages_to_scan).toBe(600);
    for (let i = 0; i < 5; i++) k.adjust(240000 + i, 14000000, 2000000, s);
    expect(s.pages_to_scan).toBe(1250); // clamped to KSM_NPAGES_MAX
    k.adjust(600000, 14000000, 4000000, s); // free > thres but committed high: decay by 50
    expect(s.pages_to_scan).toBe(1200);
    expect(k.log.map((d) => d.run)).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1]);
  });

  it("runs every KSM_MONITOR_INTERVAL seconds, the first time after one interval", () => {
    const k = new Ksmtuned({ ...KSMTUNED_DEFAULTS, monitorIntervalS: 1 }, T);
    const s = { ...KSM_DEFAULTS };
    let reads = 0;
    const read = () => {
      reads++;
      return { committedKiB: 15000000, freeKiB: 1000000 };
    };
    k.runUntil(999, read, s);
    expect(reads).toBe(0);
    k.runUntil(3500, read, s);
    expect(reads).toBe(3);
    expect(k.log.map((d) => d.atMs)).toEqual([1000, 2000, 3000]);
    expect(s.pages_to_scan).toBe(900);
  });
});
