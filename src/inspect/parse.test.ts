// Fixtures: ../shared/corpus/procfs (real files from prometheus/procfs, node_exporter and
// telegraf test suites; see its README for commits and licenses), read in place.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CORPUS, corpusPath } from "../../test/corpus.js";
import {
  findBootMemoryLine,
  hugepageDirSizeKiB,
  parseCpuinfo,
  parseMeminfo,
  parseMemparse,
  parseMounts,
  parseSelector,
  parseSwaps,
} from "./parse.js";

const corpus = (p: string) => readFileSync(corpusPath(`procfs/${p}`), "utf8");

describe.skipIf(!CORPUS)("parsers over real fixtures", () => {
  it("meminfo: kB values and HugePages_* counts (telegraf-hugepages)", () => {
    const { value, problems } = parseMeminfo(corpus("telegraf-hugepages/proc/meminfo"));
    expect(problems).toEqual([]);
    expect(value.HugePages_Total).toBe(2048);
    expect(value.HugePages_Free).toBe(883);
    expect(value.Hugepagesize).toBe(2048);
    expect(value.Hugetlb).toBe(12582912);
  });

  it("meminfo: a non-numeric value is a problem with its line, the rest still parses", () => {
    const { value, problems } = parseMeminfo(corpus("telegraf-hugepages-invalid/proc/meminfo"));
    expect(problems).toHaveLength(1);
    expect(problems[0].path).toMatch(/^\/proc\/meminfo:\d+$/);
    expect(problems[0].message).toContain("sixtynine");
    expect(value.HugePages_Free).toBeUndefined();
    expect(Object.keys(value).length).toBeGreaterThan(3);
  });

  it("per-node meminfo strips 'Node N ' (node_exporter node0)", () => {
    const { value } = parseMeminfo(corpus("node_exporter/sys/devices/system/node/node0/meminfo"));
    expect(value.MemTotal).toBe(134182340);
    expect(value.HugePages_Total).toBe(0);
  });

  it("cpuinfo: vendor, CPU count, virtualization flags (prometheus-procfs, i7-8650U)", () => {
    const { value } = parseCpuinfo(corpus("prometheus-procfs/proc/cpuinfo"));
    expect(value.vendor).toBe("GenuineIntel");
    expect(value.cpus).toBe(8);
    for (const f of ["vmx", "ept", "vpid", "ept_ad", "flexpriority", "pdpe1gb"])
      expect(value.flags.has(f)).toBe(true);
    expect(value.flags.has("svm")).toBe(false);
    expect(value.vmxFlags).toBeUndefined();
  });

  it("cpuinfo: the 'vmx flags' line (kernel 5.9+)", () => {
    const t =
      "processor\t: 0\nflags\t\t: vmx\nvmx flags\t: vnmi invvpid ept_x_only ept_ad ept_1gb flexpriority ept vpid unrestricted_guest\n";
    const { value } = parseCpuinfo(t);
    expect(value.vmxFlags?.has("unrestricted_guest")).toBe(true);
    expect(value.flags.has("ept")).toBe(false);
  });

  it("swaps: partition and zram (prometheus-procfs, node_exporter)", () => {
    expect(parseSwaps(corpus("prometheus-procfs/proc/swaps")).value).toEqual([
      { filename: "/dev/dm-2", type: "partition", sizeKiB: 131068, usedKiB: 176, priority: -2 },
    ]);
    expect(parseSwaps(corpus("node_exporter/proc/swaps")).value[0]).toMatchObject({
      filename: "/dev/zram0",
      sizeKiB: 8388604,
      priority: 100,
    });
  });

  it("mountinfo: finds the hugetlbfs mount (node_exporter proc/1/mountinfo)", () => {
    const { value, problems } = parseMounts(
      corpus("node_exporter/proc/1/mountinfo"),
      "/proc/1/mountinfo",
    );
    expect(problems).toEqual([]);
    const h = value.filter((m) => m.fsType === "hugetlbfs");
    expect(h).toHaveLength(1);
    expect(h[0].mountPoint).toBe("/dev/hugepages");
  });

  it("mounts: /proc/mounts lines with pagesize and octal escapes", () => {
    const { value } = parseMounts(
      "hugetlbfs /dev/huge\\0401G hugetlbfs rw,relatime,pagesize=1024M 0 0\n",
    );
    expect(value[0].mountPoint).toBe("/dev/huge 1G");
    expect(value[0].options.pagesize).toBe("1024M");
  });

  it("small formats", () => {
    expect(parseSelector("always [madvise] never\n")).toEqual({
      current: "madvise",
      choices: ["always", "madvise", "never"],
    });
    expect(hugepageDirSizeKiB("hugepages-1048576kB")).toBe(1048576);
    expect(hugepageDirSizeKiB("hugepages")).toBeUndefined();
    expect(parseMemparse("2M")).toBe(2 * 1024 * 1024);
    expect(parseMemparse("1G")).toBe(2 ** 30);
    const line = findBootMemoryLine(
      "[    0.064915] Memory: 3218236K/25165432K available (18470K kernel code, 2544K rwdata, 10280K rodata, 3728K init, 1168K bss, 448828K reserved, 0K cma-reserved)\n",
    );
    expect(line).toMatchObject({ availableKiB: 3218236, totalKiB: 25165432 });
  });
});
