/**
 * Reference counts and the examples of issue 4, on the full simulated stack (guest OS tables in
 * guest memory, memslots, host page tables, EPT or shadow tables, TLB).
 */
import { describe, expect, it } from "vitest";
import { ACCESS_WRITE, EXIT_EPT_VIOLATION } from "../x86/faults.js";
import { PTE_D } from "../x86/pte.js";
import { DEFAULT_COSTS } from "./cpu/cost.js";
import { type Backing, type LabOp, type LabOptions, TranslateLab } from "./lab.js";
import { STATUS_OK, STATUS_WOULD_EXIT } from "./record.js";

const K4 = 4096;
const M2 = 2097152;
const G1 = 1073741824;
const USER = 0x7f0000001000n;

function lab(o: Partial<LabOptions>): TranslateLab {
  return new TranslateLab({
    ept: true,
    vpid: true,
    levels: 4,
    guestPage: K4,
    backing: "4K",
    pwc: false,
    ...o,
  });
}

function runAll(l: TranslateLab, ops: LabOp[]) {
  l.prepare(ops);
  const res = ops.map((op) => l.run(op));
  l.host.assertInvariants();
  return res;
}

const read = (gva: bigint): LabOp => ({ op: "read", gva });
const write = (gva: bigint): LabOp => ({ op: "write", gva });

/**
 * Memory references of a cold walk (no TLB, no PWC) that completes: n guest levels, m EPT levels
 * per nested walk: n*m nested reads + n guest reads + m for the final gpa = (n+1)(m+1)-1.
 */
const COUNTS: Array<[levels: 4 | 5, guest: number, backing: Backing, refs: number]> = [
  [4, K4, "4K", 24], // 4 guest x 4 EPT: the textbook 24
  [4, K4, "thp", 19], // guest 4K over THP: EPT maps 2M, m = 3: 4*3+4+3
  [4, K4, "2M", 19], // guest 4K over hugetlbfs 2M: the 19
  [4, K4, "1G", 14], // guest 4K over 1G: m = 2: 4*2+4+2
  [4, M2, "4K", 19], // guest 2M over 4K backing: n = 3, m = 4
  [4, M2, "thp", 15], // 2M over THP 2M
  [4, M2, "2M", 15], // the guest 2M with EPT 2M = 15
  [4, M2, "1G", 11], // n = 3, m = 2
  [4, G1, "4K", 14], // n = 2, m = 4
  [4, G1, "2M", 11], // n = 2, m = 3
  [4, G1, "1G", 8], // the 1G/1G = 8
  [5, K4, "4K", 35], // 5-level 4K/4K: the 35
  [5, K4, "2M", 29], // n = 5, m = 4
  [5, K4, "1G", 23], // n = 5, m = 3
  [5, M2, "4K", 29], // n = 4, m = 5
  [5, M2, "2M", 24], // n = 4, m = 4
  [5, M2, "1G", 19], // n = 4, m = 3
  [5, G1, "4K", 23], // n = 3, m = 5
  [5, G1, "2M", 19], // n = 3, m = 4
  [5, G1, "1G", 15], // n = 3, m = 3
];

/** Guest and EPT levels may differ: [guest levels, EPT levels, refs] with 4K pages and backing. */
const MIXED: Array<[4 | 5, 4 | 5, number]> = [
  [5, 4, 29], // LA57 guest over 4-level EPT: 5*4 + 5 + 4
  [4, 5, 29], // 4-level guest over 5-level EPT: 4*5 + 4 + 5
];

