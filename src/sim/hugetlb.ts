/**
 * hugetlbfs pools: huge pages of one size set aside from host memory, per NUMA node, and surplus
 * pages allocated beyond vm.nr_hugepages up to nr_overcommit_hugepages.
 *
 * How it works (Documentation/admin-guide/mm/hugetlbpage.rst, mm/hugetlb.c 6.x):
 * - The pool (struct hstate) keeps nr_huge_pages, free_huge_pages and surplus_huge_pages, and
 *   the same per node (nr_huge_pages_node[], free_huge_pages_node[], surplus_huge_pages_node[]).
 *   Free pages sit on per-node free lists, last in first out (enqueue_hugetlb_folio adds at the
 *   head, dequeue_hugetlb_folio_node_exact takes the head); kvmem keeps one array and finds a
 *   node's most recent page by scanning it from the end.
 * - vm.nr_hugepages is spread over the nodes with memory round-robin (alloc_pool_huge_folio and
 *   hstate's next_nid_to_alloc, for_each_node_mask_to_alloc: each page on the next node, a node
 *   that has no free block is skipped); the boot parameter's per-node form
 *   (`hugepages=0:512,1:256`, hugetlb_hstate_alloc_pages_onenode) and
 *   /sys/devices/system/node/nodeN/hugepages/hugepages-<size>kB/nr_hugepages put them on one node.
 * - A fault takes a page with the VMA's memory policy (dequeue_hugetlb_folio_nodemask: the
 *   preferred node's zonelist within the policy's nodemask, numa.ts).
 * - Surplus pages: when a mapping reserves more huge pages than the pool has free
 *   (hugetlb_reserve_pages -> hugetlb_acct_memory -> gather_surplus_pages), the difference comes
 *   from the buddy allocator as surplus pages, all or none, while surplus_huge_pages stays within
 *   nr_overcommit_hugepages; each is tried on the current node first, then the other nodes in
 *   order. A freed huge page goes back to the buddy allocator instead of the free list when its
 *   node has surplus pages (free_huge_folio: surplus_huge_pages_node[nid]).
 *
 * Invariants (assertInvariants): surplus <= total; per node, free + in use = total and
 * surplus <= total; the per-node counts sum to the global ones; every free page is a KIND_HUGETLB
 * block head on its node.
 */
import type { Host } from "./host.js";
import { KIND_HUGETLB, type PhysMem } from "./memory.js";

/** One hugetlbfs page size's pool (struct hstate). */
export class HugetlbPool {
  /** free huge pages (head pfns), all nodes, most recently freed last */
  readonly free: number[] = [];
  /** nr_huge_pages: pool pages plus surplus pages */
  total = 0;
  /** surplus pages (allocated beyond nr_hugepages, counted in total) */
  surplus = 0;
  /** nr_overcommit_hugepages: how many surplus pages may exist */
  overcommit = 0;
  /** nr_huge_pages_node[] */
  readonly totalNode: Int32Array;
  /** surplus_huge_pages_node[] */
  readonly surplusNode: Int32Array;

  constructor(
    readonly pageSize: number,
    nodes = 1,
  ) {
    this.totalNode = new Int32Array(nodes);
    this.surplusNode = new Int32Array(nodes);
  }

  get order(): 9 | 18 {
    return this.pageSize === 1073741824 ? 18 : 9;
  }

  /** free_huge_pages_node[node] */
  freeOn(mem: PhysMem, node: number): number {
    let n = 0;
    for (const pfn of this.free) if (mem.nodeOf(pfn) === node) n++;
    return n;
  }

  /** Free pages on the nodes of `mask` (allowed_mems_nr for a task bound to them). */
  freeIn(mem: PhysMem, mask: number): number {
    let n = 0;
    for (const pfn of this.free) if ((mask >>> mem.nodeOf(pfn)) & 1) n++;
    return n;
  }

  /**
   * dequeue_hugetlb_folio_nodemask: the most recently freed page of the first node of
   * `preferred`'s zonelist that is in `mask` and has one; -1 when none.
   */
  dequeue(mem: PhysMem, preferred: number, mask: number): number {
    const nodes = mem.nodes;
    const free = this.free;
    for (let i = 0; i < nodes; i++) {
      const node = (preferred + i) % nodes;
      if (((mask >>> node) & 1) === 0) continue;
      for (let j = free.length - 1; j >= 0; j--) {
        const pfn = free[j];
        if (mem.nodeOf(pfn) !== node) continue;
        free.splice(j, 1);
        return pfn;
      }
    }
    return -1;
  }

