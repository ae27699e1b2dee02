/**
 * Findings: what is wrong on the host, the evidence (file and value) and the exact fix, with its
 * numbers computed. Each rule is one function over the report; rules cite the kernel, KVM or
 * libvirt behaviour they rest on. Hugepage capacity is always judged by free pages of each size
 * (HugePages_Free / free_hugepages x size, per size and per NUMA node), never by MemFree:
 * hugetlb pages are reserved out of MemTotal and are not part of MemFree/MemAvailable
 * (Documentation/admin-guide/mm/hugetlbpage.rst).
 */
import { formatBytesHuman, pageSizeName } from "../units/size.js";
import type { Finding, HostReport } from "./schema.js";

type Base = Omit<HostReport, "findings" | "checks">;
type Rule = (r: Base) => Finding[];

const kib = (k: number) => formatBytesHuman(k * 1024);
const domainsNeed = (names: string[]) =>
  names.length === 1 ? `domain ${names[0]} needs` : `domains ${names.join(", ")} need`;
const sizeDir = (sizeKiB: number) => `hugepages-${sizeKiB}kB`;

const tdpRule: Rule = (r) => {
  const { tdp } = r.virt;
  if (tdp.inEffect) return [];
  const intel = r.virt.modules.find((m) => m.role === "intel");
  const amd = r.virt.modules.find((m) => m.role === "amd");
  const cpu = r.virt.cpu;
  const has = (f: string) => cpu.available && cpu.flags[f];
  const evidence = [
    {
      file: "/proc/cpuinfo",
      value: `ept=${has("ept") ? "yes" : "no"} npt=${has("npt") ? "yes" : "no"}`,
    },
  ];
  let fix: Finding["fix"];
  if (intel) {
    evidence.push({
      file: "/sys/module/kvm_intel/parameters/ept",
      value: intel.parameters.ept ?? "?",
    });
    fix = has("ept")
      ? {
          kind: "command",
          text: "modprobe -r kvm_intel && modprobe kvm_intel ept=1\necho 'options kvm_intel ept=1' > /etc/modprobe.d/kvm-ept.conf",
        }
      : {
          kind: "none",
          text: "The CPU offers no EPT: enable VT-x/EPT in the firmware, or on a nested host let L0 expose EPT (L0: kvm_intel nested=1; the L1 VM: <cpu mode='host-passthrough'/>).",
        };
  } else if (amd) {
    evidence.push({ file: "/sys/module/kvm_amd/parameters/npt", value: amd.parameters.npt ?? "?" });
    fix = has("npt")
      ? {
          kind: "command",
          text: "modprobe -r kvm_amd && modprobe kvm_amd npt=1\necho 'options kvm_amd npt=1' > /etc/modprobe.d/kvm-npt.conf",
        }
      : {
          kind: "none",
          text: "The CPU offers no NPT: enable SVM in the firmware, or on a nested host let L0 expose NPT (L0: kvm_amd nested=1).",
        };
  } else if (has("vmx")) {
    fix = { kind: "command", text: "modprobe kvm_intel ept=1 vpid=1" };
  } else if (has("svm")) {
    fix = { kind: "command", text: "modprobe kvm_amd npt=1" };
  } else {
    const pvm = r.virt.modules.find((m) => m.role === "pvm");
    if (pvm) evidence.push({ file: "/sys/module/kvm_pvm", value: "loaded" });
    fix = {
      kind: "none",
      text: "EPT/NPT needs VMX or SVM in this CPU: run on hardware with VT-x+EPT or AMD-V+NPT, or ask the L0 hypervisor to expose them (nested virtualization, <cpu mode='host-passthrough'/>).",
    };
  }
  return [
    {
      id: "tdp-off",
      severity: "critical",
      title: `Two-dimensional paging (EPT/NPT) is not in effect: ${tdp.reason}`,
      evidence,
      fix,
    },
  ];
};

