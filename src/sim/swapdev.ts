/**
 * The host's swap device: slots that hold swapped-out pages.
 *
 * How it works (mm/swapfile.c): a swap area of `slots` 4 KiB slots (the scenario's host.swap);
 * get_swap_pages hands out a free slot, swap_free gives it back. A slot keeps what kvmem knows
 * of a page: its content token, and the bytes of a frame that had them (a guest page-table
 * page). Free slots are a stack, so the slot order is deterministic.
 *
 * Invariants (assertInvariants): used + free = slots; no slot is free twice.
 */

export class SwapDevice {
  readonly slots: number;
  used = 0;
  private readonly token: Uint32Array;
  /** the bytes of swapped frames that had them (guest page tables), by slot */
  private readonly bytes = new Map<number, Uint32Array>();
  private readonly free: Int32Array;
  private nfree: number;

  constructor(bytes: number) {
    this.slots = Math.floor(bytes / 4096);
    this.token = new Uint32Array(this.slots);
    this.free = new Int32Array(this.slots);
    for (let i = 0; i < this.slots; i++) this.free[i] = this.slots - 1 - i;
    this.nfree = this.slots;
  }

  /** get_swap_pages (nr_swap_pages) */
  get freeSlots(): number {
    return this.nfree;
  }

  /** Store a page; returns its slot (call only when freeSlots > 0). */
  store(token: number, bytes: Uint32Array | null): number {
    const slot = this.free[--this.nfree];
    this.token[slot] = token;
    if (bytes) this.bytes.set(slot, bytes);
    this.used++;
    return slot;
  }

  tokenOf(slot: number): number {
    return this.token[slot];
  }

  /** The bytes stored with `slot` (null: the page had none), handed over once. */
  takeBytes(slot: number): Uint32Array | null {
    const b = this.bytes.get(slot) ?? null;
    this.bytes.delete(slot);
    return b;
  }

  /** swap_free */
  release(slot: number): void {
    this.bytes.delete(slot);
    this.free[this.nfree++] = slot;
    this.used--;
  }

  /** Slots in use, marked (for the caller's check that each is named once). */
  usedMap(): Uint8Array {
    const seen = new Uint8Array(this.slots);
    for (const slot of this.free.subarray(0, this.nfree)) {
      if (seen[slot]) throw new Error(`swap slot ${slot} free twice`);
      seen[slot] = 1;
    }
    if (this.used + this.nfree !== this.slots) throw new Error("swap slots lost");
    return seen;
  }
}
