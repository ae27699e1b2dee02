/**
 * The contract both MMUs (EPT/TDP and shadow) must meet: for any guest page tables, any
 * sequence of accesses, CR3 switches and unmaps, every completed access lands on the host frame
 * the software reference gives: gva -> (guest tables, read with the generic iterator, not the
 * walker) gpa -> memslot -> hva -> host page tables -> hpa; and an unmapped gva faults.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ACCESS_READ, ACCESS_WRITE } from "../../x86/faults.js";
import { LEVEL_PAGES } from "../../x86/paging.js";
import { entryFrame } from "../../x86/tables.js";
import { TranslateLab } from "../lab.js";
import { STATUS_GUEST_PF, STATUS_OK } from "../record.js";

const MiB = 1048576;

type Step =
  | { kind: "map"; proc: number; page: number; huge: boolean }
  | { kind: "access"; proc: number; page: number; off: number; write: boolean }
  | { kind: "unmap"; proc: number; page: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("map" as const),
    proc: fc.nat(2),
    page: fc.nat(7),
    huge: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("access" as const),
    proc: fc.nat(2),
    page: fc.nat(7),
    off: fc.nat(511),
    write: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("access" as const),
    proc: fc.nat(2),
    page: fc.nat(7),
    off: fc.nat(511),
    write: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("unmap" as const), proc: fc.nat(2), page: fc.nat(7) }),
);

/** map, touch, unmap, touch again: the sequence that catches a stale translation */
const cycleArb: fc.Arbitrary<Step[]> = fc
  .record({ proc: fc.nat(2), page: fc.nat(7), huge: fc.boolean(), write: fc.boolean() })
  .map(({ proc, page, huge, write }) => [
    { kind: "map", proc, page, huge },
    { kind: "access", proc, page, off: 0, write },
    { kind: "unmap", proc, page },
    { kind: "access", proc, page, off: 0, write: !write },
  ]);
const scriptArb = fc
  .array(
    fc.oneof(
      stepArb.map((s) => [s]),
      cycleArb,
    ),
    { minLength: 3, maxLength: 25 },
  )
  .map((x) => x.flat());

function contract(
  ept: boolean,
  backing: "4K" | "thp" | "2M",
  levels: 4 | 5 = 4,
  pwc = true,
  vpid = true,
) {
  return (steps: Step[]) => {
    const lab = new TranslateLab({
      ept,
      vpid,
      levels,
      guestPage: 4096,
      backing,
      pwc,
      memory: 1024 * MiB,
    });
    const { os, vcpu, vm } = lab.main;
    const cpu = lab.cpu;
    const rec = lab.rec;
    const procs = ["init", "bash", "sshd"].map((n) => os.process(n));
    // user region: 64 slots of 2 MiB starting at 0x40000000 (vpn 0x40000)
    const slotVpn = (page: number) => 0x40000 + page * 512;
    let current = -1;
    const switchTo = (p: number) => {
      if (p === current) return;
      current = p;
      cpu.movCr3(vcpu, procs[p].root, procs[p].pcid, true, rec);
    };
    for (const s of steps) {
      const proc = procs[s.proc];
      const base = slotVpn(s.page);
      if (s.kind === "map") {
        if (os.lookup(proc, base) || os.lookup(proc, base + 511)) continue;
        if (s.huge) os.map(proc, base, os.allocData(2), 2, { write: true, user: true, exec: true });
        else os.map(proc, base, os.allocData(1), 1, { write: true, user: true, exec: true });
        // a huge page may replace a page table the CPU has cached (SDM 4.10.4.1): invalidate
        switchTo(s.proc);
        cpu.invlpg(vcpu, base, rec);
      } else if (s.kind === "unmap") {
        if (os.unmap(proc, base) === 0) continue;
        switchTo(s.proc);
        // the guest either invalidates the page or reloads CR3 (a full flush of its PCID);
        // without INVLPG only write protection tells the shadow MMU about the change
        if (s.page % 2 === 0) cpu.invlpg(vcpu, base, rec);
        else cpu.movCr3(vcpu, procs[s.proc].root, procs[s.proc].pcid, false, rec);
        // other address spaces may hold this PCID's entries too: the guest shoots them down
        for (const p of procs) cpu.tlb.flushPcid(vcpu.vpid, p.pcid);
      } else {
        switchTo(s.proc);
        const vpn = base + (s.off % 512 < 256 ? 0 : s.off % 512);
        const status = cpu.access(vcpu, vpn, 8, s.write ? ACCESS_WRITE : ACCESS_READ, rec);
        const leaf = os.lookup(proc, vpn);
        if (!leaf) {
          expect(status).toBe(STATUS_GUEST_PF);
          continue;
        }
        expect(status).toBe(STATUS_OK);
        const gfn =
          entryFrame(vm.guestMode, leaf.level, leaf.lo, leaf.hi) + (vpn % LEVEL_PAGES[leaf.level]);
        const slot = vm.memslots.lookup(gfn)!;
        const pfn = vm.mm.lookup(slot.gfnToHva(gfn));
        expect(pfn).toBeGreaterThanOrEqual(0);
        expect(rec.pfn).toBe(pfn);
      }
    }
    lab.host.assertInvariants();
  };
}

describe("MMU contract: EPT and shadow paging agree with the software reference", () => {
  for (const ept of [true, false]) {
    for (const backing of ["4K", "thp", "2M"] as const) {
      it(`${ept ? "EPT" : "shadow"} over ${backing} backing`, () => {
        fc.assert(fc.property(scriptArb, contract(ept, backing)), { numRuns: 25 });
      });
    }
    it(`${ept ? "EPT" : "shadow"}, 5-level paging, no paging-structure caches, no VPID`, () => {
      fc.assert(fc.property(scriptArb, contract(ept, "thp", 5, false, false)), { numRuns: 15 });
    });
  }
});
