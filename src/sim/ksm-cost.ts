/**
 * What ksmd's work costs the host CPU it runs on, in cycles: a cost model for KSM.
 *
 * How it works: ksmd (mm/ksm.c ksm_scan_thread) is a kernel thread; every cycle it spends is a
 * cycle a vCPU thread on that host CPU does not get. Ksm adds these prices up as it works:
 *   - every page scanned: the page-table walk to it and its rmap_item (scan_get_next_rmap_item,
 *     get_next_rmap_item): KSM_SCAN_CYCLES;
 *   - every checksum (calc_checksum, xxhash64 of the 4 KiB page since 6.x; not for KSM pages,
 *     which ksmd does not checksum): KSM_CHECKSUM_CYCLES;
 *   - every tree search (stable_tree_search, unstable_tree_search_insert): one memcmp_pages per
 *     rbtree level passed, ceil(log2(n + 1)) for a tree of n entries (the rbtree's depth; the
 *     sim's trees are hash maps, so the depth is computed, not walked): a comparison of two
 *     different pages stops in the first cache line (KSM_MEMCMP_DIFF_CYCLES), the one that finds
 *     identical pages reads both to the end (KSM_MEMCMP_SAME_CYCLES);
 *   - every merge (try_to_merge_one_page): pages_identical once more (KSM_MEMCMP_SAME_CYCLES),
 *     write_protect_page (KSM_WRPROTECT_CYCLES) and replace_page (KSM_REPLACE_CYCLES), each with
 *     its MMU-notifier invalidation (KVM zaps the spte) and TLB shootdown; the page that becomes
 *     the KSM page in try_to_merge_two_pages is only write-protected; a THP subpage needs the THP
 *     split first (KSM_SPLIT_CYCLES).
 * ksmd runs at nice 5 (ksm_scan_thread: set_user_nice(current, 5)); while vCPU threads (nice 0)
 * want its CPU too, CFS gives it its weight's share (ksmdShare), so a batch takes longer in
 * time than in cycles, and ksmd sleeps only after it.
 * A COW break is not ksmd's: the guest's write faults, and do_wp_page copies the page on the
 * vCPU's time (KSM_COW_CYCLES, charged by the run loop to the faulting vCPU).
 * All are teaching numbers for a ~3 GHz x86-64 host, for relative comparison (how pages_to_scan
 * and sleep_millisecs trade merging speed for CPU), not a performance prediction.
 */

/** the walk to the page and its rmap_item: a few cache misses in the page tables and the slab */
export const KSM_SCAN_CYCLES = 300;
/**
 * calc_checksum: xxhash64 of 4 KiB at ~3 bytes/cycle is ~1,400 cycles, plus the page coming in
 * from DRAM (ksmd reads pages nobody touched lately; the prefetcher overlaps part of it)
 */
export const KSM_CHECKSUM_CYCLES = 2000;
/** memcmp_pages of two different pages: they differ in the first bytes, two cache misses */
export const KSM_MEMCMP_DIFF_CYCLES = 200;
/** memcmp_pages of two identical pages: 8 KiB read to the end */
export const KSM_MEMCMP_SAME_CYCLES = 2500;
/**
 * write_protect_page: page_vma_mapped_walk, ptep_clear_flush with the MMU-notifier invalidation
 * (KVM zaps the spte) and a TLB shootdown (flush IPIs to the CPUs running the VM, ~1 us)
 */
export const KSM_WRPROTECT_CYCLES = 3000;
/** replace_page: the pte repointed at the KSM page, the same invalidation and flush, a folio_put */
export const KSM_REPLACE_CYCLES = 3000;
/** split_huge_page of a THP before merging a subpage: 512 ptes, refcounts, LRU (~10 us) */
export const KSM_SPLIT_CYCLES = 30000;
/**
 * do_wp_page copying a KSM page for a write (alloc + copy 4 KiB + pte + flush): like the 4K host
 * fault of cpu/cost.ts (3,000 cycles, zeroing 4 KiB); charged to the faulting vCPU, not to ksmd
 */
export const KSM_COW_CYCLES = 3000;

/** sched_prio_to_weight (kernel/sched/core.c): nice 0 and nice 5 */
export const NICE_0_WEIGHT = 1024;
export const NICE_5_WEIGHT = 335;

/** CFS's share of a CPU for ksmd (nice 5) beside `vcpus` runnable vCPU threads (nice 0) */
export function ksmdShare(vcpus: number): number {
  return NICE_5_WEIGHT / (NICE_5_WEIGHT + vcpus * NICE_0_WEIGHT);
}

/** memcmp_pages calls of a search in an rbtree of `n` entries: the levels passed */
export function treeDepth(n: number): number {
  return 32 - Math.clz32(n); // ceil(log2(n + 1)): the bits of n
}
