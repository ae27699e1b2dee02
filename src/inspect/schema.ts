/**
 * The host report's schema: the one document `kvmem host --json` prints and the exporter,
 * the `--check` lines and the text tables are made from. The TypeScript types are inferred from
 * this zod schema, tests check every report against it, and docs/host-report.schema.json is
 * generated from it (`kvmem host --json-schema`).
 * Sizes are KiB (as /proc/meminfo and libvirt count them) unless a name says otherwise.
 */
import { z } from "zod";

const Unavailable = z.object({ available: z.literal(false), reason: z.string() });

export const FreeSchema = z.object({
  total: z.number(),
  used: z.number(),
  free: z.number(),
  shared: z.number(),
  buffCache: z.number(),
  available: z.number(),
  swapTotal: z.number(),
  swapUsed: z.number(),
  swapFree: z.number(),
});

export const MemorySchema = z.union([
  z.object({
    available: z.literal(true),
    /** every /proc/meminfo field: KiB, or a count for HugePages_* */
    meminfo: z.record(z.string(), z.number()),
    /** free(1)'s figures in KiB */
    free: FreeSchema,
    /** the tables `free -g` and `free -h` print */
    freeG: z.string(),
    freeH: z.string(),
    /** the boot "Memory:" line, or why it could not be read */
    boot: z.union([
      z.object({
        available: z.literal(true),
        line: z.string(),
        availableKiB: z.number(),
        totalKiB: z.number(),
      }),
      Unavailable,
    ]),
  }),
  Unavailable,
]);

export const ModuleSchema = z.object({
  name: z.string(),
  /** "intel" (kvm_intel), "amd" (kvm_amd), "pvm" (kvm_pvm), "common" (kvm), "other" */
  role: z.enum(["common", "intel", "amd", "pvm", "other"]),
  parameters: z.record(z.string(), z.string()),
});

export const VerdictSchema = z.object({
  inEffect: z.boolean(),
  /** "EPT", "NPT", "shadow", "none" for tdp; "VPID", "ASID", "none" for tagging */
  mode: z.string(),
  reason: z.string(),
});

export const VirtSchema = z.object({
  cpu: z.union([
    z.object({
      available: z.literal(true),
      vendor: z.string().nullable(),
      modelName: z.string().nullable(),
      cpus: z.number(),
      /** virtualization flags, true when present in "flags" or "vmx flags" */
      flags: z.record(z.string(), z.boolean()),
      /** the "vmx flags" line when the kernel prints it (5.9+) */
      vmxFlags: z.array(z.string()).nullable(),
      /** the CPU says it runs under a hypervisor (flag "hypervisor") */
      nested: z.boolean(),
    }),
    Unavailable,
  ]),
  devKvm: z.object({ present: z.boolean(), reason: z.string() }),
  modules: z.array(ModuleSchema),
  tdp: VerdictSchema,
  vpid: VerdictSchema,
});

export const HugePoolSchema = z.object({
  sizeKiB: z.number(),
  nr: z.number(),
  free: z.number(),
  resv: z.number(),
  surplus: z.number(),
  overcommit: z.number(),
  /** where the figures came from: sysfs, or /proc/meminfo for the default size only */
  source: z.string(),
  nodes: z.array(
    z.object({ node: z.number(), nr: z.number(), free: z.number(), surplus: z.number() }),
  ),
});

export const HugepagesSchema = z.object({
  basePageSizeKiB: z.number(),
  defaultSizeKiB: z.number().nullable(),
  pools: z.array(HugePoolSchema),
  mounts: z.array(
    z.object({ mountPoint: z.string(), pageSizeKiB: z.number().nullable(), options: z.string() }),
  ),
  mountsSource: z.string().nullable(),
  thp: z.object({
    enabled: z.string().nullable(),
    defrag: z.string().nullable(),
    reason: z.string().nullable(),
  }),
  /** AnonHugePages, ShmemHugePages, FileHugePages, ShmemPmdMapped, FilePmdMapped, Hugetlb */
  meminfo: z.record(z.string(), z.number()),
  numaNodes: z.array(z.number()),
  /**
   * per NUMA node (drivers/base/node.c: /sys/devices/system/node/nodeN/meminfo and numastat):
   * MemTotal, MemFree, AnonHugePages in KiB, numa_miss and other_node pages; absent when the
   * tree has no per-node meminfo
   */
  nodeMemory: z
    .array(
      z.object({
        node: z.number(),
        memTotalKiB: z.number(),
        memFreeKiB: z.number(),
        anonHugePagesKiB: z.number(),
        numaMiss: z.number().nullable(),
        otherNode: z.number().nullable(),
      }),
    )
    .optional(),
});

export const KsmSchema = z.union([
  z.object({
    available: z.literal(true),
    /** every file of /sys/kernel/mm/ksm that holds a number, by its sysfs name */
    values: z.record(z.string(), z.number()),
    /** files that are not numbers (advisor_mode: "[none] scan-time") */
    text: z.record(z.string(), z.string()),
    /** bytes KSM saves: general_profit when present, else pages_sharing x page size */
    savedBytes: z.number(),
    savedSource: z.enum(["general_profit", "pages_sharing"]),
    /** bytes of rmap_items, derived from general_profit when present */
    rmapBytes: z.number().nullable(),
  }),
  Unavailable,
]);

