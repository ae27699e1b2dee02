// MOM's balloon rules on numbers worked by hand (KiB): a 2 GiB guest (2097152) with 1 GiB free;
// and MOM's statistics averaging (StatAvg over the monitors' last sample-history-length samples);
// and its KSM rules (ksm.rules: stop, or run with pages_to_scan boosted or decayed).
import { describe, expect, it } from "vitest";
import type { Balloon } from "./balloon.js";
import { KSM_DEFAULTS } from "./ksm-tree.js";
import { MomPolicy, type MomReading, momKsm, momTarget } from "./mom.js";

const MAX = 2097152;

describe("MOM balloon rules", () => {
  it("host at 10% free: shrink by at most 5%, not below used + the scaled free share", () => {
    // share = 0.2 x 0.1 / 0.2 = 0.1; min = 1048576 used + 0.1 x 2097152 = 1258291.2
    // 5% step: 2097152 x 0.95 = 1992294.4 > min: the step wins
    expect(momTarget(0.1, MAX, MAX, 1048576)).toBeCloseTo(1992294.4, 3);
    // little free in the guest (used = 2097152 - 52428.8): min > cur: no shrink
    expect(momTarget(0.1, MAX, MAX, MAX - 52428.8)).toBeNull();
  });

  it("critical pressure (<= 5% free) asks for negative free memory (the guest must swap)", () => {
    // share = -0.05 + 0.04 = -0.01; min = 1048576 - 20971.52 = 1027604.48; step 1992294.4 wins
    expect(momTarget(0.04, MAX, MAX, 1048576)).toBeCloseTo(1992294.4, 3);
    // from a smaller balloon_cur the floor binds: cur 1100000, used 1000000:
    // min = 1000000 - 11000 = 989000; step = 1045000: the step still wins
    expect(momTarget(0.04, 1100000, MAX, 1000000)).toBeCloseTo(1045000, 3);
  });

  it("no pressure: grow 5% towards the maximum, at least to used + 20% of the maximum", () => {
    // cur 1048576, used 524288; min = 524288 + 419430.4 = 943718.4;
    // step = 1101004.8: grow to the step
    expect(momTarget(0.5, 1048576, MAX, 524288)).toBeCloseTo(1101004.8, 3);
    expect(momTarget(0.5, MAX, MAX, 1572864)).toBeNull(); // not ballooned: nothing to do
    // a change under 0.25% of balloon_cur is not worth it (used 1047576: the 5% step is capped
    // at the maximum, 1000 KiB away)
    expect(momTarget(0.5, MAX - 1000, MAX, 1047576)).toBeNull();
  });
});

/** A balloon as MOM sees it: a size and a target it can set (the driver does not move here). */
function fakeBalloon(ramKiB: number) {
  const targets: Array<[number, number]> = [];
  const b = {
    opts: { ramPages: ramKiB / 4 },
    pages: { length: 0 },
    setTarget: (bytes: number, nowMs: number) => targets.push([nowMs, bytes / 1024]),
  };
  return { balloon: b as unknown as Balloon, targets };
}

