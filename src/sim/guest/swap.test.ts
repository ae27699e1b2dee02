/**
 * The guest's own swap on small cases, expected values worked out by hand from the CLOCK over
 * the guest's accessed bits (folio_referenced clears, the next lap swaps out), SWAP_CLUSTER_MAX
 * = 32 pages per direct reclaim and the LIFO free list: a guest whose 4K data zone is 256 pages
 * (gfns 2048..2303) runs a sequential workload over 288 pages, twice. With EPT and with shadow
 * paging (where the gpte stores trap to KVM and INVLPG exits). fast-check: a guest page's
 * content survives any mix of touches and balloon moves, no slot is lost or named twice, and
 * the data zone's frames are conserved (free + mapped + ballooned = zone).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { smallVm } from "../../../test/sim-vm.js";
import { ACCESS_READ, ACCESS_WRITE, EXIT_INVLPG } from "../../x86/faults.js";
import { isSwapPte, makeSwapPteHi, makeSwapPteLo, PTE_P, swapPteOffset } from "../../x86/pte.js";
import { Balloon } from "../balloon.js";
import { STATUS_GUEST_PF, STATUS_OK, WalkRecord } from "../record.js";
import type { GuestProcess } from "./os.js";
import { GuestSwap } from "./swap.js";

const M = 1048576;
/** a 512-aligned user vpn: the workload's pages share one level-1 table */
const BASE = 0x7f0000000;

function setup(ept: boolean, swapBytes = M) {
  // tables 1-8 MiB, 4K data 8-9 MiB: 256 data pages
  const { host, ptes, ksm, mm, vm, os } = smallVm({
    ept,
    zones: { tableEndMiB: 8, end4KMiB: 9, end2MMiB: 9 },
  });
  const vcpu = vm.addVcpu();
  vcpu.user = true;
  const cpu = host.cpus[0];
  const swap = new GuestSwap(os, swapBytes);
  swap.cpu = { cpu, vcpu };
  const p = os.process("app");
  const rec = new WalkRecord();
  cpu.movCr3(vcpu, p.root, p.pcid, false, rec);
  const balloon = new Balloon(vm, mm, os, ptes, ksm, {
    ramPages: (64 * M) / 4096,
    autodeflate: false,
    freePageReporting: false,
  });
  // the guest kernel's alloc_page (guest-life.ts allocGuest) and #PF handler (guestFault)
  const alloc = () => {
    while (os.free4K === 0 && swap.reclaim() > 0);
    return os.allocData(1);
  };
  const touch = (vpn: number, access = ACCESS_READ) => {
    let s = cpu.access(vcpu, vpn, 0, access, rec);
    if (s === STATUS_GUEST_PF) {
      if (!swap.swapIn(p, vpn, alloc))
        os.map(p, vpn, alloc(), 1, { write: true, user: true, exec: true });
      s = cpu.access(vcpu, vpn, 0, access, rec);
    }
    expect(s).toBe(STATUS_OK);
    return rec.pfn;
  };
  return { host, mm, vm, os, swap, p, touch, balloon, cpu, vcpu, rec };
}

