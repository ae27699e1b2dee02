/**
 * The memory model of a libvirt domain: every element of a <domain> that decides guest memory,
 * as libvirt holds it after parsing (units resolved to KiB, defaults filled in, NUMA cells indexed
 * by id). Imported by the simulator and the host inspector; pure data, no Node APIs.
 *
 * How it works: parse.ts fills a `Domain` from the XML text the way libvirt's parser does
 * (virDomainDefParseMemory, virDomainNumaDefParseXML, virDomainNumatuneParseXML,
 * virDomainMemoryDefParseXML, virDomainMemballoonDefParseXML in src/conf/domain_conf.c and
 * src/conf/numa_conf.c) and applies the post-parse defaults of virDomainDefPostParseMemory and
 * virDomainDefPostParseMemtune (src/conf/domain_postparse.c). Every size is KiB, as libvirt keeps
 * it internally ("Yes, we really do use kibibytes for our internal sizing", domain_conf.c).
 * Sources: docs/formatdomain.rst "Memory Allocation", "Memory Backing", "Memory Tuning",
 * "NUMA Node Tuning", "CPU model and topology" (NUMA), "Memory devices", "Memory balloon device"
 * (libvirt 11.3.0).
 */

/** A problem found while parsing or checking; never thrown. */
export interface DomainProblem {
  /** stable code, e.g. "memory.max-below-total" */
  code: string;
  /** XPath-like path of the element or attribute, e.g. /domain/cpu/numa/cell[2]/@memAccess */
  path: string;
  message: string;
  severity: "error" | "warning";
  /** the libvirt function (and file) that applies the rule, or "RelaxNG domain.rng" */
  rule: string;
  /** 1-based position in the file, when known */
  line?: number;
  column?: number;
}

export interface HugePage {
  /** page size in KiB (virDomainHugepagesParseXML); undefined = the host's default huge page size */
  sizeKiB: number | undefined;
  /** guest NUMA nodes this page size backs; undefined = all other nodes (the "master" page) */
  nodeset: number[] | undefined;
}

export interface MemoryBacking {
  /** undefined: no <hugepages>; []: not possible (an empty <hugepages/> gives one default page) */
  hugepages: HugePage[] | undefined;
  nosharepages: boolean;
  locked: boolean;
  /** <source type>; undefined = not given (QEMU then uses anonymous memory) */
  source: "anonymous" | "file" | "memfd" | undefined;
  /** <access mode>; undefined = not given (private) */
  access: "shared" | "private" | undefined;
  /** <allocation mode> */
  allocation: "immediate" | "ondemand" | undefined;
  /** <allocation threads> */
  allocationThreads: number | undefined;
  discard: boolean;
}

/** <memtune> values in KiB; "unlimited" for VIR_DOMAIN_MEMORY_PARAM_UNLIMITED. */
export type MemLimit = number | "unlimited";

export interface Memtune {
  hardLimit: MemLimit | undefined;
  softLimit: MemLimit | undefined;
  swapHardLimit: MemLimit | undefined;
  minGuarantee: MemLimit | undefined;
}

export type NumaMode = "strict" | "preferred" | "interleave" | "restrictive";

export interface Numatune {
  /** <numatune><memory>; undefined when absent */
  memory:
    | { mode: NumaMode; placement: "static" | "auto"; nodeset: number[] | undefined }
    | undefined;
  /** <memnode> per guest cell */
  memnodes: Array<{ cellid: number; mode: NumaMode; nodeset: number[] }>;
}

export interface NumaCell {
  id: number;
  cpus: number[] | undefined;
  memoryKiB: number;
  memAccess: "shared" | "private" | undefined;
  discard: boolean | undefined;
}

export type MemoryModel = "dimm" | "nvdimm" | "virtio-pmem" | "virtio-mem" | "sgx-epc";

export interface MemoryDevice {
  model: MemoryModel;
  access: "shared" | "private" | undefined;
  discard: boolean | undefined;
  sizeKiB: number;
  /** virtio-mem <requested> */
  requestedKiB: number | undefined;
  /** virtio-mem <block> */
  blockKiB: number | undefined;
  /** guest NUMA node (<target><node>); undefined = none */
  node: number | undefined;
  /** <source><pagesize> */
  sourcePageSizeKiB: number | undefined;
  /** <source><nodemask> (host nodes) */
  sourceNodemask: number[] | undefined;
  /** <source><path> (nvdimm, virtio-pmem) */
  sourcePath: string | undefined;
  /** <target><address base> in bytes (virtio-mem, virtio-pmem) */
  addressBase: number | undefined;
  /** <address type='dimm' slot='N'/> (dimm, nvdimm) */
  slot: number | undefined;
}

export interface Memballoon {
  /** "virtio" | "virtio-transitional" | "virtio-non-transitional" | "xen" | "none" */
  model: string;
  autodeflate: boolean | undefined;
  freePageReporting: boolean | undefined;
  /** <stats period> seconds; undefined when absent */
  statsPeriod: number | undefined;
  /** true when libvirt's QEMU driver adds it because the XML had none (x86 and most arches) */
  implicit: boolean;
}

/** libvirt <driver cache> (virDomainDiskCache): how QEMU opens the image (O_DIRECT, O_DSYNC) */
export type DiskCacheMode =
  | "default"
  | "none"
  | "writethrough"
  | "writeback"
  | "directsync"
  | "unsafe";

export interface DiskDef {
  /** <disk type>: file, block, network, volume, ... */
  type: string | undefined;
  /** <disk device>: disk (the default), cdrom, floppy, lun */
  device: string;
  /** <driver cache>; "default" when absent (QEMU's default: writeback) */
  cache: DiskCacheMode;
  /** <target dev> */
  target: string | undefined;
  /** <source file> or <source dev> */
  source: string | undefined;
}

export interface Domain {
  /** <domain type>, e.g. "kvm", "qemu" */
  type: string | undefined;
  name: string | undefined;
  uuid: string | undefined;
  /** <os><type arch> */
  arch: string | undefined;
  machine: string | undefined;
  /** <memory>: total memory at boot incl. memory devices (virDomainDefGetMemoryTotal) */
  memoryKiB: number;
  /** true when <memory> was absent and the total came from NUMA cells (post-parse) */
  memoryFromNuma: boolean;
  dumpCore: boolean | undefined;
  /** <currentMemory> after virDomainDefPostParseMemory (0 or above total -> total) */
  currentMemoryKiB: number;
  /** <currentMemory> as written, before clamping; undefined when absent */
  currentMemoryWrittenKiB: number | undefined;
  /** <maxMemory>; undefined when absent */
  maxMemory: { kib: number; slots: number } | undefined;
  memoryBacking: MemoryBacking;
  memtune: Memtune;
  numatune: Numatune | undefined;
  /** guest NUMA cells, in id order */
  numa: NumaCell[];
  memoryDevices: MemoryDevice[];
  memballoon: Memballoon;
  /** <devices><disk>: the guest's disks (virDomainDiskDefParseXML), in document order */
  disks: DiskDef[];
  /** <devices><shmem>: memory shared between guests (ivshmem) */
  shmems: Array<{
    name: string | undefined;
    model: string | undefined;
    sizeBytes: number | undefined;
  }>;
  vcpus: { max: number; current: number };
}
