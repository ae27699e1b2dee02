/**
 * Findings about overcommit (the seed's section 4) and transparent huge pages: swap, KSM,
 * THP. KSM's counters mean what Documentation/admin-guide/mm/ksm.rst says: pages_sharing is the
 * memory saved, pages_unshared the pages scanned with no match yet, pages_volatile those that
 * change too fast to merge; general_profit subtracts the rmap_items' own memory.
 */
import { formatBytesHuman } from "../units/size.js";
import type { Finding, HostReport } from "./schema.js";

type Base = Omit<HostReport, "findings" | "checks">;
type Rule = (r: Base) => Finding[];

const kib = (k: number) => formatBytesHuman(k * 1024);
const KSM = "/sys/kernel/mm/ksm";

const kvmPresent = (r: Base) => r.virt.devKvm.present || r.virt.modules.length > 0;
const swapKiB = (r: Base) => r.overcommit.swaps.reduce((s, x) => s + x.sizeKiB, 0);
const memTotal = (r: Base) => (r.memory.available ? (r.memory.meminfo.MemTotal ?? 0) : 0);

const overcommitRule: Rule = (r) => {
  const ratio = r.domains.totals.overcommitRatio;
  if (ratio === null || ratio <= 1) return [];
  const ksm = r.overcommit.ksm;
  const ksmOn = ksm.available && ksm.values.run === 1;
  if (swapKiB(r) > 0 || ksmOn) return [];
  const excess = r.domains.totals.currentMemoryKiB - memTotal(r);
  const swapGiB = Math.ceil(excess / (1024 * 1024));
  return [
    {
      id: "overcommit-no-safety-net",
      severity: "critical",
      title: `Domains are given ${kib(r.domains.totals.currentMemoryKiB)} on a host with ${kib(memTotal(r))} (ratio ${ratio.toFixed(2)}), with no swap and KSM off: when guests touch their memory the OOM killer ends a VM`,
      evidence: [
        { file: "/proc/meminfo", value: `MemTotal ${memTotal(r)} kB` },
        { file: "/proc/swaps", value: "no swap device" },
        { file: `${KSM}/run`, value: ksm.available ? String(ksm.values.run ?? "?") : ksm.reason },
      ],
      fix: {
        kind: "command",
        text: `echo 1 > ${KSM}/run\nfallocate -l ${swapGiB}G /swapfile && chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile`,
      },
    },
  ];
};

const ksmRule: Rule = (r) => {
  const ksm = r.overcommit.ksm;
  if (!ksm.available || !kvmPresent(r)) return [];
  const v = ksm.values;
  const doms = r.domains.domains;
  const ev = (name: string) => ({ file: `${KSM}/${name}`, value: String(v[name] ?? "absent") });
  const overcommitted = (r.domains.totals.overcommitRatio ?? 0) > 1;
  if (v.run === 0) {
    if (doms.length === 0 && !overcommitted) return [];
    return [
      {
        id: "ksm-merges-nothing",
        severity: overcommitted ? "warning" : "info",
        title:
          "KSM merges nothing: it is off (run=0), so identical guest pages are stored once per VM",
        evidence: [ev("run")],
        fix: { kind: "command", text: `echo 1 > ${KSM}/run` },
      },
    ];
  }
  if (v.run !== 1) return [];
  const sharing = v.pages_sharing ?? 0;
  if (sharing === 0 && (v.full_scans ?? 0) > 0) {
    const mergeable = doms.filter((d) => !d.nosharepages && d.hugepages.length === 0);
    if (doms.length > 0 && mergeable.length === 0) {
      return [
        {
          id: "ksm-merges-nothing",
          severity: "warning",
          title:
            "KSM runs but merges nothing: every domain has <nosharepages/> or hugepage backing (QEMU then does not madvise guest RAM MADV_MERGEABLE; KSM never merges huge pages)",
          evidence: [
            ev("pages_sharing"),
            ...doms.map((d) => ({
              file: d.file,
              value: d.nosharepages ? "<nosharepages/>" : "<hugepages/>",
            })),
          ],
          fix: {
            kind: "xml",
            text: `remove <nosharepages/> from <memoryBacking> of a domain whose memory may be shared, or turn KSM off: echo 0 > ${KSM}/run`,
          },
        },
      ];
    }
    if ((v.pages_unshared ?? 0) + (v.pages_volatile ?? 0) === 0) {
      return [
        {
          id: "ksm-merges-nothing",
          severity: "info",
          title:
            "KSM runs but finds nothing to scan: no process has MADV_MERGEABLE memory (no VM running, or QEMU started with mem-merge=off)",
          evidence: [
            ev("pages_sharing"),
            ev("pages_unshared"),
            ev("pages_volatile"),
            ev("full_scans"),
          ],
          fix: {
            kind: "command",
            text: `echo 0 > ${KSM}/run   # nothing to merge: save ksmd's CPU time`,
          },
        },
      ];
    }
    return [
      {
        id: "ksm-merges-nothing",
        severity: "info",
        title: `KSM scanned ${v.full_scans} times and found no identical pages (${v.pages_unshared ?? 0} unshared, ${v.pages_volatile ?? 0} volatile): guests hold unique data`,
        evidence: [ev("pages_sharing"), ev("pages_unshared"), ev("pages_volatile")],
        fix: {
          kind: "command",
          text: `echo 0 > ${KSM}/run   # or keep it if guests will run the same images`,
        },
      },
    ];
  }
  if (v.general_profit !== undefined && ksm.rmapBytes !== null && v.general_profit <= 0) {
    return [
      {
        id: "ksm-rmap-overhead",
        severity: "warning",
        title: `KSM costs more than it saves: its rmap_items take ${formatBytesHuman(ksm.rmapBytes)} while merging saves ${formatBytesHuman(sharing * 4096)} (general_profit ${v.general_profit})`,
        evidence: [ev("general_profit"), ev("pages_sharing"), ev("pages_unshared")],
        fix: {
          kind: "command",
          text: `echo 2 > ${KSM}/run   # unmerge and free the rmap_items; enable again only for guests that share`,
        },
      },
    ];
  }
  return [];
};

