/**
 * The scenario format (YAML): a KVM host, its VMs (real libvirt domain XML), their workloads,
 * a timeline of events, and how long to run. Validated with zod; every error names the key path,
 * the value and what is accepted. Sizes are strings with libvirt's units ("64GiB", "2M") or
 * numbers of bytes. docs/sim.md documents every key with examples.
 */
import { z } from "zod";
import { KvmemError } from "../units/errors.js";
import { parseSize } from "../units/size.js";

/** A size: "2GiB", "512M", "4K" (libvirt units) or a number of bytes. */
const Size = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === "number") return v;
  try {
    return parseSize(v, { input: "scenario" }, 1n);
  } catch (e) {
    ctx.addIssue({
      code: "custom",
      message: `not a size (${(e as KvmemError).hint || (e as Error).message})`,
    });
    return z.NEVER;
  }
});

const PageSize = z.enum(["4K", "2M", "1G"]);
const Fraction = z.number().min(0).max(1);

export const TlbGeometrySchema = z.strictObject({
  entries: z.number().int().positive(),
  ways: z.number().int().positive(),
});

export const CpuSchema = z.strictObject({
  vendor: z.enum(["intel", "amd"]).default("intel"),
  /** kvm_intel ept (or kvm_amd npt) */
  ept: z.boolean().default(true),
  /** kvm_intel vpid */
  vpid: z.boolean().default(true),
  /** 5-level paging for guests and EPT */
  la57: z.boolean().default(false),
  /** paging-structure caches */
  pwc: z.boolean().default(true),
  /** clock for turning cycles into simulated time */
  ghz: z.number().positive().default(3),
  tlb: z
    .strictObject({
      l1d4k: TlbGeometrySchema.optional(),
      l1d2m: TlbGeometrySchema.optional(),
      l1d1g: TlbGeometrySchema.optional(),
      stlb: TlbGeometrySchema.optional(),
    })
    .optional(),
});

export const KsmSettingsSchema = z.strictObject({
  run: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  pages_to_scan: z.number().int().positive().default(100),
  sleep_millisecs: z.number().int().positive().default(20),
  max_page_sharing: z.number().int().min(2).default(256),
  merge_across_nodes: z.union([z.literal(0), z.literal(1)]).default(1),
  use_zero_pages: z.union([z.literal(0), z.literal(1)]).default(0),
  smart_scan: z.union([z.literal(0), z.literal(1)]).default(1),
});

/**
 * vm.nr_hugepages of one size: a count spread over the NUMA nodes round-robin, or the kernel's
 * per-node boot syntax "0:512,1:256" (hugepages=, Documentation/admin-guide/kernel-parameters.txt)
 */
const HugepageCount = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d+:\d+(,\d+:\d+)*$/, "a count or per-node counts like '0:512,1:256'"),
]);

/** The per-node counts of a HugepageCount string ("0:512,1:256" -> [[0, 512], [1, 256]]). */
export function hugepagesPerNode(v: number | string): Array<[number, number]> | null {
  if (typeof v === "number") return null;
  return v.split(",").map((p) => p.split(":").map(Number) as [number, number]);
}

