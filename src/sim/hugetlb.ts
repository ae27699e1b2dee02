/**
 * hugetlb surplus pages: huge pages allocated beyond vm.nr_hugepages, up to
 * nr_overcommit_hugepages, and given back to the buddy allocator when freed.
 *
 * How it works (Documentation/admin-guide/mm/hugetlbpage.rst, mm/hugetlb.c): when a mapping
 * reserves more huge pages than the pool has free (hugetlb_reserve_pages -> hugetlb_acct_memory
 * -> gather_surplus_pages), the kernel allocates the difference from the buddy allocator as
 * surplus pages, as long as surplus_huge_pages stays within nr_overcommit_hugepages and a free,
 * aligned block exists; otherwise the reservation (and QEMU's mmap) fails. Surplus pages count
 * in HugePages_Total and HugePages_Surp; a freed huge page while the pool has surplus goes back
 * to the buddy allocator (free_huge_page -> update_and_free_hugetlb_folio) rather than to the
 * pool, so surplus pages only live as long as their users.
 *
 * Invariants: 0 <= surplus <= total; surplus <= overcommit at the time each was gathered.
 */
import type { Host } from "./host.js";
import { KIND_HUGETLB } from "./memory.js";
import type { HugetlbPool } from "./mm.js";

function poolOf(host: Host, pageSize: number): HugetlbPool {
  let pool = host.pools.get(pageSize);
  if (!pool) {
    host.reserveHugePages(pageSize as 2097152 | 1073741824, 0);
    pool = host.pools.get(pageSize)!;
  }
  return pool;
}

/** gather_surplus_pages: add `n` surplus pages to the pool; false (and none added) if it cannot. */
export function gatherSurplus(host: Host, pageSize: number, n: number): boolean {
  const pool = poolOf(host, pageSize);
  if (n <= 0) return true;
  if (pool.surplus + n > pool.overcommit) return false;
  const order = pageSize === 1073741824 ? 18 : 9;
  const got: number[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = host.mem.alloc(order, KIND_HUGETLB);
    if (pfn < 0) {
      for (const g of got) host.mem.free(g, order);
      return false;
    }
    got.push(pfn);
  }
  for (const g of got) pool.free.push(g);
  pool.total += n;
  pool.surplus += n;
  return true;
}

/** free_huge_page: back to the pool, or to the buddy allocator while the pool has surplus. */
export function releaseHugePage(host: Host, pageSize: number, head: number): void {
  const pool = poolOf(host, pageSize);
  if (pool.surplus > 0) {
    host.mem.free(head, pageSize === 1073741824 ? 18 : 9);
    pool.surplus--;
    pool.total--;
    return;
  }
  pool.free.push(head);
}