describe("memory references of a cold 2D walk", () => {
  for (const [levels, guest, backing, refs] of COUNTS) {
    it(`${levels}-level, guest ${guest / 1024}K pages over ${backing}: ${refs}`, () => {
      const l = lab({ levels, guestPage: guest, backing });
      const [a] = runAll(l, [read(USER)]).map((r) => r.access!);
      expect(a.status).toBe("ok");
      expect(a.tlb).toBe("miss");
      expect(a.memoryReferences.total).toBe(refs);
      const n = a.steps.filter((s) => s.dimension === "guest").length;
      expect(a.memoryReferences.guest).toBe(n);
      expect(a.memoryReferences.ept).toBe(refs - n);
      // the TLB caches the smaller of the two page sizes
      const size = (s: string | null) => ({ "4K": 1, "2M": 2, "1G": 3 })[s ?? "4K"] ?? 0;
      expect(size(a.pageSize.tlb)).toBe(Math.min(size(a.pageSize.guest), size(a.pageSize.ept)));
    });
  }
});

describe("memory references with different guest and EPT levels", () => {
  for (const [levels, eptLevels, refs] of MIXED) {
    it(`${levels}-level guest over ${eptLevels}-level EPT: ${refs}`, () => {
      const a = runAll(lab({ levels, eptLevels }), [read(USER)])[0].access!;
      expect(a.memoryReferences).toEqual({ total: refs, guest: levels, ept: refs - levels });
    });
  }
});

/** Shadow walks are 1D: as many references as shadow levels. */
const SHADOW: Array<
  [levels: 4 | 5, guest: number, backing: Backing, refs: number, shadow: string]
> = [
  [4, K4, "4K", 4, "4K"], // the shadow = 4
  [4, M2, "2M", 3, "2M"], // guest 2M over 2M backing: a 2M spte
  [4, M2, "4K", 4, "4K"], // guest 2M over 4K backing: KVM splits into 4K sptes (direct page)
  [4, G1, "1G", 2, "1G"], // 1G over 1G
  [5, K4, "4K", 5, "4K"], // LA57 guest: 5-level shadow tables
];

describe("memory references of a shadow walk", () => {
  for (const [levels, guest, backing, refs, size] of SHADOW) {
    it(`${levels}-level, guest ${guest / 1024}K over ${backing}: ${refs}`, () => {
      const l = lab({ ept: false, levels, guestPage: guest, backing });
      const [a] = runAll(l, [read(USER)]).map((r) => r.access!);
      expect(a.memoryReferences).toEqual({ total: refs, guest: refs, ept: 0 });
      expect(a.pageSize.shadow).toBe(size);
      expect(a.exits.map((e) => e.reason)).toEqual(["EXCEPTION_NMI"]);
    });
  }
});

