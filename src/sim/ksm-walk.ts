/**
 * ksmd's page-table lookups: a cursor that remembers the last 2M region it walked to.
 *
 * How it works: scan_get_next_rmap_item walks the mergeable areas address by address
 * (folio_walk / follow_page in mm/ksm.c), and get_mergeable_page looks up the page behind a
 * tree rmap_item. Here a PteCursor walks the host tables (x86/tables.ts findLeaf) once per
 * 2M region and keeps what it found: a THP's first frame, or the page table of 4K ptes whose
 * entries are then read directly. Page tables do not move while ksmd holds them; only a THP
 * split (which ksmd itself does before merging a THP subpage) changes a region's shape, and the
 * caller resets the cursors when one happens. The cached table also lets HostPtes.setPte write
 * the pte without walking again (HostPtes.pteAt). Pure: no Node APIs.
 *
 * Invariants: while `key >= 0`, `table` (or `huge`) is what a fresh walk of region `key` of `mm`
 * would find.
 */
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { PTE_P, pteFrame } from "../x86/pte.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import type { PhysMem } from "./memory.js";
import type { Mm } from "./mm.js";

export class PteCursor {
  mm: Mm | null = null;
  /** the 2M region held (vpn / 512), -1 = none */
  key = -1;
  /** page table of the region's 4K ptes, or -1 */
  table = -1;
  /** first frame of the THP mapping the region, or -1 */
  huge = -1;
  /** after a miss: the next vpn that may be mapped */
  skipTo = 0;
  private readonly leaf = new LeafRef();

  constructor(private readonly mem: PhysMem) {}

  reset(): void {
    this.key = -1;
  }

  /** the pfn mapped at `vpn` of `mm`, or -1 (then skipTo is the next vpn worth trying) */
  pfnAt(mm: Mm, vpn: number): number {
    const mem = this.mem;
    const key = Math.floor(vpn / 512);
    if (key !== this.key || mm !== this.mm) {
      const l = findLeaf(mem, mm, GUEST_4LEVEL, mm.root, vpn, this.leaf);
      if (l.level >= 2 && !l.present) {
        const span = LEVEL_PAGES[l.level];
        this.skipTo = vpn - (vpn % span) + span;
        this.key = -1;
        return -1;
      }
      if (l.level > 2) {
        this.key = -1; // a 1G leaf: not anonymous memory KSM scans
        this.skipTo = vpn + 1;
        return -1;
      }
      this.mm = mm;
      this.key = key;
      this.table = l.level === 1 ? l.tableFrame : -1;
      this.huge = l.level === 2 ? pteFrame(l.lo, l.hi) - (pteFrame(l.lo, l.hi) % 512) : -1;
    }
    if (this.huge >= 0) return this.huge + (vpn & 511);
    // vpn & 511: ToInt32 keeps the low bits of any page number below 2^53
    const lo = mem.entryLo(this.table, vpn & 511);
    if ((lo & PTE_P) === 0) {
      this.skipTo = vpn + 1;
      return -1;
    }
    return pteFrame(lo, mem.entryHi(this.table, vpn & 511));
  }

  /** the page table holding the 4K pte of `vpn` when this cursor has it, else -1 */
  tableOf(mm: Mm, vpn: number): number {
    return mm === this.mm && this.key >= 0 && Math.floor(vpn / 512) === this.key ? this.table : -1;
  }
}
