/**
 * The simulated host's /proc and /sys, as text in the kernel's formats, so `kvmem host --sim`
 * reads it through the same parsers and rules as a real host. Formats: fs/proc/meminfo.c
 * (show_val_kb: "%-16s%8lu kB"; hugetlb_report_meminfo: "HugePages_Total:   %5lu"),
 * arch/x86/kernel/cpu/proc.c, mm/swapfile.c swap_show, mm/hugetlb.c and drivers/base/node.c
 * sysfs, mm/huge_memory.c (THP selectors), mm/ksm.c sysfs, mm/vmstat.c (/proc/vmstat),
 * fs/proc_namespace.c (mounts),
 * mm/mm_init.c mem_init_print_info (the boot "Memory:" line).
 * What is modelled: frames by owner (free, kernel/KVM tables, anonymous, THP, hugetlb, the page
 * cache with its LRU lists); no slab or kernel image. MemAvailable is si_mem_available's.
 * Pure: no Node APIs.
 */
import { KIND_ANON, KIND_KERNEL, KIND_THP } from "../sim/memory.js";
import { rssCounters } from "../sim/oom.js";
import { defaultMinFreeKbytes } from "../sim/reclaim.js";
import { GiB, MiB } from "../units/size.js";
import { type BuiltHost, hugeReserved } from "./build.js";
import { nodeProcFiles, numaVmstat, thpVmstat } from "./procfs-node.js";
import { qemuProcFiles } from "./procfs-pid.js";

const kb = (label: string, kib: number) =>
  `${`${label}:`.padEnd(16)}${String(Math.round(kib)).padStart(8)} kB\n`;

