import { describe, expect, it } from "vitest";
import {
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  MemslotError,
  Memslots,
  type UserMemoryRegion,
} from "./memslots.js";

const G = 1073741824;
const M2 = 2097152;
const HVA = 0x7f0000000000;

const r = (slot: number, gpa: number, size: number, hva = HVA, flags = 0): UserMemoryRegion => ({
  slot,
  flags,
  guestPhysAddr: gpa,
  memorySize: size,
  userspaceAddr: hva,
});

/** Each row: the slots set before, the ioctl, and what KVM answers (api.rst / kvm_main.c). */
const RULES: Array<{
  name: string;
  before: UserMemoryRegion[];
  set: UserMemoryRegion;
  want: string;
}> = [
  // a fresh slot is created
  { name: "create", before: [], set: r(0, 0, G), want: "create" },
  // flags other than LOG_DIRTY_PAGES and READONLY are refused (check_memory_region_flags)
  { name: "unknown flag", before: [], set: r(0, 0, G, HVA, 1 << 5), want: "EINVAL" },
  // memory_size must be a multiple of the page size
  { name: "size not page multiple", before: [], set: r(0, 0, G + 100), want: "EINVAL" },
  // guest_phys_addr must be page aligned
  { name: "gpa misaligned", before: [], set: r(0, 0x800, G), want: "EINVAL" },
  // userspace_addr must be page aligned
  { name: "hva misaligned", before: [], set: r(0, 0, G, HVA + 8), want: "EINVAL" },
  // userspace_addr must be user memory (access_ok)
  { name: "hva in kernel space", before: [], set: r(0, 0, G, 2 ** 47), want: "EINVAL" },
  // the slot id must be below KVM_USER_MEM_SLOTS (32764 on x86)
  { name: "slot id too large", before: [], set: r(32764, 0, G), want: "EINVAL" },
  // the highest user slot id is fine
  { name: "last slot id", before: [], set: r(32763, 0, G), want: "create" },
  // address space id (bits 16..31) must be < KVM_ADDRESS_SPACE_NUM (2 on x86: SMM)
  { name: "address space 2", before: [], set: r((2 << 16) | 0, 0, G), want: "EINVAL" },
  // address space 1 (SMM) is its own space: same gfns do not overlap space 0
  { name: "SMM address space", before: [r(0, 0, G)], set: r((1 << 16) | 0, 0, G), want: "create" },
  // guest_phys_addr + memory_size must not wrap
  { name: "wraps", before: [], set: r(0, 2 ** 52 - 4096, 8192), want: "EINVAL" },
  // at most KVM_MEM_MAX_NR_PAGES (2^31 - 1) pages
  { name: "too many pages", before: [], set: r(0, 0, 2 ** 43, 0x1000), want: "EINVAL" },
  // a new slot must not overlap another in the same address space
  { name: "overlap", before: [r(0, 0, G)], set: r(1, G - 4096, G, HVA + 2 * G), want: "EEXIST" },
  // adjacent slots are fine
  { name: "adjacent", before: [r(0, 0, G)], set: r(1, G, G, HVA + 2 * G), want: "create" },
  // size 0 deletes an existing slot
  { name: "delete", before: [r(0, 0, G)], set: r(0, 0, 0), want: "delete" },
  // deleting a slot that does not exist is EINVAL
  { name: "delete missing", before: [], set: r(3, 0, 0), want: "EINVAL" },
  // a new base gfn with the same size and hva moves the slot
  { name: "move", before: [r(0, 0, G)], set: r(0, 4 * G, G), want: "move" },
  // moving onto another slot is EEXIST
  {
    name: "move onto another",
    before: [r(0, 0, G), r(1, 4 * G, G, HVA + 2 * G)],
    set: r(0, 4 * G, G),
    want: "EEXIST",
  },
  // toggling dirty logging is a flags-only change
  {
    name: "flags only",
    before: [r(0, 0, G)],
    set: r(0, 0, G, HVA, KVM_MEM_LOG_DIRTY_PAGES),
    want: "flags-only",
  },
  // READONLY cannot be toggled on an existing slot
  {
    name: "readonly toggle",
    before: [r(0, 0, G)],
    set: r(0, 0, G, HVA, KVM_MEM_READONLY),
    want: "EINVAL",
  },
  // the size of an existing slot cannot change
  { name: "resize", before: [r(0, 0, G)], set: r(0, 0, 2 * G), want: "EINVAL" },
  // the userspace_addr of an existing slot cannot change
  { name: "new hva", before: [r(0, 0, G)], set: r(0, 0, G, HVA + M2), want: "EINVAL" },
  // the same region again changes nothing
  { name: "no change", before: [r(0, 0, G)], set: r(0, 0, G), want: "none" },
];

describe("KVM_SET_USER_MEMORY_REGION rules", () => {
  for (const row of RULES) {
    it(row.name, () => {
      const slots = new Memslots();
      for (const b of row.before) slots.set(b);
      let got: string;
      try {
        got = slots.set(row.set);
      } catch (e) {
        if (!(e instanceof MemslotError)) throw e;
        got = e.errno;
        expect(e.oneLine()).toContain(e.errno);
      }
      expect(got).toBe(row.want);
      slots.assertInvariants();
    });
  }

  it("looks gfns up by binary search and reports holes as MMIO (null)", () => {
    const slots = new Memslots();
    slots.set(r(0, 0, 2 * G));
    slots.set(r(1, 4 * G, 2 * G, HVA + 2 * G));
    slots.set(r(2, 0xfd000000, 0x1000000, HVA + 8 * G));
    expect(slots.lookup(0)?.id).toBe(0);
    expect(slots.lookup((2 * G) / 4096 - 1)?.id).toBe(0);
    expect(slots.lookup((2 * G) / 4096)).toBeNull(); // PCI hole
    expect(slots.lookup(0xfd000000 / 4096)?.id).toBe(2);
    expect(slots.lookup((4 * G) / 4096 + 5)?.gfnToHva((4 * G) / 4096 + 5)).toBe(
      HVA + 2 * G + 5 * 4096,
    );
    expect(slots.lookup((6 * G) / 4096)).toBeNull();
  });

  it("keeps a dirty bitmap while logging and KVM_GET_DIRTY_LOG clears it", () => {
    const slots = new Memslots();
    slots.set(r(0, 0, G, HVA, KVM_MEM_LOG_DIRTY_PAGES));
    const s = slots.get(0)!;
    s.dirtyBitmap![7] = 1;
    expect(slots.getDirtyLog(0)).toEqual([7]);
    expect(slots.getDirtyLog(0)).toEqual([]);
  });

  it("tells listeners what changed", () => {
    const slots = new Memslots();
    const seen: string[] = [];
    slots.listeners.push((c) => seen.push(c));
    slots.set(r(0, 0, G));
    slots.set(r(0, G, G));
    slots.set(r(0, G, 0));
    expect(seen).toEqual(["create", "move", "delete"]);
  });
});