describe("the issue's examples", () => {
  for (const vpid of [true, false]) {
    it(`the same read after a vmexit ${vpid ? "hits with VPID on" : "misses with VPID off"}`, () => {
      const l = lab({ vpid });
      const r = runAll(l, [read(USER), read(USER), { op: "vmexit" }, read(USER)]);
      expect(r[1].access!.tlb).toBe("hit");
      expect(r[2].access!.exits[0].reason).toBe("EXTERNAL_INTERRUPT");
      expect(r[3].access!.tlb).toBe(vpid ? "hit" : "miss");
      if (!vpid) expect(r[3].access!.memoryReferences.total).toBe(24);
    });
  }

  it("another VM on the CPU keeps our entries with VPID and loses them without", () => {
    for (const vpid of [true, false]) {
      const l = lab({ vpid });
      const r = runAll(l, [read(USER), { op: "switch-vm" }, read(USER)]);
      expect(r[2].access!.tlb).toBe(vpid ? "hit" : "miss");
    }
  });

  it("a write to a guest page-table page exits under shadow paging and not under EPT", () => {
    for (const ept of [true, false]) {
      const l = lab({ ept });
      const init = l.os.process("init");
      const table = 0xffff888000000000n + BigInt(init.root * 4096);
      const r = runAll(l, [read(USER), read(table), write(table)]);
      const w = r[2].access!;
      if (ept) {
        expect(w.exits).toEqual([]);
        expect(w.status).toBe("ok");
      } else {
        expect(w.exits.map((e) => [e.reason, e.outcome])).toEqual([["EXCEPTION_NMI", "emulate"]]);
        expect(w.status).toBe("emulated");
      }
      expect(w.gpa).toBe(`0x${(init.root * 4096).toString(16)}`);
    }
  });

  it("a misaligned memslot keeps EPT at 4K over 2M backing, and says why", () => {
    const aligned = runAll(lab({ backing: "2M" }), [read(USER)])[0].access!;
    expect(aligned.pageSize.ept).toBe("2M");
    const mis = runAll(lab({ backing: "2M", misalignSlot: true }), [read(USER)])[0].access!;
    expect(mis.pageSize.ept).toBe("4K");
    expect(mis.pageSize.host).toBe("2M");
    expect(mis.memoryReferences.total).toBe(24);
    expect(mis.exits.at(-1)!.levelReason).toBe("memslot-misaligned");
  });

  it("dirty logging forces 4K EPT mappings", () => {
    const a = runAll(lab({ backing: "2M", dirtyLog: true }), [write(USER)])[0].access!;
    expect(a.pageSize.ept).toBe("4K");
    expect(a.exits.at(-1)!.levelReason).toBe("dirty-logging");
  });

  it("an upper-half kernel address like 0xffff888000001000 works (direct map: gpa 0x1000)", () => {
    for (const ept of [true, false]) {
      const a = runAll(lab({ ept }), [read(0xffff888000001000n)])[0].access!;
      expect(a.status).toBe("ok");
      expect(a.gva).toBe("0xffff888000001000");
      expect(a.gpa).toBe("0x1000");
      expect(a.memslot).toBe(0);
      expect(a.hpa).not.toBeNull();
    }
  });

  it("one EPT table set per VM, shadow tables per guest address space", () => {
    const ops: LabOp[] = [
      read(USER),
      { op: "cr3", process: "bash" },
      read(USER),
      { op: "cr3", process: "sshd" },
      read(USER),
    ];
    const e = lab({});
    runAll(e, ops);
    const s = lab({ ept: false });
    runAll(s, ops);
    const et = e.tables();
    const st = s.tables();
    expect(et.ept).toBeGreaterThan(0);
    expect(et.shadow).toBeNull();
    // three address spaces, each with its own shadow PML4, PDPT, PD, PT for the user page
    expect(st.shadow).toEqual({ init: 4, bash: 4, sshd: 4 });
  });
});

