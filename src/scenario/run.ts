/**
 * The run loop: VMs' workloads on the host's physical CPUs, in simulated time.
 *
 * How it works: each VM has one vCPU pinned to physical CPU (index mod cpus). A CPU time-slices
 * the vCPUs pinned to it in quanta of QUANTUM events (the Linux scheduler's slices, much
 * shortened): descheduling a vCPU is a VM exit (EXTERNAL_INTERRUPT, the host timer), and the next
 * vCPU's VM entry flushes the TLB when VPID is off. The loop always advances the CPU with the
 * smallest clock, so CPUs progress together and the result is deterministic. Each event is a
 * guest access (Cpu.access: TLB, 2D or shadow walk, EPT violations and shadow faults handled by
 * KVM), a guest context switch (MOV CR3 with PCID, a CR_ACCESS exit under shadow paging), or an
 * I/O exit. A guest #PF on a not-present page is the guest kernel's demand paging: it maps a
 * fresh page of the guest's page size, or reads a page of its own swap back (guest-life.ts
 * guestFault), and the access is retried. Guest timer interrupts exit at
 * `timerHz` of simulated time. Samples of every counter are taken at evenly spaced accesses.
 * Pure: no Node APIs.
 */

import { KSM_COW_CYCLES, ksmdShare } from "../sim/ksm-cost.js";
import { SWAP_IN_CYCLES } from "../sim/reclaim.js";
import { STATUS_GUEST_PF, STATUS_OK, TLB_HIT_L1, TLB_HIT_STLB, WalkRecord } from "../sim/record.js";
import { ACC_EXEC, ACC_READ, ACC_WRITE, EV_EXIT, EV_SWITCH } from "../workload/batch.js";
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  EXIT_EXTERNAL_INTERRUPT,
  PF_P,
} from "../x86/faults.js";
import type { BuiltHost } from "./build.js";
import { C, EXIT_IO_INSTRUCTION, newRunState, QUANTUM, type VmRunState } from "./run-state.js";
import { type Sample, takeSample } from "./samples.js";
import { warmup } from "./warmup.js";

export {
  C,
  EXIT_IO_INSTRUCTION,
  GUEST_FAULT_CYCLES,
  type VmRunState,
} from "./run-state.js";
export { type Sample, totalExits } from "./samples.js";

import { exitProcesses, guestFault, idleWrites, ksmtunedInputs, momInputs } from "./guest-life.js";
import { timelineTarget } from "./phases.js";
import { Timeline, type TimelineTarget } from "./timeline.js";

export class ScenarioRun {
  readonly states: VmRunState[];
  /** cycles per physical CPU */
  readonly clock: Float64Array;
  readonly samples: Sample[] = [];
  private readonly rec = new WalkRecord();
  private readonly perCpu: VmRunState[][];
  private readonly rr: Int32Array;
  /** accesses of every workload (grows when a timeline phase adds one) */
  totalAccesses: number;
  readonly timeline: Timeline;
  private readonly target: TimelineTarget;
  private doneAccesses = 0;
  private nextSample = 0;
  private readonly sampleEvery: number;
  private readonly hz: number;
  /** OOM victims already reaped */
  private reaped = 0;
  /** simulated ms the daemons (ksmd, balloon drivers) have caught up to */
  private daemonMs = 0;
  /**
   * The host CPU ksmd runs on: the one with the fewest vCPUs pinned, the lowest on a tie (an
   * unbound kthread goes where the load is least; fixed here so runs are deterministic). Its
   * batches take that CPU from its vCPUs (chargeKsmd), which CFS lets it have at nice 5's share.
   */
  readonly ksmdCpu: number;

