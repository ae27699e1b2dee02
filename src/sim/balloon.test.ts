/**
 * virtio-balloon on small cases, expected values worked out by hand from virtio_balloon.c
 * (fill/leak_balloon, 256 pages per message, deflate-on-oom) and QEMU's balloon_inflate_page
 * (4 KiB discards; a huge page only when wholly ballooned, back to the hugetlb pool).
 * The guest's 4K data zone is gfns [2048, 16384) (8-64 MiB), so the balloon takes 16383 down.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { vmOverRam } from "../../test/sim-vm.js";
import { Balloon, type BalloonOptions } from "./balloon.js";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm } from "./ksm.js";

const G = 1073741824;
const M2 = 2097152;

function setup(backing: "4K" | "thp" | "2M", opts: Partial<BalloonOptions> = {}) {
  const host = new Host({ memory: 4 * G, cpus: 1 });
  if (backing === "2M") host.reserveHugePages(M2, 512);
  const ptes = new HostPtes(host, new VmStat());
  const ksm = new Ksm(ptes, {});
  const mm = host.createProcess("qemu");
  const hva =
    backing === "2M"
      ? mm.mmap(G, { kind: "hugetlb", pageSize: M2 })
      : mm.mmap(G, { thp: backing === "thp" });
  const { vm, os } = vmOverRam(host, mm, hva, G, { name: "vm", ept: true });
  const b = new Balloon(vm, mm, os, ptes, ksm, {
    ramPages: G / 4096,
    autodeflate: false,
    freePageReporting: false,
    ...opts,
  });
  return { host, mm, vm, os, b, ptes };
}

describe("virtio-balloon", () => {
  it("inflates 256 pages per ms to the target; the host frees what was backed", () => {
    const { host, mm, vm, os, b } = setup("4K");
    for (let g = 16384 - 100; g < 16384; g++) vm.gfnToPfn(g); // the guest used these once
    const rss = mm.rss;
    const free = host.mem.freeFrames;
    const free4K = os.free4K;
    b.setTarget(G - 4 * 1048576); // virsh setmem: 4 MiB less
    expect(b.targetPages).toBe(1024);
    b.advance(1, 1);
    expect(b.pages.length).toBe(256);
    expect(b.framesFreed).toBe(100);
    b.advance(10, 11);
    expect(b.pages.length).toBe(1024);
    expect(b.pages[1023]).toBe(16384 - 1024);
    expect(os.free4K).toBe(free4K - 1024);
    expect(b.guestTotalPages).toBe(G / 4096 - 1024); // MemTotal drops without deflate-on-oom
    expect(mm.rss).toBe(rss - 100);
    expect(host.mem.freeFrames).toBe(free + 100);
    b.assertInvariants();
    host.assertInvariants();
    // back to the full size: deflating gives the guest its pages; the host maps nothing
    b.setTarget(G);
    b.advance(4, 15);
    expect(b.pages.length).toBe(0);
    expect(b.deflated).toBe(1024);
    expect(os.free4K).toBe(free4K);
    expect(host.mem.freeFrames).toBe(free + 100);
  });

  it("deflate-on-oom keeps MemTotal, gives 256 pages back per OOM and stops pursuing the target", () => {
    const { b } = setup("4K", { autodeflate: true });
    b.setTarget(G - 8 * 1048576);
    b.advance(100, 100);
    expect(b.pages.length).toBe(2048);
    expect(b.guestTotalPages).toBe(G / 4096);
    expect(b.oomDeflate()).toBe(256);
    expect(b.pages.length).toBe(1792);
    b.advance(100, 200);
    expect(b.pages.length).toBe(1792); // no re-inflation until the host sets a target again
    b.setTarget(G - 8 * 1048576);
    b.advance(100, 300);
    expect(b.pages.length).toBe(2048);
    const noAuto = setup("4K").b;
    noAuto.setTarget(G - 1048576);
    noAuto.advance(10, 10);
    expect(noAuto.oomDeflate()).toBe(0);
  });

  it("hugetlbfs backing: nothing freed until a whole 2M page is in; then it goes to the pool", () => {
    const { host, vm, b } = setup("2M");
    for (let g = 16384 - 1024; g < 16384; g += 512) vm.gfnToPfn(g); // two huge pages faulted
    const pool = host.pools.get(M2)!;
    const poolFree = pool.free.length;
    const free = host.mem.freeFrames;
    b.setTarget(G - 1048576); // 256 pages: half of one huge page
    b.advance(10, 10);
    expect(b.framesFreed).toBe(0);
    expect(b.heldInHugePages).toBe(256);
    expect(pool.free.length).toBe(poolFree);
    b.setTarget(G - 2 * 1048576); // 512 pages: the top huge page is wholly ballooned
    b.advance(10, 20);
    expect(b.hugePagesFreed).toBe(1);
    expect(b.heldInHugePages).toBe(0);
    expect(pool.free.length).toBe(poolFree + 1);
    // the pool keeps it: the host's free memory (MemFree) does not grow
    expect(host.mem.freeFrames).toBe(free);
    host.assertInvariants();
  });

  it("THP backing: a ballooned 4K page splits the THP and frees that 4K", () => {
    const { host, vm, b, ptes } = setup("thp");
    vm.gfnToPfn(16383); // one THP over gfns 15872..16383
    const free = host.mem.freeFrames;
    b.setTarget(G - 4096);
    b.advance(1, 1);
    expect(ptes.vmstat.thp_split_page).toBe(1);
    expect(b.framesFreed).toBe(1);
    expect(host.mem.freeFrames).toBe(free + 1 - 1); // one frame back, one page table made
    host.assertInvariants();
    b.assertInvariants();
  });

  it("pages a guest process freed are backed until the balloon takes them (first)", () => {
    const { host, mm, vm, os, b } = setup("4K");
    const used: number[] = [];
    for (let i = 0; i < 600; i++) used.push(os.allocData(1));
    for (const g of used) vm.gfnToPfn(g); // the process touched them: the host backs them
    const rss = mm.rss;
    for (const g of used) os.freeData(g); // it exited: free in the guest, still host RSS
    expect(mm.rss).toBe(rss);
    b.setTarget(G - 1048576); // 256 pages: all from the freed ones
    b.advance(1, 1);
    expect(b.framesFreed).toBe(256);
    expect(mm.rss).toBe(rss - 256);
    expect(os.freed4K.length).toBe(344);
    b.assertInvariants();
    host.assertInvariants();
  });

  it("free page reporting discards free 2 MiB blocks every 2 s; MemTotal stays", () => {
    const { host, vm, os, b } = setup("4K", { freePageReporting: true });
    for (let g = 16384 - 1024; g < 16384; g++) vm.gfnToPfn(g); // freed by the guest since
    const free = host.mem.freeFrames;
    b.advance(1000, 1000);
    expect(b.reported).toBe(0);
    b.advance(1000, 2000);
    expect(b.reported).toBe(1024);
    expect(host.mem.freeFrames).toBe(free + 1024);
    expect(os.free4K).toBe(16384 - 2048);
    expect(b.guestTotalPages).toBe(G / 4096);
  });
});

describe("virtio-balloon invariants (fast-check)", () => {
  it("ballooned pages are never mapped and frames are conserved, under any sequence", () => {
    type Op =
      | { op: "use"; n: number }
      | { op: "free"; n: number }
      | { op: "target"; mib: number }
      | { op: "time"; ms: number }
      | { op: "oom" };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant("use" as const), n: fc.integer({ min: 1, max: 700 }) }),
      fc.record({ op: fc.constant("free" as const), n: fc.integer({ min: 1, max: 700 }) }),
      fc.record({ op: fc.constant("target" as const), mib: fc.integer({ min: 960, max: 1024 }) }),
      fc.record({ op: fc.constant("time" as const), ms: fc.integer({ min: 1, max: 400 }) }),
      fc.record({ op: fc.constant("oom" as const) }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom("4K" as const, "thp" as const),
        fc.boolean(),
        fc.boolean(),
        fc.array(opArb, { maxLength: 25 }),
        (backing, autodeflate, freePageReporting, ops) => {
          const { host, mm, vm, os, b } = setup(backing, { autodeflate, freePageReporting });
          const used: number[] = [];
          let now = 0;
          const framesUsed0 = host.mem.nframes - host.mem.freeFrames - mm.rss;
          for (const o of ops) {
            if (o.op === "use") {
              for (let i = 0; i < o.n && os.free4K > 0; i++) {
                const g = os.allocData(1);
                vm.gfnToPfn(g);
                used.push(g);
              }
            } else if (o.op === "free") {
              for (let i = 0; i < o.n && used.length > 0; i++) os.freeData(used.pop()!);
            } else if (o.op === "target") b.setTarget(o.mib * 1048576);
            else if (o.op === "time") {
              now += o.ms;
              b.advance(o.ms, now);
            } else b.oomDeflate();
            b.assertInvariants();
            host.assertInvariants();
            // frames: kernel/table frames (grow with splits) + the rss the process maps
            const kernel = host.mem.countKind(1);
            expect(host.mem.nframes - host.mem.freeFrames).toBe(kernel + mm.rss);
            expect(kernel).toBeGreaterThanOrEqual(framesUsed0);
            for (const g of used) expect(b.pages.includes(g)).toBe(false);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
