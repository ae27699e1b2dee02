/**
 * ksmtuned: the shell daemon (shipped with qemu-kvm/ksm packages, /usr/sbin/ksmtuned and
 * /etc/ksmtuned.conf) that turns ksmd on and off and sets its speed from free memory.
 *
 * How it works (the script's adjust()): at start, sleep_millisecs = KSM_SLEEP_MSEC x 16 GiB /
 * MemTotal (at least 10) and thres = max(MemTotal x KSM_THRES_COEF / 100, KSM_THRES_CONST). Every
 * KSM_MONITOR_INTERVAL seconds it reads committed = the sum of the QEMU processes' RSS (`ps -o
 * rsz`) and free = MemFree + Buffers + Cached; if committed + thres < MemTotal and free > thres
 * it stops ksmd (run = 0); otherwise it starts it (run = 1) with pages_to_scan moved by
 * KSM_NPAGES_BOOST when free < thres, else by KSM_NPAGES_DECAY, clamped to [KSM_NPAGES_MIN,
 * KSM_NPAGES_MAX] (npages starts at 0). Sizes are in KiB as the script computes them. Every
 * decision is logged with its inputs, like the script's debug output.
 */
import type { KsmSettings } from "./ksm.js";

export interface KsmtunedConfig {
  monitorIntervalS: number;
  sleepMsec: number;
  npagesBoost: number;
  npagesDecay: number;
  npagesMin: number;
  npagesMax: number;
  thresCoef: number;
  /** KiB */
  thresConst: number;
}

/** /etc/ksmtuned.conf's defaults (the script's fallbacks) */
export const KSMTUNED_DEFAULTS: Readonly<KsmtunedConfig> = Object.freeze({
  monitorIntervalS: 60,
  sleepMsec: 10,
  npagesBoost: 300,
  npagesDecay: -50,
  npagesMin: 64,
  npagesMax: 1250,
  thresCoef: 20,
  thresConst: 2048 * 1024,
});

export interface KsmtunedDecision {
  atMs: number;
  committedKiB: number;
  freeKiB: number;
  run: 0 | 1;
  pagesToScan: number;
  sleepMillisecs: number;
}

export class Ksmtuned {
  readonly sleep: number;
  readonly thres: number;
  npages = 0;
  readonly log: KsmtunedDecision[] = [];
  private nextMs: number;

  constructor(
    readonly config: KsmtunedConfig,
    readonly totalKiB: number,
  ) {
    this.sleep = Math.max(10, Math.floor((config.sleepMsec * 16 * 1024 * 1024) / totalKiB));
    this.thres = Math.max(Math.floor((totalKiB * config.thresCoef) / 100), config.thresConst);
    this.nextMs = config.monitorIntervalS * 1000;
  }

  /** adjust(): one look at the host; writes ksmd's knobs in `ksm`. */
  adjust(atMs: number, committedKiB: number, freeKiB: number, ksm: KsmSettings): void {
    const c = this.config;
    if (committedKiB + this.thres < this.totalKiB && freeKiB > this.thres) {
      ksm.run = 0; // KSMCTL stop
    } else {
      const delta = freeKiB < this.thres ? c.npagesBoost : c.npagesDecay;
      this.npages = Math.min(c.npagesMax, Math.max(c.npagesMin, this.npages + delta));
      ksm.pages_to_scan = this.npages; // KSMCTL start $npages $sleep
      ksm.sleep_millisecs = this.sleep;
      ksm.run = 1;
    }
    this.log.push({
      atMs,
      committedKiB,
      freeKiB,
      run: ksm.run === 1 ? 1 : 0,
      pagesToScan: ksm.pages_to_scan,
      sleepMillisecs: ksm.sleep_millisecs,
    });
  }

  /** The daemon's loop (sleep KSM_MONITOR_INTERVAL; adjust) up to `nowMs`. */
  runUntil(
    nowMs: number,
    read: () => { committedKiB: number; freeKiB: number },
    ksm: KsmSettings,
  ): void {
    while (this.nextMs <= nowMs) {
      const { committedKiB, freeKiB } = read();
      this.adjust(this.nextMs, committedKiB, freeKiB, ksm);
      this.nextMs += this.config.monitorIntervalS * 1000;
    }
  }
}
