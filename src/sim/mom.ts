/**
 * oVirt MOM's auto-balloon policy (mom's balloon.rules): shrink every guest's balloon target a
 * little when the host is short of free memory, grow it back slowly when it is not.
 *
 * How it works (the rules, every policy-engine-interval, 10 s by default): host_free_percent =
 * MemFree / MemTotal. Below pressure_threshold (0.20) each guest shrinks: its desired free share
 * is min_guest_free_percent (0.20) x host_free_percent / pressure_threshold (at or below
 * pressure_critical, 0.05: host_free_percent - 0.05, negative, to make the guest swap);
 * balloon_min = (balloon_cur - mem_unused) + that share x balloon_cur; the new target is
 * max(balloon_cur x (1 - max_balloon_change_percent (0.05)), balloon_min), set when it is not
 * above balloon_cur and differs by more than min_balloon_change_percent (0.0025) of balloon_cur.
 * Otherwise each ballooned guest grows: max(min(balloon_cur x 1.05, balloon_max), used +
 * 0.20 x balloon_max), under the same minimum change. Values are KiB as MOM's collectors report
 * them (balloon_cur = the balloon's `actual`, balloon_max = the guest's memory, mem_unused = the
 * guest's free memory from the balloon statistics). MOM averages statistics over a window
 * (StatAvg); kvmem uses the current values. A guest without balloon statistics
 * (<stats period>) gives MOM nothing to work with and is left alone.
 */
import type { Balloon } from "./balloon.js";

export const MOM = Object.freeze({
  pressureThreshold: 0.2,
  pressureCritical: 0.05,
  minGuestFreePercent: 0.2,
  maxBalloonChangePercent: 0.05,
  minBalloonChangePercent: 0.0025,
});

export interface MomGuest {
  name: string;
  balloon: Balloon;
  /** the guest's free memory (dommemstat unused), KiB */
  unusedKiB: number;
}

export interface MomDecision {
  atMs: number;
  hostFreePercent: number;
  guest: string;
  balloonCurKiB: number;
  targetKiB: number;
}

/** One guest under the rules: the new balloon target in KiB, or null to leave it. */
export function momTarget(
  hostFreePercent: number,
  curKiB: number,
  maxKiB: number,
  unusedKiB: number,
): number | null {
  const used = curKiB - unusedKiB;
  const big = (v: number) => Math.abs(v - curKiB) > MOM.minBalloonChangePercent * curKiB;
  if (hostFreePercent < MOM.pressureThreshold) {
    const share =
      hostFreePercent <= MOM.pressureCritical
        ? -0.05 + hostFreePercent
        : MOM.minGuestFreePercent * (hostFreePercent / MOM.pressureThreshold);
    const min = used + share * curKiB;
    const size = Math.max(curKiB * (1 - MOM.maxBalloonChangePercent), min);
    return size <= curKiB && big(size) ? size : null;
  }
  if (curKiB >= maxKiB) return null;
  const min = used + MOM.minGuestFreePercent * maxKiB;
  const size = Math.max(Math.min(curKiB * (1 + MOM.maxBalloonChangePercent), maxKiB), min);
  return big(size) ? size : null;
}

export class MomPolicy {
  readonly log: MomDecision[] = [];
  private nextMs: number;

  constructor(readonly intervalS: number) {
    this.nextMs = intervalS * 1000;
  }

  runUntil(
    nowMs: number,
    read: () => { memFreeKiB: number; memTotalKiB: number; guests: MomGuest[] },
  ): void {
    while (this.nextMs <= nowMs) {
      const { memFreeKiB, memTotalKiB, guests } = read();
      const hfp = memFreeKiB / memTotalKiB;
      for (const g of guests) {
        const b = g.balloon;
        const cur = (b.opts.ramPages - b.pages.length) * 4;
        const t = momTarget(hfp, cur, b.opts.ramPages * 4, g.unusedKiB);
        if (t === null) continue;
        b.setTarget(Math.floor(t) * 1024, this.nextMs);
        this.log.push({
          atMs: this.nextMs,
          hostFreePercent: hfp,
          guest: g.name,
          balloonCurKiB: cur,
          targetKiB: Math.floor(t),
        });
      }
      this.nextMs += this.intervalS * 1000;
    }
  }
}
