/**
 * KSM (kernel samepage merging), as mm/ksm.c does it.
 *
 * How it works (ksm.c "DOC: Overview", Documentation/admin-guide/mm/ksm.rst): processes mark
 * areas MADV_MERGEABLE (QEMU does it for guest RAM unless <nosharepages/>; hugetlbfs areas are
 * not KSM-compatible, vma_ksm_compatible). ksmd scans `pages_to_scan` pages every
 * `sleep_millisecs` (ksm_scan_thread -> ksm_do_scan): scan_get_next_rmap_item walks the mm_slots
 * in order, and in each the mergeable areas address by address; every present anonymous page
 * (THP subpages too) gets an rmap_item kept in a per-mm list sorted by address (items of pages
 * that went away are freed as the cursor passes them). cmp_and_merge_page then: a page whose
 * checksum changed since the last scan is volatile and only has its checksum recorded; with
 * use_zero_pages an unchanged empty page is replaced by the zero page; else the stable tree
 * (write-protected KSM pages, by content) is searched and the page merged into a match;
 * else the unstable tree (candidates of this full scan, flushed at the start of each) is
 * searched: a match makes the scanned page a KSM page, the tree page is replaced by it, and the
 * pair forms a new stable node. Merging write-protects the host pte and repoints it
 * (write_protect_page, replace_page; a THP is split first) through HostPtes, whose MMU
 * notifier zaps the VM's spte. A write then takes an EPT violation, KVM faults the host page
 * for write and do_wp_page copies it (wpFault, the COW break). A stable node holds at most
 * max_page_sharing rmap_items; more copies of one content become "dups" under a chain node.
 * smart_scan skips pages that failed to merge for a while (should_skip_rmap_item). Content is
 * compared through PhysMem tokens: equal tokens are identical pages; checksum() stands in for
 * calc_checksum (xxhash of the page): like it, it is never 0 for the first sighting.
 * NUMA (ksm.rst "merge_across_nodes"): with merge_across_nodes 1 every page goes in tree 0;
 * with 0 each node has its own stable and unstable tree (root_stable_tree[nid], get_kpfn_nid),
 * so only pages on the same node merge, and a tree page found on another node is not merged
 * with (unstable_tree_search_insert). ksmd's work is priced in cycles as it goes (ksm-cost.ts)
 * and a batch takes that long (at ksmd's CFS share of its CPU) before ksmd sleeps again
 * (ksm_scan_thread: ksm_do_scan, then sleep_millisecs).
 * Simplified: stale chain dups are pruned at every lookup (the kernel waits
 * stable_node_chains_prune_millisecs), rbtrees are hash maps by content (same matches, without
 * the order), KSM pages are never migrated between nodes (no migrate_nodes).
 *
 * Invariants (assertInvariants, ksm-stats.ts): the counters equal recounts over rmap_items and
 * nodes; a KSM frame's mapcount equals the ptes mapping it; pages_shared + pages_sharing +
 * pages_unshared <= ksm_rmap_items; with merge_across_nodes 0 a KSM page sits in its node's tree.
 */
import type { HostPtes } from "./hostpte.js";
import {
  KSM_CHECKSUM_CYCLES,
  KSM_MEMCMP_DIFF_CYCLES,
  KSM_MEMCMP_SAME_CYCLES,
  KSM_REPLACE_CYCLES,
  KSM_SCAN_CYCLES,
  KSM_SPLIT_CYCLES,
  KSM_WRPROTECT_CYCLES,
  treeDepth,
} from "./ksm-cost.js";
import { STABLE, UNSTABLE } from "./ksm-items.js";
import { KsmStats } from "./ksm-stats.js";
import { KSM_DEFAULTS, KsmMmSlot, type KsmSettings } from "./ksm-tree.js";
import { PteCursor } from "./ksm-walk.js";
import { KIND_ANON, KIND_KERNEL, KIND_THP } from "./memory.js";
import type { Mm, Vma, WriteProtectHandler } from "./mm.js";

export { RMAP_ITEM_SIZE } from "./ksm-stats.js";
export { KSM_DEFAULTS, KsmMmSlot, type KsmSettings } from "./ksm-tree.js";

/** lowbias32 (Chris Wellons) of the token: calc_checksum's stand-in, never 0 */
export function checksum(token: number): number {
  let x = (token ^ 0x2545f491) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0 || 1;
}

