/**
 * Memslots: KVM_SET_USER_MEMORY_REGION and gfn -> memslot -> hva.
 *
 * How it works: a memslot (struct kvm_memory_slot) maps `npages` guest frames from `base_gfn`
 * onto the VMM's virtual memory at `userspace_addr`. set() applies the ioctl with the checks of
 * virt/kvm/kvm_main.c __kvm_set_memory_region and check_memory_region_flags, as
 * Documentation/virt/kvm/api.rst (4.35 KVM_SET_USER_MEMORY_REGION) describes them:
 *   - bits 0..15 of `slot` are the slot id, bits 16..31 the address space (x86: 2, SMM)
 *   - only KVM_MEM_LOG_DIRTY_PAGES and KVM_MEM_READONLY are valid flags
 *   - memory_size and guest_phys_addr are page multiples; userspace_addr is page aligned and the
 *     range is user memory (access_ok); guest_phys_addr + memory_size must not wrap
 *   - npages <= KVM_MEM_MAX_NR_PAGES (2^31 - 1); slot id < KVM_USER_MEM_SLOTS (x86: 32764)
 *   - memory_size 0 deletes (EINVAL when the slot does not exist)
 *   - an existing slot may move (new base) or change flags, but not its size, its
 *     userspace_addr, or KVM_MEM_READONLY (EINVAL)
 *   - a created or moved slot must not overlap another in its address space (EEXIST)
 * "It is recommended that the lower 21 bits of guest_phys_addr and userspace_addr be identical"
 * (api.rst): KVM's huge-page code (tdp.ts) disallows 2M/1G mappings where they differ.
 * Lookup is a binary search over slots sorted by base_gfn with a last-hit cache, as
 * search_memslots() does over its gfn tree.
 *
 * Invariants: slots of one address space never overlap; the sorted view matches the slot set.
 */
import { KvmemError } from "../../units/errors.js";

export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_USER_MEM_SLOTS = 32764;
export const KVM_ADDRESS_SPACE_NUM = 2;
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** x86-64 TASK_SIZE_MAX: the top of user virtual memory with 4-level paging */
export const TASK_SIZE_MAX = 2 ** 47 - 4096;

export interface UserMemoryRegion {
  slot: number;
  flags: number;
  guestPhysAddr: number;
  memorySize: number;
  userspaceAddr: number;
}

export type MemslotChange = "create" | "delete" | "move" | "flags-only" | "none";

export class Memslot {
  dirtyBitmap: Uint8Array | null = null;
  constructor(
    readonly id: number,
    readonly asId: number,
    public baseGfn: number,
    readonly npages: number,
    readonly userspaceAddr: number,
    public flags: number,
  ) {}
  get readonly(): boolean {
    return (this.flags & KVM_MEM_READONLY) !== 0;
  }
  get dirtyLogging(): boolean {
    return (this.flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0;
  }
  /** __gfn_to_hva_memslot */
  gfnToHva(gfn: number): number {
    return this.userspaceAddr + (gfn - this.baseGfn) * 4096;
  }
}

export class MemslotError extends KvmemError {
  constructor(
    readonly errno: "EINVAL" | "EEXIST",
    message: string,
  ) {
    super({
      code: "E_RULE",
      input: "KVM_SET_USER_MEMORY_REGION",
      message: `${errno}: ${message}`,
      hint: "see Documentation/virt/kvm/api.rst, KVM_SET_USER_MEMORY_REGION",
    });
  }
}

export type MemslotListener = (
  change: MemslotChange,
  old: Memslot | null,
  now: Memslot | null,
) => void;

export class Memslots {
  private readonly byId = new Map<number, Memslot>();
  private sorted: Memslot[][] = [[], []];
  private bases: Float64Array[] = [new Float64Array(0), new Float64Array(0)];
  private lru: (Memslot | null)[] = [null, null];
  readonly listeners: MemslotListener[] = [];
  /** memslot generation, bumped per change (KVM uses it to invalidate MMIO sptes) */
  generation = 0;

