/**
 * Property test (fast-check): under any interleaving of page faults, guest writes (COW breaks
 * included) and ksmd batches, with any KSM settings, no frame is lost or counted twice: the used
 * frames are exactly the page tables, the zero page and the distinct frames the processes' ptes
 * map; a frame mapped by more than one pte is a KSM page whose mapcount equals those ptes; and
 * the KSM counters equal recounts (Ksm.assertInvariants; with merge_across_nodes 0 on two NUMA
 * nodes, every KSM page sits in its own node's tree). A reference model of the contents
 * (what each page of each process holds) must read back through the ptes after every step: KSM
 * never changes what a process sees.
 */
import fc from "fast-check";
import { describe, it } from "vitest";
import { GUEST_4LEVEL } from "../x86/paging.js";
import { pteFrame } from "../x86/pte.js";
import { forEachEntry } from "../x86/tables.js";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm } from "./ksm.js";
import { KIND_FREE, KIND_KERNEL } from "./memory.js";
import type { Mm } from "./mm.js";

const G = 1073741824;
const PAGES = 1024; // two 2M regions per process

type Op =
  | { op: "touch"; p: number; page: number }
  | { op: "write"; p: number; page: number }
  | { op: "scan"; n: number };

const opArb = (procs: number): fc.Arbitrary<Op> =>
  fc.oneof(
    fc.record({
      op: fc.constant("touch" as const),
      p: fc.nat(procs - 1),
      page: fc.nat(PAGES - 1),
    }),
    fc.record({
      op: fc.constant("write" as const),
      p: fc.nat(procs - 1),
      page: fc.nat(PAGES - 1),
    }),
    fc.record({ op: fc.constant("scan" as const), n: fc.integer({ min: 1, max: 3000 }) }),
  );

function check(host: Host, ksm: Ksm, mms: Mm[], model: Map<number, number>[]): void {
  const mem = host.mem;
  const mapped = new Map<number, number>();
  for (const [p, mm] of mms.entries()) {
    forEachEntry(mem, mm, GUEST_4LEVEL, mm.root, (level, _t, _i, lo, hi, leaf, first) => {
      if (!leaf) return true;
      const n = level === 2 ? 512 : 1;
      const head = pteFrame(lo, hi) - (level === 2 ? pteFrame(lo, hi) % 512 : 0);
      for (let i = 0; i < n; i++) {
        const pfn = head + i;
        if (mem.kind[pfn] === KIND_FREE) throw new Error(`pte maps free pfn ${pfn}`);
        const page = first + i - mm.vmas[0].start / 4096;
        const want = model[p].get(page);
        if (want !== undefined && mem.token[pfn] !== want)
          throw new Error(`process ${p} page ${page} reads ${mem.token[pfn]}, wrote ${want}`);
        if (pfn !== ksm.zeroPfn) mapped.set(pfn, (mapped.get(pfn) ?? 0) + 1);
      }
      return true;
    });
  }
  let kernel = 0;
  for (let f = 0; f < mem.nframes; f++) if (mem.kind[f] === KIND_KERNEL) kernel++;
  if (mapped.size + kernel + mem.freeFrames !== mem.nframes)
    throw new Error(`frames: ${mapped.size} mapped + ${kernel} kernel + ${mem.freeFrames} free`);
  for (const [pfn, n] of mapped) {
    if (n > 1 && ksm.mapcountOf(pfn) !== n)
      throw new Error(`pfn ${pfn} mapped ${n} times, KSM mapcount ${ksm.mapcountOf(pfn)}`);
    if (ksm.stableOf[pfn] >= 0 && ksm.mapcountOf(pfn) !== n)
      throw new Error(`KSM pfn ${pfn}: mapcount ${ksm.mapcountOf(pfn)} != ${n} ptes`);
  }
  ksm.assertInvariants();
  host.assertInvariants();
}

describe("KSM keeps frames and contents", () => {
  it("holds under random faults, writes and scans", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 3 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 2, max: 4 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 6 }),
        fc.array(opArb(3), { minLength: 1, maxLength: 60 }),
        fc.constantFrom(1, 2),
        fc.constantFrom<0 | 1>(0, 1),
        (procs, thp, zero, maxShare, smart, kinds, ops, nodes, across) => {
          // two nodes: process p bound to node p % 2; merge_across_nodes 0 or 1
          const host = new Host({ memory: nodes * G, cpus: nodes, nodes });
          const ksm = new Ksm(new HostPtes(host, new VmStat()), {
            run: 1,
            use_zero_pages: zero ? 1 : 0,
            max_page_sharing: maxShare,
            smart_scan: smart ? 1 : 0,
            merge_across_nodes: across,
          });
          const mms: Mm[] = [];
          const model: Map<number, number>[] = [];
          for (let p = 0; p < procs; p++) {
            const mm = host.createProcess(`p${p}`);
            mm.mmap(PAGES * 4096, { thp, policy: { mode: "bind", nodes: 1 << (p % nodes) } });
            // few distinct contents (0 = the zero page) so that pages often match
            mm.content = { token: (_v, i) => (i * 7 + p) % kinds };
            ksm.madvise(mm, mm.vmas[0]);
            mms.push(mm);
            model.push(new Map());
          }
          for (const o of ops) {
            if (o.op === "scan") ksm.scan(o.n);
            else {
              const p = o.p % procs;
              const mm = mms[p];
              const hva = mm.vmas[0].start + o.page * 4096;
              const pfn = mm.fault(hva, o.op === "write");
              if (o.op === "write") {
                host.mem.written(pfn);
                model[p].set(o.page, host.mem.token[pfn]);
              }
            }
            check(host, ksm, mms, model);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