export const OvercommitSchema = z.object({
  swaps: z.array(
    z.object({
      filename: z.string(),
      type: z.string(),
      sizeKiB: z.number(),
      usedKiB: z.number(),
      priority: z.number(),
    }),
  ),
  swapsReason: z.string().nullable(),
  /** vm.* sysctls read from /proc/sys/vm */
  sysctl: z.record(z.string(), z.number()),
  ksm: KsmSchema,
  /** the guest-side "Balloon:" line of /proc/meminfo (KiB), null when the kernel has none */
  balloonKiB: z.number().nullable(),
  /** QEMU processes: /proc/PID/status and ksm_stat (KiB; null: the kernel has no such field) */
  qemu: z.object({
    processes: z.array(
      z.object({
        pid: z.number(),
        guest: z.string().nullable(),
        vmRssKiB: z.number().nullable(),
        rssAnonKiB: z.number().nullable(),
        rssFileKiB: z.number().nullable(),
        rssShmemKiB: z.number().nullable(),
        vmSwapKiB: z.number().nullable(),
        hugetlbKiB: z.number().nullable(),
        vmLckKiB: z.number().nullable(),
        ksm: z
          .object({
            rmapItems: z.number(),
            zeroPages: z.number().nullable(),
            mergingPages: z.number().nullable(),
            processProfitBytes: z.number().nullable(),
          })
          .nullable(),
      }),
    ),
    /** why no process could be listed, null when /proc was listed */
    reason: z.string().nullable(),
  }),
});

export const DomainSchema = z.object({
  name: z.string(),
  file: z.string(),
  state: z.enum(["running", "defined"]),
  memoryKiB: z.number(),
  currentMemoryKiB: z.number(),
  maxMemoryKiB: z.number().nullable(),
  /** hugepage backing: page sizes (KiB) with their guest NUMA nodeset, empty when none */
  hugepages: z.array(
    z.object({
      sizeKiB: z.number(),
      nodeset: z.string().nullable(),
      /** guest RAM (KiB) this page size backs: the cells of its nodeset, or all RAM */
      backedKiB: z.number(),
    }),
  ),
  /** host NUMA nodes numatune binds guest memory to (strict/restrictive), null when unbound */
  hostNodes: z.array(z.number()).nullable(),
  locked: z.boolean(),
  nosharepages: z.boolean(),
  source: z.string(),
  access: z.string(),
  balloon: z.object({
    model: z.string(),
    autodeflate: z.boolean(),
    freePageReporting: z.boolean(),
    statsPeriod: z.number().nullable(),
  }),
  problems: z.array(z.string()),
});

export const DomainsSchema = z.object({
  dirs: z.array(z.object({ dir: z.string(), found: z.number(), reason: z.string().nullable() })),
  domains: z.array(DomainSchema),
  totals: z.object({
    memoryKiB: z.number(),
    currentMemoryKiB: z.number(),
    /** sum of currentMemory over MemTotal */
    overcommitRatio: z.number().nullable(),
    /** hugepage demand per page size against the pool */
    hugepageDemand: z.array(
      z.object({
        sizeKiB: z.number(),
        pagesNeeded: z.number(),
        poolNr: z.number(),
        poolFree: z.number(),
        pagesNeededNotRunning: z.number(),
        /** a hugetlbfs mount offers this size */
        mounted: z.boolean(),
      }),
    ),
    /** memory the balloons may reclaim: memory - currentMemory, for domains whose balloon frees host memory */
    balloonHeadroomKiB: z.number(),
    /** hugepage-backed or locked guest memory: never swapped */
    unswappableKiB: z.number(),
  }),
});

export const FindingSchema = z.object({
  id: z.string(),
  severity: z.enum(["info", "warning", "critical"]),
  title: z.string(),
  evidence: z.array(z.object({ file: z.string(), value: z.string() })),
  /** the exact fix: a shell command, or the XML to change */
  fix: z.object({ kind: z.enum(["command", "xml", "none"]), text: z.string() }),
});

export const CheckSchema = z.object({
  name: z.string(),
  status: z.enum(["PASS", "WARN", "FAIL"]),
  detail: z.string(),
});

export const HostReportSchema = z.object({
  schemaVersion: z.literal(1),
  source: z.object({ kind: z.enum(["live", "root", "sim"]), label: z.string() }),
  memory: MemorySchema,
  virt: VirtSchema,
  hugepages: HugepagesSchema,
  overcommit: OvercommitSchema,
  domains: DomainsSchema,
  findings: z.array(FindingSchema),
  checks: z.array(CheckSchema),
  /** files that could not be parsed, with the line and why */
  problems: z.array(z.string()),
});

export type HostReport = z.infer<typeof HostReportSchema>;
export type Finding = z.infer<typeof FindingSchema>;
export type Check = z.infer<typeof CheckSchema>;
export type DomainSummary = z.infer<typeof DomainSchema>;
export type HugePool = z.infer<typeof HugePoolSchema>;

export function hostReportJsonSchema(): unknown {
  return z.toJSONSchema(HostReportSchema);
}
