// One built host tree per finding (test/hosttree.ts writes kernel-format /proc and /sys text),
// plus a healthy host that must produce none.
import { describe, expect, it } from "vitest";
import { domainXml, INTEL_FLAGS, type TreeSpec, treeFs } from "../../test/hosttree.js";
import { hostReport } from "../cli/host.js";
import { HostReportSchema } from "./schema.js";

const GiB = 1024 * 1024; // in KiB
const healthy: TreeSpec = {
  memTotalKiB: 64 * GiB,
  modules: { kvm_intel: { ept: "Y", vpid: "Y" } },
  hugepages: { 2048: { nr: 2048, free: 2048 }, 1048576: { nr: 0, free: 0 } },
  ksm: {
    run: 1,
    pages_sharing: 5000,
    pages_shared: 100,
    full_scans: 10,
    general_profit: 5000 * 4096 - 6000 * 64,
  },
  swaps: [{ file: "/dev/sda2", sizeKiB: 8 * GiB, usedKiB: 0 }],
  domains: {
    web: domainXml({
      name: "web",
      balloon:
        "<memballoon model='virtio' freePageReporting='on'><stats period='10'/></memballoon>",
    }),
    db: domainXml({ name: "db", hugepages: "<hugepages/>", balloon: "<memballoon model='none'/>" }),
  },
};
const run = (spec: TreeSpec) => {
  const r = hostReport(treeFs(spec));
  expect(HostReportSchema.safeParse(r).success).toBe(true);
  return r;
};
const ids = (spec: TreeSpec) => run(spec).findings.map((f) => f.id);
const find = (spec: TreeSpec, id: string) => run(spec).findings.find((f) => f.id === id);

