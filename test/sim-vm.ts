/** Shared setup for simulator tests: a VM whose guest RAM is one memslot at gpa 0. */
import { GuestOs, type GuestRam } from "../src/sim/guest/os.js";
import { Host } from "../src/sim/host.js";
import { HostPtes, VmStat } from "../src/sim/hostpte.js";
import { Ksm } from "../src/sim/ksm.js";
import type { Vm } from "../src/sim/kvm/vm.js";
import type { Mm } from "../src/sim/mm.js";

/**
 * Create a 4-level VM on `mm` whose `bytes` of guest RAM (gpa 0) are the VMM's memory at `hva`,
 * with a guest OS over that RAM.
 */
export function vmOverRam(
  host: Host,
  mm: Mm,
  hva: number,
  bytes: number,
  opts: { name: string; ept: boolean; vpid?: boolean; zones?: GuestRam["zones"] },
): { vm: Vm; os: GuestOs } {
  const vm = host.createVm(mm, {
    name: opts.name,
    ept: opts.ept,
    vpid: opts.vpid ?? true,
    guestLevels: 4,
  });
  vm.setUserMemoryRegion({
    slot: 0,
    flags: 0,
    guestPhysAddr: 0,
    memorySize: bytes,
    userspaceAddr: hva,
  });
  const os = new GuestOs(vm, {
    ranges: [[0, bytes / 4096]],
    ...(opts.zones ? { zones: opts.zones } : {}),
  });
  return { vm, os };
}

/**
 * A 1 GiB host with one CPU, its PTE layer and KSM (off), and a QEMU process whose 64 MiB of
 * 4 KiB-backed RAM (no THP) is the guest RAM of a VM "vm" with a guest OS over it.
 */
export function smallVm(opts: { ept: boolean; zones: GuestRam["zones"] }) {
  const M = 1048576;
  const host = new Host({ memory: 1024 * M, cpus: 1 });
  const ptes = new HostPtes(host, new VmStat());
  const ksm = new Ksm(ptes, {});
  const mm = host.createProcess("qemu");
  const hva = mm.mmap(64 * M, { thp: false });
  const { vm, os } = vmOverRam(host, mm, hva, 64 * M, { name: "vm", ...opts });
  return { host, ptes, ksm, mm, vm, os };
}
