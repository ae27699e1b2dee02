/**
 * The host report as Prometheus metrics (text exposition format 0.0.4 via prom-client).
 * Naming follows https://prometheus.io/docs/practices/naming/: base units (bytes, seconds),
 * `_total` for counters, one metric per meaning with labels for hugepage size, NUMA node, domain;
 * aggregates (all nodes) and parts (per node) are separate metrics so sums never double count.
 * A fresh registry is filled from a fresh report on every scrape: nothing is cached.
 */
import { Counter, Gauge, Registry } from "prom-client";
import type { HostReport } from "../inspect/schema.js";
import { pageSizeName } from "../units/size.js";

type Labels = Record<string, string>;

class Builder {
  readonly registry = new Registry();
  private gauges = new Map<string, Gauge>();
  private counters = new Map<string, Counter>();

  gauge(name: string, help: string, value: number, labels: Labels = {}): void {
    let g = this.gauges.get(name);
    if (!g) {
      g = new Gauge({ name, help, labelNames: Object.keys(labels), registers: [this.registry] });
      this.gauges.set(name, g);
    }
    g.set(labels, value);
  }

  /** a kernel counter: its absolute value, exposed with TYPE counter */
  counter(name: string, help: string, value: number, labels: Labels = {}): void {
    let c = this.counters.get(name);
    if (!c) {
      c = new Counter({ name, help, labelNames: Object.keys(labels), registers: [this.registry] });
      this.counters.set(name, c);
    }
    c.inc(labels, value);
  }
}

const KIB = 1024;
const ps = (kib: number) => pageSizeName(kib * KIB);

/** KSM sysfs files that only grow (mm/ksm.c): exposed as counters with `_total`. */
const KSM_COUNTERS = new Set(["full_scans", "pages_scanned", "pages_skipped"]);
const KSM_HELP: Record<string, string> = {
  pages_shared: "KSM pages in use (stable tree nodes)",
  pages_sharing: "page mappings sharing a KSM page: the pages saved",
  pages_unshared: "pages scanned repeatedly with no match yet",
  pages_volatile: "pages changing too fast to be merged",
  pages_scanned: "pages ksmd has scanned",
  pages_skipped: "pages smart_scan skipped",
  full_scans: "full scans of all mergeable areas",
  stable_node_chains: "KSM pages that reached max_page_sharing",
  stable_node_dups: "duplicated KSM pages in stable_node chains",
  ksm_zero_pages: "empty pages merged with the kernel zero page (use_zero_pages)",
  general_profit: "bytes saved net of rmap_item metadata",
  run: "ksmd state: 0 stopped, 1 running, 2 unmerged",
  pages_to_scan: "pages ksmd scans per batch",
  sleep_millisecs: "ksmd sleep between batches",
  merge_across_nodes: "merge pages across NUMA nodes",
  use_zero_pages: "merge empty pages with the zero page",
  max_page_sharing: "maximum sharers of one KSM page",
  smart_scan: "skip pages that did not merge last time",
};

