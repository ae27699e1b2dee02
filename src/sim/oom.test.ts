/**
 * The OOM killer's accounting and teardown: oom_badness counts get_mm_rss (anon + file + shmem:
 * hugetlbfs pages are in none of them) + swap entries + page tables, the report prints those
 * counters, and a shadow-paging victim's shadow pages are freed with it (kvm_mmu_uninit_vm).
 */
import { describe, expect, it } from "vitest";
import { smallVm } from "../../test/sim-vm.js";
import { ACCESS_READ } from "../x86/faults.js";
import { Host } from "./host.js";
import { badness, oomMessage, rssCounters, tablePages, tearDown } from "./oom.js";
import { STATUS_OK, WalkRecord } from "./record.js";

const G = 1073741824;
const M = 1048576;

describe("the OOM killer's accounting", () => {
  it("hugetlbfs pages are not in oom_badness or anon-rss; anonymous ones are", () => {
    const host = new Host({ memory: G, cpus: 1 });
    host.reserveHugePages(2097152, 64);
    const huge = host.createProcess("qemu-huge");
    huge.mmap(128 * M, { kind: "hugetlb", pageSize: 2097152 });
    for (let i = 0; i < 64; i++) huge.fault(huge.vmas[0].start + i * 2097152, true);
    const anon = host.createProcess("qemu-anon");
    anon.mmap(64 * M, { thp: false });
    for (let i = 0; i < 1000; i++) anon.fault(anon.vmas[0].start + i * 4096, true);
    // 64 huge pages are 32768 4K frames of rss, none of them in get_mm_rss
    expect(huge.rss).toBe(32768);
    // PGD + PUD + PMD: the 2M leaves sit in the PMD
    expect(rssCounters(huge)).toEqual({ anon: 0, file: 0, shmem: 0, pgtables: 3 });
    expect(badness(huge, 0)).toBe(3);
    // 1000 4K pages: PGD, PUD, PMD and two page tables
    expect(rssCounters(anon)).toEqual({ anon: 1000, file: 0, shmem: 0, pgtables: 5 });
    expect(badness(anon, 7)).toBe(1000 + 7 + 5);
    expect(oomMessage(anon, 1001)).toBe(
      "Out of memory: Killed process 1001 (qemu-system-x86) total-vm:65536kB, anon-rss:4000kB, file-rss:0kB, shmem-rss:0kB, UID:107 pgtables:20kB oom_score_adj:0",
    );
  });

  it("a shadow-paging victim's shadow pages are freed with it", () => {
    const { host, ptes, ksm, mm, vm, os } = smallVm({
      ept: false,
      zones: { tableEndMiB: 8, end4KMiB: 32, end2MMiB: 32 },
    });
    const vcpu = vm.addVcpu();
    const p = os.process("init");
    for (let i = 0; i < 16; i++)
      os.map(p, 0x400 + i, 3000 + i, 1, { write: true, user: true, exec: false });
    const rec = new WalkRecord();
    const cpu = host.cpus[0];
    cpu.movCr3(vcpu, p.root, p.pcid, false, rec);
    for (let i = 0; i < 16; i++)
      expect(cpu.access(vcpu, 0x400 + i, 0, ACCESS_READ, rec)).toBe(STATUS_OK);
    const shadow = vm.mmu.tablePages();
    expect(shadow).toBeGreaterThan(0);
    // the PGD itself stays with the mm_struct (freed at mmdrop, not by exit_mmap)
    const expected = mm.rss + tablePages(mm) - 1 + shadow;
    const free = host.mem.freeFrames;
    const freed = tearDown(ptes, ksm, mm);
    expect(vm.mmu.tablePages()).toBe(0);
    expect(freed).toBe(expected);
    expect(host.mem.freeFrames).toBe(free + expected);
    host.assertInvariants();
  });
});