  constructor(readonly built: BuiltHost) {
    const s = built.scenario;
    this.hz = s.host.cpu.ghz * 1e9;
    this.clock = new Float64Array(built.host.cpus.length);
    this.states = built.vms
      .filter((v) => v.state === "running")
      .map((sv) => newRunState(sv, s.seed));
    this.timeline = new Timeline(s.timeline);
    for (const [vm, at] of this.timeline.startTimes()) {
      const st = this.states.find((x) => x.sv.name === vm);
      if (st) st.startMs = at;
    }
    this.target = timelineTarget(this);
    this.perCpu = built.host.cpus.map((c) => this.states.filter((st) => st.sv.cpu === c));
    let least = 0;
    for (let c = 1; c < this.perCpu.length; c++)
      if (this.perCpu[c].length < this.perCpu[least].length) least = c;
    this.ksmdCpu = least;
    built.ksm.cpuHz = this.hz;
    this.rr = new Int32Array(built.host.cpus.length);
    this.totalAccesses = this.states.reduce((a, st) => a + st.sv.workloadConfig.accesses, 0);
    this.sampleEvery = Math.max(1, Math.floor(this.totalAccesses / s.samples));
    for (const st of this.states) {
      const w = st.sv.workloadConfig;
      st.nextTimer = w.timerHz > 0 ? this.hz / w.timerHz : Number.POSITIVE_INFINITY;
      if (w.warmup && w.pattern !== "trace") this.killable(() => warmup(this.built, st, this.rec));
      this.reap();
      if (st.done) continue;
      // the first process's address space is loaded before the workload starts
      const p = st.sv.procs[0];
      st.sv.cpu!.movCr3(st.sv.vcpu!, p.root, p.pcid, false, this.rec);
      st.exitBase = Float64Array.from(st.sv.vm!.exitCounts);
    }
  }

  get progress(): number {
    return this.totalAccesses === 0 ? 1 : this.doneAccesses / this.totalAccesses;
  }

  /** not done and booted by now */
  runnable(st: VmRunState): boolean {
    return !st.done && st.startMs <= this.timeMs;
  }

  get finished(): boolean {
    return this.states.every((st) => st.done);
  }

  /** Simulated time so far, in milliseconds (the furthest CPU). */
  get timeMs(): number {
    let m = 0;
    for (const c of this.clock) m = Math.max(m, c);
    return (m / this.hz) * 1000;
  }

  /** Run at most `quanta` quanta; returns true when everything is done. */
  step(quanta = 64): boolean {
    for (let q = 0; q < quanta; q++) {
      this.timeline.apply(this.timeMs, this.target);
      let best = -1;
      for (let c = 0; c < this.perCpu.length; c++) {
        if (!this.perCpu[c].some((st) => this.runnable(st))) continue;
        if (best < 0 || this.clock[c] < this.clock[best]) best = c;
      }
      if (best < 0) {
        // nothing runnable now: jump to the next VM start or timeline event, if any
        const pending = this.states.filter((st) => !st.done && st.startMs > this.timeMs);
        const next = Math.min(this.timeline.nextAt, ...pending.map((st) => st.startMs));
        // the host runs on to `duration`: idle steps (ksmd, the guests' dirty rate, samples)
        if (this.timeMs < this.built.scenario.duration) {
          this.idleStep(next);
          continue;
        }
        if (!Number.isFinite(next)) return true;
        const cycles = (next / 1000) * this.hz;
        const from = (this.timeMs / 1000) * this.hz;
        for (let c = 0; c < this.clock.length; c++) this.clock[c] = Math.max(this.clock[c], cycles);
        this.daemons(from);
        continue;
      }
      this.killable(() => this.runQuantum(best));
      this.reap();
      this.daemons();
    }
    // done only when no timeline event is left: a later workload phase revives a finished VM
    return this.finished && !Number.isFinite(this.timeline.nextAt);
  }