const vpidRule: Rule = (r) => {
  if (r.virt.vpid.inEffect) return [];
  const intel = r.virt.modules.find((m) => m.role === "intel");
  const cpu = r.virt.cpu;
  const has = cpu.available && cpu.flags.vpid;
  const evidence = [{ file: "/proc/cpuinfo", value: `vpid=${has ? "yes" : "no"}` }];
  if (intel) {
    evidence.unshift({
      file: "/sys/module/kvm_intel/parameters/vpid",
      value: intel.parameters.vpid ?? "?",
    });
  }
  let fix: Finding["fix"];
  if (intel && has) {
    fix = {
      kind: "command",
      text: "modprobe -r kvm_intel && modprobe kvm_intel vpid=1\necho 'options kvm_intel vpid=1' > /etc/modprobe.d/kvm-vpid.conf",
    };
  } else if (!intel && has) {
    fix = { kind: "command", text: "modprobe kvm_intel vpid=1" };
  } else {
    fix = {
      kind: "none",
      text: "The CPU offers no VPID (a VMX feature); on a nested host let L0 expose it (<cpu mode='host-passthrough'/>).",
    };
  }
  return [
    {
      id: "vpid-off",
      severity: "warning",
      title: `VPID is not in effect: ${r.virt.vpid.reason}`,
      evidence,
      fix,
    },
  ];
};

const hugepagePoolRule: Rule = (r) => {
  const out: Finding[] = [];
  const def = r.hugepages.defaultSizeKiB;
  for (const d of r.domains.totals.hugepageDemand) {
    const pool = r.hugepages.pools.find((p) => p.sizeKiB === d.sizeKiB);
    const who = r.domains.domains.filter((x) => x.hugepages.some((h) => h.sizeKiB === d.sizeKiB));
    const names = who.map((x) => x.name).join(", ");
    if (!pool) {
      out.push({
        id: "hugepage-size-unavailable",
        severity: "critical",
        title: `Domains ${names} need ${pageSizeName(d.sizeKiB * 1024)} huge pages, a size this host does not offer`,
        evidence: [
          {
            file: "/sys/kernel/mm/hugepages",
            value: r.hugepages.pools.map((p) => sizeDir(p.sizeKiB)).join(" ") || "none",
          },
        ],
        fix: {
          kind: "command",
          text: `# reserve at boot (kernel command line): hugepagesz=${pageSizeName(d.sizeKiB * 1024)} hugepages=${d.pagesNeeded}`,
        },
      });
      continue;
    }
    // pages already held by running domains are not free; the others must fit in free_hugepages
    const short = d.pagesNeededNotRunning - pool.free;
    if (short > 0) {
      const target = pool.nr + short;
      const cmd =
        d.sizeKiB === def
          ? `sysctl vm.nr_hugepages=${target}`
          : `echo ${target} > /sys/kernel/mm/hugepages/${sizeDir(d.sizeKiB)}/nr_hugepages`;
      out.push({
        id: "hugepage-pool-short",
        severity: "critical",
        title: `The ${pageSizeName(d.sizeKiB * 1024)} hugepage pool is ${short} pages (${kib(short * d.sizeKiB)}) short of what ${domainsNeed(who.filter((x) => x.state !== "running").map((x) => x.name))} to start`,
        evidence: [
          {
            file: `/sys/kernel/mm/hugepages/${sizeDir(d.sizeKiB)}/free_hugepages`,
            value: String(pool.free),
          },
          {
            file: "domains (not running)",
            value: `${d.pagesNeededNotRunning} pages of ${kib(d.sizeKiB)}`,
          },
        ],
        fix: {
          kind: "command",
          text: `${cmd}\necho 'vm.nr_hugepages = ${target}' > /etc/sysctl.d/80-hugepages.conf`,
        },
      });
    }
    // per NUMA node: a domain bound to host nodes needs the pages on those nodes
    for (const dom of who) {
      if (!dom.hostNodes || dom.state === "running" || pool.nodes.length === 0) continue;
      const pages = Math.ceil(
        (dom.hugepages.find((h) => h.sizeKiB === d.sizeKiB)?.backedKiB ?? 0) / d.sizeKiB,
      );
      const free = pool.nodes
        .filter((n) => dom.hostNodes?.includes(n.node))
        .reduce((s, n) => s + n.free, 0);
      if (pages > free) {
        const node = dom.hostNodes[0];
        const nn = pool.nodes.find((n) => n.node === node);
        out.push({
          id: "hugepage-node-short",
          severity: "critical",
          title: `Domain ${dom.name} is bound to host node(s) ${dom.hostNodes.join(",")} whose ${pageSizeName(d.sizeKiB * 1024)} pools hold ${free} free pages; it needs ${pages}`,
          evidence: pool.nodes
            .filter((n) => dom.hostNodes?.includes(n.node))
            .map((n) => ({
              file: `/sys/devices/system/node/node${n.node}/hugepages/${sizeDir(d.sizeKiB)}/free_hugepages`,
              value: String(n.free),
            })),
          fix: {
            kind: "command",
            text: `echo ${(nn?.nr ?? 0) + (pages - free)} > /sys/devices/system/node/node${node}/hugepages/${sizeDir(d.sizeKiB)}/nr_hugepages`,
          },
        });
      }
    }
    if (!d.mounted) {
      const name = pageSizeName(d.sizeKiB * 1024);
      const mp = d.sizeKiB === def ? "/dev/hugepages" : `/dev/hugepages${name}`;
      out.push({
        id: "hugetlbfs-mount-missing",
        severity: "critical",
        title: `No hugetlbfs mount offers ${name} pages, which domains ${names} need (libvirt: "Unable to find any usable hugetlbfs mount")`,
        evidence: [
          {
            file: r.hugepages.mountsSource ?? "/proc/mounts",
            value:
              r.hugepages.mounts
                .map((m) => `${m.mountPoint} pagesize=${m.pageSizeKiB}kB`)
                .join("; ") || "no hugetlbfs mount",
          },
        ],
        fix: {
          kind: "command",
          text: `mkdir -p ${mp} && mount -t hugetlbfs -o pagesize=${name} hugetlbfs ${mp}`,
        },
      });
    }
  }
  return out;
};

