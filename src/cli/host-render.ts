/** The text form of the host report: the seed's sections in order, then findings. */
import type { HostReport } from "../inspect/schema.js";
import { formatBytesHuman, pageSizeName } from "../units/size.js";
import { heading, indentBlock, table, WIDTH, wrap } from "./text.js";

const kib = (k: number) => formatBytesHuman(k * 1024);
const size = (k: number) => pageSizeName(k * 1024);

/** `label` then `text` wrapped within WIDTH, continuation lines aligned after the label. */
function para(label: string, text: string, indent: number): string {
  const lead = " ".repeat(indent);
  return wrap(text, WIDTH - indent - label.length)
    .map((l, i) => `${lead}${i ? " ".repeat(label.length) : label}${l}\n`)
    .join("");
}

/** /proc/meminfo fields that matter for VMs, and what they say. */
export const VM_MEMINFO_FIELDS: Array<[string, string]> = [
  ["MemTotal", "RAM the kernel manages (excludes firmware/kernel reservations)"],
  ["MemFree", "RAM nobody uses"],
  ["MemAvailable", "RAM that can be given to new VMs without swapping (kernel estimate)"],
  ["Cached", "page cache (file data), reclaimable"],
  ["AnonPages", "anonymous memory: where 4 KiB/THP-backed guest RAM lives"],
  ["Shmem", "shared memory: memfd/shared guest RAM counts here"],
  ["Mlocked", "locked memory (<locked/> domains), never swapped"],
  ["PageTables", "page tables, including QEMU's mappings of guest RAM"],
  ["SecPageTables", "secondary page tables: KVM's EPT/NPT tables (kernel 6.1+)"],
  ["AnonHugePages", "anonymous memory backed by transparent huge pages"],
  ["HugePages_Total", "default-size hugetlb pool (pages)"],
  ["HugePages_Free", "of which free (pages): the capacity for hugepage-backed VMs"],
  ["Hugetlb", "all hugetlb pools, every size (kB)"],
  ["SwapTotal", "swap space"],
  ["SwapFree", "unused swap"],
  ["Committed_AS", "memory promised to processes; above CommitLimit means overcommitted"],
  ["CommitLimit", "overcommit limit (vm.overcommit_ratio, applies in mode 2)"],
  ["Balloon", "guest side: memory the virtio balloon has taken from this kernel"],
];

