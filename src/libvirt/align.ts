/**
 * The sizes QEMU is actually given: libvirt's QEMU driver rounds guest memory up before it starts
 * the domain (qemuDomainAlignMemorySizes, src/qemu/qemu_domain.c, libvirt 11.3.0).
 *
 * How it works: each NUMA cell is rounded up to the memory alignment (1 MiB; 256 MiB on ppc64,
 * qemuDomainGetMemorySizeAlignment) and the initial memory is the sum of the rounded cells, or,
 * without cells, the rounded initial memory; maxMemory is rounded the same way; each memory
 * device is rounded to the module alignment (2 MiB for dimms elsewhere; 256 MiB on ppc64,
 * qemuDomainGetMemoryModuleSizeAlignment). The total becomes initial + devices. A size that
 * passes 2^53 - 1 KiB (virMemoryMaxValue >> 10 on 64-bit hosts) after rounding is refused; the
 * first such size is reported, as libvirt stops there. (ppc64 nvdimm label alignment,
 * qemuDomainNVDimmAlignSizePseries, is not modelled.) Pure.
 */
import type { Domain } from "./model.js";
import { initialMemoryKiB } from "./rules-devices.js";

export interface QemuSizes {
  alignKiB: number;
  cellsKiB: number[];
  initialKiB: number;
  maxKiB: number | undefined;
  modulesKiB: number[];
  totalKiB: number;
  /** the first size that overflows after rounding, as libvirt reports it */
  overflow?: { what: "cell" | "initial" | "max" | "module"; index: number; message: string };
}

const MAX_KIB = 2 ** 53 - 1;

/** qemuDomainGetMemorySizeAlignment: 256 MiB on ppc64, otherwise 1 MiB (in KiB). */
export function memoryAlignmentKiB(d: Domain): number {
  return d.arch?.startsWith("ppc64") ? 256 * 1024 : 1024;
}

const roundUp = (v: number, a: number) => Math.ceil(v / a) * a;

export function qemuAlignMemorySizes(d: Domain): QemuSizes {
  const align = memoryAlignmentKiB(d);
  const moduleAlign = d.arch?.startsWith("ppc64") ? 256 * 1024 : 2048;
  const out: QemuSizes = {
    alignKiB: align,
    cellsKiB: [],
    initialKiB: 0,
    maxKiB: undefined,
    modulesKiB: [],
    totalKiB: 0,
  };
  const fail = (
    what: NonNullable<QemuSizes["overflow"]>["what"],
    index: number,
    message: string,
  ) => {
    out.overflow ??= { what, index, message };
  };
  d.numa.forEach((c, i) => {
    const m = roundUp(c.memoryKiB, align);
    out.cellsKiB.push(m);
    out.initialKiB += m;
    if (m > MAX_KIB) fail("cell", i, `memory size of NUMA node '${i}' overflowed after alignment`);
  });
  if (out.initialKiB === 0) out.initialKiB = roundUp(Math.max(0, initialMemoryKiB(d)), align);
  if (out.initialKiB > MAX_KIB)
    fail("initial", 0, "initial memory size overflowed after alignment");
  if (d.maxMemory) {
    out.maxKiB = roundUp(d.maxMemory.kib, align);
    if (out.maxKiB > MAX_KIB) fail("max", 0, "maximum memory size overflowed after alignment");
  }
  d.memoryDevices.forEach((m, i) => {
    const s = roundUp(m.sizeKiB, moduleAlign);
    out.modulesKiB.push(s);
    if (s > MAX_KIB) fail("module", i, `size of memory module '${i}' overflowed after alignment`);
  });
  out.totalKiB = out.initialKiB + out.modulesKiB.reduce((a, b) => a + b, 0);
  return out;
}