export class Ksm extends KsmStats implements WriteProtectHandler {
  /** ZERO_PAGE: one kernel frame of zeros */
  readonly zeroPfn: number;
  private readonly zeroChecksum = checksum(0);
  // scan cursor: slot index (-1 = ksm_mm_head), next address, the item before the cursor
  private cur = -1;
  private addr = 0;
  private prev = -1;
  private page = -1;
  private nextRunMs = 0;
  /** page-table lookups of the scan cursor and of tree pages (get_mergeable_page) */
  private readonly cursor: PteCursor;
  private readonly treeCursor: PteCursor;

  constructor(
    readonly ptes: HostPtes,
    settings: Partial<KsmSettings> = {},
  ) {
    super(ptes.host.mem, { ...KSM_DEFAULTS, ...settings });
    this.cursor = new PteCursor(this.mem);
    this.treeCursor = new PteCursor(this.mem);
    this.zeroPfn = this.mem.alloc(0, KIND_KERNEL);
    if (this.zeroPfn < 0) throw new Error("no frame for the zero page");
  }

  /** madvise(MADV_MERGEABLE) on a VMA (ksm_madvise; __ksm_enter adds the mm behind the cursor). */
  madvise(mm: Mm, vma: Vma): boolean {
    if (vma.kind !== "anon") return false; // VM_HUGETLB is not KSM-compatible
    let slot = this.bySlot.get(mm);
    if (!slot) {
      slot = new KsmMmSlot(this.slots.length, mm);
      this.slots.push(slot);
      this.bySlot.set(mm, slot);
      mm.wp = this;
    }
    slot.ranges.push([vma.start / 4096, vma.end / 4096]);
    slot.ranges.sort((a, b) => a[0] - b[0]);
    return true;
  }

  /**
   * ksmd on the simulated clock (ksm_scan_thread): every batch due by `nowMs`, each taking its
   * cycles at cpuHz (at cpuShare of the CPU) before ksmd sleeps sleep_millisecs again; returns
   * pages scanned.
   */
  runUntil(nowMs: number): number {
    let n = 0;
    if (this.settings.run === 2) this.unmergeAll();
    while (this.nextRunMs <= nowMs) {
      const c0 = this.cpuCycles;
      if (this.settings.run === 1) n += this.scan(this.settings.pages_to_scan);
      const busyMs = ((this.cpuCycles - c0) / this.cpuHz / this.cpuShare) * 1000;
      this.nextRunMs += busyMs + this.settings.sleep_millisecs;
    }
    return n;
  }

  /** ksm_do_scan: up to `pages` pages; a full scan ending stops the batch early. */
  scan(pages: number): number {
    // the tables may have changed since the last batch (faults, reclaim, balloon, teardown)
    this.cursor.reset();
    this.treeCursor.reset();
    let done = 0;
    while (done < pages) {
      const item = this.scanGetNext();
      if (item < 0) break;
      this.cmpAndMerge(this.page, item);
      this.pagesScanned++;
      done++;
    }
    return done;
  }

  private scanGetNext(): number {
    if (this.slots.length === 0) return -1;
    const it = this.items;
    if (this.cur < 0) {
      for (const tree of this.unstable) tree.clear(); // root_unstable_tree[nid] = RB_ROOT
      this.cur = 0;
      this.addr = 0;
      this.prev = -1;
    }
    while (this.cur < this.slots.length) {
      const slot = this.slots[this.cur];
      const ranges = slot.ranges;
      for (let r = 0; r < ranges.length; r++) {
        const start = ranges[r][0];
        const end = ranges[r][1];
        if (this.addr < start) this.addr = start;
        while (this.addr < end) {
          const pfn = this.cursor.pfnAt(slot.mm, this.addr);
          const k = pfn < 0 ? 0 : this.mem.kind[pfn];
          if (k !== KIND_ANON && k !== KIND_THP) {
            this.addr = pfn < 0 ? this.cursor.skipTo : this.addr + 1;
            continue;
          }
          const item = it.getNext(slot, this.prev, this.addr, this);
          this.prev = item;
          this.addr++;
          this.scanCycles += KSM_SCAN_CYCLES;
          if (this.shouldSkip(pfn, item)) continue;
          this.page = pfn;
          return item;
        }
      }
      it.removeTrailing(slot, this.prev, this); // no mergeable area above the cursor
      this.cur++;
      this.addr = 0;
      this.prev = -1;
    }
    this.cur = -1;
    this.fullScans++;
    return -1;
  }

