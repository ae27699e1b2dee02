/**
 * libvirt's rules for memory devices and memory hotplug (dimm, nvdimm, virtio-mem, virtio-pmem).
 *
 * How it works: virDomainMemoryDefValidate (src/conf/domain_validate.c) checks each device: its
 * guest NUMA node must exist, nvdimm and virtio-pmem need a backing path, virtio-pmem needs shared
 * access and no node, virtio-mem's requested size fits its size and is a multiple of a power-of-two
 * block of at least the THP size (2 MiB when the host's cannot be read), and the guest-physical
 * ranges of virtio-mem/virtio-pmem devices may not overlap. qemuDomainDefValidateMemoryHotplug
 * (src/qemu/qemu_domain.c) checks them against <maxMemory>: devices need maxMemory, hotplug needs a
 * guest NUMA node except on ppc64, dimm/nvdimm each take one of the slots, and all devices must fit
 * in maxMemory minus the initial memory. Pure.
 */
import type { Domain } from "./model.js";
import type { DomainSource } from "./reader.js";
import type { XmlElement } from "./xml.js";

const MDV = "virDomainMemoryDefValidate (domain_validate.c)";
const HP = "qemuDomainDefValidateMemoryHotplug (qemu_domain.c)";
const HPD = "qemuDomainDefValidateMemoryHotplugDevice (qemu_domain.c)";

export type Report = (
  el: XmlElement | undefined,
  a: string | undefined,
  code: string,
  message: string,
  rule: string,
) => void;

/** virDomainDefGetMemoryInitial: NUMA total if any, else <memory> minus memory devices. */
export function initialMemoryKiB(d: Domain): number {
  const numa = d.numa.reduce((s, c) => s + c.memoryKiB, 0);
  if (numa > 0) return numa;
  return d.memoryKiB - d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0);
}

/** Memory devices that take a DIMM slot (qemuDomainDefValidateMemoryHotplug). */
function needsSlot(model: string): boolean {
  return model === "dimm" || model === "nvdimm";
}

/** virDomainMemoryDefValidate (domain_validate.c), per device. */
export function checkMemoryDevices(d: Domain, src: DomainSource, err: Report) {
  const ranges: Array<{ start: number; i: number }> = [];
  d.memoryDevices.forEach((m, i) => {
    const el = src.memoryDevices[i];
    if (m.node !== undefined) {
      if (d.numa.length === 0) {
        err(
          el,
          undefined,
          "memdev.no-numa",
          "can't add memory backend as guest has no NUMA nodes configured",
          MDV,
        );
      } else if (m.node >= d.numa.length) {
        err(
          el,
          undefined,
          "memdev.node",
          `can't add memory backend for guest node '${m.node}' as the guest has only '${d.numa.length}' NUMA nodes configured`,
          MDV,
        );
      }
    }
    if (m.model === "nvdimm") {
      if (!m.sourcePath)
        err(el, undefined, "memdev.path", "path is required for model 'nvdimm'", MDV);
      if (m.discard === true)
        err(el, "discard", "memdev.discard", "discard is not supported for nvdimms", MDV);
    }
    if (m.model === "virtio-pmem") {
      if (!m.sourcePath)
        err(el, undefined, "memdev.path", "path is required for model 'virtio-pmem'", MDV);
      if (m.discard === true)
        err(
          el,
          "discard",
          "memdev.discard",
          "discard is not supported for model 'virtio-pmem'",
          MDV,
        );
      if (m.access !== "shared")
        err(
          el,
          undefined,
          "memdev.access",
          "shared access mode required for virtio-pmem device",
          MDV,
        );
      if (m.node !== undefined)
        err(el, undefined, "memdev.node", "virtio-pmem does not support NUMA nodes", MDV);
      if (m.addressBase !== undefined && m.addressBase % 4096 !== 0) {
        err(el, undefined, "memdev.align", "memory address must be aligned to 4096 bytes", MDV);
      }
    }
    if (m.model === "virtio-mem") {
      const block = m.blockKiB ?? 0;
      const req = m.requestedKiB ?? 0;
      if (req > m.sizeKiB)
        err(
          el,
          undefined,
          "memdev.requested",
          `requested size must be smaller than or equal to @size (${m.sizeKiB}KiB)`,
          MDV,
        );
      else if (block === 0 || (block & (block - 1)) !== 0)
        err(el, undefined, "memdev.block", "block size must be a power of two", MDV);
      // the THP size of the host; libvirt falls back to 2 MiB when it cannot read it
      else if (block < 2048)
        err(el, undefined, "memdev.block", "block size too small, must be at least 2048KiB", MDV);
      else if (req % block !== 0)
        err(
          el,
          undefined,
          "memdev.requested",
          "requested size must be an integer multiple of block size",
          MDV,
        );
      else if (m.addressBase !== undefined && m.addressBase % (block * 1024) !== 0) {
        err(
          el,
          undefined,
          "memdev.align",
          "memory device address must be aligned to blocksize",
          MDV,
        );
      }
    }
    if ((m.model === "virtio-mem" || m.model === "virtio-pmem") && m.addressBase)
      ranges.push({ start: m.addressBase, i });
  });
  for (const a of ranges) {
    const end = a.start + d.memoryDevices[a.i].sizeKiB * 1024;
    const other = ranges.find((b) => b !== a && a.start <= b.start && end > b.start);
    if (other) {
      const hex = (v: number) => `0x${v.toString(16)}`;
      err(
        src.memoryDevices[a.i],
        undefined,
        "memdev.overlap",
        `memory device address [${hex(a.start)}:${hex(end)}] overlaps with other memory device (${hex(other.start)})`,
        MDV,
      );
    }
  }
}

