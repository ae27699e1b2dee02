/**
 * KSM counters on small cases, each expected value worked out by hand from mm/ksm.c
 * (cmp_and_merge_page, stable_tree_append, remove_rmap_item_from_tree, should_skip_rmap_item)
 * and Documentation/admin-guide/mm/ksm.rst (pages_volatile, general_profit with a 64-byte
 * rmap_item).
 */
import { describe, expect, it } from "vitest";
import { vmOverRam } from "../../test/sim-vm.js";
import { ACCESS_READ, ACCESS_WRITE } from "../x86/faults.js";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm, type KsmSettings } from "./ksm.js";
import { KIND_FREE } from "./memory.js";
import type { Mm, Vma } from "./mm.js";
import { STATUS_OK, WalkRecord } from "./record.js";

const G = 1073741824;

/** A host with one process per content list; page i of process p holds contents[p][i]. */
function setup(contents: number[][], settings: Partial<KsmSettings>, thp = false) {
  const host = new Host({ memory: G, cpus: 1 });
  const ptes = new HostPtes(host, new VmStat());
  const ksm = new Ksm(ptes, { run: 1, pages_to_scan: 1000, ...settings });
  const mms: Mm[] = [];
  for (const [p, pages] of contents.entries()) {
    const mm = host.createProcess(`qemu-${p}`);
    const size = Math.max(2097152, Math.ceil((pages.length * 4096) / 2097152) * 2097152);
    const start = mm.mmap(size, { thp });
    mm.content = { token: (_v: Vma, i: number) => pages[i] ?? 0x7777 + i };
    for (let i = 0; i < pages.length; i++) mm.fault(start + i * 4096, true);
    ksm.madvise(mm, mm.vmas[0]);
    mms.push(mm);
  }
  const free0 = host.mem.freeFrames;
  const c = () => ksm.counters();
  return { host, ksm, mms, free0, c };
}