  assertInvariants(mem: PhysMem): void {
    let t = 0;
    let s = 0;
    for (let n = 0; n < this.totalNode.length; n++) {
      t += this.totalNode[n];
      s += this.surplusNode[n];
      if (this.surplusNode[n] > this.totalNode[n]) throw new Error(`node ${n}: surplus > total`);
      if (this.freeOn(mem, n) > this.totalNode[n]) throw new Error(`node ${n}: free > total`);
    }
    if (t !== this.total || s !== this.surplus) throw new Error("per-node pool counts");
    for (const pfn of this.free)
      if (mem.kind[pfn] !== KIND_HUGETLB) throw new Error(`free huge page ${pfn} not hugetlb`);
  }
}

function poolOf(host: Host, pageSize: number): HugetlbPool {
  let pool = host.pools.get(pageSize);
  if (!pool) {
    host.reserveHugePages(pageSize as 2097152 | 1073741824, 0);
    pool = host.pools.get(pageSize)!;
  }
  return pool;
}

/**
 * Allocate one huge page on `node` only (__GFP_THISNODE) into the pool, by a task on node
 * `local`; false when none. Boot-time pools: 2M pages come from the buddy allocator by a worker
 * on each node (hugetlb_pages_alloc_boot, padata numa_aware: local), 1G pages from memblock
 * (alloc_bootmem_huge_page: no numastat count, local -1).
 */
export function allocPoolPage(
  host: Host,
  pool: HugetlbPool,
  node: number,
  surplus: boolean,
  local: number = pool.order === 18 ? -1 : node,
) {
  const pfn = host.mem.allocFrom(pool.order, KIND_HUGETLB, node, 1 << node, local);
  if (pfn < 0) return false;
  pool.free.push(pfn);
  pool.total++;
  pool.totalNode[node]++;
  if (surplus) {
    pool.surplus++;
    pool.surplusNode[node]++;
  }
  return true;
}

/**
 * gather_surplus_pages: add `n` surplus pages to the pool, each on `local` first, then the other
 * nodes of `mask` in order; false (and none added) if nr_overcommit_hugepages or memory runs out.
 */
export function gatherSurplus(
  host: Host,
  pageSize: number,
  n: number,
  local = 0,
  mask = 0x7fffffff,
): boolean {
  const pool = poolOf(host, pageSize);
  if (n <= 0) return true;
  if (pool.surplus + n > pool.overcommit) return false;
  const nodes = host.mem.nodes;
  const got: number[] = [];
  for (let i = 0; i < n; i++) {
    let ok = false;
    for (let k = 0; k < nodes && !ok; k++) {
      const node = k === 0 ? local : k <= local ? k - 1 : k;
      if ((mask >>> node) & 1) ok = allocPoolPage(host, pool, node, true, local);
    }
    if (!ok) {
      // all or none: return what this call gathered (return_unused_surplus_pages)
      for (const g of got) freeSurplus(host, pool, g);
      return false;
    }
    got.push(pool.free[pool.free.length - 1]);
  }
  return true;
}

/** Take the free surplus page `head` out of the pool and give it to the buddy allocator. */
function freeSurplus(host: Host, pool: HugetlbPool, head: number): void {
  const i = pool.free.lastIndexOf(head);
  if (i >= 0) pool.free.splice(i, 1);
  const node = host.mem.nodeOf(head);
  host.mem.free(head, pool.order);
  pool.surplus--;
  pool.surplusNode[node]--;
  pool.total--;
  pool.totalNode[node]--;
}

/**
 * return_unused_surplus_pages: give up to `n` free surplus pages back to the buddy allocator
 * (a failed start releasing its reservation); returns how many went.
 */
export function returnUnusedSurplus(host: Host, pageSize: number, n: number): number {
  const pool = poolOf(host, pageSize);
  let done = 0;
  for (let j = pool.free.length - 1; j >= 0 && done < n && pool.surplus > 0; j--) {
    const head = pool.free[j];
    if (pool.surplusNode[host.mem.nodeOf(head)] === 0) continue;
    freeSurplus(host, pool, head);
    done++;
  }
  return done;
}

/** free_huge_folio: back to the pool, or to the buddy allocator while its node has surplus. */
export function releaseHugePage(host: Host, pageSize: number, head: number): void {
  const pool = poolOf(host, pageSize);
  const node = host.mem.nodeOf(head);
  if (pool.surplusNode[node] > 0) {
    host.mem.free(head, pool.order);
    pool.surplus--;
    pool.surplusNode[node]--;
    pool.total--;
    pool.totalNode[node]--;
    return;
  }
  pool.free.push(head);
}