describe("MOM statistics averaging (StatAvg)", () => {
  it("averages host mem_free over the kept samples: no pressure until the mean falls below 20%", () => {
    const { balloon, targets } = fakeBalloon(MAX);
    // host MemTotal 1,000,000 KiB; mem_free per 5 s sample: 400000, 300000, then 100000 on
    const free = [400000, 300000, 100000, 100000, 100000, 100000, 100000];
    let now = 0;
    const read = (): MomReading => ({
      memFreeKiB: free[Math.min(free.length - 1, Math.round(now / 5000))],
      memTotalKiB: 1000000,
      guests: [{ name: "g", balloon, unusedKiB: 1048576 }],
    });
    const mom = new MomPolicy(10);
    for (now = 0; now <= 30000; now += 5000) mom.runUntil(now, read);
    // t=10 s: mean(400000, 300000, 100000) = 266667 -> 26.7% free: no pressure, the guest is
    // not ballooned: nothing (the current value, 10%, would have shrunk it)
    // t=20 s: mean of 5 samples = 200000 -> 20.0%: not below the threshold: nothing
    // t=30 s: mean of 7 samples = 1200000 / 7 = 171428.57 -> 17.14%: shrink; used = 2097152 -
    // 1048576; share = 0.2 x 0.1714 / 0.2; min = 1048576 + 0.171429 x 2097152 = 1408087.8;
    // the 5% step 1992294.4 wins
    expect(mom.log).toHaveLength(1);
    expect(mom.log[0].atMs).toBe(30000);
    expect(mom.log[0].hostFreePercent).toBeCloseTo(1200000 / 7 / 1000000, 9);
    expect(mom.log[0].usedKiB).toBe(1048576);
    expect(mom.log[0].targetKiB).toBe(1992294);
    expect(targets).toEqual([[30000, 1992294]]);
  });

  it("keeps sample-history-length samples (popleft) and averages the guest's balloon_cur and mem_unused", () => {
    const { balloon } = fakeBalloon(MAX);
    const unused = [2000000, 1048576, 524288];
    let i = 0;
    const read = (): MomReading => ({
      memFreeKiB: 100000,
      memTotalKiB: 1000000,
      guests: [{ name: "g", balloon, unusedKiB: unused[Math.min(i, 2)] }],
    });
    // history 2, samples every 5 s, decisions every 10 s
    const mom = new MomPolicy(10, 5, 2);
    for (i = 0; i <= 2; i++) mom.runUntil(i * 5000, read);
    // at 10 s the kept samples are t=5 and t=10 (t=0 dropped): mem_unused mean =
    // (1048576 + 524288) / 2 = 786432; used = 2097152 - 786432 = 1310720; host 10% free:
    // min = 1310720 + 0.1 x 2097152 = 1520435.2 < step 1992294.4: the step
    expect(mom.log).toHaveLength(1);
    expect(mom.log[0].usedKiB).toBe(1310720);
    expect(mom.log[0].hostFreePercent).toBeCloseTo(0.1, 12);
    expect(mom.log[0].targetKiB).toBe(1992294);
  });
});

describe("MOM KSM rules (ksm.rules)", () => {
  // a 16 GiB host: mem_available 16777216 KiB, threshold = 20% = 3355443.2 KiB
  const AVAIL = 16777216;

  it("stops ksmd with little committed and enough free; else runs it, boosting or decaying", () => {
    // 4 GiB shareable: 3355443.2 + 4194304 < 16777216 and 8 GiB free > threshold: stop
    expect(momKsm(AVAIL, 8388608, 4194304, 100).run).toBe(0);
    // 14 GiB shareable: threshold + shareable > mem_available: run; free above the threshold:
    // decay 100 - 50 = 50, clamped to 64; sleep = 10 x 16777216 / 16777216 = 10 ms
    expect(momKsm(AVAIL, 8388608, 14680064, 100)).toEqual({
      run: 1,
      pagesToScan: 64,
      sleepMillisecs: 10,
    });
    // free below the threshold: boost 1200 + 300, capped at 1250
    expect(momKsm(AVAIL, 1048576, 4194304, 1200)).toEqual({
      run: 1,
      pagesToScan: 1250,
      sleepMillisecs: 10,
    });
    // an 8 GiB host sleeps longer: 10 x 16777216 / 8388608 = 20 ms
    expect(momKsm(8388608, 0, 0, 100).sleepMillisecs).toBe(20);
  });

  it("a policy run writes ksmd's knobs from the averaged mem_free and the sampled pages_to_scan", () => {
    const ksm = { ...KSM_DEFAULTS }; // run 0, pages_to_scan 100, sleep 20
    const read = (): MomReading => ({
      memFreeKiB: 1048576, // below the 3355443.2 threshold at every sample
      memTotalKiB: AVAIL,
      guests: [],
      shareableKiB: 4194304,
    });
    const mom = new MomPolicy(10, 5, 10, ksm);
    for (let t = 0; t <= 20000; t += 5000) mom.runUntil(t, read);
    // t=10 s: run, pages_to_scan 100 + 300 = 400, sleep 10; t=20 s: the sampled 400 + 300
    expect(mom.ksmLog.map((d) => [d.atMs, d.run, d.pagesToScan, d.sleepMillisecs])).toEqual([
      [10000, 1, 400, 10],
      [20000, 1, 700, 10],
    ]);
    expect([ksm.run, ksm.pages_to_scan, ksm.sleep_millisecs]).toEqual([1, 700, 10]);
  });
});
