/**
 * Is two-dimensional paging (EPT/NPT) in effect, and is VPID? And if not, why not.
 * The module parameter is authoritative: KVM clears enable_ept / npt_enabled / enable_vpid at
 * load when the CPU lacks the feature (arch/x86/kvm/vmx/vmx.c hardware_setup: `if
 * (!cpu_has_vmx_ept()) enable_ept = 0;`; svm.c svm_hardware_setup for npt), so the parameter
 * reads N both when the operator turned it off and when the hardware cannot; the CPU flags
 * tell the two apart. kvm_pvm (PVM, pagetable-based VMs) runs guests without VMX/SVM and always
 * uses shadow paging.
 */
import { paramBool } from "./parse.js";
import type { HostReport } from "./schema.js";

type Cpu = HostReport["virt"]["cpu"];
type Modules = HostReport["virt"]["modules"];
type Verdict = HostReport["virt"]["tdp"];

const flag = (cpu: Cpu, f: string): boolean | undefined =>
  cpu.available ? (cpu.flags[f] ?? false) : undefined;

function nestedHint(cpu: Cpu): string {
  return cpu.available && cpu.nested
    ? " This host is itself a virtual machine (cpu flag 'hypervisor'): the L0 hypervisor must expose the feature (nested virtualization)."
    : "";
}

/**
 * The verdict from one vendor module's switch: its parameter (authoritative) and the CPU flag
 * that tells "turned off" from "not offered". `what` says what happens without the feature.
 */
function moduleSwitch(
  cpu: Cpu,
  mod: Modules[number],
  param: string,
  cpuFlag: string,
  onMode: string,
  offMode: string,
  what: string,
): Verdict {
  const raw = mod.parameters[param];
  const on = paramBool(raw);
  const shown = `${mod.name} ${param}=${raw?.trim()}`;
  if (on) return { inEffect: true, mode: onMode, reason: shown };
  if (on === false) {
    const supported = flag(cpu, cpuFlag);
    return {
      inEffect: false,
      mode: offMode,
      reason: supported
        ? `${shown} although the CPU supports ${onMode}: ${what}`
        : `${shown} and the CPU does not offer ${onMode}: ${what}.${nestedHint(cpu)}`,
    };
  }
  return {
    inEffect: false,
    mode: "none",
    reason: `${mod.name} is loaded but its ${param} parameter cannot be read`,
  };
}

export function tdpVerdict(cpu: Cpu, modules: Modules): Verdict {
  const intel = modules.find((m) => m.role === "intel");
  const amd = modules.find((m) => m.role === "amd");
  const pvm = modules.find((m) => m.role === "pvm");
  const shadow = "KVM uses shadow page tables";
  if (intel) return moduleSwitch(cpu, intel, "ept", "ept", "EPT", "shadow", shadow);
  if (amd) return moduleSwitch(cpu, amd, "npt", "npt", "NPT", "shadow", shadow);
  if (pvm) {
    return {
      inEffect: false,
      mode: "shadow",
      reason: `KVM runs through kvm_pvm (PVM: pagetable-based virtual machines without VMX/SVM), which always uses shadow paging.${nestedHint(cpu)}`,
    };
  }
  if (flag(cpu, "vmx"))
    return { inEffect: false, mode: "none", reason: "the CPU has VMX but kvm_intel is not loaded" };
  if (flag(cpu, "svm"))
    return { inEffect: false, mode: "none", reason: "the CPU has SVM but kvm_amd is not loaded" };
  if (!cpu.available)
    return { inEffect: false, mode: "none", reason: `no KVM vendor module loaded; ${cpu.reason}` };
  return {
    inEffect: false,
    mode: "none",
    reason: `no KVM vendor module is loaded and the CPU offers neither VMX nor SVM.${nestedHint(cpu)}`,
  };
}

export function vpidVerdict(cpu: Cpu, modules: Modules): Verdict {
  const intel = modules.find((m) => m.role === "intel");
  const amd = modules.find((m) => m.role === "amd");
  const pvm = modules.find((m) => m.role === "pvm");
  if (intel) {
    const flush = "every VM entry and exit flushes the TLB";
    return moduleSwitch(cpu, intel, "vpid", "vpid", "VPID", "none", flush);
  }
  if (amd) {
    // SVM always tags guest TLB entries with an ASID (AMD APM vol. 2, 15.16); no parameter.
    return {
      inEffect: true,
      mode: "ASID",
      reason: "AMD SVM tags TLB entries with ASIDs (the VPID equivalent), always on",
    };
  }
  if (pvm) {
    return {
      inEffect: false,
      mode: "none",
      reason: "kvm_pvm does not use VMX, so there is no VPID tagging",
    };
  }
  return { inEffect: false, mode: "none", reason: "no KVM vendor module is loaded" };
}