describe("ksmd merges identical pages", () => {
  it("two processes, two shared pages: volatile first, unstable then stable", () => {
    const A = 11;
    const B = 12;
    const { ksm, mms, host, free0, c } = setup(
      [
        [A, B, 13],
        [A, B, 14],
      ],
      {},
    );
    ksm.scan(1000); // scan 1: every checksum differs from the zeroed oldchecksum
    expect(c()).toMatchObject({
      pages_scanned: 6,
      full_scans: 1,
      pages_volatile: 6,
      pages_shared: 0,
      general_profit: -6 * 64,
    });
    ksm.scan(1000); // scan 2: p0 goes to the unstable tree, p1 matches it
    expect(c()).toMatchObject({
      pages_scanned: 12,
      full_scans: 2,
      pages_shared: 2,
      pages_sharing: 2,
      pages_unshared: 2, // 13 and 14
      pages_volatile: 0,
      general_profit: 2 * 4096 - 6 * 64,
    });
    expect(host.mem.freeFrames).toBe(free0 + 2);
    // both processes map the same frame now, read-only
    const hva = mms[0].vmas[0].start;
    const e = new Uint32Array(2);
    expect(mms[0].lookup(hva)).toBe(mms[1].lookup(hva, undefined, e));
    expect(e[0] & 2).toBe(0);
    // ksm_stat: the tree item (p0) and the scanned one (p1) both count as merging pages
    expect(ksm.ksmStat(mms[0])).toContain("ksm_merging_pages 2\n");
    expect(ksm.ksmStat(mms[0])).toContain(`ksm_process_profit ${2 * 4096 - 3 * 64}\n`);
    ksm.scan(1000); // scan 3: nothing changes but the unstable tree is rebuilt
    expect(c()).toMatchObject({ pages_shared: 2, pages_sharing: 2, pages_unshared: 2 });
    ksm.assertInvariants();
    host.assertInvariants();

    // p1 writes its copy of A: COW break, the KSM page keeps p0's mapping
    const pfn = mms[1].fault(hva, true);
    host.mem.written(pfn);
    expect(ksm.cowBreaks).toBe(1);
    expect(mms[0].lookup(hva)).not.toBe(pfn);
    // counters move only when ksmd rescans the page (remove_rmap_item_from_tree)
    expect(c().pages_sharing).toBe(2);
    ksm.scan(1000);
    expect(c()).toMatchObject({
      pages_shared: 2,
      pages_sharing: 1,
      pages_unshared: 2,
      pages_volatile: 1,
      general_profit: 1 * 4096 - 6 * 64,
    });
    ksm.assertInvariants();
    host.assertInvariants();
  });

  it("a KSM page is freed with its last mapping and its stale node pruned", () => {
    const { ksm, mms, host, free0, c } = setup([[21], [21]], {});
    ksm.scan(1000);
    ksm.scan(1000);
    expect(c().pages_shared).toBe(1);
    expect(host.mem.freeFrames).toBe(free0 + 1);
    for (const mm of mms) host.mem.written(mm.fault(mm.vmas[0].start, true));
    // two copies made, the KSM page freed: one frame more than before merging
    expect(host.mem.freeFrames).toBe(free0);
    ksm.scan(1000); // the first rescan finds the node stale: both items leave the tree
    expect(c()).toMatchObject({ pages_shared: 0, pages_sharing: 0, pages_volatile: 2 });
    ksm.assertInvariants();
  });

  it("use_zero_pages maps empty pages to the zero page (ksm_zero_pages)", () => {
    const { ksm, mms, host, free0, c } = setup([[0, 0, 0, 31]], { use_zero_pages: 1 });
    const mm = mms[0];
    expect(mm.rss).toBe(4);
    ksm.scan(1000);
    ksm.scan(1000);
    expect(c()).toMatchObject({
      ksm_zero_pages: 3,
      pages_unshared: 1,
      pages_volatile: 3,
      general_profit: 3 * 4096 - 4 * 64,
    });
    expect(mm.rss).toBe(1);
    expect(host.mem.freeFrames).toBe(free0 + 3);
    ksm.scan(1000); // the items of zero-page addresses are freed as the cursor passes them
    expect(c()).toMatchObject({
      ksm_zero_pages: 3,
      pages_volatile: 0,
      general_profit: 3 * 4096 - 64,
    });
    expect(ksm.ksmStat(mm)).toContain("ksm_zero_pages 3\n");
    mm.fault(mm.vmas[0].start + 4096, true); // a write to one: COW from the zero page
    expect(c().ksm_zero_pages).toBe(2);
    expect(mm.rss).toBe(2);
    host.assertInvariants();
  });

  it("max_page_sharing 2: five copies make a chain of two dups and one unshared", () => {
    const A = 41;
    const { ksm, host, free0, c } = setup([[A, A, A, A, A]], { max_page_sharing: 2 });
    ksm.scan(1000);
    ksm.scan(1000);
    expect(c()).toMatchObject({
      pages_shared: 2,
      pages_sharing: 2,
      pages_unshared: 1,
      pages_volatile: 0,
      stable_node_chains: 1,
      stable_node_dups: 2,
      general_profit: 2 * 4096 - 5 * 64,
    });
    expect(host.mem.freeFrames).toBe(free0 + 2);
    ksm.assertInvariants();
  });

  it("smart_scan skips a page that never merges, backing off as skip_age() says", () => {
    const { ksm, c } = setup([[51]], { smart_scan: 1 });
    for (let s = 0; s < 14; s++) ksm.scan(1000);
    // visits 5, 7, 8, 10, 11, 12, 13 are skipped (ages 4..12 with 1, 2 and 4 skips granted)
    expect(c()).toMatchObject({ full_scans: 14, pages_scanned: 7, pages_skipped: 7 });
    const off = setup([[51]], { smart_scan: 0 });
    for (let s = 0; s < 14; s++) off.ksm.scan(1000);
    expect(off.c()).toMatchObject({ pages_scanned: 14, pages_skipped: 0 });
  });

  it("pages_to_scan bounds a batch and a full scan ends it early", () => {
    const { ksm, c } = setup([[1, 2, 3, 4, 5]], {});
    expect(ksm.scan(3)).toBe(3);
    expect(c()).toMatchObject({ pages_scanned: 3, full_scans: 0 });
    expect(ksm.scan(3)).toBe(2);
    expect(c()).toMatchObject({ pages_scanned: 5, full_scans: 1 });
    // ksmd on the clock: a batch of 2 pages costs 2 x (300 + 2,000) = 4,600 cycles, 1.53 us at
    // 3 GHz, then ksmd sleeps 20 ms: batches at 0, 20.0015 and 40.003 ms
    const d = setup([[1, 2, 3, 4, 5]], { pages_to_scan: 2, sleep_millisecs: 20 });
    d.ksm.runUntil(40);
    expect(d.c().pages_scanned).toBe(4); // the third batch is due just after 40 ms
    d.ksm.runUntil(40.01);
    expect(d.c().pages_scanned).toBe(5); // 2 + 2 + 1 (the scan ended in the third batch)
  });

  it("hugetlbfs areas are not mergeable; a THP is split to merge a subpage", () => {
    const host = new Host({ memory: G, cpus: 1 });
    host.reserveHugePages(2097152, 4);
    const ksm = new Ksm(new HostPtes(host, new VmStat()), { run: 1 });
    const mm = host.createProcess("q");
    mm.mmap(4194304, { kind: "hugetlb", pageSize: 2097152 });
    expect(ksm.madvise(mm, mm.vmas[0])).toBe(false);

    const t = setup(
      [
        [61, 62],
        [61, 63],
      ],
      {},
      true,
    );
    expect(t.host.mem.countKind(3)).toBe(1024); // two THPs
    t.ksm.scan(100000);
    expect(t.c().pages_scanned).toBe(1024); // every subpage of both THPs has an rmap_item
    t.ksm.scan(100000);
    // subpage 0 (61) and subpages 2..511 (0x7777 + i in both) merge; subpage 1 differs
    expect(t.c()).toMatchObject({ pages_shared: 511, pages_sharing: 511, pages_unshared: 2 });
    expect(t.ksm.ptes.vmstat.thp_split_page).toBe(2);
    // 511 KSM pages made: each write-protected (3,000), the other copy merged (3,000 + 3,000),
    // and each THP split once first (30,000)
    expect(t.ksm.mergeCycles).toBe(511 * 9000 + 2 * 30000);
    expect(t.host.mem.countKind(3)).toBe(0);
    t.host.assertInvariants();
  });
});