const HostFields = z.strictObject({
  /** whole GiB: the simulator's frame allocator works in naturally aligned 1 GiB blocks */
  memory: Size.pipe(
    z.number().refine((v) => v > 0 && v % 2 ** 30 === 0, {
      message: "must be a whole number of GiB, e.g. 16GiB",
    }),
  ),
  cpus: z.number().int().positive().default(4),
  /** NUMA nodes: memory (whole GiB per node) and CPUs split evenly (docs/sim.md) */
  numa: z.strictObject({ nodes: z.number().int().min(1).max(16).default(1) }).default({ nodes: 1 }),
  cpu: CpuSchema.default(CpuSchema.parse({})),
  kernel: z
    .strictObject({
      /** vm.nr_hugepages per size, e.g. {2M: 1024, 1G: 4} */
      hugepages: z
        .strictObject({
          "2M": HugepageCount.default(0),
          "1G": HugepageCount.default(0),
        })
        .default({ "2M": 0, "1G": 0 }),
      /** nr_overcommit_hugepages per size: surplus huge pages allowed beyond the pool */
      overcommitHugepages: z
        .strictObject({
          "2M": z.number().int().nonnegative().default(0),
          "1G": z.number().int().nonnegative().default(0),
        })
        .default({ "2M": 0, "1G": 0 }),
      thp: z.enum(["always", "madvise", "never"]).default("madvise"),
      ksm: KsmSettingsSchema.default(KsmSettingsSchema.parse({})),
      swappiness: z.number().int().min(0).max(200).default(60),
    })
    .default({
      hugepages: { "2M": 0, "1G": 0 },
      overcommitHugepages: { "2M": 0, "1G": 0 },
      thp: "madvise",
      ksm: KsmSettingsSchema.parse({}),
      swappiness: 60,
    }),
  swap: Size.default(0),
  /** other host processes' files in the page cache at boot (clean, on the inactive file list) */
  pageCache: Size.default(0),
  /** the daemons operators run on top of the kernel (docs/overcommit.md) */
  policies: z
    .strictObject({
      /** ksmtuned with /etc/ksmtuned.conf's settings (sizes in KiB, as the script uses) */
      ksmtuned: z
        .strictObject({
          monitorIntervalS: z.number().positive().default(60),
          sleepMsec: z.number().int().positive().default(10),
          npagesBoost: z.number().int().default(300),
          npagesDecay: z.number().int().default(-50),
          npagesMin: z.number().int().nonnegative().default(64),
          npagesMax: z.number().int().positive().default(1250),
          thresCoef: z.number().nonnegative().default(20),
          thresConst: z
            .number()
            .int()
            .nonnegative()
            .default(2048 * 1024),
        })
        .optional(),
      /** oVirt MOM's auto-balloon rules every policy-engine-interval seconds */
      mom: z
        .strictObject({
          intervalS: z.number().positive().default(10),
          /** host-monitor-interval / guest-monitor-interval: seconds between samples */
          monitorIntervalS: z.number().positive().optional(),
          /** sample-history-length: samples the rules' StatAvg averages */
          sampleHistoryLength: z.number().int().positive().optional(),
          /** run MOM's KSM rules too (vdsm's mom-balloon+ksm policy), instead of ksmtuned */
          ksm: z.boolean().optional(),
        })
        .optional(),
    })
    .default({}),
});

/** Cross-field rules: memory and CPUs split evenly over the NUMA nodes; per-node pools name nodes. */
export const HostSchema = HostFields.superRefine((h, ctx) => {
  const nodes = h.numa.nodes;
  const gib = h.memory / 2 ** 30;
  if (gib % nodes !== 0)
    ctx.addIssue({
      code: "custom",
      path: ["numa", "nodes"],
      message: `${gib} GiB of host memory does not split into whole GiB over ${nodes} nodes`,
    });
  if (h.cpus % nodes !== 0)
    ctx.addIssue({
      code: "custom",
      path: ["numa", "nodes"],
      message: `${h.cpus} CPUs do not split evenly over ${nodes} nodes`,
    });
  for (const size of ["2M", "1G"] as const) {
    const bad = hugepagesPerNode(h.kernel.hugepages[size])?.find(([n]) => n >= nodes);
    if (bad)
      ctx.addIssue({
        code: "custom",
        path: ["kernel", "hugepages", size],
        message: `node ${bad[0]} does not exist (host.numa.nodes is ${nodes})`,
      });
  }
});

export const ContentSchema = z.union([
  z.literal("zero").transform(() => ({ kind: "zero" as const })),
  z.literal("unique").transform(() => ({ kind: "unique" as const })),
  z
    .strictObject({ constant: z.number().int() })
    .transform((v) => ({ kind: "constant" as const, value: v.constant })),
  z
    .strictObject({ image: z.string().min(1), shared: Fraction.default(1) })
    .transform((v) => ({ kind: "image" as const, image: v.image, shared: v.shared })),
]);

