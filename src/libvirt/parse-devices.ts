/**
 * Memory devices, the memory balloon and shared memory (<devices>), read as libvirt reads them.
 *
 * How it works: virDomainMemoryDefParseXML (src/conf/domain_conf.c) reads <memory model=...>
 * (dimm, nvdimm, virtio-pmem, virtio-mem, sgx-epc) with <target> size, node, block, requested and
 * address base, and <source> pagesize, nodemask and path; sizes are virDomainParseMemory (KiB).
 * virDomainMemballoonDefParseXML reads <memballoon model> with autodeflate and freePageReporting
 * (on|off) and <stats period>; when there is no <memballoon> at all, libvirt's QEMU driver adds a
 * virtio one (qemuDomainDefAddDefaultDevices, src/qemu/qemu_domain.c), which the model records as
 * implicit. virDomainDiskDefParseXML reads each <disk>'s type, device, target, source and its
 * <driver cache> mode (virDomainDiskCache; absent is "default", QEMU's writeback).
 * virDomainShmemDefParseXML reads <shmem><size> as a scaled value in bytes.
 */
import type { Domain, Memballoon, MemoryDevice, MemoryModel } from "./model.js";
import type { DomainSource, Reader } from "./reader.js";
import { scaleToBytes } from "./scaled.js";
import { attr, child, childrenNamed, type XmlElement } from "./xml.js";

const R_DEV = "virDomainMemoryDefParseXML (domain_conf.c)";
const R_BAL = "virDomainMemballoonDefParseXML (domain_conf.c)";
const R_DISK = "virDomainDiskDefDriverParseXML (domain_conf.c)";
/** virDomainDiskCache (domain_conf.h), as formatdomain's <driver cache> lists them */
const DISK_CACHE = [
  "default",
  "none",
  "writethrough",
  "writeback",
  "directsync",
  "unsafe",
] as const;
const MODELS: readonly MemoryModel[] = ["dimm", "nvdimm", "virtio-pmem", "virtio-mem", "sgx-epc"];

/**
 * qemuDomainDefAddDefaultDevices (qemu_domain.c, libvirt 11.3.0): the QEMU driver adds a virtio
 * memballoon on x86 (not the isapc and microvm machines), ppc/ppc64, alpha, sh4, s390, sparc64 and
 * mips guests; not on ARM, RISC-V or LoongArch. No arch in the XML means the host's (x86_64 here).
 */
export function addsDefaultBalloon(arch: string | undefined, machine: string | undefined): boolean {
  const a = arch ?? "x86_64";
  if (a === "i686" || a === "x86_64") return machine !== "isapc" && machine !== "microvm";
  return /^(ppc|ppc64|ppc64le|ppcemb|alpha|sh4|sh4eb|s390|s390x|sparc64|mips|mipsel|mips64|mips64el)$/.test(
    a,
  );
}