  /**
   * HostPtes.pte4K for a page about to be remapped: a cursor's page table when it holds `vpn`
   * (no walk), else a walk that may split a THP, which changes a region the cursors may hold.
   */
  private pte4K(mm: Mm, vpn: number): void {
    let table = this.cursor.tableOf(mm, vpn);
    if (table < 0) table = this.treeCursor.tableOf(mm, vpn);
    if (table >= 0) {
      this.ptes.pteAt(mm, vpn, table, vpn & 511);
      return;
    }
    const splits = this.ptes.vmstat.thp_split_page;
    this.ptes.pte4K(mm, vpn);
    if (this.ptes.vmstat.thp_split_page !== splits) {
      this.mergeCycles += KSM_SPLIT_CYCLES;
      this.cursor.reset();
      this.treeCursor.reset();
    }
  }

  /** should_skip_rmap_item (smart_scan): back off from pages that never merge. */
  private shouldSkip(pfn: number, item: number): boolean {
    if (!this.settings.smart_scan || this.stableOf[pfn] >= 0) return false;
    const it = this.items;
    const age = it.age[item];
    if (age !== 255) it.age[item] = age + 1;
    if (age < 3) return false;
    if (it.skips[item] === 0) {
      it.skips[item] = age <= 3 ? 1 : age <= 5 ? 2 : age <= 8 ? 4 : 8; // skip_age()
      return false;
    }
    this.pagesSkipped++;
    it.skips[item]--;
    this.removeFromTree(item);
    return true;
  }

  private cmpAndMerge(pfn: number, item: number): void {
    const it = this.items;
    const mem = this.mem;
    let bypass = false;
    const own = this.stableOf[pfn];
    if (own >= 0) {
      if ((it.flags[item] & STABLE) !== 0 && it.node[item] === own) return;
      if (!this.candidate(own)) bypass = true;
    } else {
      this.removeFromTree(item);
      const cs = checksum(mem.token[pfn]);
      this.scanCycles += KSM_CHECKSUM_CYCLES;
      if (it.csum[item] !== cs) {
        it.csum[item] = cs; // changed since the last scan: volatile
        return;
      }
      if (this.settings.use_zero_pages && cs === this.zeroChecksum && mem.token[pfn] === 0) {
        this.mergeZero(item, pfn);
        return;
      }
    }
    const found = this.stableSearch(pfn);
    if (found >= 0 && this.sn.kpfn[found] === pfn && it.node[item] === found) return;
    this.removeFromTree(item);
    if (found >= 0) {
      if (this.mergeOne(item, pfn, found)) this.append(item, found, bypass);
      return;
    }
    const tree = this.unstableSearchInsert(item, pfn);
    if (tree < 0) return;
    const treePfn = this.page;
    // try_to_merge_two_pages: this page becomes the KSM page, the tree page is replaced by it
    this.writeProtect(item, pfn);
    const node = this.stableInsert(pfn);
    this.mergeOne(tree, treePfn, node);
    this.append(tree, node, false);
    this.append(item, node, false);
  }

  /** write_protect_page (splitting a THP first, as try_to_merge_one_page does) */
  private writeProtect(item: number, pfn: number): void {
    const mm = this.slots[this.items.mm[item]].mm;
    const vpn = this.items.addr[item];
    this.pte4K(mm, vpn);
    this.ptes.setPte(mm, vpn, pfn, false, true);
    this.mergeCycles += KSM_WRPROTECT_CYCLES;
    this.removeFromTree(item);
  }

  /** try_to_merge_with_ksm_page: replace the page at the item by KSM page `node`. */
  private mergeOne(item: number, pfn: number, node: number): boolean {
    const sn = this.sn;
    const kpfn = sn.kpfn[node];
    if (pfn === kpfn) {
      this.removeFromTree(item);
      return true;
    }
    if (this.mem.token[pfn] !== sn.token[node]) {
      this.compareCycles += KSM_MEMCMP_DIFF_CYCLES;
      return false; // pages_identical failed
    }
    const mm = this.slots[this.items.mm[item]].mm;
    const vpn = this.items.addr[item];
    this.pte4K(mm, vpn);
    this.ptes.setPte(mm, vpn, kpfn, false, true); // replace_page
    sn.mapcount[node]++;
    this.mem.free(pfn, 0); // the old page's only mapping went
    this.compareCycles += KSM_MEMCMP_SAME_CYCLES;
    this.mergeCycles += KSM_WRPROTECT_CYCLES + KSM_REPLACE_CYCLES;
    this.removeFromTree(item);
    return true;
  }

