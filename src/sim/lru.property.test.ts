/**
 * fast-check: random mixes of guest memory touches, page-cache reads and writes, kswapd and
 * direct reclaim on a squeezed host keep every invariant: frames are never lost or counted
 * twice (free + anon + file + kernel + hugetlb = total), each frame is on exactly one LRU list
 * and the list sizes equal recounts, every page-cache page is indexed by its image, a guest
 * page is either resident or in swap (never both) and keeps its content.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Host } from "./host.js";
import { HostPtes, VmStat } from "./hostpte.js";
import { Ksm } from "./ksm.js";
import { LRU_ACTIVE_ANON, LRU_INACTIVE_ANON, LRU_UNEVICTABLE } from "./lru.js";
import { KIND_ANON, KIND_FILE, KIND_FREE, KIND_HUGETLB, KIND_KERNEL, KIND_THP } from "./memory.js";
import type { Vma } from "./mm.js";
import { Reclaim } from "./reclaim.js";

const G = 1073741824;
const M = 1048576;

const op = fc.oneof(
  fc.record({ t: fc.constant("touch" as const), page: fc.nat(4095), write: fc.boolean() }),
  fc.record({ t: fc.constant("read" as const), page: fc.nat(2047) }),
  fc.record({ t: fc.constant("write" as const), page: fc.nat(2047) }),
  fc.record({ t: fc.constant("kswapd" as const) }),
  fc.record({ t: fc.constant("direct" as const) }),
);

describe("LRU lists, page cache and swap together", () => {
  it("fast-check: frames conserved, one list per frame, resident xor swapped", () => {
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 80 }),
        fc.constantFrom(0, 60, 200),
        fc.constantFrom("writeback", "none", "writethrough") as fc.Arbitrary<
          "writeback" | "none" | "writethrough"
        >,
        (ops, swappiness, mode) => {
          const host = new Host({ memory: G, cpus: 1 });
          const ptes = new HostPtes(host, new VmStat());
          const ksm = new Ksm(ptes, {});
          const reclaim = new Reclaim(ptes, ksm, {
            swapBytes: 8 * M,
            minFreeKbytes: 1024,
            sysctl: { swappiness },
          });
          const mm = host.createProcess("qemu");
          mm.mmap(16 * M, { thp: false });
          mm.content = { token: (_v: Vma, i: number) => i + 1 };
          reclaim.register(mm, false);
          // a locked hog leaves about 3,000 frames for the guest and the cache
          const hog = host.createProcess("hog");
          hog.mmap(G, { thp: false });
          reclaim.register(hog, true);
          const fill = host.mem.freeFrames - 3000 - 600;
          for (let i = 0; i < fill; i++) hog.fault(hog.vmas[0].start + i * 4096, true);
          const img = reclaim.cache.addImage("vm.img", 2048 * 4096, mode);
          const touched = new Set<number>();
          const mem = host.mem;
          for (const o of ops) {
            try {
              if (o.t === "touch") {
                const pfn = mm.fault(mm.vmas[0].start + o.page * 4096, o.write);
                expect(mem.token[pfn]).toBe(o.page + 1);
                touched.add(o.page);
              } else if (o.t === "read") reclaim.cache.read(img, o.page);
              else if (o.t === "write") reclaim.cache.write(img, o.page);
              else if (o.t === "kswapd") reclaim.kswapd();
              else reclaim.directReclaim();
            } catch (e) {
              // the OOM killer may take the guest itself when nothing else is left
              expect(String(e)).toMatch(/SIGKILL|host out of memory/);
              break;
            }
            host.assertInvariants();
            reclaim.assertInvariants();
            const kinds = [KIND_FREE, KIND_KERNEL, KIND_ANON, KIND_THP, KIND_HUGETLB, KIND_FILE];
            expect(kinds.reduce((a, k) => a + mem.countKind(k), 0)).toBe(mem.nframes);
            const lists = reclaim.lists();
            const lru = reclaim.lru;
            expect(lists.inactiveAnon + lists.activeAnon + lru.nr[LRU_UNEVICTABLE]).toBe(
              mem.countKind(KIND_ANON) + mem.countKind(KIND_THP),
            );
            expect(lists.inactiveFile + lists.activeFile).toBe(mem.countKind(KIND_FILE));
            expect(reclaim.cache.pages).toBe(mem.countKind(KIND_FILE));
            if (mm.killed) break;
            for (const p of touched) {
              const vpn = mm.vmas[0].start / 4096 + p;
              const pfn = mm.lookup(vpn * 4096);
              expect(pfn >= 0 !== reclaim.isSwapped(mm, vpn)).toBe(true);
              if (pfn >= 0) {
                expect([LRU_INACTIVE_ANON, LRU_ACTIVE_ANON]).toContain(lru.lru[pfn]);
                expect(mem.token[pfn]).toBe(p + 1);
              }
            }
          }
        },
      ),
      { numRuns: 6, seed: 20261126 },
    );
  }, 120_000);
});