export function parseDevices(r: Reader, root: XmlElement, d: Domain, src: DomainSource) {
  const devices = child(root, "devices");
  for (const el of childrenNamed(devices, "memory")) {
    if (attr(el, "model") === undefined) {
      r.report(
        el,
        undefined,
        "memdev.model",
        "Missing required attribute 'model' in element 'memory'",
        R_DEV,
      );
      continue;
    }
    const model = r.enumAttr(el, "model", MODELS, R_DEV);
    if (!model) continue;
    const target = child(el, "target");
    const source = child(el, "source");
    const sizeEl = child(target, "size");
    const size = sizeEl ? r.memory(sizeEl, undefined, "unit", R_DEV) : undefined;
    if (!sizeEl)
      r.report(
        target ?? el,
        undefined,
        "memdev.size",
        "missing element or attribute './size'",
        R_DEV,
      );
    const kib = (name: string, parent: XmlElement | undefined) => {
      const e = child(parent, name);
      return e ? r.memory(e, undefined, "unit", R_DEV) : undefined;
    };
    const nodeEl = child(target, "node");
    const nodemaskEl = child(source, "nodemask");
    const base = attr(child(target, "address"), "base");
    let addressBase: number | undefined;
    if (base !== undefined) {
      const m = /^\s*0x([0-9a-fA-F]+)\s*$/.exec(base) ?? /^\s*()([0-9]+)\s*$/.exec(base);
      if (m) addressBase = m[1] ? Number.parseInt(m[1], 16) : Number(m[2]);
      else
        r.report(
          child(target, "address"),
          "base",
          "memdev.address",
          `Invalid value for attribute 'base' in element 'address': '${base}'.`,
          R_DEV,
        );
    }
    const dev: MemoryDevice = {
      model,
      access: r.enumAttr(el, "access", ["shared", "private"] as const, R_DEV),
      discard: r.onOff(el, "discard", R_DEV, ["yes", "no"] as const),
      sizeKiB: size ?? 0,
      requestedKiB: kib("requested", target),
      blockKiB: kib("block", target),
      node: nodeEl ? r.uint(nodeEl, undefined, R_DEV) : undefined,
      sourcePageSizeKiB: kib("pagesize", source),
      sourceNodemask: nodemaskEl
        ? r.bitmap(nodemaskEl, "nodemask", R_DEV, nodemaskEl.text)
        : undefined,
      sourcePath: child(source, "path")?.text.trim(),
      addressBase,
      slot: (() => {
        const a = childrenNamed(el, "address").find((x) => attr(x, "type") === "dimm");
        return a && attr(a, "slot") !== undefined ? r.uint(a, "slot", R_DEV) : undefined;
      })(),
    };
    d.memoryDevices.push(dev);
    src.memoryDevices.push(el);
  }
  const balloons = childrenNamed(devices, "memballoon");
  if (balloons.length > 1)
    r.report(
      balloons[1],
      undefined,
      "balloon.multiple",
      "only a single memory balloon device is supported",
      "virDomainDefParseXML (domain_conf.c)",
    );
  const mbEl = balloons[0];
  src.memballoon = mbEl;
  const qemuLike = (d.type === "kvm" || d.type === "qemu") && addsDefaultBalloon(d.arch, d.machine);
  if (!mbEl) {
    // qemuDomainDefAddDefaultDevices (qemu_domain.c) adds a virtio balloon when none is given
    d.memballoon = {
      model: qemuLike ? "virtio" : "none",
      autodeflate: undefined,
      freePageReporting: undefined,
      statsPeriod: undefined,
      implicit: true,
    };
  } else {
    const model = attr(mbEl, "model");
    if (model === undefined)
      r.report(
        mbEl,
        undefined,
        "balloon.model",
        "Missing required attribute 'model' in element 'memballoon'",
        R_BAL,
      );
    const b: Memballoon = {
      model:
        r.enumAttr(
          mbEl,
          "model",
          ["virtio", "xen", "none", "virtio-transitional", "virtio-non-transitional"] as const,
          R_BAL,
        ) ?? "none",
      autodeflate: r.onOff(mbEl, "autodeflate", R_BAL),
      freePageReporting: r.onOff(mbEl, "freePageReporting", R_BAL),
      statsPeriod: undefined,
      implicit: false,
    };
    const stats = child(mbEl, "stats");
    if (stats && attr(stats, "period") !== undefined) {
      const p = attr(stats, "period")!;
      if (!/^\s*-?[0-9]+\s*$/.test(p))
        r.report(stats, "period", "balloon.period", `invalid statistics period '${p}'`, R_BAL);
      else b.statsPeriod = Number(p);
    }
    d.memballoon = b;
  }
  for (const el of childrenNamed(devices, "disk")) {
    const driver = child(el, "driver");
    const source = child(el, "source");
    d.disks.push({
      type: attr(el, "type"),
      device: attr(el, "device") ?? "disk",
      cache: driver ? (r.enumAttr(driver, "cache", DISK_CACHE, R_DISK) ?? "default") : "default",
      target: attr(child(el, "target"), "dev"),
      source: attr(source, "file") ?? attr(source, "dev"),
    });
  }
  for (const el of childrenNamed(devices, "shmem")) {
    const sizeEl = child(el, "size");
    let sizeBytes: number | undefined;
    if (sizeEl) {
      const v = scaleToBytes(sizeEl.text, attr(sizeEl, "unit"), 1n, (1n << 64n) - 1n, "./size[1]");
      if (!v.ok)
        r.report(
          sizeEl,
          undefined,
          "unit.invalid",
          v.error,
          "virDomainShmemDefParseXML (domain_conf.c)",
        );
      else sizeBytes = Number(v.value);
    }
    d.shmems.push({ name: attr(el, "name"), model: attr(child(el, "model"), "type"), sizeBytes });
    src.shmems.push(el);
  }
}