const balloonRule: Rule = (r) => {
  const out: Finding[] = [];
  const overcommitted = (r.domains.totals.overcommitRatio ?? 0) > 1;
  for (const d of r.domains.domains) {
    const b = d.balloon;
    if (b.model === "none") continue;
    const why =
      d.hugepages.length > 0
        ? "hugepage-backed (a 4 KiB balloon page freed inside a huge page returns nothing to the host)"
        : d.locked
          ? "locked (<locked/> pins all guest memory)"
          : "";
    if (why) {
      out.push({
        id: "balloon-cannot-reclaim",
        severity: "warning",
        title: `Domain ${d.name} has a ${b.model} balloon but is ${why}`,
        evidence: [
          {
            file: d.file,
            value: `<memballoon model='${b.model}'/> with ${d.hugepages.length > 0 ? "<hugepages/>" : "<locked/>"}`,
          },
        ],
        fix: {
          kind: "xml",
          text: "<memballoon model='none'/>  (or drop <hugepages/>/<locked/> if the balloon must reclaim)",
        },
      });
      continue;
    }
    if (b.statsPeriod === null || b.statsPeriod === 0) {
      out.push({
        id: "balloon-no-stats",
        severity: "info",
        title: `Domain ${d.name}'s balloon has no stats period: virsh dommemstat shows only 'actual', the guest's memory statistics stay empty`,
        evidence: [
          { file: d.file, value: `<memballoon model='${b.model}'> without <stats period=.../>` },
        ],
        fix: {
          kind: "xml",
          text: `<memballoon model='${b.model}'>\n  <stats period='10'/>\n</memballoon>`,
        },
      });
    }
    if (overcommitted && !b.freePageReporting) {
      out.push({
        id: "balloon-no-free-page-reporting",
        severity: "warning",
        title: `The host is overcommitted and domain ${d.name}'s balloon does not report free pages: memory the guest frees stays allocated on the host`,
        evidence: [
          { file: d.file, value: `<memballoon model='${b.model}'> without freePageReporting='on'` },
          {
            file: "domains",
            value: `overcommit ratio ${(r.domains.totals.overcommitRatio ?? 0).toFixed(2)}`,
          },
        ],
        fix: { kind: "xml", text: `<memballoon model='${b.model}' freePageReporting='on'/>` },
      });
    }
  }
  return out;
};

export const RULES: Rule[] = [tdpRule, vpidRule, hugepagePoolRule, balloonRule];