describe("exits and faults", () => {
  it("EPT violations: on guest table reads (qualification bit 8 = 0) and on the final gpa (bit 8 = 1)", () => {
    const a = runAll(lab({}), [read(USER)])[0].access!;
    const quals = a.exits.map((e) => Number(e.qualification));
    expect(a.exits.every((e) => e.reason === "EPT_VIOLATION")).toBe(true);
    // tables: paging-structure accesses count as writes with EPT A/D on, GLA valid, bit 8 clear
    expect(quals.slice(0, -1).every((q) => (q & 0x183) === 0x82)).toBe(true);
    // the data page: a read of the translated address
    expect(quals.at(-1)! & 0x187).toBe(0x181);
  });

  it("MMIO: first access exits EPT_VIOLATION to userspace, the next EPT_MISCONFIG", () => {
    const mmio = 0xffff8880fe000000n; // gpa 0xfe000000: the PCI hole, no memslot
    const r = runAll(lab({}), [read(USER), read(mmio), read(mmio)]);
    expect(r[1].access!.status).toBe("mmio-exit");
    expect(r[1].access!.exits.at(-1)).toMatchObject({
      reason: "EPT_VIOLATION",
      outcome: "userspace-mmio",
    });
    expect(r[2].access!.exits).toHaveLength(1);
    expect(r[2].access!.exits[0]).toMatchObject({
      reason: "EPT_MISCONFIG",
      outcome: "userspace-mmio",
    });
  });

  it("#PF error codes: user access to a kernel page, write to kernel text, exec of NX data, not present", () => {
    for (const ept of [true, false]) {
      const l = lab({ ept });
      const r = runAll(l, [
        read(USER),
        { op: "user" },
        read(0xffff888000001000n), // supervisor page from user mode: P|U = 5
        { op: "kernel" },
        write(0xffffffff81000000n), // kernel text is read-only, CR0.WP=1: P|W = 3
        { op: "exec", gva: 0xffff888000002000n }, // direct map is NX: P|I = 0x11
        { op: "unmap", gva: USER },
        read(USER), // not present: 0
      ]);
      const codes = [r[2], r[4], r[5], r[7]].map((x) =>
        x.access!.faults.map((f) => [f.type, f.errorCode]),
      );
      expect(codes).toEqual([[["#PF", 5]], [["#PF", 3]], [["#PF", 0x11]], [["#PF", 0]]]);
      // with EPT a guest #PF needs no exit; with shadow paging every #PF exits first
      const exitsOfFault = r[7].access!.exits.map((e) => e.reason);
      expect(exitsOfFault).toEqual(ept ? [] : ["EXCEPTION_NMI"]);
    }
  });

  it("#GP for a non-canonical address (no walk)", () => {
    const a = lab({}).run(read(0x0000800000000000n)).access!;
    expect(a.status).toBe("general-protection");
    expect(a.faults).toEqual([{ type: "#GP", errorCode: 0, meaning: [] }]);
    expect(a.steps).toEqual([]);
  });

  it("shadow paging exits: CR_ACCESS on CR3 loads, INVLPG, EXCEPTION_NMI on faults; EPT needs none of them", () => {
    const ops: LabOp[] = [read(USER), { op: "cr3", process: "bash" }, { op: "invlpg", gva: USER }];
    const s = runAll(lab({ ept: false }), ops);
    expect(s[1].access!.exits.map((e) => e.reason)).toEqual(["CR_ACCESS"]);
    expect(s[2].access!.exits.map((e) => e.reason)).toEqual(["INVLPG"]);
    const e = runAll(lab({}), ops);
    expect(e[1].access!.exits).toEqual([]);
    expect(e[2].access!.exits).toEqual([]);
  });

  it("invlpg and invvpid drop the translation; invept drops combined mappings", () => {
    for (const op of [
      { op: "invlpg", gva: USER },
      { op: "invvpid" },
      { op: "invept" },
    ] as LabOp[]) {
      const r = runAll(lab({}), [read(USER), op, read(USER)]);
      expect(r[2].access!.tlb).toBe("miss");
      expect(r[2].access!.exits).toEqual([]);
    }
  });

  it("the paging-structure caches shorten walks; INVVPID keeps the EPT-dimension entries", () => {
    const next = USER + 0x1000n;
    const r = runAll(lab({ pwc: true }), [read(USER), read(next), { op: "invvpid" }, read(next)]);
    const plain = runAll(lab({}), [read(USER), read(next)]);
    expect(r[1].access!.hpa).toBe(plain[1].access!.hpa);
    expect(r[0].access!.memoryReferences.total).toBeLessThan(24);
    // neighbouring page: the combined PDE cache gives the guest PT's host address (1 guest
    // read) and the EPT PDE cache the EPT PT (1 EPT read)
    expect(r[1].access!.memoryReferences).toEqual({ total: 2, guest: 1, ept: 1 });
    // INVVPID drops linear and combined entries; each nested walk still starts at the EPT PT
    expect(r[3].access!.memoryReferences).toEqual({ total: 9, guest: 4, ept: 5 });
  });
});