export const WorkloadSchema = z.strictObject({
  pattern: z.enum(["sequential", "strided", "uniform", "zipf", "chase", "trace"]),
  footprint: Size.default(256 * 1024 * 1024),
  /** first guest virtual address of the footprint in each process */
  base: z
    .union([z.number().int().nonnegative(), z.string().regex(/^0x[0-9a-fA-F_]+$/)])
    .default(0x7f0000000000)
    .transform((v) => (typeof v === "number" ? v : Number.parseInt(v.replace(/_/g, ""), 16))),
  granularity: Size.default(64),
  stride: Size.default(4096),
  theta: z.number().gt(0).lt(1).default(0.99),
  accesses: z.number().int().positive().default(1_000_000),
  writeRatio: Fraction.default(0.2),
  processes: z.number().int().positive().max(64).default(1),
  switchEvery: z.number().int().nonnegative().default(0),
  ioExitsPerMillion: z.number().nonnegative().default(0),
  /** guest timer interrupts per simulated second (each a VM exit) */
  timerHz: z.number().nonnegative().default(0),
  content: ContentSchema.default({ kind: "unique" as const }),
  /** trace: a lackey trace file, relative to the scenario */
  trace: z.string().optional(),
  instructions: z.boolean().default(false),
  /**
   * touch the whole footprint of every process once before measuring (the program initialised
   * its memory), so the run measures the steady state rather than first-touch faults
   */
  warmup: z.boolean().default(true),
  /**
   * pages per simulated second the guest keeps writing (uniformly over its footprint) while the
   * host runs on to `duration` after the workload: the guest's dirty rate between its bursts
   */
  dirtyRate: z.number().nonnegative().default(0),
  /**
   * when the workload ends its processes exit: their 4 KiB data pages become free in the guest
   * (the host keeps backing them until a balloon or free page reporting gives them back)
   */
  exitAtEnd: z.boolean().default(false),
  /**
   * the guest's disk I/O through QEMU, in bytes per simulated second: 4 KiB reads and writes
   * at random over an image of `image` bytes, for as long as the VM runs (to `duration`); the
   * domain's first <disk>'s <driver cache> decides whether the host's page cache holds them
   */
  disk: z
    .strictObject({
      read: Size.default(0),
      write: Size.default(0),
      image: Size.pipe(z.number().positive()).default(4 * 2 ** 30),
    })
    .optional(),
});

export const GuestSchema = z
  .strictObject({
    levels: z.union([z.literal(4), z.literal(5)]).optional(),
    pageSize: PageSize.default("4K"),
    /** the guest's own swap device (a virtio-blk disk): the guest reclaims to it (docs/sim.md) */
    swap: Size.default(0),
  })
  .refine((g) => g.swap === 0 || g.pageSize === "4K", {
    message: "guest swap needs 4K guest pages (kvmem's guest swaps only 4 KiB data pages)",
    path: ["swap"],
  });

export const VmSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . -"),
    /** a libvirt domain XML file relative to the scenario */
    domain: z.string().optional(),
    /** or the XML inline */
    xml: z.string().optional(),
    /** a workload name from `workloads`, or one inline */
    workload: z.union([z.string(), WorkloadSchema]),
    guest: GuestSchema.default({ pageSize: "4K", swap: 0 }),
    /** override the domain's backing: 4K anonymous, thp, or hugetlbfs 2M/1G */
    backing: z.enum(["4K", "thp", "2M", "1G"]).optional(),
  })
  .refine((v) => (v.domain === undefined) !== (v.xml === undefined), {
    message: "give exactly one of 'domain' (a file) or 'xml' (inline)",
  });