/** qemuDomainDefValidateMemoryHotplug (qemu_domain.c). */
export function checkHotplug(d: Domain, src: DomainSource, err: Report) {
  const nmems = d.memoryDevices.length;
  if (!d.maxMemory || d.maxMemory.kib === 0) {
    if (nmems > 0) {
      err(
        src.memoryDevices[0],
        undefined,
        "hotplug.no-max",
        "cannot use/hotplug a memory device when domain 'maxMemory' is not defined",
        HP,
      );
    }
    return;
  }
  // ppc64 and s390 guests get memory hotplug without guest NUMA
  if (!d.arch?.startsWith("ppc64") && !d.arch?.startsWith("s390") && d.numa.length === 0) {
    err(
      src.maxMemory,
      undefined,
      "hotplug.no-numa",
      "At least one numa node has to be configured when enabling memory hotplug",
      HP,
    );
  }
  const slotsNeeded = d.memoryDevices.filter((m) => needsSlot(m.model)).length;
  if (slotsNeeded > d.maxMemory.slots) {
    err(
      src.maxMemory,
      "slots",
      "hotplug.slots",
      `count of memory devices requiring memory slots '${slotsNeeded}' exceeds slots count '${d.maxMemory.slots}'`,
      HP,
    );
  }
  // qemuDomainDefValidateMemoryHotplugDevice, for each device present at start
  d.memoryDevices.forEach((m, i) => {
    const el = src.memoryDevices[i];
    if (
      (m.model === "dimm" || m.model === "nvdimm") &&
      m.slot !== undefined &&
      m.slot >= d.maxMemory!.slots
    ) {
      err(
        el,
        undefined,
        "hotplug.slot",
        `memory device slot '${m.slot}' exceeds slots count '${d.maxMemory!.slots}'`,
        HPD,
      );
    }
    const needsNuma = m.model === "dimm" || m.model === "nvdimm" || m.model === "virtio-mem";
    if (needsNuma && d.numa.length > 0 && m.node === undefined) {
      err(
        el,
        undefined,
        "hotplug.node",
        "target NUMA node needs to be specified for memory device",
        HPD,
      );
    }
  });
  // every device counts against maxMemory - initial memory (sgx-epc included, as libvirt sums them)
  const hotplug = d.memoryDevices.reduce((s, m) => s + m.sizeKiB, 0);
  if (hotplug > d.maxMemory.kib - initialMemoryKiB(d)) {
    err(
      src.maxMemory,
      undefined,
      "hotplug.space",
      "memory device total size exceeds hotplug space",
      HP,
    );
  }
}
