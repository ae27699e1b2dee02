/**
 * The plain-words explanation says what libvirt/QEMU/Linux actually do with each corpus domain
 * (../shared/corpus/libvirt-domains, read in place). One row per fact, with the reason in a
 * comment; the expected words are chosen from the rule, not copied from the output.
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { bootRamKiB, explainDomain, usesHugetlb } from "./explain.js";
import { parseDomain } from "./parse.js";

const CORPUS = corpusSubdir("libvirt-domains/valid");
const have = existsSync(CORPUS);
const explain = (f: string) => {
  const d = parseDomain(readFileSync(CORPUS + f, "utf8")).domain;
  return new Map(
    explainDomain(d).reduce<Array<[string, string]>>((acc, s) => {
      const prev = acc.find(([t]) => t === s.topic);
      if (prev) prev[1] += ` ${s.text}`;
      else acc.push([s.topic, s.text]);
      return acc;
    }, []),
  );
};

describe.skipIf(!have)("explanations", () => {
  it.each([
    // hugetlbfs pages are not swappable and KSM does not scan them
    ["hugepages-default.xml", "swap", /^No: hugetlbfs/],
    ["hugepages-default.xml", "KSM", /^No: KSM never merges hugetlbfs/],
    // the seed: huge pages mean no balloon reclaim
    ["hugepages-default.xml", "balloon", /no balloon reclaim/],
    // <locked/> mlocks guest RAM
    ["mlock-on.xml", "swap", /^No: <locked\/>/],
    // <nosharepages/> -> mem-merge=off
    ["nosharepages.xml", "KSM", /^No: <nosharepages\/>/],
    // plain anonymous private RAM: swappable, mergeable, THP-eligible
    ["x86_64-q35-minimal.xml", "swap", /^Yes/],
    ["x86_64-q35-minimal.xml", "KSM", /^Yes/],
    ["x86_64-q35-minimal.xml", "backing", /THP-eligible/],
    // shared file-backed RAM is not anonymous: no KSM, writeback instead of swap
    ["memorybacking-set.xml", "KSM", /^No: this memory is shared/],
    // only node 1 has a <page>: the other nodes are ordinary memory, swappable and mergeable
    ["hugepages-memaccess2.xml", "swap", /Guest nodes 0,2-3: Yes.*Guest node 1: No: hugetlbfs/],
    ["hugepages-memaccess2.xml", "backing", /guest nodes 0,2-3 on ordinary 4 KiB pages/],
    // private file mapping: written pages are anonymous copies KSM can merge; cell 1 is shared
    [
      "fd-memory-numa-topology2.xml",
      "KSM",
      /Guest node 0: Yes, the pages the guest has written.*Guest node 1: No: this memory is shared/,
    ],
    ["memorybacking-set.xml", "swap", /^Not to swap/],
    // memballoon model='none'
    ["hugepages-numa-nodeset.xml", "balloon", /^No balloon device/],
    // autodeflate and stats period
    ["balloon-device-deflate.xml", "balloon", /autodeflate/],
    ["balloon-device-period.xml", "balloon", /every 10 seconds/],
    // per-node page sizes
    [
      "hugepages-numa-nodeset.xml",
      "backing",
      /2 MiB pages for guest node 1; 1 GiB pages for guest nodes 0,2-3/,
    ],
    // a <page> of the system page size is ordinary memory
    ["hugepages-default-system-size.xml", "backing", /ordinary memory/],
    // memtune limits are cgroup limits on the QEMU process
    ["memtune.xml", "memtune", /hard_limit 500 MiB/],
    // currentMemory below memory but no balloon to enforce it
    ["hugepages-numa-default.xml", "balloon", /currentMemory \(1 GiB\) has no effect/],
    // maxMemory with slots
    ["memory-hotplug.xml", "hotplug", /16 slots \(0 used\)/],
    ["memory-hotplug-virtio-mem.xml", "hotplug", /no free dimm slot/],
  ])("%s %s", (f, topic, re) => {
    expect(explain(f).get(topic)).toMatch(re);
  });

  it("boot RAM: NUMA cells plus dimms plus plugged virtio-mem", () => {
    const d = (f: string) => parseDomain(readFileSync(CORPUS + f, "utf8")).domain;
    // memory-hotplug-virtio-mem.xml: cell 2095104 KiB + requested 524288 + 1048576 KiB
    expect(bootRamKiB(d("memory-hotplug-virtio-mem.xml"))).toBe(2095104 + 524288 + 1048576);
    // memory-hotplug-dimm.xml: cell 219136 KiB + two dimms (523264 + 524287 KiB)
    expect(bootRamKiB(d("memory-hotplug-dimm.xml"))).toBe(219136 + 523264 + 524287);
    expect(usesHugetlb(d("hugepages-default-system-size.xml"))).toBe(false);
  });
});

describe("balloon target below memory", () => {
  it("a virtio balloon starts inflated by memory - currentMemory", () => {
    const d = parseDomain(
      "<domain type='kvm'><memory unit='GiB'>4</memory><currentMemory unit='GiB'>3</currentMemory></domain>",
    ).domain;
    const balloon = explainDomain(d).find((s) => s.topic === "balloon")?.text;
    // implicit virtio balloon (QEMU driver default), inflated by 1 GiB, guest uses 3 GiB
    expect(balloon).toMatch(/added by libvirt.*inflated by 1 GiB, so the guest can use 3 GiB/);
  });
});
