/**
 * The run loop's state per VM (run.ts): the counters the loop adds to on its hot path, by index
 * into a Float64Array (C), and what the loop keeps between quanta: the vCPU's event batch and
 * position in it, its current guest process, its next timer interrupt, the exit counts when the
 * measured run began, the guest's idle writes, and the faults and COW breaks it took. The guest's
 * kernel (guest-life.ts), warm-up, samples and the results (summary-vm.ts) read it. Pure: no
 * Node APIs.
 */
import { EventBatch } from "../workload/batch.js";
import { Prng } from "../workload/prng.js";
import type { SimVm } from "./build.js";

/** VMX basic exit reason 30 (SDM vol. 3D appendix C): an I/O instruction. */
export const EXIT_IO_INSTRUCTION = 30;
/** events per scheduling quantum (a vCPU's time slice) and per workload batch */
export const QUANTUM = 2048;
/** guest kernel work for a demand-paging fault (do_anonymous_page + zeroing 4 KiB), cycles */
export const GUEST_FAULT_CYCLES = [0, 2500, 60000, 0];

/** per-VM counters, by index into a Float64Array (no objects on the hot path) */
export const C = {
  accesses: 0,
  reads: 1,
  writes: 2,
  execs: 3,
  tlbL1: 4,
  tlbStlb: 5,
  tlbMiss: 6,
  guestRefs: 7,
  eptRefs: 8,
  abortedRefs: 9,
  cycles: 10,
  guestFaults: 11,
  switches: 12,
  ioExits: 13,
  timerExits: 14,
  preemptions: 15,
  walks: 16,
  accessCycles: 17,
} as const;
const NC = 18;

export interface VmRunState {
  sv: SimVm;
  counters: Float64Array;
  batch: EventBatch;
  pos: number;
  done: boolean;
  proc: number;
  nextTimer: number;
  /** exit counts when the measured run began (after warm-up) */
  exitBase: Float64Array;
  /** the guest's writes while idling after its workload (dirtyRate), and the fraction owed */
  idleWrites: number;
  idleOwed: number;
  idleRng: Prng;
  /** guest pages freed by exiting processes */
  freedPages: number;
  /** swap-ins (major faults) during the VM's accesses */
  majorFaults: number;
  /** COW breaks of KSM pages during the VM's accesses (each KSM_COW_CYCLES on the vCPU) */
  cowBreaks: number;
  /** simulated ms at which the VM boots (a timeline `start`); 0 = from the beginning */
  startMs: number;
}

/** A VM's state before the run: counters at zero, booted from the beginning. */
export function newRunState(sv: SimVm, seed: number): VmRunState {
  return {
    sv,
    counters: new Float64Array(NC),
    batch: new EventBatch(QUANTUM),
    pos: 0,
    done: false,
    proc: 0,
    nextTimer: 0,
    exitBase: new Float64Array(0),
    idleWrites: 0,
    idleOwed: 0,
    freedPages: 0,
    majorFaults: 0,
    cowBreaks: 0,
    idleRng: new Prng((seed * 7919 + sv.index) >>> 0),
    startMs: 0,
  };
}
