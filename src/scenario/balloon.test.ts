// Ballooning in a whole scenario (scenarios/4-balloon.yaml, smaller): a guest frees 64 MiB; a
// balloon on THP-backed RAM gives exactly the backed pages back to the host, one on hugetlbfs
// gives whole huge pages back to the pool and none to MemFree, free page reporting gives them
// back without a target; the guest's MemTotal and dommemstat follow.
import { describe, expect, it } from "vitest";
import { loadWith, runInput, scenarioFile } from "../../test/scenario-run.js";
import { loadScenario } from "./load.js";

const file = new URL("../../scenarios/4-balloon.yaml", import.meta.url).pathname;
const MiB = 1048576;

function run(...sets: string[]) {
  const input = loadWith(
    file,
    "workloads.job.footprint=64MiB",
    "workloads.job.accesses=5000",
    ...sets,
  );
  for (const ev of input.scenario.timeline)
    if ("setmem" in ev) ev.setmem.target = 2048 * MiB - 128 * MiB;
  const { built, result } = runInput(input);
  return { built, r: result };
}

describe("virtio-balloon in kvmem sim", () => {
  it("gives back what the guest freed: to MemFree (THP), to the hugetlb pool (2M), by reporting", () => {
    const { built, r } = run();
    const [vm1, vm2, vm3] = r.vms;
    const pages = (64 * MiB) / 4096;
    for (const v of r.vms) expect(v.guestFreedPages).toBe(pages);
    // vm1: the balloon holds 128 MiB; the 64 MiB the guest had used come back to the host
    expect(vm1.balloon).toMatchObject({
      targetBytes: 1920 * MiB,
      actualBytes: 1920 * MiB,
      inflatedPages: 32768,
      hostFreedBytes: 64 * MiB,
      hugePagesToPool: 0,
    });
    expect(vm1.guest?.meminfo).toContain(`MemTotal:        ${1920 * 1024} kB\n`);
    expect(vm1.guest?.dommemstat.actual).toBe(1920 * 1024);
    // vm2: the same balloon on hugetlbfs: 32 huge pages punched out, no host RAM freed
    expect(vm2.balloon).toMatchObject({ hostFreedBytes: 0, hugePagesToPool: 32 });
    expect(vm2.balloon?.note).toContain("hugetlb pool");
    // vm3: no target, free page reporting gave the 64 MiB back; MemTotal unchanged
    expect(vm3.balloon).toMatchObject({
      inflatedPages: 0,
      reportedBytes: 64 * MiB,
      hostFreedBytes: 64 * MiB,
      actualBytes: 2048 * MiB,
    });
    expect(vm3.guest?.meminfo).toContain(`MemTotal:        ${2048 * 1024} kB\n`);
    for (const v of built.vms) v.balloon?.assertInvariants();
    built.host.assertInvariants();
    built.ksm.assertInvariants();
    // host: freed frames less one page table per THP split by the discards (2 x 32)
    const noBalloon = run("duration=0", "workloads.job.exitAtEnd=false");
    expect(r.host.vmstat.thp_split_page).toBe(64);
    expect(r.host.freeBytes - noBalloon.r.host.freeBytes).toBe((2 * pages - 64) * 4096);
    expect(r.host.hugepages["2M"].free - noBalloon.r.host.hugepages["2M"].free).toBe(32);
  });

  it("a setmem at run time is logged; with no balloon device it is refused", () => {
    const { r } = run("duration=200");
    expect(r.timeline.filter((e) => e.event.startsWith("setmem") && e.applied)).toHaveLength(2);
    const input = loadScenario(file, []);
    const vm1 = input.domains.get("vm1")!;
    input.domains.set("vm1", {
      ...vm1,
      xml: vm1.xml.replace(
        /<memballoon model='virtio'>[\s\S]*?<\/memballoon>/,
        "<memballoon model='none'/>",
      ),
    });
    input.scenario.workloads.job.footprint = 8 * MiB;
    input.scenario.duration = 100;
    const { result: s } = runInput(input);
    expect(s.vms[0].balloon).toBeNull();
    expect(s.timeline.find((e) => e.event.startsWith("setmem vm1"))?.note).toContain(
      "no balloon device",
    );
  });
});

describe("surplus huge pages in kvmem sim", () => {
  it("a hugepage VM starts on surplus pages within nr_overcommit_hugepages; the next does not", () => {
    const input = loadWith(
      scenarioFile("3-hugepages.yaml"),
      "host.kernel.hugepages.2M=512",
      "host.kernel.overcommitHugepages.2M=600",
      "workloads.big.accesses=2000",
      "workloads.big.footprint=16MiB",
    );
    input.scenario.vms.push({ ...input.scenario.vms[0], name: "vm2" });
    input.domains.set("vm2", input.domains.get("vm1")!);
    const { result: r } = runInput(input);
    // vm1 needs 1024 pages: 512 free + 512 surplus; vm2 would need 1024 more (> 600 - 512)
    expect(r.vms[0].state).toBe("running");
    expect(r.vms[1].state).toBe("failed");
    expect(r.vms[1].error).toContain("Cannot allocate memory");
    expect(r.host.hugepages["2M"]).toMatchObject({ total: 1024, surplus: 512, overcommit: 600 });
    expect(r.procfs["/proc/meminfo"]).toContain("HugePages_Surp:      512\n");
    expect(r.procfs["/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages"]).toBe(
      "600\n",
    );
  });
});