describe("findings", () => {
  it("a healthy host has none, and every check passes", () => {
    const r = run(healthy);
    expect(r.findings).toEqual([]);
    expect(r.checks.every((c) => c.status === "PASS")).toBe(true);
    expect(r.domains.totals.hugepageDemand).toEqual([
      {
        sizeKiB: 2048,
        pagesNeeded: 1024,
        poolNr: 2048,
        poolFree: 2048,
        pagesNeededNotRunning: 1024,
        mounted: true,
      },
    ]);
  });

  it("EPT turned off on a CPU that has it: the modprobe fix", () => {
    const f = find({ ...healthy, modules: { kvm_intel: { ept: "N", vpid: "Y" } } }, "tdp-off");
    expect(f?.severity).toBe("critical");
    expect(f?.fix.text.split("\n")[0]).toBe("modprobe -r kvm_intel && modprobe kvm_intel ept=1");
    expect(f?.evidence).toContainEqual({
      file: "/sys/module/kvm_intel/parameters/ept",
      value: "N",
    });
  });

  it("EPT unsupported by the CPU: no command, says why", () => {
    const f = find(
      {
        ...healthy,
        flags: INTEL_FLAGS.filter((x) => x !== "ept"),
        modules: { kvm_intel: { ept: "N", vpid: "Y" } },
      },
      "tdp-off",
    );
    expect(f?.fix.kind).toBe("none");
    expect(f?.title).toContain("does not offer EPT");
  });

  it("AMD with npt=0", () => {
    const f = find(
      { ...healthy, flags: ["svm", "npt", "lm"], modules: { kvm_amd: { npt: "0", nested: "1" } } },
      "tdp-off",
    );
    expect(f?.fix.text.split("\n")[0]).toBe("modprobe -r kvm_amd && modprobe kvm_amd npt=1");
    // SVM's ASIDs: no VPID finding on AMD
    expect(ids({ ...healthy, flags: ["svm", "npt"], modules: { kvm_amd: { npt: "1" } } })).toEqual(
      [],
    );
  });

  it("VPID off", () => {
    const f = find({ ...healthy, modules: { kvm_intel: { ept: "Y", vpid: "N" } } }, "vpid-off");
    expect(f?.severity).toBe("warning");
    expect(f?.fix.text.split("\n")[0]).toBe("modprobe -r kvm_intel && modprobe kvm_intel vpid=1");
  });

  it("hugepage pool smaller than the domains need: sysctl with the computed count", () => {
    // two 4 GiB hugepage domains need 4096 x 2M; 1000 free of 1500 -> short 3096 -> nr 4596
    const spec: TreeSpec = {
      ...healthy,
      hugepages: { 2048: { nr: 1500, free: 1000 } },
      domains: {
        a: domainXml({
          name: "a",
          memoryKiB: 4 * GiB,
          hugepages: "<hugepages/>",
          balloon: "<memballoon model='none'/>",
        }),
        b: domainXml({
          name: "b",
          memoryKiB: 4 * GiB,
          hugepages: "<hugepages/>",
          balloon: "<memballoon model='none'/>",
        }),
      },
    };
    const f = find(spec, "hugepage-pool-short");
    expect(f?.fix.text.split("\n")[0]).toBe("sysctl vm.nr_hugepages=4596");
    expect(f?.title).toContain("3096 pages");
    // a running domain already holds its pages: only b must fit in the free pages
    const running = { ...spec, domains: { b: spec.domains!.b }, running: { a: spec.domains!.a } };
    expect(find(running, "hugepage-pool-short")?.fix.text.split("\n")[0]).toBe(
      "sysctl vm.nr_hugepages=2548",
    );
  });

  it("a 1G-backed domain: the non-default size is set through sysfs, and needs a mount", () => {
    const spec: TreeSpec = {
      ...healthy,
      hugepages: { 2048: { nr: 0, free: 0 }, 1048576: { nr: 2, free: 2 } },
      domains: {
        big: domainXml({
          name: "big",
          memoryKiB: 8 * GiB,
          hugepages: "<hugepages><page size='1' unit='GiB'/></hugepages>",
          balloon: "<memballoon model='none'/>",
        }),
      },
    };
    const r = run(spec);
    expect(r.findings.find((f) => f.id === "hugepage-pool-short")?.fix.text.split("\n")[0]).toBe(
      "echo 8 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
    );
    expect(r.findings.find((f) => f.id === "hugetlbfs-mount-missing")?.fix.text).toBe(
      "mkdir -p /dev/hugepages1G && mount -t hugetlbfs -o pagesize=1G hugetlbfs /dev/hugepages1G",
    );
  });

  it("hugepage capacity per NUMA node: a domain bound to a node without free pages", () => {
    const xml = domainXml({
      name: "pinned",
      memoryKiB: 2 * GiB,
      hugepages: "<hugepages/>",
      balloon: "<memballoon model='none'/>",
    }).replace("<vcpu", "<numatune><memory mode='strict' nodeset='1'/></numatune>\n  <vcpu");
    const spec: TreeSpec = {
      ...healthy,
      numaNodes: 2,
      hugepages: {
        2048: {
          nr: 2048,
          free: 1100,
          nodes: [
            { nr: 1024, free: 1000 },
            { nr: 1024, free: 100 },
          ],
        },
      },
      domains: { pinned: xml },
    };
    const r = run(spec);
    // the total (1100 free >= 1024) would pass; node 1 has only 100
    expect(r.findings.find((f) => f.id === "hugepage-pool-short")).toBeUndefined();
    const f = r.findings.find((x) => x.id === "hugepage-node-short");
    expect(f?.fix.text).toBe(
      "echo 1948 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
    );
  });

  it("a hugepage-backed or locked domain with a balloon that cannot reclaim", () => {
    const spec: TreeSpec = {
      ...healthy,
      domains: {
        h: domainXml({ name: "h", hugepages: "<hugepages/>" }),
        l: domainXml({ name: "l", locked: true }),
      },
    };
    const fs = run(spec).findings.filter((f) => f.id === "balloon-cannot-reclaim");
    expect(fs.map((f) => f.title)).toEqual([
      "Domain h has a virtio balloon but is hugepage-backed (a 4 KiB balloon page freed inside a huge page returns nothing to the host)",
      "Domain l has a virtio balloon but is locked (<locked/> pins all guest memory)",
    ]);
    expect(fs[0].fix.text).toContain("<memballoon model='none'/>");
  });

  it("overcommitted RAM with no swap and KSM off", () => {
    const doms: Record<string, string> = {};
    for (const n of ["a", "b", "c"])
      doms[n] = domainXml({
        name: n,
        memoryKiB: 8 * GiB,
        balloon:
          "<memballoon model='virtio' freePageReporting='on'><stats period='5'/></memballoon>",
      });
    const spec: TreeSpec = {
      ...healthy,
      memTotalKiB: 16 * GiB,
      swaps: [],
      ksm: { run: 0 },
      domains: doms,
    };
    const f = find(spec, "overcommit-no-safety-net");
    expect(f?.severity).toBe("critical");
    expect(f?.fix.text).toBe(
      "echo 1 > /sys/kernel/mm/ksm/run\nfallocate -l 8G /swapfile && chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile",
    );
    // with KSM on it is no longer a finding
    expect(
      ids({
        ...spec,
        ksm: { run: 1, pages_sharing: 10, full_scans: 1, general_profit: 10 * 4096 },
      }),
    ).not.toContain("overcommit-no-safety-net");
  });

  it("KSM that merges nothing, and why", () => {
    const off = find({ ...healthy, ksm: { run: 0 } }, "ksm-merges-nothing");
    expect(off?.title).toContain("run=0");
    expect(off?.fix.text).toBe("echo 1 > /sys/kernel/mm/ksm/run");
    const allNoShare = {
      ...healthy,
      ksm: { run: 1, full_scans: 5, pages_sharing: 0 },
      domains: {
        a: domainXml({ name: "a", nosharepages: true }),
        b: domainXml({ name: "b", nosharepages: true }),
      },
    };
    expect(find(allNoShare, "ksm-merges-nothing")?.title).toContain(
      "every domain has <nosharepages/>",
    );
    const nothing = {
      ...healthy,
      ksm: { run: 1, full_scans: 5, pages_sharing: 0, pages_unshared: 0, pages_volatile: 0 },
    };
    expect(find(nothing, "ksm-merges-nothing")?.title).toContain(
      "no process has MADV_MERGEABLE memory",
    );
    // rmap overhead: 10 pages shared (40960 B) against 100000 rmap_items (6.4 MB)
    const rmap = {
      ...healthy,
      ksm: {
        run: 1,
        full_scans: 5,
        pages_sharing: 10,
        pages_unshared: 100000,
        general_profit: 10 * 4096 - 100010 * 64,
      },
    };
    const f = find(rmap, "ksm-rmap-overhead");
    expect(f?.title).toContain("rmap_items take 6.1 MiB");
    expect(f?.fix.text.startsWith("echo 2 > /sys/kernel/mm/ksm/run")).toBe(true);
  });

  it("THP never on a KVM host", () => {
    expect(find({ ...healthy, thp: "never" }, "thp-never")?.fix.text).toContain(
      "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
    );
  });

  it("swap present but most guest memory unswappable", () => {
    const spec = {
      ...healthy,
      domains: {
        db: healthy.domains!.db,
        db2: domainXml({ name: "db2", locked: true, balloon: "<memballoon model='none'/>" }),
      },
    };
    expect(find(spec, "swap-mostly-useless")?.title).toContain("4 GiB of 4 GiB guest memory");
  });

  it("guest memory in host swap: the VMs with VmSwap, and locked memory with its hard_limit", () => {
    const status = (rss: number, swap: number) =>
      `Name:\tqemu-system-x86\nVmRSS:\t${String(rss).padStart(8)} kB\nVmSwap:\t${String(swap).padStart(8)} kB\n`;
    const files = {
      "/proc/1/cmdline": "/sbin/init\0",
      "/proc/4000/cmdline": "/usr/bin/qemu-system-x86_64\0-name\0guest=web,debug-threads=on\0",
      "/proc/4000/status": status(3 * GiB, 262144),
      "/proc/4001/cmdline": "/usr/bin/qemu-system-x86_64\0-name\0guest=db,debug-threads=on\0",
      "/proc/4001/status": status(4 * GiB, 0),
    };
    expect(ids(healthy)).not.toContain("guest-memory-in-swap");
    const f = find({ ...healthy, files }, "guest-memory-in-swap");
    expect(f?.title).toMatch(/^256 MiB of guest memory is in host swap \(web 256 MiB\)/);
    expect(f?.evidence).toEqual([
      { file: "/proc/4000/status", value: `VmSwap: 262144 kB (VmRSS ${3 * GiB} kB)` },
    ]);
    // domainXml's web has <memory> 2 GiB; hard_limit = 2 GiB + 1 GiB for QEMU itself
    expect(f?.fix.text).toContain("<memtune><hard_limit unit='KiB'>3145728</hard_limit></memtune>");
    // a QEMU whose guest has no domain XML here: no figure made up for it
    const orphan = {
      ...files,
      "/proc/4000/cmdline": "/usr/bin/qemu-system-x86_64\0-name\0guest=gone\0",
    };
    expect(find({ ...healthy, files: orphan }, "guest-memory-in-swap")?.fix.text).toContain(
      "<hard_limit unit='KiB'>GUEST_MEMORY_KIB_PLUS_1048576</hard_limit>",
    );
  });

  it("balloons: no stats period; no free page reporting on an overcommitted host", () => {
    const doms: Record<string, string> = {};
    for (const n of ["a", "b", "c"]) doms[n] = domainXml({ name: n, memoryKiB: 8 * GiB });
    const r = run({ ...healthy, memTotalKiB: 16 * GiB, domains: doms });
    expect(r.findings.filter((f) => f.id === "balloon-no-stats")).toHaveLength(3);
    expect(r.findings.filter((f) => f.id === "balloon-no-free-page-reporting")).toHaveLength(3);
    expect(r.findings.find((f) => f.id === "balloon-no-stats")?.fix.text).toBe(
      "<memballoon model='virtio'>\n  <stats period='10'/>\n</memballoon>",
    );
    // not overcommitted: no free page reporting finding
    expect(ids({ ...healthy, domains: { a: doms.a } })).not.toContain(
      "balloon-no-free-page-reporting",
    );
  });

  it("no /dev/kvm and no modules: KVM missing is a fact, with the module to load", () => {
    const r = run({ ...healthy, modules: {}, devKvm: false });
    expect(r.findings.find((f) => f.id === "no-dev-kvm")?.fix.text).toBe("modprobe kvm_intel");
    expect(r.checks.find((c) => c.name === "for device /dev/kvm")?.status).toBe("FAIL");
  });

  it("a tree with no KSM, no swap file, no libvirt: not available, with reasons", () => {
    const r = run({ ...healthy, ksm: null, domains: {} });
    expect(r.overcommit.ksm).toMatchObject({ available: false });
    expect(r.domains.dirs[0].reason).toBe("/etc/libvirt/qemu: no such directory");
  });
});