describe("probe mode and the cost model", () => {
  const vpn = Number(USER >> 12n);

  it("probe translates without side effects", () => {
    const l = lab({});
    l.prepare([read(USER)]);
    const { vcpu, vm } = l.main;
    const snapshot = () => ({
      ept: vm.mmu.tablePages(),
      exits: [...vm.exitCounts],
      tlb: l.cpu.tlb.entries(),
    });
    // cold: the probe stops at the first EPT violation and handles nothing
    const before = snapshot();
    expect(l.cpu.access(vcpu, vpn, 0, ACCESS_WRITE, l.rec, true)).toBe(STATUS_WOULD_EXIT);
    expect(l.rec.exitReason[0]).toBe(EXIT_EPT_VIOLATION);
    expect(snapshot()).toEqual(before);
    // warm, then flushed: a probed write walks fully but fills nothing and sets no D bit
    l.run(read(USER));
    l.run({ op: "invvpid" });
    const init = l.os.process("init");
    const warm = snapshot();
    expect(l.os.lookup(init, vpn)!.lo & PTE_D).toBe(0);
    expect(l.cpu.access(vcpu, vpn, 0, ACCESS_WRITE, l.rec, true)).toBe(STATUS_OK);
    expect(l.rec.out.guestRefs + l.rec.out.eptRefs).toBe(24);
    expect(snapshot()).toEqual(warm);
    expect(l.os.lookup(init, vpn)!.lo & PTE_D).toBe(0);
    // the real write sets it
    l.run(write(USER));
    expect(l.os.lookup(init, vpn)!.lo & PTE_D).toBe(PTE_D);
  });

  it("prices an L1 hit at 0, an STLB hit at 7 and a walk at 15 cycles per reference", () => {
    const l = lab({ vpid: false });
    const r = runAll(l, [read(USER), read(USER), { op: "vmexit" }, read(USER)]);
    expect(r[1].access!.cycles).toBe(DEFAULT_COSTS.l1Hit);
    expect(r[3].access!.cycles).toBe(24 * DEFAULT_COSTS.walkReference);
    // a cold walk adds every exit and KVM's handling, and one host page fault: the data page
    // (the guest wrote its own tables while building them, so those host pages exist already)
    const cold = r[0].access!;
    const expected =
      (24 + cold.abortedReferences) * DEFAULT_COSTS.walkReference +
      cold.exits.length * (DEFAULT_COSTS.vmExitRoundTrip + DEFAULT_COSTS.eptViolation) +
      DEFAULT_COSTS.hostFault4K;
    expect(cold.cycles).toBe(expected);
    l.cpu.tlb.l1k4.invalidate(-1, -1, -1, false, -1);
    const stlb = l.run(read(USER)).access!;
    expect([stlb.tlb, stlb.tlbLevel, stlb.cycles]).toEqual(["hit", "STLB", DEFAULT_COSTS.stlbHit]);
  });
});

describe("the guest OS model", () => {
  it("mprotect to read-only makes the next write fault, under EPT and shadow paging", () => {
    for (const ept of [true, false]) {
      const l = lab({ ept });
      const r = runAll(l, [write(USER)]);
      expect(r[0].access!.status).toBe("ok");
      const init = l.os.process("init");
      const vpn = Number(USER >> 12n);
      expect(l.os.protect(init, vpn, { write: false, user: true, exec: false })).toBe(1);
      l.run({ op: "invlpg", gva: USER });
      const w = l.run(write(USER)).access!;
      expect(w.faults).toEqual([
        { type: "#PF", errorCode: 3, meaning: ["protection", "write", "supervisor"] },
      ]);
      expect(l.run(read(USER)).access!.status).toBe("ok");
      // the page is now NX too
      expect(l.run({ op: "exec", gva: USER }).access!.faults[0].errorCode).toBe(0x11);
      l.host.assertInvariants();
    }
  });

  it("shares the kernel half: a kernel mapping made later shows in every process", () => {
    const l = lab({});
    const ops: LabOp[] = [
      { op: "cr3", process: "bash" },
      read(0xffff888000005000n),
      { op: "cr3", process: "init" },
      read(0xffff888000005000n),
    ];
    const r = runAll(l, ops);
    expect(r[1].access!.hpa).toBe(r[3].access!.hpa);
    expect(r[3].access!.status).toBe("ok");
  });
});
