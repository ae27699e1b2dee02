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
 * With its KSM rules too (ksm.rules, as vdsm's mom-balloon+ksm policy runs them, an alternative to
 * ksmtuned): threshold = mem_available x ksm_free_percent (0.20); ksmd stops when threshold +
 * ksm_shareable (the QEMU processes' VSZ, HostKSM.get_shareable_mem) < mem_available and
 * StatAvg mem_free > threshold; otherwise it runs with sleep_millisecs = 10 x 16777216 /
 * mem_available and pages_to_scan = the sampled ksm_pages_to_scan + 300 (mem_free average below
 * the threshold) or - 50, clamped to [64, 1250] (change_npages).
 */

import type { Balloon } from "./balloon.js";
import type { KsmSettings } from "./ksm-tree.js";

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
  /** ksm_shareable: the QEMU processes' virtual size, KiB (for the KSM rules) */
  shareableKiB?: number;
}

/** ksm.rules' constants */
export const MOM_KSM = Object.freeze({
  pagesBoost: 300,
  pagesDecay: -50,
  npagesMin: 64,
  npagesMax: 1250,
  sleepMsBaseline: 10,
  freePercent: 0.2,
});

export interface MomKsmDecision {
  atMs: number;
  /** StatAvg mem_free and ksm_shareable, KiB */
  memFreeAvgKiB: number;
  shareableKiB: number;
  run: 0 | 1;
  pagesToScan: number;
  sleepMillisecs: number;
}

/**
 * ksm.rules on one policy run: what MOM writes to ksmd (run, and when running pages_to_scan and
 * sleep_millisecs). `pagesToScan` is the sampled ksm_pages_to_scan.
 */
export function momKsm(
  memAvailKiB: number,
  memFreeAvgKiB: number,
  shareableKiB: number,
  pagesToScan: number,
): { run: 0 | 1; pagesToScan: number; sleepMillisecs: number | null } {
  const threshold = memAvailKiB * MOM_KSM.freePercent;
  if (threshold + shareableKiB < memAvailKiB && memFreeAvgKiB > threshold)
    return { run: 0, pagesToScan, sleepMillisecs: null };
  const delta = memFreeAvgKiB < threshold ? MOM_KSM.pagesBoost : MOM_KSM.pagesDecay;
  return {
    run: 1,
    pagesToScan: Math.min(MOM_KSM.npagesMax, Math.max(MOM_KSM.npagesMin, pagesToScan + delta)),
    // (/ (* ksm_sleep_ms_baseline 16777216) Host.mem_available), an int as the controller writes
    sleepMillisecs: Math.floor((MOM_KSM.sleepMsBaseline * 16777216) / memAvailKiB),
  };
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
  /** the KSM rules' decisions (when MOM runs them) */
  readonly ksmLog: MomKsmDecision[] = [];
  private sampledPagesToScan = 0;
  private shareableKiB = 0;

  /** `ksm`: ksmd's knobs when MOM runs its KSM rules too, else null */
  constructor(
    readonly intervalS: number,
    readonly monitorIntervalS: number = MOM.monitorIntervalS,
    readonly historyLength: number = MOM.sampleHistoryLength,
    readonly ksm: KsmSettings | null = null,
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
    // HostKSM's collect(): the sysfs knobs and ksm_shareable
    if (this.ksm) this.sampledPagesToScan = this.ksm.pages_to_scan;
    this.shareableKiB = x.shareableKiB ?? 0;
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
    if (this.ksm) this.decideKsm();
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

  /** ksm.rules: start or stop ksmd and set its speed (the KSM controller writes the knobs). */
  private decideKsm(): void {
    const k = this.ksm!;
    const avg = mean(this.hostFree);
    const d = momKsm(this.memTotalKiB, avg, this.shareableKiB, this.sampledPagesToScan);
    k.run = d.run;
    if (d.run === 1) {
      k.pages_to_scan = d.pagesToScan;
      k.sleep_millisecs = d.sleepMillisecs!;
    }
    this.ksmLog.push({
      atMs: this.nextMs,
      memFreeAvgKiB: avg,
      shareableKiB: this.shareableKiB,
      run: d.run,
      pagesToScan: k.pages_to_scan,
      sleepMillisecs: k.sleep_millisecs,
    });
  }
}