export const EventSchema = z.union([
  z.strictObject({
    at: z.number().nonnegative(),
    setmem: z.strictObject({ vm: z.string(), target: Size }),
  }),
  z.strictObject({ at: z.number().nonnegative(), start: z.string() }),
  z.strictObject({ at: z.number().nonnegative(), stop: z.string() }),
  z.strictObject({
    at: z.number().nonnegative(),
    set: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])),
  }),
  z.strictObject({
    at: z.number().nonnegative(),
    workload: z.strictObject({ vm: z.string(), use: z.string() }),
  }),
]);

export const ScenarioSchema = z.strictObject({
  name: z.string().default("scenario"),
  description: z.string().optional(),
  seed: z.number().int().nonnegative().default(1),
  host: HostSchema,
  workloads: z.record(z.string(), WorkloadSchema).default({}),
  vms: z.array(VmSchema).min(1),
  /** events at simulated times in milliseconds */
  timeline: z.array(EventSchema).default([]),
  /** samples of the time series over the run */
  samples: z.number().int().positive().max(10000).default(50),
  /**
   * simulated milliseconds the host runs at least: when the workloads finish earlier the VMs
   * idle and the host's daemons (ksmd) keep running until then
   */
  duration: z.number().nonnegative().default(0),
});

export type Scenario = z.output<typeof ScenarioSchema>;
export type WorkloadConfig = z.output<typeof WorkloadSchema>;
export type VmEntry = z.output<typeof VmSchema>;

/** Turn zod issues into one-line problems: "vms[1].workload.pattern: 'zpif' is not accepted; ...". */
export function scenarioProblems(
  err: z.ZodError,
  input: unknown,
): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const valueAt = (path: PropertyKey[]) => {
    let v: unknown = input;
    for (const p of path)
      v = v && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
    return v;
  };
  const fmtPath = (path: PropertyKey[]) =>
    path
      .map((p, n) => (typeof p === "number" ? `[${p}]` : n === 0 ? String(p) : `.${String(p)}`))
      .join("") || "(top)";
  const visit = (issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
    for (const i of issues) {
      const path = [...prefix, ...i.path];
      const value = valueAt(path);
      if (i.code === "invalid_union" && i.errors.length > 0) {
        // report the branch that got furthest: the one whose first issue is deepest and not a
        // plain type mismatch of the value itself
        const best = [...i.errors].sort((a, b) => score(b) - score(a))[0];
        visit(best, path);
        continue;
      }
      const shown =
        value === undefined
          ? "missing"
          : `'${typeof value === "object" ? JSON.stringify(value) : String(value)}'`;
      let message: string;
      if (i.code === "invalid_value")
        message = `${shown} is not accepted; accepted: ${i.values.map(String).join(", ")}`;
      else if (i.code === "unrecognized_keys")
        message = `unknown key ${i.keys.map((k) => `'${k}'`).join(", ")}`;
      else if (i.code === "invalid_type")
        message = `${shown}: ${i.message.replace(/^Invalid input: /, "")}`;
      else message = `${shown}: ${i.message}`;
      out.push({ path: fmtPath(path), message });
    }
  };
  visit(err.issues, []);
  return out;
}

function score(issues: readonly z.core.$ZodIssue[]): number {
  if (issues.length === 0) return 0;
  const i = issues[0];
  return i.path.length * 2 + (i.code === "invalid_type" && i.path.length === 0 ? 0 : 1);
}

export function parseScenarioObject(obj: unknown, file: string): Scenario {
  const r = ScenarioSchema.safeParse(obj);
  if (r.success) return r.data;
  const [first, ...rest] = scenarioProblems(r.error, obj);
  throw new KvmemError({
    code: "E_SCENARIO",
    input: file,
    place: first.path,
    message:
      first.message +
      (rest.length ? ` (and ${rest.length} more: ${rest.map((p) => p.path).join(", ")})` : ""),
    hint: "see docs/sim.md for the scenario format",
  });
}
