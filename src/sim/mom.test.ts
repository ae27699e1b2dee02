// MOM's balloon rules on numbers worked by hand (KiB): a 2 GiB guest (2097152) with 1 GiB free.
import { describe, expect, it } from "vitest";
import { momTarget } from "./mom.js";

const MAX = 2097152;

describe("MOM balloon rules", () => {
  it("host at 10% free: shrink by at most 5%, not below used + the scaled free share", () => {
    // share = 0.2 x 0.1 / 0.2 = 0.1; min = (2097152 - 1048576) + 0.1 x 2097152 = 1258291.2
    // 5% step: 2097152 x 0.95 = 1992294.4 > min: the step wins
    expect(momTarget(0.1, MAX, MAX, 1048576)).toBeCloseTo(1992294.4, 3);
    // little free in the guest: min = (2097152 - 52428.8) + 0.1 x 2097152 > cur: no shrink
    expect(momTarget(0.1, MAX, MAX, 52428.8)).toBeNull();
  });

  it("critical pressure (<= 5% free) asks for negative free memory (the guest must swap)", () => {
    // share = -0.05 + 0.04 = -0.01; min = 1048576 - 20971.52 = 1027604.48; step 1992294.4 wins
    expect(momTarget(0.04, MAX, MAX, 1048576)).toBeCloseTo(1992294.4, 3);
    // from a smaller balloon_cur the floor binds: cur 1100000, unused 100000:
    // min = 1000000 - 11000 = 989000; step = 1045000: the step still wins
    expect(momTarget(0.04, 1100000, MAX, 100000)).toBeCloseTo(1045000, 3);
  });

  it("no pressure: grow 5% towards the maximum, at least to used + 20% of the maximum", () => {
    // cur 1048576, unused 524288: used 524288; min = 524288 + 419430.4 = 943718.4;
    // step = 1101004.8: grow to the step
    expect(momTarget(0.5, 1048576, MAX, 524288)).toBeCloseTo(1101004.8, 3);
    expect(momTarget(0.5, MAX, MAX, 524288)).toBeNull(); // not ballooned: nothing to do
    // a change under 0.25% of balloon_cur is not worth it
    expect(momTarget(0.5, MAX - 1000, MAX, 1048576)).toBeNull();
  });
});
