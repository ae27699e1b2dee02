/**
 * The public API a scenario runner uses: one Host, several VMMs and VMs, vCPUs on CPUs.
 */
import { describe, expect, it } from "vitest";
import { vmOverRam } from "../../test/sim-vm.js";
import { ACCESS_READ, ACCESS_WRITE } from "../x86/faults.js";
import { Host } from "./host.js";
import { KIND_FREE } from "./memory.js";
import { STATUS_OK, WalkRecord } from "./record.js";

const G = 1073741824;
const M2 = 2097152;

function buildVm(host: Host, name: string, ept: boolean, backing: "anon" | "hugetlb") {
  const mm = host.createProcess(`qemu-${name}`);
  const hva =
    backing === "hugetlb"
      ? mm.mmap(G, { kind: "hugetlb", pageSize: M2 })
      : mm.mmap(G, { thp: true });
  const { vm, os } = vmOverRam(host, mm, hva, G, { name, ept });
  const vcpus = [vm.addVcpu(), vm.addVcpu()];
  return { mm, vm, os, vcpus };
}

describe("a host with several VMs", () => {
  it("runs an EPT VM and a shadow VM side by side on two CPUs", () => {
    const host = new Host({ memory: 4 * G, cpus: 2 });
    expect(host.reserveHugePages(M2, 512)).toBe(512);
    const a = buildVm(host, "a", true, "hugetlb");
    const b = buildVm(host, "b", false, "anon");
    // VPIDs are unique per vCPU across the host
    const vpids = [...a.vcpus, ...b.vcpus].map((v) => v.vpid);
    expect(new Set(vpids).size).toBe(4);
    const rec = new WalkRecord();
    const gva = 0x400000n;
    const hpas: number[] = [];
    for (const [i, m] of [a, b].entries()) {
      const init = m.os.process("init");
      m.os.map(init, 0x400, m.os.allocData(1), 1, { write: true, user: true, exec: false });
      const cpu = host.cpus[i];
      for (const v of m.vcpus) {
        cpu.movCr3(v, init.root, init.pcid, false, rec);
        expect(cpu.accessGva(v, gva, ACCESS_WRITE, rec)).toBe(STATUS_OK);
        hpas.push(rec.pfn);
        expect(cpu.accessGva(v, gva, ACCESS_READ, rec)).toBe(STATUS_OK);
        expect(rec.tlb).not.toBe(0);
      }
    }
    // both vCPUs of a VM see the same page; the VMs' pages differ
    expect(hpas[0]).toBe(hpas[1]);
    expect(hpas[2]).toBe(hpas[3]);
    expect(hpas[0]).not.toBe(hpas[2]);
    // the EPT VM's guest RAM came from the hugetlb pool (two 2M pages touched: the one holding
    // its page tables at gpa 1M and the one holding the data page at gpa 8M)
    expect(host.pools.get(M2)!.free.length).toBe(510);
    expect(a.vm.mmu.kind).toBe("ept");
    expect(b.vm.mmu.kind).toBe("shadow");
    host.assertInvariants();
    // frames are conserved
    let used = 0;
    for (let f = 0; f < host.mem.nframes; f++) if (host.mem.kind[f] !== KIND_FREE) used++;
    expect(used + host.mem.freeFrames).toBe(host.mem.nframes);
  });

  it("deleting a memslot makes the next access an MMIO exit", () => {
    const host = new Host({ memory: 2 * G });
    const a = buildVm(host, "a", true, "anon");
    const init = a.os.process("init");
    a.os.map(init, 0x400, a.os.allocData(1), 1, { write: true, user: true, exec: false });
    const cpu = host.cpus[0];
    const rec = new WalkRecord();
    const v = a.vcpus[0];
    cpu.movCr3(v, init.root, init.pcid, false, rec);
    expect(cpu.accessGva(v, 0x400000n, ACCESS_READ, rec)).toBe(STATUS_OK);
    a.vm.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 0,
      userspaceAddr: 0,
    });
    expect(cpu.tlb.entries()).toBe(0);
    cpu.accessGva(v, 0x400000n, ACCESS_READ, rec);
    expect(rec.exitReason[rec.nExits - 1]).toBe(48);
    expect(rec.status).toBe(3); // STATUS_MMIO: the guest's own page tables are gone with the slot
    host.assertInvariants();
  });
});

describe("memslot changes and MMIO sptes", () => {
  it("a gpa that was MMIO becomes RAM when a memslot appears over it", () => {
    const host = new Host({ memory: 2 * G });
    const a = buildVm(host, "a", true, "anon");
    const init = a.os.process("init");
    // a kernel page whose gpa (1G + 4K) lies past the only memslot
    a.os.map(init, 0x400, G / 4096 + 1, 1, { write: true, user: false, exec: false });
    const cpu = host.cpus[0];
    const rec = new WalkRecord();
    const v = a.vcpus[0];
    cpu.movCr3(v, init.root, init.pcid, false, rec);
    expect(cpu.accessGva(v, 0x400000n, ACCESS_READ, rec)).toBe(3); // MMIO exit
    expect(cpu.accessGva(v, 0x400000n, ACCESS_READ, rec)).toBe(3);
    expect(rec.exitReason[0]).toBe(49); // EPT_MISCONFIG: the cached MMIO spte
    const hva = a.mm.mmap(M2);
    a.vm.setUserMemoryRegion({
      slot: 1,
      flags: 0,
      guestPhysAddr: G,
      memorySize: M2,
      userspaceAddr: hva,
    });
    expect(cpu.accessGva(v, 0x400000n, ACCESS_READ, rec)).toBe(STATUS_OK);
    expect(rec.pfn).toBe(a.mm.lookup(hva + 4096));
    host.assertInvariants();
  });
});