describe("guest swap", () => {
  it("x86 swap ptes: not present, the offset inverted in bits 9..58, round-trips", () => {
    for (const off of [0, 1, 255, 0x7fffff, 0x800000, 2 ** 40 + 12345]) {
      const lo = makeSwapPteLo(off);
      const hi = makeSwapPteHi(off);
      expect(lo & PTE_P).toBe(0);
      expect(isSwapPte(lo, hi)).toBe(true);
      expect(swapPteOffset(lo, hi)).toBe(off);
    }
    // offset 0: every offset bit set once inverted (bits 9..58), type 0 in bits 59..63
    expect([makeSwapPteLo(0), makeSwapPteHi(0)]).toEqual([0xfffffe00, 0x07ffffff]);
    expect(makeSwapPteHi(0, 1) >>> 27).toBe(1);
    expect(isSwapPte(0, 0)).toBe(false); // pte_none
  });

  for (const ept of [true, false]) {
    it(`N = 256 free pages, a workload of N + 32: 32 out, then every page of a second lap in (${ept ? "EPT" : "shadow"})`, () => {
      const { vm, os, swap, p, touch } = setup(ept);
      expect(os.free4K).toBe(256);
      // lap 1: pages 0..255 take the zone; page 256 finds none: the first reclaim lap clears
      // 256 accessed bits, the second swaps out gfns 2048..2079 (pages 0..31)
      for (let i = 0; i < 288; i++) touch(BASE + i, ACCESS_WRITE);
      expect([swap.pswpout, swap.pswpin, swap.used, swap.allocstall]).toEqual([32, 0, 32, 1]);
      for (let i = 0; i < 288; i++) expect(swap.isSwapped(p, BASE + i)).toBe(i < 32);
      expect(os.free4K).toBe(0);
      // lap 2 (reads): sequential access under CLOCK with 32 pages too few: each reclaim frees
      // the pages the lap needs next, so all 288 are major faults; 9 more reclaims of 32
      for (let i = 0; i < 288; i++) touch(BASE + i);
      expect(swap.pswpin).toBe(288);
      expect(swap.pgmajfault).toBe(288);
      expect(swap.pswpout).toBe(32 + 9 * 32);
      expect(swap.used).toBe(32);
      expect(swap.allocstall).toBe(10);
      // the last reclaim (at page 256) took pages 0..31 again
      for (let i = 0; i < 288; i++) expect(swap.isSwapped(p, BASE + i)).toBe(i < 32);
      // one virtio-blk write per batch, one read per swap-in, each an I/O exit
      expect(swap.requests).toBe(10 + 288);
      expect(vm.exitCounts[30]).toBe(298);
      if (ept) {
        expect(swap.trappedWrites).toBe(0);
        expect(vm.exitCounts[EXIT_INVLPG]).toBe(0);
      } else {
        // shadow paging: the accessed-bit clears (256 in lap 1, 256 at page 224 of lap 2) and
        // the 320 swap-pte stores trap; every swap-out's INVLPG exits
        expect(swap.trappedWrites).toBe(512 + 320);
        expect(vm.exitCounts[EXIT_INVLPG]).toBe(320);
      }
      swap.assertInvariants(Array.from({ length: 288 }, (_, i) => [p, BASE + i]));
    });
  }

  it("frames the guest swapped stay backed on the host (double paging)", () => {
    const { mm, swap, touch } = setup(true);
    for (let i = 0; i < 288; i++) touch(BASE + i, ACCESS_WRITE);
    // 288 pages touched in 256 frames: the host backs the 256 frames (plus the guest's tables)
    expect(swap.pswpout).toBe(32);
    const rss = mm.rss;
    for (let i = 0; i < 288; i++) touch(BASE + i);
    expect(mm.rss).toBe(rss); // 288 swap-outs later: not one host page given back
  });

  it("a full swap disk: reclaim frees nothing and the allocation fails", () => {
    const { os, swap, touch } = setup(true, 16 * 4096);
    for (let i = 0; i < 256; i++) touch(BASE + i, ACCESS_WRITE);
    // 256 + 16 pages fit (16 slots); the 273rd has nowhere to go
    for (let i = 256; i < 272; i++) touch(BASE + i, ACCESS_WRITE);
    expect(swap.used).toBe(16);
    expect(os.free4K).toBe(0);
    expect(() => touch(BASE + 272, ACCESS_WRITE)).toThrow("guest out of 4K data pages");
  });

  it("a VM the host's OOM killer took reclaims nothing (its guest runs no more)", () => {
    const { mm, os, swap, touch } = setup(true);
    for (let i = 0; i < 256; i++) touch(BASE + i, ACCESS_WRITE);
    mm.killed = true;
    expect(swap.reclaim()).toBe(0);
    expect([swap.pswpout, swap.allocstall, os.free4K]).toEqual([0, 0, 0]);
  });

  it("the balloon driver's allocation reclaims once per page: a balloon below the working set swaps", () => {
    const { os, swap, touch, balloon } = setup(true);
    for (let i = 0; i < 200; i++) touch(BASE + i, ACCESS_WRITE);
    expect(os.free4K).toBe(56);
    // ask for 100 pages: 56 free ones, then reclaims (the first clears 200 accessed bits and
    // frees 32, the next frees 32 more) give the rest
    balloon.setTarget(64 * M - 100 * 4096, 0);
    balloon.advance(1, 1);
    expect(balloon.pages.length).toBe(100);
    expect(swap.pswpout).toBe(64);
    expect(swap.allocstall).toBe(2);
    expect(os.free4K).toBe(20);
    // 1 ms at 256 pages per ms covers 100 pages: the latency is 100/256 ms
    expect(balloon.latency).toMatchObject({ changes: 1, reached: 1 });
    expect(balloon.latency.lastMs).toBeCloseTo(100 / 256, 9);
    balloon.assertInvariants();
  });

  it("fast-check: contents survive swapping and ballooning; slots and frames are conserved", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ touch: fc.nat(399), write: fc.boolean() }),
            fc.record({ balloon: fc.nat(150) }),
          ),
          { minLength: 1, maxLength: 400 },
        ),
        (ops) => {
          const env = setup(true);
          const { host, vm, os, swap, p, touch, balloon } = env;
          const expected = new Map<number, number>();
          const pages: Array<[GuestProcess, number]> = [];
          for (let i = 0; i < 400; i++) pages.push([p, BASE + i]);
          let now = 0;
          for (const op of ops) {
            if ("touch" in op) {
              // the guest has at most 256 - balloon frames: give up when no frame is left
              if (os.free4K === 0 && swap.used === swap.slots) continue;
              const vpn = BASE + op.touch;
              let pfn: number;
              try {
                pfn = touch(vpn, op.write ? ACCESS_WRITE : ACCESS_READ);
              } catch (e) {
                if (String(e).includes("out of 4K data pages")) continue;
                throw e;
              }
              const had = expected.get(vpn);
              if (had !== undefined && !op.write) expect(host.mem.token[pfn]).toBe(had);
              expected.set(vpn, host.mem.token[pfn]);
            } else {
              balloon.setTarget(64 * M - op.balloon * 4096, now);
              now += 1;
              balloon.advance(1, now);
            }
            swap.assertInvariants(pages);
            balloon.assertInvariants();
            // every page is mapped, in swap, or never touched; a mapped page holds its content
            let mapped = 0;
            for (const [proc, vpn] of pages) {
              const l = os.entryOf(proc, vpn);
              if (l.present) {
                mapped++;
                const gfn = ((l.hi & 0xfffff) * 1048576 + (l.lo >>> 12)) as number;
                expect(host.mem.token[vm.peekGfnToPfn(gfn)]).toBe(expected.get(vpn));
                expect(isSwapPte(l.lo, l.hi)).toBe(false);
              } else if (l.level === 1 && isSwapPte(l.lo, l.hi)) {
                expect(expected.has(vpn)).toBe(true);
              } else expect(expected.has(vpn)).toBe(false);
            }
            // frames of the data zone: free + mapped + ballooned = 256
            expect(os.free4K + mapped + balloon.pages.length).toBe(256);
            expect(mapped).toBe(swap.mappedPages());
          }
          host.assertInvariants();
        },
      ),
      { numRuns: 25 },
    );
  });
});
