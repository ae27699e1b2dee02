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
 * guest's free memory from the balloon statistics). Statistics are averaged as MOM does: its
 * host and guest monitors collect every host-monitor-interval / guest-monitor-interval (5 s)
 * and keep the last sample-history-length (10) samples (mom/Monitor.py); the rules read
 * host_free_percent = (Host.StatAvg "mem_free") / Host.mem_available and guest_used_mem =
 * (guest.StatAvg "balloon_cur") - (guest.StatAvg "mem_unused") (mom/Entity.py StatAvg: the mean
 * of every kept sample), while balloon_cur and balloon_max are the latest sample. A guest the
 * monitor has no sample of yet is not in the policy's view. A guest without balloon statistics
 * (<stats period>) gives MOM nothing to work with and is left alone.
 */
import type { Balloon } from "./balloon.js";

export const MOM = Object.freeze({
  pressureThreshold: 0.2,
  pressureCritical: 0.05,
  minGuestFreePercent: 0.2,
  maxBalloonChangePercent: 0.05,
  minBalloonChangePercent: 0.0025,
  /** host-monitor-interval and guest-monitor-interval (mom's defaults), seconds */
  monitorIntervalS: 5,
  /** sample-history-length: samples StatAvg averages */
  sampleHistoryLength: 10,
});

export interface MomGuest {
  name: string;
  balloon: Balloon;
  /** the guest's free memory (dommemstat unused), KiB */
  unusedKiB: number;
}

export interface MomDecision {
  atMs: number;
  /** (Host.StatAvg "mem_free") / Host.mem_available */
  hostFreePercent: number;
  guest: string;
  /** the latest sample of balloon_cur */
  balloonCurKiB: number;
  /** guest_used_mem: StatAvg balloon_cur - StatAvg mem_unused */
  usedKiB: number;
  targetKiB: number;
}

/**
 * One guest under the rules: the new balloon target in KiB, or null to leave it. `usedKiB` is
 * guest_used_mem (averaged balloon_cur less averaged mem_unused).
 */
export function momTarget(
  hostFreePercent: number,
  curKiB: number,
  maxKiB: number,
  usedKiB: number,
): number | null {
  const used = usedKiB;
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

/** What MOM's collectors read at one moment. */
export interface MomReading {
  memFreeKiB: number;
  memTotalKiB: number;
  guests: MomGuest[];
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export class MomPolicy {
  readonly log: MomDecision[] = [];
  private nextMs: number;
  private nextSampleMs = 0;
  /** the host monitor's kept mem_free samples, and the latest mem_available */
  private readonly hostFree: number[] = [];
  private memTotalKiB = 0;
  /** each guest monitor's kept samples: balloon_cur and mem_unused */
  private readonly guestCur = new Map<string, number[]>();
  private readonly guestUnused = new Map<string, number[]>();

  constructor(
    readonly intervalS: number,
    readonly monitorIntervalS: number = MOM.monitorIntervalS,
    readonly historyLength: number = MOM.sampleHistoryLength,
  ) {
    this.nextMs = intervalS * 1000;
  }

  /** Catch up to `nowMs`: the monitors' samples and the policy runs due, in time order. */
  runUntil(nowMs: number, read: () => MomReading): void {
    for (;;) {
      const sampleFirst = this.nextSampleMs <= this.nextMs;
      if ((sampleFirst ? this.nextSampleMs : this.nextMs) > nowMs) return;
      if (sampleFirst) {
        this.sample(read());
        this.nextSampleMs += this.monitorIntervalS * 1000;
      } else {
        this.decide(read());
        this.nextMs += this.intervalS * 1000;
      }
    }
  }

  private keep(list: number[], v: number): void {
    list.push(v);
    if (list.length > this.historyLength) list.shift(); // statistics.popleft()
  }

  /** The host and guest monitors' collect(): one sample each. */
  private sample(x: MomReading): void {
    this.keep(this.hostFree, x.memFreeKiB);
    this.memTotalKiB = x.memTotalKiB;
    for (const g of x.guests) {
      const b = g.balloon;
      if (!this.guestCur.has(g.name)) {
        this.guestCur.set(g.name, []);
        this.guestUnused.set(g.name, []);
      }
      this.keep(this.guestCur.get(g.name)!, (b.opts.ramPages - b.pages.length) * 4);
      this.keep(this.guestUnused.get(g.name)!, g.unusedKiB);
    }
  }

  /** The policy engine's run of balloon.rules over the monitors' kept samples. */
  private decide(x: MomReading): void {
    if (this.hostFree.length === 0) return;
    const hfp = mean(this.hostFree) / this.memTotalKiB;
    for (const g of x.guests) {
      const curs = this.guestCur.get(g.name);
      const unused = this.guestUnused.get(g.name);
      if (!curs || !unused || curs.length === 0) continue; // no sample yet: not ready
      const b = g.balloon;
      const cur = curs[curs.length - 1];
      const used = mean(curs) - mean(unused);
      const t = momTarget(hfp, cur, b.opts.ramPages * 4, used);
      if (t === null) continue;
      b.setTarget(Math.floor(t) * 1024, this.nextMs);
      this.log.push({
        atMs: this.nextMs,
        hostFreePercent: hfp,
        guest: g.name,
        balloonCurKiB: cur,
        usedKiB: used,
        targetKiB: Math.floor(t),
      });
    }
  }
}
