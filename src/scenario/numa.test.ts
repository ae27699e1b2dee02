// NUMA in a whole scenario (scenarios/3-numa-hugepages.yaml): per-node hugepage pools from the
// boot parameter's per-node form, <numatune> placing guest RAM, a bound hugepage VM failing when
// its node is short while the total would suffice, surplus pages on the bound node, the per-node
// sysfs files summing to the global ones. Expected values are worked out in the comments.
import { describe, expect, it } from "vitest";
import { loadWith, runInput } from "../../test/scenario-run.js";
import { hostReport } from "../cli/host.js";
import { MapProcFs } from "../inspect/procfs.js";
import { HostReportSchema } from "../inspect/schema.js";
import { buildHost } from "./build.js";
import { QEMU_PREALLOC_ERROR } from "./placement.js";
import { simProcfs } from "./procfs.js";

const file = new URL("../../scenarios/3-numa-hugepages.yaml", import.meta.url).pathname;
const M2 = 2097152;

const load = (...sets: string[]) =>
  loadWith(file, "workloads.touch.accesses=1000", "workloads.small.accesses=1000", ...sets);

const field = (text: string, name: string) =>
  Number(new RegExp(`${name}:\\s+(\\d+)`).exec(text)![1]);

describe("3-numa-hugepages", () => {
  const built = buildHost(load());
  const pool = built.host.pools.get(M2)!;
  const mem = built.host.mem;
  const [vm1, vm2, vm3, vm4] = built.vms;

  it("puts hugepages=0:1536,1:512 on their nodes; vm1 (bound to node 0) takes 1024 of node 0", () => {
    expect([...pool.totalNode]).toEqual([1536, 512]);
    expect(vm1.state).toBe("running");
    // preallocated: all 1024 pages mapped, none reserved-but-unfaulted
    expect(vm1.mm!.rss).toBe(1024 * 512);
    expect([pool.freeOn(mem, 0), pool.freeOn(mem, 1)]).toEqual([512, 512]);
  });

  it("vm2 (bound to node 1) fails with QEMU's prealloc error though 1024 pages are free in all", () => {
    expect(vm2.state).toBe("failed");
    expect(vm2.error).toBe(
      `${QEMU_PREALLOC_ERROR} (needs 1024 x 2M pages on host node 1, 512 free there)`,
    );
    expect(pool.free.length).toBe(1024);
    expect(vm2.mm).toBeNull();
  });

  it("vm3's interleaved THPs lie on node (offset / 2M) mod 2; vm4 runs on node 1", () => {
    const mm = vm3.mm!;
    const vma = mm.vmas[0];
    const level = new Int32Array(1);
    let checked = 0;
    for (let hva = vma.start; hva < vma.end; hva += M2) {
      const pfn = mm.lookup(hva, level);
      if (pfn < 0 || level[0] !== 2) continue;
      expect(mem.nodeOf(pfn)).toBe(((hva - vma.start) / M2) % 2);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
    // vm4 is VM index 3: CPU 3 of 4, the second half: node 1
    expect(vm4.homeNode).toBe(1);
    expect(vm4.placement).toEqual([]);
  });

  it("per-node sysfs files sum to the global counters", () => {
    const f = simProcfs(built);
    const mi = f["/proc/meminfo"];
    const nodes = [0, 1].map((n) => f[`/sys/devices/system/node/node${n}/meminfo`]);
    const sum = (name: string) =>
      nodes.reduce((s, t, n) => s + field(t, `Node ${n} ${name.replace(/[()]/g, "\\$&")}`), 0);
    for (const k of ["MemFree", "AnonPages", "AnonHugePages", "PageTables", "SecPageTables"])
      expect([k, sum(k)]).toEqual([k, field(mi, k.replace(/[()]/g, "\\$&"))]);
    expect(sum("HugePages_Total")).toBe(field(mi, "HugePages_Total"));
    expect(sum("HugePages_Free")).toBe(field(mi, "HugePages_Free"));
    expect(f["/sys/devices/system/node/online"]).toBe("0-1\n");
    expect(f["/sys/devices/system/node/node1/cpulist"]).toBe("2-3\n");
    expect(f["/sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages"]).toBe(
      "512\n",
    );
    const vmstat = Object.fromEntries(
      f["/proc/vmstat"]
        .trim()
        .split("\n")
        .map((l) => l.split(" ")),
    );
    const numastat = [0, 1].map((n) =>
      Object.fromEntries(
        f[`/sys/devices/system/node/node${n}/numastat`]
          .trim()
          .split("\n")
          .map((l) => l.split(" ").map((x, i) => (i ? Number(x) : x))),
      ),
    );
    const pairs = [
      ["numa_hit", "numa_hit"],
      ["numa_miss", "numa_miss"],
      ["numa_foreign", "numa_foreign"],
      ["numa_interleave", "interleave_hit"],
      ["numa_local", "local_node"],
      ["numa_other", "other_node"],
    ];
    for (const [v, s] of pairs) expect(Number(vmstat[v])).toBe(numastat[0][s] + numastat[1][s]);
    // nothing fell back to another node here
    expect([vmstat.numa_miss, vmstat.numa_foreign]).toEqual(["0", "0"]);
  });
});

describe("the time series and the results", () => {
  it("samples HugePages_* and AnonHugePages as /proc/meminfo has them at the end", () => {
    const { result: r } = runInput(load());
    const mi = r.procfs["/proc/meminfo"];
    const last = r.series.at(-1)!;
    // vm1 preallocated 1024 of the 2048 pages: nothing reserved-but-unfaulted is left
    expect(last.hugepages["2M"]).toEqual({ total: 2048, free: 1024, rsvd: 0, surp: 0 });
    expect(last.hugepages["1G"]).toEqual({ total: 0, free: 0, rsvd: 0, surp: 0 });
    expect(last.anonHuge).toBe(field(mi, "AnonHugePages") * 1024);
    // every THP frame came from a THP fault (nothing split here)
    expect(r.host.vmstat.thp_fault_alloc * 2097152).toBe(last.anonHuge);
    expect(r.host.hugepages["2M"].nodes).toEqual([
      { node: 0, total: 1536, free: 512, surplus: 0 },
      { node: 1, total: 512, free: 512, surplus: 0 },
    ]);
    expect(r.vms.map((v) => v.numa.homeNode)).toEqual([0, 0, 1, 1]);
    expect(r.vms[2].numa.placement).toEqual([
      { mode: "interleave", hostNodes: [0, 1], bytes: 2 * 1073741824 },
    ]);
  });
});

describe("kvmem host --sim on the NUMA host", () => {
  it("reads the per-node pools and finds vm2 bound to a node whose pool is short", () => {
    const built = buildHost(load());
    const report = hostReport(new MapProcFs(simProcfs(built), { kind: "sim" }));
    expect(HostReportSchema.safeParse(report).success).toBe(true);
    expect(report.hugepages.numaNodes).toEqual([0, 1]);
    const pool = report.hugepages.pools.find((p) => p.sizeKiB === 2048)!;
    expect(pool.nodes).toEqual([
      { node: 0, nr: 1536, free: 512, surplus: 0 },
      { node: 1, nr: 512, free: 512, surplus: 0 },
    ]);
    const f = report.findings.find((x) => x.id === "hugepage-node-short");
    expect(f?.title).toBe(
      "Domain vm2 is bound to host node(s) 1 whose 2M pools hold 512 free pages; it needs 1024",
    );
    // node 1 needs 512 more pages: 512 + 512
    expect(f?.fix.text).toBe(
      "echo 1024 > /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages",
    );
    // per-node memory from nodeN/meminfo and numastat, as the simulated files say
    const mem = built.host.mem;
    expect(report.hugepages.nodeMemory?.map((n) => [n.node, n.memTotalKiB, n.memFreeKiB])).toEqual([
      [0, 8388608, mem.nodeFree[0] * 4],
      [1, 8388608, mem.nodeFree[1] * 4],
    ]);
    expect(report.hugepages.nodeMemory?.map((n) => n.numaMiss)).toEqual([0, 0]);
    // in total the pool has enough free pages, so the global finding stays quiet
    expect(report.findings.find((x) => x.id === "hugepage-pool-short")).toBeUndefined();
  });
});

describe("surplus pages on the bound node", () => {
  it("with nr_overcommit_hugepages 512, vm2 gets node 1's 512 pages and 512 surplus pages there", () => {
    const built = buildHost(load("host.kernel.overcommitHugepages.2M=512"));
    const pool = built.host.pools.get(M2)!;
    expect(built.vms[1].state).toBe("running");
    // 1536 + 512 pool pages + 512 surplus, all surplus on node 1; vm2 took every page of node 1
    expect([pool.total, pool.surplus, ...pool.surplusNode]).toEqual([2560, 512, 0, 512]);
    expect([pool.freeOn(built.host.mem, 0), pool.freeOn(built.host.mem, 1)]).toEqual([512, 0]);
    const f = simProcfs(built);
    expect(f["/sys/devices/system/node/node1/meminfo"]).toContain(
      "Node 1 HugePages_Total:  1024\nNode 1 HugePages_Free:      0\nNode 1 HugePages_Surp:    512\n",
    );
    // the sysctl is max_huge_pages (the persistent pool); sysfs nr_hugepages counts surplus too
    expect(f["/proc/sys/vm/nr_hugepages"]).toBe("2048\n");
    expect(f["/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"]).toBe("2560\n");
    built.host.assertInvariants();
  });

  it("a failed start returns the surplus pages it had gathered", () => {
    // 2 GiB hugepage VM bound to node 1, whose 8 GiB cannot hold 1024 + 4096 more 2M pages
    const input = load("host.kernel.overcommitHugepages.2M=100000", "host.kernel.hugepages.2M=0");
    const xml = input.domains.get("vm2")!.xml.replace("2097152</memory>", "10485760</memory>");
    input.domains.set("vm2", { ...input.domains.get("vm2")!, xml });
    const built = buildHost(input);
    const pool = built.host.pools.get(M2)!;
    expect(built.vms[1].state).toBe("failed");
    expect(built.vms[1].error).toContain(QEMU_PREALLOC_ERROR);
    // vm1 runs on 1024 surplus pages of node 0 (reserved when it started); vm2's are gone again
    expect([pool.total, pool.surplus, ...pool.surplusNode]).toEqual([1024, 1024, 1024, 0]);
    built.host.assertInvariants();
  });
});

describe("scenario errors", () => {
  it.each([
    [
      ["host.numa.nodes=3"],
      /host\.numa\.nodes: '3': 16 GiB of host memory does not split into whole GiB over 3 nodes/,
    ],
    [["host.cpus=3"], /host\.numa\.nodes: '2': 3 CPUs do not split evenly over 2 nodes/],
    [
      ["host.kernel.hugepages.2M=0:16,2:16"],
      /host\.kernel\.hugepages\.2M: '0:16,2:16': node 2 does not exist \(host\.numa\.nodes is 2\)/,
    ],
  ])("%s", (sets, message) => {
    expect(() => load(...sets)).toThrow(message);
  });

  it("vm.nr_hugepages as a count is spread round-robin", () => {
    const built = buildHost(load("host.kernel.hugepages.2M=3", "vms.*.backing=thp"));
    expect([...built.host.pools.get(M2)!.totalNode]).toEqual([2, 1]);
  });
});

describe("<memnode> per guest cell", () => {
  it("binds each cell's range of guest RAM to its own host node", () => {
    const input = load();
    // vm3 gets two guest cells of 1 GiB, cell 0 strict on node 1 and cell 1 strict on node 0
    const xml = `<domain type='kvm'><name>vm3</name><memory unit='KiB'>2097152</memory>
      <vcpu placement='static'>2</vcpu>
      <numatune><memnode cellid='0' mode='strict' nodeset='1'/><memnode cellid='1' mode='restrictive' nodeset='0'/></numatune>
      <os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os>
      <cpu><numa><cell id='0' cpus='0' memory='1048576' unit='KiB'/><cell id='1' cpus='1' memory='1048576' unit='KiB'/></numa></cpu>
      <devices><memballoon model='none'/></devices></domain>`;
    input.domains.set("vm3", { xml, file: "vm3.xml" });
    const built = buildHost(input);
    const vm3 = built.vms[2];
    expect(vm3.placement.map((p) => [p.start, p.end, p.mode, p.hostNodes])).toEqual([
      [0, 1073741824, "strict", [1]],
      [1073741824, 2147483648, "restrictive", [0]],
    ]);
    // touch one page in each cell's range: each lands on its cell's node
    const mm = vm3.mm!;
    const base = mm.vmas[0].start;
    const nodeAt = (off: number) => built.host.mem.nodeOf(mm.fault(base + off, true));
    expect([nodeAt(512 * 1048576), nodeAt(1536 * 1048576)]).toEqual([1, 0]);
  });
});