describe("KSM and a VM: the MMU notifier and the COW break through EPT", () => {
  it("a merged page is remapped read-only; a guest write takes an EPT violation and copies", () => {
    const host = new Host({ memory: 2 * G, cpus: 1 });
    const ksm = new Ksm(new HostPtes(host, new VmStat()), { run: 1 });
    const rec = new WalkRecord();
    const vms = [0, 1].map((i) => {
      const mm = host.createProcess(`qemu-${i}`);
      const hva = mm.mmap(G, { thp: false });
      mm.content = { token: (_v: Vma, p: number) => (p === 300 ? 99 : 1000 * (i + 1) + p) };
      const { vm, os } = vmOverRam(host, mm, hva, G, { name: `vm${i}`, ept: true });
      const vcpu = vm.addVcpu();
      const p = os.process("init");
      os.map(p, 0x400, 300, 1, { write: true, user: true, exec: false });
      host.cpus[0].movCr3(vcpu, p.root, p.pcid, false, rec);
      expect(host.cpus[0].access(vcpu, 0x400, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
      ksm.madvise(mm, mm.vmas[0]);
      return { mm, vm, vcpu, hva };
    });
    ksm.scan(100000);
    ksm.scan(100000);
    expect(ksm.counters().pages_sharing).toBe(1);
    const cpu = host.cpus[0];
    const [a, b] = vms;
    const kpfn = a.mm.lookup(a.hva + 300 * 4096);
    expect(b.mm.lookup(b.hva + 300 * 4096)).toBe(kpfn);
    // the spte was zapped: a read exits once and maps the KSM page without W
    const exits = b.vm.exitCounts.reduce((x, y) => x + y, 0);
    expect(cpu.access(b.vcpu, 0x400, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
    expect(rec.pfn).toBe(kpfn);
    expect(b.vm.exitCounts.reduce((x, y) => x + y, 0)).toBe(exits + 1);
    // a write: EPT violation on W, KVM faults the host page for write, do_wp_page copies
    expect(cpu.access(b.vcpu, 0x400, 0, ACCESS_WRITE, rec)).toBe(STATUS_OK);
    expect(rec.pfn).not.toBe(kpfn);
    expect(host.mem.kind[rec.pfn]).not.toBe(KIND_FREE);
    expect(host.mem.token[rec.pfn]).not.toBe(99);
    expect(ksm.cowBreaks).toBe(1);
    // vm0 still reads the KSM page
    expect(cpu.access(a.vcpu, 0x400, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
    expect(rec.pfn).toBe(kpfn);
    host.assertInvariants();
    ksm.assertInvariants();
  });
});
