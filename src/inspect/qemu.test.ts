// The QEMU processes of a host: command line, /proc/PID/status and /proc/PID/ksm_stat. The
// status parser reads a real status file (prometheus/procfs's fixture proc/26231/status, in
// ../shared/corpus/procfs/prometheus-procfs); the process lists are small trees written here.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { corpusPath } from "../../test/corpus.js";
import { MapProcFs } from "./procfs.js";
import { guestName, parseCmdline, parseKsmStat, parseStatus, readQemuProcesses } from "./qemu.js";

describe("/proc/PID files", () => {
  it("parses a real /proc/PID/status: VmRSS is RssAnon + RssFile + RssShmem (task_mem)", () => {
    const text = readFileSync(corpusPath("procfs/prometheus-procfs/proc/26231/status"), "utf8");
    const s = parseStatus(text);
    expect(s.text.Name).toBe("prometheus");
    expect(s.kib.VmRSS).toBe(6716);
    expect(s.kib.RssAnon).toBe(2092);
    expect(s.kib.RssFile).toBe(4624);
    expect(s.kib.RssShmem).toBe(0);
    expect(s.kib.VmSwap).toBe(660);
    expect(s.kib.HugetlbPages).toBe(0);
    expect(s.kib.RssAnon + s.kib.RssFile + s.kib.RssShmem).toBe(s.kib.VmRSS);
    expect(s.text.Threads).toBe("1"); // not a kB field
  });

  it("reads the guest name as libvirt passes it to QEMU", () => {
    const argv = parseCmdline(
      "/usr/bin/qemu-system-x86_64\0-name\0guest=vm1,debug-threads=on\0-m\0size=2097152k\0",
    );
    expect(argv).toEqual([
      "/usr/bin/qemu-system-x86_64",
      "-name",
      "guest=vm1,debug-threads=on",
      "-m",
      "size=2097152k",
    ]);
    expect(guestName(argv)).toBe("vm1");
    expect(guestName(["qemu-kvm", "-name", "plain"])).toBe("plain");
    expect(guestName(["qemu-kvm", "-name", "guest=a,,b,debug-threads=on"])).toBe("a,b"); // ",," escapes
    expect(guestName(["qemu-kvm", "-name", "process=x"])).toBeNull();
    expect(guestName(["qemu-kvm", "-m", "1G"])).toBeNull();
  });

  it("parses ksm_stat, numbers and the 6.14 yes/no lines", () => {
    const k = parseKsmStat(
      "ksm_rmap_items 132096\nksm_zero_pages 0\nksm_merging_pages 110365\nksm_process_profit 443641856\nksm_merge_any: no\nksm_mergeable: yes\n",
    );
    expect(k).toEqual({
      ksm_rmap_items: 132096,
      ksm_zero_pages: 0,
      ksm_merging_pages: 110365,
      ksm_process_profit: 443641856,
      ksm_merge_any: "no",
      ksm_mergeable: "yes",
    });
  });
});

describe("readQemuProcesses", () => {
  const status = (rss: number, anon: number, swap: number) =>
    `Name:\tqemu-system-x86\nVmLck:\t       0 kB\nVmRSS:\t${String(rss).padStart(8)} kB\nRssAnon:\t${String(anon).padStart(8)} kB\nRssFile:\t${String(rss - anon).padStart(8)} kB\nRssShmem:\t       0 kB\nVmSwap:\t${String(swap).padStart(8)} kB\nHugetlbPages:\t       0 kB\n`;
  it("finds QEMU processes only, with their memory and KSM figures", () => {
    const fs = new MapProcFs({
      "/proc/1/cmdline": "/sbin/init\0",
      "/proc/1/status": status(10, 5, 0),
      "/proc/1200/cmdline": "/usr/bin/qemu-system-x86_64\0-name\0guest=web,debug-threads=on\0",
      "/proc/1200/status": status(2_000_000, 1_990_000, 4096),
      "/proc/1200/ksm_stat":
        "ksm_rmap_items 10\nksm_zero_pages 2\nksm_merging_pages 7\nksm_process_profit 36224\n",
      "/proc/987/cmdline": "/usr/libexec/qemu-kvm\0-name\0db\0",
      "/proc/987/status": status(100, 100, 0),
      "/proc/meminfo": "MemTotal: 1 kB\n",
    });
    const r = readQemuProcesses(fs);
    expect(r.reason).toBeNull();
    expect(r.processes.map((p) => [p.pid, p.guest])).toEqual([
      [987, "db"],
      [1200, "web"],
    ]);
    const web = r.processes[1];
    expect(web.vmRssKiB).toBe(2_000_000);
    expect(web.rssAnonKiB).toBe(1_990_000);
    expect(web.rssFileKiB).toBe(10_000);
    expect(web.vmSwapKiB).toBe(4096);
    // (ksm_merging_pages + ksm_zero_pages) * 4096 - ksm_rmap_items * 64 = 36224
    expect(web.ksm).toEqual({
      rmapItems: 10,
      zeroPages: 2,
      mergingPages: 7,
      processProfitBytes: 36224,
    });
    expect(r.processes[0].ksm).toBeNull(); // no ksm_stat: pre-6.1 kernel or no CONFIG_KSM
  });

  it("says why when /proc has no process directories", () => {
    const r = readQemuProcesses(new MapProcFs({ "/proc/meminfo": "MemTotal: 1 kB\n" }));
    expect(r.processes).toEqual([]);
    expect(r.reason).toBe("no process directories under /proc");
  });
});
