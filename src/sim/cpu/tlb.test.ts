import { describe, expect, it } from "vitest";
import {
  INVVPID_ADDRESS,
  INVVPID_ALL,
  INVVPID_SINGLE,
  INVVPID_SINGLE_RETAIN_GLOBALS,
} from "../../x86/faults.js";
import { Host } from "../host.js";
import { GOLDEN_COVE_TLB, HIT_L1, HIT_NONE, HIT_STLB, TLB_G, TLB_W, Tlb } from "./tlb.js";

const tag = (vpid: number, pcid: number) => vpid * 4096 + pcid;

describe("TLB", () => {
  it("hits in L1 after a fill, at the page size filled, with the right frame", () => {
    const t = new Tlb();
    t.fill(0x12345, 2, 0x800, tag(1, 1), 1, TLB_W); // a 2M entry covering vpn 0x12200..0x123ff
    expect(t.lookup(0x12345, tag(1, 1))).toBe(0x800 + 0x145);
    expect(t.hitWhere).toBe(HIT_L1);
    expect(t.hitLevel).toBe(2);
    expect(t.lookup(0x12200, tag(1, 1))).toBe(0x800);
    expect(t.lookup(0x12400, tag(1, 1))).toBe(-1);
  });

  it("separates VPIDs and PCIDs; global entries match any PCID of their VPID", () => {
    const t = new Tlb();
    t.fill(7, 1, 100, tag(1, 1), 1, 0);
    t.fill(8, 1, 200, tag(1, 1), 1, TLB_G);
    expect(t.lookup(7, tag(2, 1))).toBe(-1); // another vCPU
    expect(t.lookup(7, tag(1, 2))).toBe(-1); // another process
    expect(t.lookup(8, tag(1, 2))).toBe(200); // global kernel page
    expect(t.lookup(8, tag(2, 1))).toBe(-1); // but not another VPID's
  });

  it("falls back to the STLB when L1 evicts, and refills L1", () => {
    const t = new Tlb();
    const sets = GOLDEN_COVE_TLB.l1.k4.entries / GOLDEN_COVE_TLB.l1.k4.ways;
    // ways + 1 pages in the same L1 set: the first is evicted from L1 but stays in the STLB
    for (let i = 0; i <= GOLDEN_COVE_TLB.l1.k4.ways; i++)
      t.fill(i * sets * 128, 1, 1000 + i, tag(1, 0), 1, 0);
    expect(t.lookup(0, tag(1, 0))).toBe(1000);
    expect(t.hitWhere).toBe(HIT_STLB);
    expect(t.lookup(0, tag(1, 0))).toBe(1000);
    expect(t.hitWhere).toBe(HIT_L1);
  });

  it("refilling a translation never duplicates it, even behind a freed way", () => {
    const t = new Tlb();
    const sets = GOLDEN_COVE_TLB.stlb.shared.entries / GOLDEN_COVE_TLB.stlb.shared.ways;
    t.fill(0, 1, 10, tag(1, 0), 1, 0);
    t.fill(sets, 1, 20, tag(1, 0), 1, 0); // same STLB set, next way
    t.flushAddress(1, 0); // frees the first way
    t.fill(sets, 1, 20, tag(1, 0), 1, TLB_W); // e.g. a re-walk to set the dirty bit
    expect(t.stlb.count()).toBe(1);
    t.assertInvariants();
    expect(t.lookup(sets, tag(1, 0))).toBe(20);
    expect(t.hitFlags).toBe(TLB_W);
  });

  it("peek lookups leave no trace", () => {
    const t = new Tlb();
    t.fill(5, 1, 50, tag(1, 0), 1, 0);
    t.l1k4.invalidate(-1, -1, -1, false, -1); // only the STLB has it now
    expect(t.lookup(5, tag(1, 0), true)).toBe(50);
    expect(t.hitWhere).toBe(HIT_STLB);
    expect(t.l1k4.count()).toBe(0);
    expect(t.lookups).toBe(0);
  });

  it("flushes by address, VPID (keeping globals or not), PCID and EPT", () => {
    const fillAll = (t: Tlb) => {
      t.fill(1, 1, 10, tag(1, 1), 1, 0);
      t.fill(2, 1, 20, tag(1, 1), 1, TLB_G);
      t.fill(3, 1, 30, tag(2, 1), 2, 0);
      t.fill(4, 2, 512, tag(1, 2), 1, 0);
    };
    const t = new Tlb();
    fillAll(t);
    t.flushAddress(1, 1);
    expect(t.lookup(1, tag(1, 1))).toBe(-1);
    expect(t.lookup(2, tag(1, 1))).toBe(20);
    fillAll(t);
    t.flushVpid(1, true); // single-context retaining globals
    expect([t.lookup(1, tag(1, 1)), t.lookup(2, tag(1, 1)), t.lookup(3, tag(2, 1))]).toEqual([
      -1, 20, 30,
    ]);
    fillAll(t);
    t.flushPcid(1, 1); // MOV CR3: non-global entries of PCID 1
    expect([t.lookup(1, tag(1, 1)), t.lookup(2, tag(1, 1)), t.lookup(4, tag(1, 2))]).toEqual([
      -1,
      20,
      512 + 4,
    ]);
    fillAll(t);
    t.flushEpt(2); // INVEPT of VM 2's EPT
    expect([t.lookup(3, tag(2, 1)), t.lookup(1, tag(1, 1))]).toEqual([-1, 10]);
    t.flushAll();
    expect(t.entries()).toBe(0);
    expect(t.lookup(1, tag(1, 1))).toBe(-1);
    expect(t.hitWhere).toBe(HIT_NONE);
  });

  it("INVVPID types through the CPU", () => {
    const host = new Host({ memory: 1073741824 });
    const cpu = host.cpus[0];
    const setup = () => {
      cpu.tlb.fill(1, 1, 10, tag(3, 0), 1, 0);
      cpu.tlb.fill(2, 1, 20, tag(3, 0), 1, TLB_G);
      cpu.tlb.fill(5, 1, 50, tag(4, 0), 1, 0);
    };
    const left = () => [
      cpu.tlb.lookup(1, tag(3, 0)),
      cpu.tlb.lookup(2, tag(3, 0)),
      cpu.tlb.lookup(5, tag(4, 0)),
    ];
    setup();
    cpu.invvpid(INVVPID_ADDRESS, 3, 1);
    expect(left()).toEqual([-1, 20, 50]);
    setup();
    cpu.invvpid(INVVPID_SINGLE, 3);
    expect(left()).toEqual([-1, -1, 50]);
    setup();
    cpu.invvpid(INVVPID_SINGLE_RETAIN_GLOBALS, 3);
    expect(left()).toEqual([-1, 20, 50]);
    setup();
    cpu.invvpid(INVVPID_ALL, 0);
    expect(left()).toEqual([-1, -1, -1]);
  });

  it("rejects geometries that are not power-of-two sets", () => {
    expect(
      () =>
        new Tlb({
          ...GOLDEN_COVE_TLB,
          l1: { ...GOLDEN_COVE_TLB.l1, k4: { entries: 96, ways: 4 } },
        }),
    ).toThrow(/power of two/);
  });
});
