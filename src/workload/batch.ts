/**
 * A batch of workload events in typed arrays: the simulator's run loop pulls batches, so the
 * hot path never allocates per access. An event is an access (read, write, execute of a guest
 * virtual address) or a marker: a context switch to another guest process, or a VM exit caused
 * by I/O. Guest virtual addresses of user processes are below 2^47 and fit a number exactly.
 */

export const ACC_READ = 0;
export const ACC_WRITE = 1;
export const ACC_EXEC = 2;
/** marker: switch to guest process `arg` (a CR3 write) */
export const EV_SWITCH = 8;
/** marker: a VM exit, reason in `arg` (EXIT_IO, ...) */
export const EV_EXIT = 9;

export const EXIT_IO = 1;
export const EXIT_TIMER = 2;

export const KIND_NAMES: Record<number, string> = {
  [ACC_READ]: "read",
  [ACC_WRITE]: "write",
  [ACC_EXEC]: "exec",
  [EV_SWITCH]: "switch",
  [EV_EXIT]: "exit",
};

export class EventBatch {
  count = 0;
  readonly addr: Float64Array;
  readonly kind: Uint8Array;
  readonly arg: Uint32Array;

  constructor(readonly capacity = 4096) {
    this.addr = new Float64Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.arg = new Uint32Array(capacity);
  }

  reset(): void {
    this.count = 0;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  push(kind: number, addr: number, arg: number): void {
    const i = this.count++;
    this.kind[i] = kind;
    this.addr[i] = addr;
    this.arg[i] = arg;
  }
}

/** A source of events. `fill` appends up to `max` events and returns how many it added (0 = done). */
export interface Workload {
  readonly name: string;
  /** guest processes the workload runs (each has its own address space) */
  readonly processes: number;
  fill(batch: EventBatch, max: number): number;
}