const thpRule: Rule = (r) => {
  if (!kvmPresent(r) || r.hugepages.thp.enabled !== "never") return [];
  return [
    {
      id: "thp-never",
      severity: "warning",
      title:
        "Transparent huge pages are off: guest RAM not backed by hugetlbfs gets 4 KiB host pages, so EPT maps it at 4 KiB and TLB reach shrinks",
      evidence: [{ file: "/sys/kernel/mm/transparent_hugepage/enabled", value: "never" }],
      fix: {
        kind: "command",
        text: "# QEMU madvises guest RAM MADV_HUGEPAGE, so madvise is enough\necho madvise > /sys/kernel/mm/transparent_hugepage/enabled",
      },
    },
  ];
};

const swapRule: Rule = (r) => {
  const swap = swapKiB(r);
  const t = r.domains.totals;
  if (swap === 0 || t.memoryKiB === 0) return [];
  if (t.unswappableKiB * 2 <= t.memoryKiB) return [];
  return [
    {
      id: "swap-mostly-useless",
      severity: "warning",
      title: `Swap (${kib(swap)}) is present but ${kib(t.unswappableKiB)} of ${kib(t.memoryKiB)} guest memory is hugepage-backed or locked and can never be swapped`,
      evidence: [
        { file: "/proc/swaps", value: `${kib(swap)}` },
        {
          file: "domains",
          value: r.domains.domains
            .filter((d) => d.hugepages.length > 0 || d.locked)
            .map((d) => d.name)
            .join(", "),
        },
      ],
      fix: {
        kind: "none",
        text: "Size the host for the hugepage/locked domains without counting swap; overcommit only the 4 KiB-backed domains.",
      },
    },
  ];
};

/** Guest memory in host swap: every access to it is a major fault (a disk read) in the VM. */
const guestSwappedRule: Rule = (r) => {
  const swapped = r.overcommit.qemu.processes.filter((p) => (p.vmSwapKiB ?? 0) > 0);
  if (swapped.length === 0) return [];
  const total = swapped.reduce((a, p) => a + (p.vmSwapKiB ?? 0), 0);
  const first = swapped[0];
  const dom = r.domains.domains.find((d) => d.name === first.guest);
  // formatdomain "locked": QEMU/KVM needs <hard_limit> set to the domain's maximum memory plus
  // what QEMU itself uses; 1 GiB of headroom is a common allowance
  const limit = dom
    ? String((dom.maxMemoryKiB ?? dom.memoryKiB) + 1048576)
    : "GUEST_MEMORY_KIB_PLUS_1048576"; // no domain XML for it: the user fills the figure in
  return [
    {
      id: "guest-memory-in-swap",
      severity: "warning",
      title: `${kib(total)} of guest memory is in host swap (${swapped.map((p) => `${p.guest ?? `pid ${p.pid}`} ${kib(p.vmSwapKiB ?? 0)}`).join(", ")}): each access to it is a major fault, a disk read, while the vCPU waits`,
      evidence: swapped.map((p) => ({
        file: `/proc/${p.pid}/status`,
        value: `VmSwap: ${p.vmSwapKiB} kB (VmRSS ${p.vmRssKiB ?? "?"} kB)`,
      })),
      fix: {
        kind: "xml",
        text:
          `Free ${kib(total)} of host memory (KSM, a balloon target on an idle guest, fewer guests);\n` +
          `a guest that must never be swapped gets locked memory${first.guest ? ` (virsh edit ${first.guest})` : ""}:\n` +
          `<memoryBacking><locked/></memoryBacking>\n` +
          `<memtune><hard_limit unit='KiB'>${limit}</hard_limit></memtune>`,
      },
    },
  ];
};

const devKvmRule: Rule = (r) => {
  if (r.virt.devKvm.present) return [];
  const cpu = r.virt.cpu;
  const intel = cpu.available && cpu.flags.vmx;
  const amd = cpu.available && cpu.flags.svm;
  return [
    {
      id: "no-dev-kvm",
      severity: "critical",
      title: "/dev/kvm is missing: QEMU cannot use KVM and falls back to TCG emulation",
      evidence: [{ file: "/dev/kvm", value: r.virt.devKvm.reason }],
      fix: intel
        ? { kind: "command", text: "modprobe kvm_intel" }
        : amd
          ? { kind: "command", text: "modprobe kvm_amd" }
          : {
              kind: "none",
              text: "The CPU has neither VMX nor SVM; enable virtualization in the firmware or on L0.",
            },
    },
  ];
};

export const OVERCOMMIT_RULES: Rule[] = [
  devKvmRule,
  overcommitRule,
  ksmRule,
  thpRule,
  swapRule,
  guestSwappedRule,
];
