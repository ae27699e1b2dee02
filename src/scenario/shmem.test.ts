// Guest RAM mapped shared from a memfd (<memoryBacking><source type='memfd'/><access
// mode='shared'/>: QEMU's memory-backend-memfd,share=on) is shmem: Shmem and Cached rather than
// AnonPages in /proc/meminfo, RssShmem in /proc/PID/status, free's "shared", shmem-rss in the OOM
// report; it is not KSM-mergeable (vma_ksm_compatible refuses VM_SHARED), gets no THP (shmem's
// default is never), sits on the anonymous LRU lists (swap-backed) and is swapped like them.
import { describe, expect, it } from "vitest";
import { runInput } from "../../test/scenario-run.js";
import { parseMeminfo } from "../inspect/parse.js";
import { oomMessage, rssCounters } from "../sim/oom.js";
import { freeFigures } from "../units/free.js";
import { loadScenario } from "./load.js";

const file = new URL("../../scenarios/4-swap.yaml", import.meta.url).pathname;

describe("memfd-backed guest RAM", () => {
  it("is shmem in every view, not mergeable, without THP, and swapped like anonymous memory", () => {
    const input = loadScenario(file, [
      { path: ["workloads", "app", "accesses"], value: 20000, text: "" },
    ]);
    const vm1 = input.domains.get("vm1")!;
    input.domains.set("vm1", {
      ...vm1,
      xml: vm1.xml.replace(
        "<devices>",
        "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n  <devices>",
      ),
    });
    const { built: b, result: r } = runInput(input);
    const [v1, v2, v3] = r.vms;
    expect([v1.backing, v2.backing]).toEqual(["4K", "thp"]);
    expect(v1.ksm).toBeNull();
    expect(v2.ksm).not.toBeNull();
    const mm1 = b.vms[0].mm!;
    const c = rssCounters(mm1);
    expect(c.anon).toBe(0);
    expect(c.shmem * 4096).toBe(v1.rssBytes);
    const mi = parseMeminfo(r.procfs["/proc/meminfo"]).value as Record<string, number>;
    expect(mi.Shmem).toBe(c.shmem * 4);
    // no disk I/O here: Cached is all shmem
    expect(mi.Cached).toBe(mi.Shmem);
    expect(mi.AnonPages * 1024).toBe(v2.rssBytes + v3.rssBytes);
    expect(freeFigures(mi).shared).toBe(mi.Shmem);
    // every frame still has one owner in /proc/meminfo
    const owners = ["MemFree", "AnonPages", "Buffers", "Cached", "PageTables", "SecPageTables"];
    expect(owners.reduce((a, k) => a - (mi[k] ?? 0), mi.MemTotal)).toBe(0);
    const status = r.procfs["/proc/1000/status"];
    expect(status).toContain(`RssAnon:\t${String(0).padStart(8)} kB\n`);
    expect(status).toContain(`RssShmem:\t${String(c.shmem * 4).padStart(8)} kB\n`);
    expect(oomMessage(mm1, 1000)).toContain(
      `anon-rss:0kB, file-rss:0kB, shmem-rss:${c.shmem * 4}kB`,
    );
    // swap-backed: on the anonymous LRU lists, and swapped under this host's pressure
    expect(v1.swapBytes).toBeGreaterThan(0);
    b.reclaim.assertInvariants();
    b.host.assertInvariants();
  }, 120_000);
});