  /** try_to_merge_with_zero_page: map the zero page (a special pte, out of rss) instead. */
  private mergeZero(item: number, pfn: number): void {
    const slot = this.slots[this.items.mm[item]];
    const vpn = this.items.addr[item];
    this.pte4K(slot.mm, vpn);
    this.ptes.setPte(slot.mm, vpn, this.zeroPfn, false, true);
    slot.mm.rss--;
    this.mem.free(pfn, 0);
    this.zeroPages++;
    slot.zeroPages++;
    this.compareCycles += KSM_MEMCMP_SAME_CYCLES;
    this.mergeCycles += KSM_WRPROTECT_CYCLES + KSM_REPLACE_CYCLES;
  }

  /** unstable_tree_search_insert: a matching candidate (its pfn in this.page), or insert. */
  private unstableSearchInsert(item: number, pfn: number): number {
    const it = this.items;
    const token = this.mem.token[pfn];
    const nid = this.nidOf(pfn);
    const tree = this.unstable[nid];
    const depth = treeDepth(tree.size);
    const other = tree.get(token);
    if (
      other >= 0 &&
      other !== item &&
      (it.flags[other] & UNSTABLE) !== 0 &&
      it.utok[other] === token
    ) {
      const slot = this.slots[it.mm[other]];
      const opfn = this.treeCursor.pfnAt(slot.mm, it.addr[other]);
      const k = opfn < 0 ? 0 : this.mem.kind[opfn];
      // get_mergeable_page failed: the tree page is gone
      if ((k !== KIND_ANON && k !== KIND_THP) || this.stableOf[opfn] >= 0) return -1;
      if (opfn === pfn) return -1;
      if (this.mem.token[opfn] === token) {
        this.compareCycles += (depth - 1) * KSM_MEMCMP_DIFF_CYCLES + KSM_MEMCMP_SAME_CYCLES;
        // a tree page that moved to another node is left for the next scan to re-file
        if (!this.settings.merge_across_nodes && this.mem.nodeOf(opfn) !== nid) return -1;
        this.page = opfn;
        return other;
      }
      // the tree page changed since it went in: it stays, misplaced, and this one goes in
    }
    this.compareCycles += depth * KSM_MEMCMP_DIFF_CYCLES;
    it.flags[item] |= UNSTABLE;
    it.seq[item] = this.fullScans & 0xff;
    it.utok[item] = token;
    it.unid[item] = nid;
    tree.set(token, item);
    this.pagesUnshared++;
    return -1;
  }

  /** do_wp_page on a KSM page or the zero page: copy it, map the copy writable (COW break). */
  wpFault(mm: Mm, hva: number, pfn: number): number {
    const vpn = Math.floor(hva / 4096);
    const npfn = this.mem.alloc(0, KIND_ANON);
    if (npfn < 0) throw new Error("host out of memory");
    this.mem.token[npfn] = this.mem.token[pfn];
    this.ptes.setPte(mm, vpn, npfn, true, true);
    this.cowBreaks++;
    if (pfn === this.zeroPfn) {
      mm.rss++;
      this.zeroPages--;
      const slot = this.bySlot.get(mm);
      if (slot) slot.zeroPages--;
    } else {
      this.ptes.vmstat.cow_ksm++;
      this.putPage(pfn);
    }
    return npfn;
  }

  /** A pte mapping the zero page went away (ksm_might_unmap_zero_page). */
  unmapZero(mm: Mm): void {
    this.zeroPages--;
    const slot = this.bySlot.get(mm);
    if (slot) slot.zeroPages--;
  }

  /** A pte mapping KSM page `pfn` went away: the page is freed with its last mapping. */
  putPage(pfn: number): void {
    const id = this.stableOf[pfn];
    if (id < 0) throw new Error(`putPage of non-KSM pfn ${pfn}`);
    const sn = this.sn;
    if (--sn.mapcount[id] === 0) {
      this.stableOf[pfn] = -1;
      sn.kpfn[id] = -1;
      this.mem.free(pfn, 0);
    }
  }

  /** echo 2 > run: unmerge_and_remove_all_rmap_items (COW-break every KSM and zero pte). */
  unmergeAll(): void {
    const it = this.items;
    this.treeCursor.reset();
    for (const slot of this.slots) {
      for (let i = slot.head; i >= 0; i = it.next[i]) {
        const vpn = it.addr[i];
        const pfn = this.treeCursor.pfnAt(slot.mm, vpn);
        if (pfn >= 0 && (this.stableOf[pfn] >= 0 || pfn === this.zeroPfn))
          this.wpFault(slot.mm, vpn * 4096, pfn);
      }
      it.removeTrailing(slot, -1, this);
    }
    this.cur = -1;
    for (const tree of this.unstable) tree.clear();
  }
}
