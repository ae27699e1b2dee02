/**
 * Build the host report: the seed's sections 1-4 (memory, EPT/VPID, huge pages, overcommit),
 * the libvirt domains against the host, then findings and the virt-host-validate style checks.
 * Pure over a ProcFs: the live host, a captured tree and the simulator go through this one path.
 */
import { type DomainReader, readDomains } from "./domains.js";
import { RULES } from "./findings.js";
import { OVERCOMMIT_RULES } from "./findings-overcommit.js";
import type { ProcFs } from "./procfs.js";
import type { Check, Finding, HostReport } from "./schema.js";
import { readHugepages, readMemory, readOvercommit, readVirt } from "./sections.js";

export function buildHostReport(fs: ProcFs, reader: DomainReader): HostReport {
  const problems: string[] = [];
  const memory = readMemory(fs, problems);
  const meminfo = memory.available ? memory.meminfo : undefined;
  const virt = readVirt(fs);
  const hugepages = readHugepages(fs, meminfo);
  const overcommit = readOvercommit(fs, meminfo);
  const domains = readDomains(fs, reader, meminfo?.MemTotal, hugepages);
  for (const d of domains.domains) for (const p of d.problems) problems.push(`${d.file}: ${p}`);
  const base = {
    schemaVersion: 1 as const,
    source: { kind: fs.kind, label: fs.label },
    memory,
    virt,
    hugepages,
    overcommit,
    domains,
    problems,
  };
  const findings: Finding[] = [];
  for (const rule of [...RULES, ...OVERCOMMIT_RULES]) findings.push(...rule(base));
  const order = { critical: 0, warning: 1, info: 2 } as const;
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  return { ...base, findings, checks: buildChecks(base, findings) };
}

/** The checks `kvmem host --check` prints, each fed by the findings with these ids. */
export const CHECKS: ReadonlyArray<{
  name: string;
  ids: string[];
  skip?: (r: Omit<HostReport, "findings" | "checks">) => string | undefined;
}> = [
  { name: "for device /dev/kvm", ids: ["no-dev-kvm"] },
  {
    name: "for hardware virtualization",
    ids: [],
    skip: (r) => {
      const c = r.virt.cpu;
      if (!c.available) return `FAIL:${c.reason}`;
      if (c.flags.vmx || c.flags.svm) return undefined;
      return `FAIL:the CPU offers neither VMX nor SVM${c.nested ? " (this host is a VM: enable nested virtualization on L0)" : ""}`;
    },
  },
  { name: "if two-dimensional paging (EPT/NPT) is in effect", ids: ["tdp-off"] },
  { name: "if VPID is in effect", ids: ["vpid-off"] },
  {
    name: "hugepage pools against hugepage-backed domains",
    ids: ["hugepage-pool-short", "hugepage-node-short", "hugepage-size-unavailable"],
  },
  { name: "for a hugetlbfs mount per page size in use", ids: ["hugetlbfs-mount-missing"] },
  { name: "transparent huge pages", ids: ["thp-never"] },
  {
    name: "memory overcommit safety (swap, KSM)",
    ids: ["overcommit-no-safety-net", "swap-mostly-useless"],
  },
  { name: "KSM page sharing", ids: ["ksm-merges-nothing", "ksm-rmap-overhead"] },
  {
    name: "balloon devices",
    ids: ["balloon-cannot-reclaim", "balloon-no-stats", "balloon-no-free-page-reporting"],
  },
];

function buildChecks(base: Omit<HostReport, "findings" | "checks">, findings: Finding[]): Check[] {
  return CHECKS.map((c) => {
    const pre = c.skip?.(base);
    if (pre) {
      const [status, detail] = [pre.slice(0, pre.indexOf(":")), pre.slice(pre.indexOf(":") + 1)];
      return { name: c.name, status: status as Check["status"], detail };
    }
    const hits = findings.filter((f) => c.ids.includes(f.id));
    if (hits.some((f) => f.severity === "critical")) {
      return {
        name: c.name,
        status: "FAIL",
        detail: hits.find((f) => f.severity === "critical")!.title,
      };
    }
    const warn = hits.find((f) => f.severity === "warning");
    if (warn) return { name: c.name, status: "WARN", detail: warn.title };
    const info = hits[0];
    return { name: c.name, status: "PASS", detail: info ? info.title : "" };
  });
}