export function renderHost(r: HostReport): string {
  const out: string[] = [];
  out.push(
    `kvmem host: ${r.source.kind === "live" ? "this machine" : `${r.source.kind} ${r.source.label}`}\n`,
  );

  out.push(heading(1, "Memory"));
  if (!r.memory.available) out.push(`  not available: ${r.memory.reason}\n`);
  else {
    const m = r.memory;
    out.push(
      "  $ free -g\n",
      indentBlock(m.freeG, 2),
      "  $ free -h\n",
      indentBlock(m.freeH, 2),
      "\n",
    );
    const rows = VM_MEMINFO_FIELDS.filter(([k]) => m.meminfo[k] !== undefined).map(([k, why]) => [
      `${k}:`,
      k.startsWith("HugePages_") ? String(m.meminfo[k]) : `${m.meminfo[k]} kB`,
      k.startsWith("HugePages_") ? "" : kib(m.meminfo[k]),
      why,
    ]);
    out.push("  /proc/meminfo (the fields that matter for VMs)\n", table(rows, { indent: 4 }));
    out.push("\n  $ dmesg | grep Memory:\n");
    out.push(
      m.boot.available
        ? para("", m.boot.line, 4) +
            para(
              "",
              `${kib(m.boot.availableKiB)} of ${kib(m.boot.totalKiB)} of RAM was free when the kernel finished booting its memory manager (the rest held the kernel, its reservations, and memory not yet onlined)`,
              4,
            )
        : `    not available: ${m.boot.reason}\n`,
    );
  }

  out.push(heading(2, "EPT and VPID"));
  const v = r.virt;
  if (!v.cpu.available) out.push(`  CPU: not available: ${v.cpu.reason}\n`);
  else {
    const c = v.cpu;
    out.push(
      `  CPU: ${c.vendor ?? "?"}, ${c.modelName ?? "?"}, ${c.cpus} logical CPUs${c.nested ? " (runs under a hypervisor)" : ""}\n`,
    );
    const fl = Object.entries(c.flags).map(([k, on]) => `${k}:${on ? "yes" : "no"}`);
    out.push(para("flags: ", fl.join(" "), 2));
    if (c.vmxFlags === null)
      out.push("  vmx flags: not printed by this kernel or CPU (needs Linux 5.9+ and VMX)\n");
  }
  out.push(`  /dev/kvm: ${v.devKvm.present ? "present" : v.devKvm.reason}\n`);
  if (v.modules.length === 0) out.push("  KVM modules: none loaded\n");
  for (const mod of v.modules) {
    const interesting = [
      "ept",
      "vpid",
      "npt",
      "enable_apicv",
      "tdp_mmu",
      "nx_huge_pages",
      "nested",
      "unrestricted_guest",
      "flexpriority",
      "enable_shadow_vmcs",
      "pml",
      "eptad",
      "ept_ad",
      "avic",
    ];
    const ps = Object.entries(mod.parameters)
      .filter(([k]) => interesting.includes(k))
      .map(([k, val]) => `${k}=${val}`);
    out.push(
      `  module ${mod.name}: ${ps.length ? ps.join(" ") : `${Object.keys(mod.parameters).length} parameters`}\n`,
    );
  }
  out.push(
    table([
      [
        "two-dimensional paging",
        v.tdp.inEffect ? `yes (${v.tdp.mode})` : `no (${v.tdp.mode})`,
        v.tdp.reason,
      ],
      ["VPID", v.vpid.inEffect ? `yes (${v.vpid.mode})` : "no", v.vpid.reason],
    ]),
  );

  out.push(heading(3, "Huge pages"));
  const h = r.hugepages;
  out.push(
    `  base page size: ${h.basePageSizeKiB} KiB; default huge page size: ${h.defaultSizeKiB ? size(h.defaultSizeKiB) : "none"}\n`,
  );
  if (h.pools.length === 0)
    out.push("  hugetlb pools: none (no /sys/kernel/mm/hugepages and no Hugepagesize)\n");
  else {
    const rows = h.pools.flatMap((p) => [
      [
        size(p.sizeKiB),
        "all",
        String(p.nr),
        String(p.free),
        String(p.resv),
        String(p.surplus),
        String(p.overcommit),
        kib(p.free * p.sizeKiB),
      ],
      ...p.nodes.map((n) => [
        "",
        `node${n.node}`,
        String(n.nr),
        String(n.free),
        "",
        String(n.surplus),
        "",
        kib(n.free * p.sizeKiB),
      ]),
    ]);
    out.push(
      table(rows, {
        header: ["size", "node", "nr", "free", "rsvd", "surplus", "overcommit", "free capacity"],
      }),
    );
  }
  out.push(
    `  hugetlbfs mounts (${h.mountsSource ?? "no mount table"}): ${h.mounts.length ? h.mounts.map((m) => `${m.mountPoint} (${m.pageSizeKiB ? size(m.pageSizeKiB) : "?"})`).join(", ") : "none"}\n`,
  );
  out.push(
    `  THP: enabled=${h.thp.enabled ?? "?"} defrag=${h.thp.defrag ?? "?"}${h.thp.reason ? ` (${h.thp.reason})` : ""}\n`,
  );
  const hm = Object.entries(h.meminfo).map(([k, val]) => `${k} ${kib(val)}`);
  if (hm.length) out.push(para("", hm.join(", "), 2));
  const nm = h.nodeMemory ?? [];
  if (nm.length > 1) {
    out.push("  NUMA nodes (/sys/devices/system/node/nodeN/meminfo, numastat)\n");
    out.push(
      table(
        nm.map((n) => [
          `node${n.node}`,
          kib(n.memTotalKiB),
          kib(n.memFreeKiB),
          kib(n.anonHugePagesKiB),
          n.numaMiss === null ? "?" : String(n.numaMiss),
          n.otherNode === null ? "?" : String(n.otherNode),
        ]),
        { header: ["node", "MemTotal", "MemFree", "AnonHugePages", "numa_miss", "other_node"] },
      ),
    );
  }

  out.push(heading(4, "Overcommit"));
  const o = r.overcommit;
  if (o.swaps.length === 0) out.push(`  swap: none${o.swapsReason ? ` (${o.swapsReason})` : ""}\n`);
  else
    out.push(
      table(
        o.swaps.map((s) => [
          s.filename,
          s.type,
          kib(s.sizeKiB),
          `${kib(s.usedKiB)} used`,
          `prio ${s.priority}`,
        ]),
        { header: ["swap", "type", "size", "used", "priority"] },
      ),
    );
  out.push(
    para(
      "sysctl: ",
      Object.entries(o.sysctl)
        .map(([k, val]) => `vm.${k}=${val}`)
        .join(" ") || "not available",
      2,
    ),
  );
  if (!o.ksm.available) out.push(`  KSM: not available: ${o.ksm.reason}\n`);
  else {
    const k = o.ksm;
    const tun = [
      "run",
      "pages_to_scan",
      "sleep_millisecs",
      "merge_across_nodes",
      "use_zero_pages",
      "max_page_sharing",
      "smart_scan",
    ];
    const tunables = tun.filter((t) => k.values[t] !== undefined).map((t) => `${t}=${k.values[t]}`);
    out.push(para("KSM: ", tunables.join(" "), 2));
    const counters = Object.entries(k.values).filter(
      ([n]) =>
        !tun.includes(n) && !n.startsWith("advisor_") && n !== "stable_node_chains_prune_millisecs",
    );
    out.push(
      ...wrap(`counters: ${counters.map(([n, val]) => `${n}=${val}`).join(" ")}`, WIDTH - 7).map(
        (l) => `       ${l}\n`,
      ),
    );
    out.push(
      `       saves ${formatBytesHuman(k.savedBytes)} (${k.savedSource === "general_profit" ? "general_profit, net of rmap_items" : "pages_sharing x 4 KiB; this kernel has no general_profit"})\n`,
    );
  }
  out.push(
    `  Balloon (guest side, /proc/meminfo): ${o.balloonKiB === null ? "no 'Balloon:' field in this kernel's /proc/meminfo" : kib(o.balloonKiB)}\n`,
  );
  const q = o.qemu;
  if (q.processes.length === 0) {
    out.push(`  QEMU processes: none${q.reason ? ` (${q.reason})` : ""}\n`);
  } else {
    const v = (x: number | null) => (x === null ? "-" : kib(x));
    out.push("  QEMU processes (/proc/PID/status, /proc/PID/ksm_stat)\n");
    out.push(
      table(
        q.processes.map((p) => [
          String(p.pid),
          p.guest ?? "?",
          v(p.vmRssKiB),
          v(p.rssAnonKiB),
          v(p.rssFileKiB),
          v(p.rssShmemKiB),
          v(p.hugetlbKiB),
          v(p.vmSwapKiB),
          p.ksm?.mergingPages == null ? "-" : kib(p.ksm.mergingPages * 4),
        ]),
        {
          header: [
            "pid",
            "guest",
            "VmRSS",
            "anon",
            "file",
            "shmem",
            "hugetlb",
            "swap",
            "KSM merged",
          ],
          indent: 2,
        },
      ),
    );
  }

  out.push(heading(5, "Domains"));
  const d = r.domains;
  for (const dir of d.dirs)
    out.push(
      `  ${dir.dir}: ${dir.reason ? `not available (${dir.reason})` : `${dir.found} XML files`}\n`,
    );
  if (d.domains.length) {
    out.push(
      table(
        d.domains.map((x) => [
          x.name,
          x.state,
          kib(x.memoryKiB),
          kib(x.currentMemoryKiB),
          x.hugepages.length
            ? x.hugepages.map((hp) => size(hp.sizeKiB)).join("+")
            : x.source === "anonymous"
              ? "4K/THP"
              : x.source,
          [
            x.locked ? "locked" : "",
            x.nosharepages ? "nosharepages" : "",
            x.balloon.model === "none" ? "no balloon" : `balloon ${x.balloon.model}`,
          ]
            .filter(Boolean)
            .join(", "),
        ]),
        { header: ["domain", "state", "memory", "current", "backing", "notes"] },
      ),
    );
    const t = d.totals;
    out.push(
      `  total ${kib(t.memoryKiB)} (current ${kib(t.currentMemoryKiB)})${t.overcommitRatio !== null ? `, overcommit ratio ${t.overcommitRatio.toFixed(2)} of MemTotal` : ""}\n`,
    );
    out.push(
      `  balloon headroom ${kib(t.balloonHeadroomKiB)}; never swappable (hugepages/locked) ${kib(t.unswappableKiB)}\n`,
    );
    for (const hd of t.hugepageDemand) {
      out.push(
        `  ${size(hd.sizeKiB)} pages: domains need ${hd.pagesNeeded} (${hd.pagesNeededNotRunning} not yet running), pool ${hd.poolNr}, free ${hd.poolFree}${hd.mounted ? "" : ", no hugetlbfs mount"}\n`,
      );
    }
  }

  out.push("\nFindings\n========\n");
  if (r.findings.length === 0) out.push("  none\n");
  for (const f of r.findings) {
    out.push(
      ...wrap(`[${f.severity.toUpperCase()}] ${f.title}`, WIDTH - 2).map(
        (l, i) => `${i ? "    " : "  "}${l}\n`,
      ),
    );
    for (const e of f.evidence)
      out.push(
        ...wrap(`evidence: ${e.file} = ${e.value}`, WIDTH - 4).map(
          (l, i) => `${i ? "      " : "    "}${l}\n`,
        ),
      );
    if (f.fix.kind === "none")
      out.push(
        ...wrap(`fix: ${f.fix.text}`, WIDTH - 4).map((l, i) => `${i ? "      " : "    "}${l}\n`),
      );
    else {
      out.push(`    fix (${f.fix.kind}):\n`);
      for (const l of f.fix.text.split("\n")) out.push(`      ${l}\n`);
    }
  }
  if (r.problems.length) {
    out.push("\n  Could not read:\n");
    for (const p of r.problems) out.push(`    ${p}\n`);
  }
  return out.join("");
}

/** `--check`: one line per check, as virt-host-validate prints them. */
export function renderChecks(r: HostReport): string {
  return r.checks
    .map((c) => {
      const left = `  KVMEM: Checking ${c.name}`.padEnd(70);
      const tail = c.status === "PASS" ? "PASS" : `${c.status} (${c.detail})`;
      return `${left}: ${tail}\n`;
    })
    .join("");
}