  /** KVM_SET_USER_MEMORY_REGION. Returns what changed; throws MemslotError like -errno. */
  set(r: UserMemoryRegion): MemslotChange {
    const asId = r.slot >>> 16;
    const id = r.slot & 0xffff;
    const valid = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;
    if ((r.flags & ~valid) !== 0)
      throw new MemslotError("EINVAL", `unknown flags 0x${r.flags.toString(16)}`);
    if (r.memorySize % 4096 !== 0)
      throw new MemslotError("EINVAL", "memory_size is not a page multiple");
    if (r.guestPhysAddr % 4096 !== 0)
      throw new MemslotError("EINVAL", "guest_phys_addr is not page aligned");
    if (r.userspaceAddr % 4096 !== 0)
      throw new MemslotError("EINVAL", "userspace_addr is not page aligned");
    if (r.userspaceAddr < 0 || r.userspaceAddr + r.memorySize > TASK_SIZE_MAX) {
      throw new MemslotError("EINVAL", "userspace_addr range is not user memory (access_ok)");
    }
    if (asId >= KVM_ADDRESS_SPACE_NUM)
      throw new MemslotError("EINVAL", `address space ${asId} >= 2`);
    if (id >= KVM_USER_MEM_SLOTS)
      throw new MemslotError("EINVAL", `slot ${id} >= ${KVM_USER_MEM_SLOTS}`);
    if (r.guestPhysAddr + r.memorySize >= 2 ** 52) {
      throw new MemslotError("EINVAL", "guest_phys_addr + memory_size wraps");
    }
    const npages = r.memorySize / 4096;
    if (npages > KVM_MEM_MAX_NR_PAGES) throw new MemslotError("EINVAL", "more than 2^31-1 pages");
    const key = r.slot >>> 0;
    const old = this.byId.get(key) ?? null;
    const baseGfn = r.guestPhysAddr / 4096;
    let change: MemslotChange;
    if (npages === 0) {
      if (!old) throw new MemslotError("EINVAL", `deleting slot ${id}, which does not exist`);
      change = "delete";
    } else if (!old) {
      change = "create";
    } else {
      if (r.userspaceAddr !== old.userspaceAddr)
        throw new MemslotError("EINVAL", "userspace_addr of a slot cannot change");
      if (npages !== old.npages)
        throw new MemslotError("EINVAL", "the size of a slot cannot change");
      if ((r.flags ^ old.flags) & KVM_MEM_READONLY)
        throw new MemslotError("EINVAL", "KVM_MEM_READONLY cannot change");
      if (baseGfn !== old.baseGfn) change = "move";
      else if (r.flags !== old.flags) change = "flags-only";
      else return "none";
    }
    if (change === "create" || change === "move") {
      for (const s of this.sorted[asId]) {
        if (s === old) continue;
        if (baseGfn < s.baseGfn + s.npages && s.baseGfn < baseGfn + npages) {
          throw new MemslotError("EEXIST", `gfns overlap slot ${s.id}`);
        }
      }
    }
    let now: Memslot | null = null;
    if (change === "delete") {
      this.byId.delete(key);
    } else {
      now = new Memslot(id, asId, baseGfn, npages, r.userspaceAddr, r.flags);
      if (now.dirtyLogging) now.dirtyBitmap = old?.dirtyBitmap ?? new Uint8Array(npages);
      this.byId.set(key, now);
    }
    this.rebuild(asId);
    this.generation++;
    for (const l of this.listeners) l(change, old, now);
    return change;
  }

  private rebuild(asId: number): void {
    const list = [...this.byId.values()]
      .filter((s) => s.asId === asId)
      .sort((a, b) => a.baseGfn - b.baseGfn);
    this.sorted[asId] = list;
    this.bases[asId] = Float64Array.from(list.map((s) => s.baseGfn));
    this.lru[asId] = null;
  }

  /** gfn -> memslot (or null: MMIO). */
  lookup(gfn: number, asId = 0): Memslot | null {
    const l = this.lru[asId];
    if (l !== null && gfn >= l.baseGfn && gfn < l.baseGfn + l.npages) return l;
    const bases = this.bases[asId];
    let lo = 0;
    let hi = bases.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (bases[mid] <= gfn) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return null;
    const s = this.sorted[asId][found];
    if (gfn >= s.baseGfn + s.npages) return null;
    this.lru[asId] = s;
    return s;
  }

  get(slot: number): Memslot | undefined {
    return this.byId.get(slot >>> 0);
  }

  all(asId = 0): readonly Memslot[] {
    return this.sorted[asId];
  }

  /** KVM_GET_DIRTY_LOG: the dirty gfns of a slot since the last call, then cleared. */
  getDirtyLog(slot: number): number[] {
    const s = this.byId.get(slot >>> 0);
    if (!s?.dirtyBitmap) throw new MemslotError("EINVAL", `slot ${slot} has no dirty log`);
    const gfns: number[] = [];
    for (let i = 0; i < s.npages; i++) {
      if (s.dirtyBitmap[i]) {
        gfns.push(s.baseGfn + i);
        s.dirtyBitmap[i] = 0;
      }
    }
    return gfns;
  }

  assertInvariants(): void {
    for (let as = 0; as < KVM_ADDRESS_SPACE_NUM; as++) {
      const list = this.sorted[as];
      for (let i = 1; i < list.length; i++) {
        if (list[i - 1].baseGfn + list[i - 1].npages > list[i].baseGfn)
          throw new Error("memslots overlap");
      }
      const n = [...this.byId.values()].filter((s) => s.asId === as).length;
      if (n !== list.length) throw new Error("sorted memslot view out of date");
    }
  }
}