  /** Run `f`; a VM the OOM killer killed meanwhile ends with SIGKILL, which stops only it. */
  private killable(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (!String(e).includes("SIGKILL")) throw e;
    }
  }

  /** VMs the OOM killer killed stop running; the kernel's report goes with them. */
  private reap(): void {
    const victims = this.built.reclaim.victims;
    while (this.reaped < victims.length) {
      const v = victims[this.reaped++];
      const st = this.states.find((x) => x.sv.mm === v.mm);
      if (!st) continue;
      st.done = true;
      st.sv.oomKilled = { at: this.timeMs, message: v.message };
    }
  }

  /**
   * The host's daemons catch up with simulated time: ksmd runs its batches due by now. With
   * `idleFrom` (cycles) the CPUs idled from then until now, and ksmd's time fits in that idle.
   */
  private daemons(idleFrom = -1): void {
    const now = this.timeMs;
    // ksmtuned reads /proc (QEMU RSS, MemFree + Buffers + Cached) and writes ksmd's knobs
    this.built.ksmtuned?.runUntil(
      now,
      () => ksmtunedInputs(this.states, this.built.host.mem),
      this.built.ksm.settings,
    );
    const ksmd = this.built.ksm.cpuCycles;
    // CFS shares ksmd's CPU with the vCPUs that want it (none while the host idles)
    let vcpus = 0;
    if (idleFrom < 0) for (const st of this.perCpu[this.ksmdCpu]) if (this.runnable(st)) vcpus++;
    this.built.ksm.cpuShare = ksmdShare(vcpus);
    this.built.ksm.runUntil(now);
    this.chargeKsmd(this.built.ksm.cpuCycles - ksmd, idleFrom);
    this.built.mom?.runUntil(now, () => momInputs(this.states, this.built.host.mem, now));
    // the guests' disk I/O fills the page cache; kswapd then balances the LRU lists
    this.built.diskIo.runUntil(now, this.states);
    this.built.reclaim.kswapd();
    this.reap();
    const dt = now - this.daemonMs;
    if (dt > 0) {
      for (const st of this.states) if (st.startMs <= now) st.sv.balloon?.advance(dt, now);
      this.daemonMs = now;
    }
  }

  /**
   * ksmd's batches ran on CPU ksmdCpu: the vCPUs there lose that time (the CPU's clock moves on
   * without them). While the CPUs idle (idleFrom >= 0) ksmd uses idle time, and only what does
   * not fit before now pushes the clock on.
   */
  private chargeKsmd(cycles: number, idleFrom: number): void {
    if (cycles <= 0) return;
    const k = this.ksmdCpu;
    this.clock[k] =
      idleFrom >= 0 ? Math.max(this.clock[k], idleFrom + cycles) : this.clock[k] + cycles;
  }

  /**
   * After the workloads: the VMs idle and the host runs on to `duration` ms, its daemons
   * working, sampled on an even time grid. Returns true when done.
   */
  private idleStep(until = Number.POSITIVE_INFINITY): boolean {
    this.timeline.apply(this.timeMs, this.target);
    const end = this.built.scenario.duration;
    const now = this.timeMs;
    if (now >= end) return true;
    const step = Math.max(end / this.built.scenario.samples, 1e-6);
    const t = Math.min(end, now + step, Math.max(until, now + 1e-6));
    const cycles = (t / 1000) * this.hz;
    for (let c = 0; c < this.clock.length; c++) this.clock[c] = Math.max(this.clock[c], cycles);
    for (const st of this.states) if (st.startMs <= now) idleWrites(st, t - now, this.rec);
    this.daemons((now / 1000) * this.hz);
    this.nextSample = this.doneAccesses;
    this.sample();
    return t >= end;
  }

  private runQuantum(c: number): void {
    const list = this.perCpu[c];
    let idx = this.rr[c] % list.length;
    for (let n = 0; n < list.length && !this.runnable(list[idx]); n++)
      idx = (idx + 1) % list.length;
    const st = list[idx];
    const cpu = st.sv.cpu!;
    const vcpu = st.sv.vcpu!;
    const k = st.counters;
    const rec = this.rec;
    const batch = st.batch;
    const vmstat = this.built.ptes.vmstat;
    batch.reset();
    const got = st.sv.workload!.fill(batch, QUANTUM);
    if (got === 0) {
      st.done = true;
      if (st.sv.workloadConfig.exitAtEnd) exitProcesses(st, this.rec);
      this.rr[c] = idx + 1;
      return;
    }
    let cycles = 0;
    for (let i = 0; i < batch.count; i++) {
      const kind = batch.kind[i];
      if (kind === EV_SWITCH) {
        const p = st.sv.procs[batch.arg[i] % st.sv.procs.length];
        st.proc = batch.arg[i];
        cpu.movCr3(vcpu, p.root, p.pcid, true, rec);
        cycles += rec.cycles;
        k[C.switches]++;
        continue;
      }
      if (kind === EV_EXIT) {
        cpu.vmexit(vcpu, rec, EXIT_IO_INSTRUCTION);
        cycles += rec.cycles;
        k[C.ioExits]++;
        continue;
      }
      const addr = batch.addr[i];
      const vpn = Math.floor(addr / 4096);
      const offset = addr - vpn * 4096;
      const access =
        kind === ACC_WRITE ? ACCESS_WRITE : kind === ACC_EXEC ? ACCESS_EXEC : ACCESS_READ;
      const swapIns = vmstat.pswpin;
      const cows = vmstat.cow_ksm;
      let status = cpu.access(vcpu, vpn, offset, access, rec);
      let c0 = rec.cycles;
      k[C.abortedRefs] += rec.abortedRefs;
      if (status === STATUS_GUEST_PF && (rec.faultCode[0] & PF_P) === 0) {
        // demand paging (or a swap-in) in the guest kernel, then the access again
        c0 += guestFault(st.sv, st.sv.procs[st.proc % st.sv.procs.length], vpn);
        k[C.guestFaults]++;
        status = cpu.access(vcpu, vpn, offset, access, rec);
        c0 += rec.cycles;
        k[C.abortedRefs] += rec.abortedRefs;
      }
      if (status !== STATUS_OK)
        throw new Error(
          `${st.sv.name}: access to 0x${addr.toString(16)} ended with status ${status} (fault code 0x${rec.faultCode[0].toString(16)}, proc ${st.proc}, cr3 ${vcpu.cr3})`,
        );
      k[C.accesses]++;
      k[kind === ACC_READ ? C.reads : kind === ACC_WRITE ? C.writes : C.execs]++;
      const t = rec.tlb;
      if (t === TLB_HIT_L1) k[C.tlbL1]++;
      else if (t === TLB_HIT_STLB) k[C.tlbStlb]++;
      else {
        k[C.tlbMiss]++;
        k[C.walks]++;
        k[C.guestRefs] += rec.out.guestRefs;
        k[C.eptRefs] += rec.out.eptRefs;
      }
      if (vmstat.pswpin !== swapIns) {
        // major faults: the swap-in's I/O on top of KVM's and the host's fault handling
        st.majorFaults += vmstat.pswpin - swapIns;
        c0 += (vmstat.pswpin - swapIns) * SWAP_IN_CYCLES;
      }
      if (vmstat.cow_ksm !== cows) {
        // do_wp_page copied a KSM page for this write (the COW break), on the vCPU's time
        st.cowBreaks += vmstat.cow_ksm - cows;
        c0 += (vmstat.cow_ksm - cows) * KSM_COW_CYCLES;
      }
      k[C.accessCycles] += c0;
      cycles += c0;
      this.doneAccesses++;
      if (this.clock[c] + cycles >= st.nextTimer) {
        cpu.vmexit(vcpu, rec, EXIT_EXTERNAL_INTERRUPT);
        cycles += rec.cycles;
        k[C.timerExits]++;
        st.nextTimer += this.hz / st.sv.workloadConfig.timerHz;
      }
      if (this.doneAccesses >= this.nextSample) {
        this.clock[c] += cycles;
        k[C.cycles] += cycles;
        cycles = 0;
        this.sample();
      }
    }
    this.clock[c] += cycles;
    k[C.cycles] += cycles;
    // deschedule: the host timer preempts this vCPU if another one waits on this CPU
    this.rr[c] = idx + 1;
    const next = list[(idx + 1) % list.length];
    if (list.length > 1 && next !== st && !next.done) {
      cpu.exit(vcpu, EXIT_EXTERNAL_INTERRUPT);
      k[C.preemptions]++;
      this.clock[c] += cpu.costs.vmExitRoundTrip;
      k[C.cycles] += cpu.costs.vmExitRoundTrip;
    }
  }

  private sample(): void {
    this.nextSample += this.sampleEvery;
    this.samples.push(takeSample(this.built, this.states, this.timeMs, this.doneAccesses));
  }

  /** Run to the end (with a progress callback every few quanta). */
  runAll(onProgress?: (fraction: number) => void): void {
    while (!this.step(64)) onProgress?.(this.progress);
    while (!this.idleStep()) onProgress?.(this.progress);
    if (
      this.samples.length === 0 ||
      this.samples[this.samples.length - 1].accesses !== this.doneAccesses
    )
      this.sample();
    onProgress?.(1);
  }
}
