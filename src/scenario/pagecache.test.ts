// The page cache in a whole scenario (scenarios/4-swappiness.yaml, shortened): the guests' disk
// I/O fills it unless the domain's <driver cache='none'/> bypasses it; every view agrees (the
// results, /proc/meminfo Cached/Active(file)/Inactive(file)/Dirty/MemAvailable, /proc/vmstat,
// free's buff/cache); vm.swappiness, also when a timeline `set` changes it, decides whether
// guest memory is swapped; bad disk settings are one-line errors.
import { describe, expect, it } from "vitest";
import { runInput, runWith } from "../../test/scenario-run.js";
import { parseMeminfo } from "../inspect/parse.js";
import { freeFigures } from "../units/free.js";
import { loadScenario } from "./load.js";
import { parseScenarioObject } from "./schema.js";

const file = new URL("../../scenarios/4-swappiness.yaml", import.meta.url).pathname;

function run(...sets: string[]) {
  const { built, result } = runWith(file, "workloads.app.accesses=20000", "duration=1500", ...sets);
  return { built, r: result };
}

const vmstat = (text: string, key: string) =>
  Number(new RegExp(`^${key} (\\d+)$`, "m").exec(text)?.[1]);

describe("the page cache in kvmem sim", () => {
  it("writeback guests fill it, cache='none' does not; every view agrees", () => {
    const { built, r } = run();
    const [vm1, vm2, vm3] = r.vms;
    expect(vm1.disk!.cache).toBe("writeback");
    expect(vm3.disk!.cache).toBe("none");
    expect(vm3.disk!.pageCacheBytes).toBe(0);
    expect(vm3.disk!.readHits).toBe(0);
    expect(vm3.disk!.diskReads).toBe(vm3.disk!.reads); // O_DIRECT: every read is a disk read
    expect(vm1.disk!.readHits).toBeGreaterThan(0);
    const cached = vm1.disk!.pageCacheBytes + vm2.disk!.pageCacheBytes;
    expect(r.host.reclaim.pageCacheBytes).toBe(cached);
    const mi = parseMeminfo(r.procfs["/proc/meminfo"]).value as Record<string, number>;
    expect(mi.Cached * 1024).toBe(cached);
    expect(mi.Buffers).toBe(0);
    expect((mi["Active(file)"] + mi["Inactive(file)"]) * 1024).toBe(cached);
    expect(mi.Dirty * 1024).toBe(r.host.reclaim.dirtyBytes);
    expect(mi.Active).toBe(mi["Active(anon)"] + mi["Active(file)"]);
    // si_mem_available: free - high + cache - min(cache / 2, low), pages
    const { high, low } = r.host.reclaim.watermarks;
    const pages = cached / 4096;
    const free = r.host.freeBytes / 4096;
    expect(mi.MemAvailable).toBe(
      Math.max(0, free - high + pages - Math.min(Math.floor(pages / 2), low)) * 4,
    );
    // free(1): buff/cache = Buffers + Cached + SReclaimable
    expect(freeFigures(mi).buffCache).toBe(mi.Cached);
    const vs = r.procfs["/proc/vmstat"];
    expect(vmstat(vs, "nr_file_pages")).toBe(pages);
    expect(vmstat(vs, "nr_active_file") + vmstat(vs, "nr_inactive_file")).toBe(pages);
    // pgpgin: KiB read from disks, O_DIRECT and swap-ins included
    const diskReads = r.vms.reduce((a, v) => a + v.disk!.diskReads, 0);
    expect(vmstat(vs, "pgpgin")).toBe(diskReads * 4 + r.host.vmstat.pswpin * 4);
    expect(vmstat(vs, "pgactivate")).toBe(r.host.reclaim.pgactivate);
    expect(vmstat(vs, "workingset_refault_file")).toBe(r.host.reclaim.workingsetRefaultFile);
    expect(r.host.reclaim.workingsetRefaultFile).toBeGreaterThan(0); // evicted pages re-read
    expect(r.host.reclaim.workingsetActivateFile).toBeLessThanOrEqual(
      r.host.reclaim.workingsetRefaultFile,
    );
    built.reclaim.assertInvariants();
    built.host.assertInvariants();
  }, 120_000);

  it("swappiness 0 swaps no guest page; 200 does; a timeline `set` reaches reclaim", () => {
    // the whole 3 s: the cache outgrows what is free and its active list outgrows the inactive
    expect(run("duration=3000", "host.kernel.swappiness=0").r.host.vmstat.pswpout).toBe(0);
    const hot = run("duration=3000", "host.kernel.swappiness=200").r;
    expect(hot.host.vmstat.pswpout).toBeGreaterThan(0);
    expect(hot.host.reclaim.pgscanAnon).toBeGreaterThan(0);
    // 200 until 10 ms, then 0 for the rest: the setting the reclaim passes read changes
    const input = loadScenario(file, [
      { path: ["workloads", "app", "accesses"], value: 20000, text: "" },
      { path: ["duration"], value: 3000, text: "" },
      { path: ["host", "kernel", "swappiness"], value: 200, text: "" },
    ]);
    input.scenario.timeline.push({ at: 10, set: { "host.kernel.swappiness": 0 } });
    const { result: set } = runInput(input);
    expect(set.host.reclaim.swappiness).toBe(0);
    expect(set.procfs["/proc/sys/vm/swappiness"]).toBe("0\n");
    expect(set.host.vmstat.pswpout).toBeLessThan(hot.host.vmstat.pswpout);
  }, 240_000);

  it("a bad disk setting is an error naming the key, the value and what is accepted", () => {
    const scenario = (disk: unknown) => ({
      host: { memory: "1GiB" },
      workloads: { w: { pattern: "uniform", disk } },
      vms: [{ name: "a", xml: "<domain/>", workload: "w" }],
    });
    const err = (disk: unknown) => {
      try {
        parseScenarioObject(scenario(disk), "s.yaml");
      } catch (e) {
        const k = e as { place: string; message: string };
        return `${k.place}: ${k.message}`;
      }
      return "accepted";
    };
    expect(err({ read: "fast" })).toMatch(/^workloads\.w\.disk\.read: 'fast': not a size/);
    expect(err({ reads: "1MiB" })).toBe("workloads.w.disk: unknown key 'reads'");
    expect(err({ read: "1MiB", image: 0 })).toMatch(/^workloads\.w\.disk\.image: '0'/);
    expect(err({ read: "64MiB" })).toBe("accepted");
  });
});