export async function renderMetrics(
  r: HostReport,
  scrapeSeconds: number,
): Promise<{ contentType: string; text: string }> {
  const b = new Builder();
  b.gauge(
    "kvmem_scrape_duration_seconds",
    "time to read the host and build the report",
    scrapeSeconds,
  );

  if (r.memory.available) {
    const f = r.memory.free;
    const mem: Array<[string, number, string]> = [
      ["total", f.total, "MemTotal"],
      ["used", f.used, "MemTotal - MemAvailable, as free(1) computes it"],
      ["free", f.free, "MemFree"],
      ["shared", f.shared, "Shmem"],
      ["buff_cache", f.buffCache, "Buffers + Cached + SReclaimable"],
      ["available", f.available, "MemAvailable (MemFree when absent)"],
    ];
    for (const [n, v, h] of mem) b.gauge(`kvmem_memory_${n}_bytes`, `free(1) ${n}: ${h}`, v * KIB);
    b.gauge("kvmem_swap_total_bytes", "SwapTotal", f.swapTotal * KIB);
    b.gauge("kvmem_swap_used_bytes", "SwapTotal - SwapFree", f.swapUsed * KIB);
    for (const [field, v] of Object.entries(r.memory.meminfo)) {
      if (field.startsWith("HugePages_") || field === "Hugepagesize") continue;
      b.gauge("kvmem_meminfo_bytes", "a /proc/meminfo field, in bytes", v * KIB, { field });
    }
  }

  const v = r.virt;
  b.gauge("kvmem_kvm_device_present", "1 when /dev/kvm exists", v.devKvm.present ? 1 : 0);
  for (const m of v.modules)
    b.gauge("kvmem_kvm_module_loaded", "a loaded KVM module", 1, { module: m.name, role: m.role });
  b.gauge(
    "kvmem_tdp_enabled",
    "1 when two-dimensional paging (EPT/NPT) is in effect",
    v.tdp.inEffect ? 1 : 0,
    { mode: v.tdp.mode },
  );
  b.gauge(
    "kvmem_vpid_enabled",
    "1 when VPID (or SVM ASIDs) tag TLB entries",
    v.vpid.inEffect ? 1 : 0,
    { mode: v.vpid.mode },
  );
  if (v.cpu.available) {
    for (const [flag, on] of Object.entries(v.cpu.flags))
      b.gauge("kvmem_cpu_flag", "a virtualization CPU flag (1 present)", on ? 1 : 0, { flag });
  }

  const h = r.hugepages;
  for (const p of h.pools) {
    const l = { pagesize: ps(p.sizeKiB) };
    b.gauge("kvmem_hugepages_total", "hugetlb pool size (nr_hugepages), in pages", p.nr, l);
    b.gauge("kvmem_hugepages_free", "free hugetlb pages", p.free, l);
    b.gauge("kvmem_hugepages_reserved", "reserved hugetlb pages (resv_hugepages)", p.resv, l);
    b.gauge("kvmem_hugepages_surplus", "surplus hugetlb pages", p.surplus, l);
    b.gauge("kvmem_hugepages_overcommit", "nr_overcommit_hugepages", p.overcommit, l);
    b.gauge(
      "kvmem_hugepages_free_bytes",
      "free hugetlb capacity: free pages x page size",
      p.free * p.sizeKiB * KIB,
      l,
    );
    for (const n of p.nodes) {
      const nl = { ...l, node: String(n.node) };
      b.gauge("kvmem_hugepages_node_total", "hugetlb pool size on a NUMA node, in pages", n.nr, nl);
      b.gauge("kvmem_hugepages_node_free", "free hugetlb pages on a NUMA node", n.free, nl);
      b.gauge(
        "kvmem_hugepages_node_surplus",
        "surplus hugetlb pages on a NUMA node",
        n.surplus,
        nl,
      );
    }
  }
  for (const m of h.mounts)
    b.gauge("kvmem_hugetlbfs_mount", "a hugetlbfs mount", 1, {
      mountpoint: m.mountPoint,
      pagesize: m.pageSizeKiB ? ps(m.pageSizeKiB) : "unknown",
    });
  if (h.thp.enabled)
    b.gauge("kvmem_thp_enabled", "transparent_hugepage/enabled mode in effect", 1, {
      mode: h.thp.enabled,
    });

  const o = r.overcommit;
  for (const s of o.swaps) {
    b.gauge("kvmem_swap_device_size_bytes", "a swap device's size", s.sizeKiB * KIB, {
      device: s.filename,
      type: s.type,
    });
    b.gauge("kvmem_swap_device_used_bytes", "a swap device's use", s.usedKiB * KIB, {
      device: s.filename,
      type: s.type,
    });
  }
  for (const [name, val] of Object.entries(o.sysctl))
    b.gauge("kvmem_vm_sysctl", "a vm.* sysctl", val, { name });
  b.gauge("kvmem_ksm_available", "1 when /sys/kernel/mm/ksm exists", o.ksm.available ? 1 : 0);
  if (o.ksm.available) {
    for (const [name, val] of Object.entries(o.ksm.values)) {
      const help = KSM_HELP[name] ?? `/sys/kernel/mm/ksm/${name}`;
      if (KSM_COUNTERS.has(name)) b.counter(`kvmem_ksm_${name}_total`, help, val);
      else if (name === "general_profit") b.gauge("kvmem_ksm_general_profit_bytes", help, val);
      else if (name === "sleep_millisecs") b.gauge("kvmem_ksm_sleep_seconds", help, val / 1000);
      else if (!name.startsWith("advisor_") && name !== "stable_node_chains_prune_millisecs")
        b.gauge(`kvmem_ksm_${name}`, help, val);
    }
    b.gauge("kvmem_ksm_saved_bytes", `memory KSM saves (${o.ksm.savedSource})`, o.ksm.savedBytes);
  }
  if (o.balloonKiB !== null)
    b.gauge(
      "kvmem_balloon_bytes",
      "guest side: memory taken by the balloon (/proc/meminfo Balloon)",
      o.balloonKiB * KIB,
    );

  for (const d of r.domains.domains) {
    const l = { domain: d.name };
    b.gauge(
      "kvmem_domain_memory_bytes",
      "libvirt <memory>: guest RAM at boot",
      d.memoryKiB * KIB,
      l,
    );
    b.gauge(
      "kvmem_domain_current_memory_bytes",
      "libvirt <currentMemory>: the balloon target",
      d.currentMemoryKiB * KIB,
      l,
    );
    if (d.maxMemoryKiB !== null)
      b.gauge(
        "kvmem_domain_max_memory_bytes",
        "libvirt <maxMemory>: hotplug limit",
        d.maxMemoryKiB * KIB,
        l,
      );
    const backing = d.hugepages.length
      ? d.hugepages.map((x) => `hugetlbfs-${ps(x.sizeKiB)}`).join("+")
      : d.source;
    b.gauge("kvmem_domain_info", "a libvirt domain and how its memory is backed", 1, {
      ...l,
      state: d.state,
      backing,
      balloon: d.balloon.model,
      locked: String(d.locked),
      nosharepages: String(d.nosharepages),
    });
    for (const x of d.hugepages)
      b.gauge(
        "kvmem_domain_hugepage_backed_bytes",
        "guest RAM backed by huge pages of a size",
        x.backedKiB * KIB,
        { ...l, pagesize: ps(x.sizeKiB) },
      );
  }
  // the QEMU processes: /proc/PID/status (fs/proc/task_mmu.c task_mem) and ksm_stat
  for (const p of o.qemu.processes) {
    const l = { domain: p.guest ?? "", pid: String(p.pid) };
    const kb = (name: string, help: string, v: number | null) => {
      if (v !== null) b.gauge(name, help, v * KIB, l);
    };
    kb("kvmem_qemu_resident_bytes", "QEMU process VmRSS (hugetlbfs pages excluded)", p.vmRssKiB);
    kb("kvmem_qemu_resident_anon_bytes", "QEMU process RssAnon", p.rssAnonKiB);
    kb("kvmem_qemu_resident_file_bytes", "QEMU process RssFile", p.rssFileKiB);
    kb("kvmem_qemu_resident_shmem_bytes", "QEMU process RssShmem", p.rssShmemKiB);
    kb("kvmem_qemu_hugetlb_bytes", "QEMU process HugetlbPages", p.hugetlbKiB);
    kb("kvmem_qemu_swap_bytes", "QEMU process VmSwap: guest memory in host swap", p.vmSwapKiB);
    if (p.ksm?.mergingPages != null)
      b.gauge(
        "kvmem_qemu_ksm_merging_pages",
        "QEMU process pages mapped to KSM pages (/proc/PID/ksm_stat)",
        p.ksm.mergingPages,
        l,
      );
    if (p.ksm?.processProfitBytes != null)
      b.gauge(
        "kvmem_qemu_ksm_profit_bytes",
        "ksm_process_profit: what KSM saves in this process, net of its rmap_items",
        p.ksm.processProfitBytes,
        l,
      );
  }

  const t = r.domains.totals;
  if (t.overcommitRatio !== null)
    b.gauge(
      "kvmem_domains_overcommit_ratio",
      "sum of domains' currentMemory over MemTotal",
      t.overcommitRatio,
    );
  b.gauge(
    "kvmem_domains_balloon_headroom_bytes",
    "memory the balloons may reclaim (memory - currentMemory)",
    t.balloonHeadroomKiB * KIB,
  );
  b.gauge(
    "kvmem_domains_unswappable_bytes",
    "hugepage-backed or locked guest memory",
    t.unswappableKiB * KIB,
  );
  for (const d of t.hugepageDemand) {
    b.gauge(
      "kvmem_domains_hugepages_needed",
      "huge pages the domains need, by size",
      d.pagesNeeded,
      { pagesize: ps(d.sizeKiB) },
    );
  }

  for (const f of r.findings) {
    b.gauge("kvmem_finding", "a finding of kvmem host (1 = present)", 1, {
      id: f.id,
      severity: f.severity,
      file: f.evidence[0]?.file ?? "",
    });
  }
  for (const c of r.checks) {
    for (const s of ["PASS", "WARN", "FAIL"])
      b.gauge(
        "kvmem_check",
        "a kvmem host --check result (1 for the status it has)",
        c.status === s ? 1 : 0,
        { check: c.name, status: s },
      );
  }
  return { contentType: b.registry.contentType, text: await b.registry.metrics() };
}
