import { describe, expect, it } from "vitest";
import { ACCESS_READ, ACCESS_WRITE } from "../../x86/faults.js";
import { Host } from "../host.js";
import { LEVEL_REASON_NAMES, WalkRecord } from "../record.js";
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, Memslot } from "./memslots.js";
import { hugePageAdjust, type TdpMmu } from "./tdp.js";

const G = 1073741824;
const M2 = 2097152;
const HVA = 0x7f0000000000;

/** kvm_mmu_hugepage_adjust: [slot base gpa, size, hva, flags, gfn, host level, level, reason] */
const LEVELS: Array<[number, number, number, number, number, number, number, string]> = [
  // 1G-aligned slot over 1G host pages: 1G
  [0, 4 * G, HVA, 0, 0x40000 + 5, 3, 3, "max-level"],
  // host maps 2M: KVM can't map larger than the host
  [0, 4 * G, HVA, 0, 5, 2, 2, "host-mapping-level"],
  // host maps 4K (no THP): 4K
  [0, 4 * G, HVA, 0, 5, 1, 1, "host-mapping-level"],
  // gfn and hva differ in their low 21 bits: no 2M, no 1G
  [0, 4 * G, HVA + 4096, 0, 5, 2, 1, "memslot-misaligned"],
  // aligned for 2M but not 1G (hva offset 2M): 2M over 1G host pages
  [0, 4 * G, HVA + M2, 0, 5, 3, 2, "memslot-misaligned"],
  // a 1G range running past the end of the slot: 2M
  [0, G + M2, HVA, 0, 0x40000 + 1, 3, 2, "memslot-boundary"],
  // a slot smaller than 2M: 4K
  [0, 1024 * 1024, HVA, 0, 3, 2, 1, "memslot-boundary"],
  // dirty logging: always 4K
  [0, 4 * G, HVA, KVM_MEM_LOG_DIRTY_PAGES, 5, 3, 1, "dirty-logging"],
];

describe("huge-page level choice", () => {
  for (const [gpa, size, hva, flags, gfn, host, level, reason] of LEVELS) {
    it(`${reason}: host ${host} -> ${level}`, () => {
      const slot = new Memslot(0, 0, gpa / 4096, size / 4096, hva, flags);
      const c = hugePageAdjust(slot, gfn, host, 3);
      expect([c.level, LEVEL_REASON_NAMES[c.reason]]).toEqual([level, reason]);
    });
  }
});

function vmWith(backing: "4K" | "2M", flags = 0) {
  const host = new Host({ memory: 4 * G });
  if (backing === "2M") host.reserveHugePages(M2, 512);
  const mm = host.createProcess("qemu");
  const hva = mm.mmap(G, backing === "2M" ? { kind: "hugetlb", pageSize: M2 } : { kind: "anon" });
  const vm = host.createVm(mm, { name: "t", ept: true, vpid: true, guestLevels: 4 });
  vm.setUserMemoryRegion({ slot: 0, flags, guestPhysAddr: 0, memorySize: G, userspaceAddr: hva });
  return { host, vm, tdp: vm.mmu as TdpMmu };
}

describe("TDP MMU faults", () => {
  it("maps 4K, counts every spte change, and a later 2M fault replaces the table below", () => {
    const { tdp, host, vm } = vmWith("2M");
    const r = tdp.fault(0x200 + 3, false);
    expect(r.level).toBe(2);
    expect(tdp.store.stats.leaves[2]).toBe(1);
    // tables: PML4 + PDPT + PD
    expect(tdp.tablePages()).toBe(3);
    vm.assertInvariants();
    host.assertInvariants();
  });

  it("a write to a read-only memslot exits to userspace; a read maps R+X", () => {
    const host = new Host({ memory: 2 * G });
    const mm = host.createProcess("qemu");
    const hva = mm.mmap(16 * M2, { kind: "anon" });
    const vm = host.createVm(mm, { name: "rom", ept: true, vpid: true, guestLevels: 4 });
    vm.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_READONLY,
      guestPhysAddr: 0,
      memorySize: 16 * M2,
      userspaceAddr: hva,
    });
    const tdp = vm.mmu as TdpMmu;
    expect(tdp.fault(1, true).outcome).toBe(5); // OUT_USERSPACE_MMIO
    expect(tdp.fault(1, false).outcome).toBe(1); // OUT_FIXED
    expect(tdp.lookup(1)!.lo & 7).toBe(0b101);
  });

  it("dirty logging: read faults map without W, write faults log the gfn", () => {
    const { tdp, vm } = vmWith("4K", KVM_MEM_LOG_DIRTY_PAGES);
    tdp.fault(9, false);
    expect(tdp.lookup(9)!.lo & 2).toBe(0);
    tdp.fault(9, true);
    expect(tdp.lookup(9)!.lo & 2).toBe(2);
    expect(vm.memslots.getDirtyLog(0)).toEqual([9]);
  });

  it("deleting or moving a memslot zaps its mappings; the next access faults again", () => {
    const { tdp, vm, host } = vmWith("4K");
    const vcpu = vm.addVcpu();
    void vcpu;
    tdp.fault(9, false);
    expect(tdp.lookup(9)).not.toBeNull();
    const s = vm.memslots.get(0)!;
    vm.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 2 * G,
      memorySize: G,
      userspaceAddr: s.userspaceAddr,
    });
    expect(tdp.lookup(9)).toBeNull();
    expect(tdp.store.stats.zapped).toBeGreaterThan(0);
    host.assertInvariants();
  });

  it("a WalkRecord starts clean", () => {
    const rec = new WalkRecord();
    rec.begin(1, 2, ACCESS_WRITE);
    expect([rec.nExits, rec.nFaults, rec.pfn, rec.gfn, rec.access]).toEqual([
      0,
      0,
      -1,
      -1,
      ACCESS_WRITE,
    ]);
    expect(ACCESS_READ).toBe(0);
  });
});
