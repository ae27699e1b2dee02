/**
 * `kvmem translate --scenario FILE --vm NAME`: the translate lab configured as a scenario's VM
 * is: the host CPU's EPT/VPID/LA57/paging-structure-cache settings, the VM's guest RAM size and
 * paging levels, its guest page size, and its backing (the domain's <hugepages> page size, THP,
 * or the scenario's override), read with the same code `kvmem sim` uses.
 */
import { parseDomain } from "../libvirt/parse.js";
import { backingOf } from "../scenario/build.js";
import { loadScenario } from "../scenario/load.js";
import type { LabOptions } from "../sim/lab.js";
import { KvmemError } from "../units/errors.js";
import { GiB, MiB } from "../units/size.js";

export function scenarioLabOptions(file: string, vmName: string | undefined): LabOptions {
  const loaded = loadScenario(file);
  const s = loaded.scenario;
  const names = s.vms.map((v) => v.name);
  if (!vmName) {
    throw new KvmemError({
      code: "E_USAGE",
      input: "--vm",
      message: "--scenario needs --vm NAME",
      hint: `VMs: ${names.join(", ")}`,
    });
  }
  const entry = s.vms.find((v) => v.name === vmName);
  if (!entry) {
    throw new KvmemError({
      code: "E_USAGE",
      input: "--vm",
      message: `scenario ${s.name} has no VM '${vmName}'`,
      hint: `VMs: ${names.join(", ")}`,
    });
  }
  const src = loaded.domains.get(entry.name);
  const { domain } = parseDomain(src?.xml ?? "", src?.file ?? entry.name);
  const memory = Math.max(GiB, Math.ceil((domain.memoryKiB * 1024) / GiB) * GiB);
  const levels = entry.guest.levels ?? (s.host.cpu.la57 ? 5 : 4);
  const page = entry.guest.pageSize;
  return {
    ept: s.host.cpu.ept,
    vpid: s.host.cpu.vpid,
    levels,
    guestPage: page === "1G" ? GiB : page === "2M" ? 2 * MiB : 4096,
    backing: backingOf(entry, domain, s),
    pwc: s.host.cpu.pwc,
    memory,
  };
}