/** Rewrite the domain's <name> to the scenario's VM name (a domain file may serve several VMs). */
export function renameDomain(xml: string, name: string): string {
  return /<name>[^<]*<\/name>/.test(xml)
    ? xml.replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`)
    : xml;
}

export function simProcfs(b: BuiltHost): Record<string, string> {
  const s = b.scenario;
  const mem = b.host.mem;
  const f: Record<string, string> = {};
  const totalKiB = mem.nframes * 4;
  const freeKiB = mem.freeFrames * 4;
  const kernelKiB = mem.countKind(KIND_KERNEL) * 4;
  const anonKiB = mem.countKind(KIND_ANON) * 4;
  const thpKiB = mem.countKind(KIND_THP) * 4;
  let secKiB = 0;
  for (const v of b.vms) if (v.vm) secKiB += v.vm.mmu.tablePages() * 4;
  const pool2 = b.host.pools.get(2 * MiB);
  const pool1 = b.host.pools.get(GiB);
  const hugeKiB = (pool2?.total ?? 0) * 2048 + (pool1?.total ?? 0) * 1048576;
  const swapKiB = s.host.memory > 0 ? s.host.swap / 1024 : 0;
  const committedKiB = b.vms
    .filter((v) => v.state === "running" && (v.backing === "4K" || v.backing === "thp"))
    .reduce((a, v) => a + v.memory / 1024, 0);
  const ratio = 50;
  const commitLimit = ((totalKiB - hugeKiB) * ratio) / 100 + swapKiB;
  const resv2 = hugeReserved(b.vms, 2 * MiB);
  // the LRU lists (frames freed behind reclaim's back dropped first) and the page cache
  const lists = b.reclaim.lists();
  const cache = b.reclaim.cache;
  const buffersKiB = cache.buffers * 4;
  // shmem: guest RAM mapped shared from a memfd or a file (NR_SHMEM, part of NR_FILE_PAGES)
  let shmemPages = 0;
  for (const v of b.vms)
    if (v.mm && !v.mm.killed && v.mm.vmas.some((x) => x.shared))
      shmemPages += rssCounters(v.mm).shmem;
  // meminfo_proc_show: Cached = NR_FILE_PAGES - swap cache - Buffers (nr_blockdev_pages)
  const cachedKiB = (cache.pages + shmemPages) * 4 - buffersKiB;
  // si_mem_available (mm/show_mem.c): free - totalreserve_pages (the high watermark: one zone,
  // no lowmem_reserve) + the page cache less min(half of it, the low watermark); >= 0
  const pagecache = lists.activeFile + lists.inactiveFile;
  const availableKiB =
    Math.max(
      0,
      mem.freeFrames -
        b.reclaim.high +
        pagecache -
        Math.min(Math.floor(pagecache / 2), b.reclaim.low),
    ) * 4;
  f["/proc/meminfo"] =
    kb("MemTotal", totalKiB) +
    kb("MemFree", freeKiB) +
    kb("MemAvailable", availableKiB) +
    kb("Buffers", buffersKiB) +
    kb("Cached", cachedKiB) +
    kb("SwapCached", 0) +
    kb("Active", (lists.activeAnon + lists.activeFile) * 4) +
    kb("Inactive", (lists.inactiveAnon + lists.inactiveFile) * 4) +
    kb("Active(anon)", lists.activeAnon * 4) +
    kb("Inactive(anon)", lists.inactiveAnon * 4) +
    kb("Active(file)", lists.activeFile * 4) +
    kb("Inactive(file)", lists.inactiveFile * 4) +
    kb("Unevictable", b.reclaim.mlockedPages() * 4) +
    kb("Mlocked", b.reclaim.mlockedPages() * 4) +
    kb("SwapTotal", swapKiB) +
    kb("SwapFree", swapKiB - b.reclaim.swapUsed * 4) +
    kb("Zswap", 0) +
    kb("Zswapped", 0) +
    kb("Dirty", cache.dirty * 4) +
    kb("Writeback", 0) +
    kb("AnonPages", anonKiB + thpKiB - shmemPages * 4) +
    kb("Mapped", 0) +
    kb("Shmem", shmemPages * 4) +
    kb("KReclaimable", 0) +
    kb("Slab", 0) +
    kb("SReclaimable", 0) +
    kb("SUnreclaim", 0) +
    kb("KernelStack", 0) +
    kb("PageTables", kernelKiB - secKiB) +
    kb("SecPageTables", secKiB) +
    kb("NFS_Unstable", 0) +
    kb("Bounce", 0) +
    kb("WritebackTmp", 0) +
    kb("CommitLimit", commitLimit) +
    kb("Committed_AS", committedKiB) +
    kb("VmallocTotal", 34359738367) +
    kb("VmallocUsed", 0) +
    kb("VmallocChunk", 0) +
    kb("Percpu", 0) +
    kb("HardwareCorrupted", 0) +
    kb("AnonHugePages", thpKiB) +
    kb("ShmemHugePages", 0) +
    kb("ShmemPmdMapped", 0) +
    kb("FileHugePages", 0) +
    kb("FilePmdMapped", 0) +
    `HugePages_Total:   ${String(pool2?.total ?? 0).padStart(5)}\n` +
    `HugePages_Free:    ${String(pool2?.free.length ?? 0).padStart(5)}\n` +
    `HugePages_Rsvd:    ${String(resv2).padStart(5)}\n` +
    `HugePages_Surp:    ${String(pool2?.surplus ?? 0).padStart(5)}\n` +
    `Hugepagesize:   ${String(2048).padStart(8)} kB\n` +
    kb("Hugetlb", hugeKiB) +
    kb("DirectMap4k", 0) +
    kb("DirectMap2M", 0) +
    kb("DirectMap1G", totalKiB);

  const intel = s.host.cpu.vendor === "intel";
  const flags = [
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc",
    intel ? "vmx" : "svm",
    "pcid sse4_1 sse4_2 x2apic popcnt xsave avx",
    s.host.cpu.la57 ? "la57" : "",
    intel ? "ept vpid ept_ad flexpriority tpr_shadow vnmi" : "npt nrip_save",
  ]
    .filter(Boolean)
    .join(" ");
  const cpuBlock = (i: number) =>
    `processor\t: ${i}\nvendor_id\t: ${intel ? "GenuineIntel" : "AuthenticAMD"}\nmodel name\t: kvmem simulated ${intel ? "Intel" : "AMD"} CPU\nflags\t\t: ${flags}\n${intel ? "vmx flags\t: vnmi preemption_timer invvpid ept_x_only ept_ad ept_1gb flexpriority tsc_offset vtpr mtf vapic ept vpid unrestricted_guest\n" : ""}\n`;
  f["/proc/cpuinfo"] = Array.from({ length: s.host.cpus }, (_, i) => cpuBlock(i)).join("");
  f["/dev/kvm"] = "";
  const mod = intel ? "kvm_intel" : "kvm_amd";
  if (intel) {
    f[`/sys/module/${mod}/parameters/ept`] = s.host.cpu.ept ? "Y\n" : "N\n";
    f[`/sys/module/${mod}/parameters/vpid`] = s.host.cpu.vpid ? "Y\n" : "N\n";
    f[`/sys/module/${mod}/parameters/eptad`] = "Y\n";
    f[`/sys/module/${mod}/parameters/nested`] = "N\n";
  } else {
    f[`/sys/module/${mod}/parameters/npt`] = s.host.cpu.ept ? "1\n" : "0\n";
    f[`/sys/module/${mod}/parameters/nested`] = "0\n";
  }
  f["/sys/module/kvm/parameters/tdp_mmu"] = "Y\n";
  f["/sys/module/kvm/parameters/nx_huge_pages"] = "N\n";

  f["/proc/swaps"] =
    `Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n${swapKiB > 0 ? `/swapfile${" ".repeat(31)}file\t\t${swapKiB}\t\t${b.reclaim.swapUsed * 4}\t\t-2\n` : ""}`;
  const sysctl: Record<string, number> = {
    swappiness: s.host.kernel.swappiness,
    // hugetlb_sysctl_handler_common shows max_huge_pages: the persistent pool, without surplus
    nr_hugepages: (pool2?.total ?? 0) - (pool2?.surplus ?? 0),
    nr_overcommit_hugepages: pool2?.overcommit ?? 0,
    overcommit_memory: 0,
    overcommit_ratio: ratio,
    min_free_kbytes: defaultMinFreeKbytes(totalKiB),
  };
  for (const [k, v] of Object.entries(sysctl)) f[`/proc/sys/vm/${k}`] = `${v}\n`;
  const pools: Array<[number, typeof pool2, number]> = [
    [2048, pool2, resv2],
    [1048576, pool1, hugeReserved(b.vms, GiB)],
  ];
  for (const [sizeKiB, pool, resv] of pools) {
    const d = `/sys/kernel/mm/hugepages/hugepages-${sizeKiB}kB`;
    f[`${d}/nr_hugepages`] = `${pool?.total ?? 0}\n`;
    f[`${d}/free_hugepages`] = `${pool?.free.length ?? 0}\n`;
    f[`${d}/resv_hugepages`] = `${resv}\n`;
    f[`${d}/surplus_hugepages`] = `${pool?.surplus ?? 0}\n`;
    f[`${d}/nr_overcommit_hugepages`] = `${pool?.overcommit ?? 0}\n`;
  }
  const sel = (choices: string[], cur: string) =>
    `${choices.map((c) => (c === cur ? `[${c}]` : c)).join(" ")}\n`;
  f["/sys/kernel/mm/transparent_hugepage/enabled"] = sel(
    ["always", "madvise", "never"],
    s.host.kernel.thp,
  );
  f["/sys/kernel/mm/transparent_hugepage/defrag"] = sel(
    ["always", "defer", "defer+madvise", "madvise", "never"],
    "madvise",
  );
  // mm/ksm.c sysfs: one number per file ("%lu\n", general_profit "%ld\n")
  const ksm = b.ksm.counters();
  for (const [name, v] of Object.entries(ksm)) f[`/sys/kernel/mm/ksm/${name}`] = `${v}\n`;
  // mm/vmstat.c vmstat_show: "%s %lu" per line; the counters kvmem models
  const vs = b.ptes.vmstat;
  const vmstat: Array<[string, number]> = [
    ["nr_free_pages", mem.freeFrames],
    ["nr_anon_pages", (anonKiB + thpKiB) / 4 - shmemPages],
    ["nr_anon_transparent_hugepages", thpKiB / 2048],
    ...numaVmstat(b),
    ["nr_inactive_anon", lists.inactiveAnon],
    ["nr_active_anon", lists.activeAnon],
    ["nr_inactive_file", lists.inactiveFile],
    ["nr_active_file", lists.activeFile],
    ["nr_file_pages", cache.pages + shmemPages],
    ["nr_shmem", shmemPages],
    ["nr_dirty", cache.dirty],
    ["pgmajfault", b.reclaim.pgmajfault],
    // pgpgin/pgpgout: KiB of block I/O (vmstat_start: sectors / 2), swap and O_DIRECT included
    ["pgpgin", cache.pgpginKiB + vs.pswpin * 4],
    ["pgpgout", cache.pgpgoutKiB + vs.pswpout * 4],
    ["pswpin", vs.pswpin],
    ["pswpout", vs.pswpout],
    ["workingset_refault_file", b.reclaim.cache.refaults],
    ["workingset_activate_file", b.reclaim.cache.activations],
    ["workingset_restore_file", b.reclaim.cache.restores],
    ["pgactivate", b.reclaim.lru.pgactivate],
    ["pgdeactivate", b.reclaim.lru.pgdeactivate],
    ["pgrefill", b.reclaim.lru.pgrefill],
    ["pgscan_anon", b.reclaim.pgscanAnon],
    ["pgscan_file", b.reclaim.pgscanFile],
    ["pgsteal_anon", b.reclaim.pgstealAnon],
    ["pgsteal_file", b.reclaim.pgstealFile],
    ["allocstall_normal", b.reclaim.allocstall],
    ["pgsteal_kswapd", b.reclaim.pgstealKswapd],
    ["pgsteal_direct", b.reclaim.pgstealDirect],
    ["pgscan_kswapd", b.reclaim.pgscanKswapd],
    ["pgscan_direct", b.reclaim.pgscanDirect],
    ["pageoutrun", b.reclaim.pageoutrun],
    ...thpVmstat(b),
    ["thp_split_page", vs.thp_split_page],
    // every THP kvmem splits is mapped by one PMD, split first (__split_huge_pmd: THP_SPLIT_PMD)
    ["thp_split_pmd", vs.thp_split_page],
    ["cow_ksm", vs.cow_ksm],
    ["ksm_swpin_copy", 0],
  ];
  f["/proc/vmstat"] = vmstat.map(([n, v]) => `${n} ${v}\n`).join("");
  const mounts = [
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
  ];
  if ((pool2?.total ?? 0) > 0)
    mounts.push("hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0");
  if ((pool1?.total ?? 0) > 0)
    mounts.push("hugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0");
  f["/proc/mounts"] = `${mounts.join("\n")}\n`;
  Object.assign(f, nodeProcFiles(b));
  for (const v of b.vms) {
    const xml = renameDomain(v.xml, v.name);
    f[`/etc/libvirt/qemu/${v.name}.xml`] = xml;
    // the live (status) XML shows the balloon's current size: libvirt updates <currentMemory>
    // on QEMU's BALLOON_CHANGE event (qemuProcessHandleBalloonChange)
    const live =
      v.balloon && /<currentMemory[^>]*>\d+<\/currentMemory>/.test(xml)
        ? xml.replace(
            /<currentMemory[^>]*>\d+<\/currentMemory>/,
            `<currentMemory unit='KiB'>${(v.memory / 4096 - v.balloon.pages.length) * 4}</currentMemory>`,
          )
        : xml;
    if (v.state === "running") f[`/run/libvirt/qemu/${v.name}.xml`] = live;
  }
  Object.assign(f, qemuProcFiles(b));
  return f;
}

/** The boot "Memory:" line for the simulated host's kernel log. */
export function simKernelLog(b: BuiltHost): string {
  const totalKiB = b.host.mem.nframes * 4;
  // mm/oom_kill.c __oom_kill_process, printk'd with the time since boot
  const oom = b.vms
    .filter((v) => v.oomKilled)
    .map((v) => `[${(v.oomKilled!.at / 1000).toFixed(6).padStart(12)}] ${v.oomKilled!.message}\n`)
    .join("");
  return `[    0.000000] Linux version 6.12.0-kvmem (simulated)\n[    0.052000] Memory: ${totalKiB}K/${totalKiB}K available (0K kernel code, 0K rwdata, 0K rodata, 0K init, 0K bss, 0K reserved, 0K cma-reserved)\n${oom}`;
}
