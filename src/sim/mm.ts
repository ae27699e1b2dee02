/**
 * A host process address space (mm_struct) with real x86-64 4-level page tables: HVA -> HPA.
 *
 * How it works: an Mm has VMAs (anonymous memory, THP-eligible or not, and hugetlbfs mappings of
 * 2M or 1G pages) and a page-table root in host memory. Nothing is mapped until touched: fault()
 * is handle_mm_fault (mm/memory.c): for hugetlbfs it takes a page from the host's pool
 * (mm/hugetlb.c, pages reserved up front like vm.nr_hugepages) and installs a PS leaf at level 2
 * or 3; for anonymous memory with THP it allocates a 2M page when the aligned 2M range lies inside
 * the VMA and its PMD is still empty (do_huge_pmd_anonymous_page), else a 4K page. lookup() is
 * the side-effect-free walk KVM's host_pfn_mapping_level() does (lookup_address_in_mm), using
 * the same walker as the hardware. Anonymous mappings of 2M or more start 2M-aligned, as
 * thp_get_unmapped_area() arranges for anonymous mappings since Linux 6.7.
 *
 * Invariants: every present leaf lies inside a VMA of a matching kind; hugetlb leaves are at the
 * VMA's page level; rss equals the 4K frames mapped.
 */
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { makePteHi, makePteLo, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_RW, PTE_US } from "../x86/pte.js";
import { descend, findLeaf, forEachEntry, LeafRef, type TableSpace } from "../x86/tables.js";
import { DIM_NATIVE, WalkOut, walk } from "../x86/walk.js";
import type { HugetlbPool } from "./hugetlb.js";
import { KIND_ANON, KIND_KERNEL, KIND_THP, NUMA_INTERLEAVE_HIT, type PhysMem } from "./memory.js";
import { ALL_NODES, DEFAULT_POLICY, type MemPolicy, resolvePolicy } from "./numa.js";

export type VmaKind = "anon" | "hugetlb";

/** What a VMA's pages hold when first touched (guest RAM content), as content tokens. */
export interface PageContent {
  /** token of the 4 KiB page `pageIndex` of `vma` (0 = the zero page) */
  token(vma: Vma, pageIndex: number): number;
}

/** Swap and reclaim (reclaim.ts): do_swap_page for swap ptes, direct reclaim when RAM runs out. */
export interface MemoryPressure {
  /** a swap pte at `hva`: read the page back and map it; its pfn, or -1 when the pte is none */
  swapIn(mm: Mm, hva: number): number;
  /** try_to_free_pages: free some frames; how many were freed (0: nothing left to reclaim) */
  directReclaim(): number;
  /** zap a swap pte (MADV_DONTNEED): its slot is freed */
  dropSwap(mm: Mm, vpn: number): void;
  /** an allocation is about to happen: below the min watermark, reclaim first */
  beforeAlloc(): void;
  /** a new anonymous page of `pages` frames at `pfn` was mapped: put it on an LRU list */
  newAnon?(mm: Mm, pfn: number, pages: number): void;
}

/** do_wp_page for frames the process does not own alone (KSM pages, the zero page): ksm.ts. */
export interface WriteProtectHandler {
  /** a write hit the read-only pte mapping `pfn` at `hva`; returns the pfn now mapped writable */
  wpFault(mm: Mm, hva: number, pfn: number): number;
}

export interface Vma {
  readonly start: number;
  readonly end: number;
  readonly kind: VmaKind;
  /** page size of a hugetlbfs mapping; 4096 for anonymous memory */
  readonly pageSize: number;
  /** anonymous: may be backed by transparent huge pages */
  readonly thp: boolean;
  readonly name: string;
  /**
   * a MAP_SHARED mapping of a memfd or a shared file (shmem/tmpfs): faulted and swapped like
   * anonymous memory, but Shmem in /proc/meminfo and RssShmem in /proc/PID/status
   */
  readonly shared?: boolean;
  /** the VMA's NUMA memory policy (mbind; numa.ts); the task's local policy when absent */
  policy?: MemPolicy;
  /** policies of sub-ranges (mbind of part of the VMA, which the kernel does by splitting it) */
  policies?: Array<{ start: number; end: number; policy: MemPolicy }>;
}

export { HugetlbPool } from "./hugetlb.js";

const MMAP_TOP = 0x7f0000000000;

export class Mm implements TableSpace {
  readonly root: number;
  readonly vmas: Vma[] = [];
  /** 4K frames mapped (anon + THP + hugetlb) */
  rss = 0;
  /** the most frames `rss` has reached (mm->hiwater_rss, /proc/PID/status VmHWM) */
  hiwaterRss = 0;
  /** first-touch content of pages (null: frames start as token 0) */
  content: PageContent | null = null;
  /** copy-on-write of shared frames (null: no shared frames) */
  wp: WriteProtectHandler | null = null;
  /** swap-in and direct reclaim (null: no swap, allocation failure is fatal) */
  pressure: MemoryPressure | null = null;
  /** the OOM killer tore this process down (oom.ts): a fault in it is SIGKILL */
  killed = false;
  /** numa_node_id() of the task: the node of the CPU it runs on (the local policy's node) */
  homeNode = 0;
  private mmapBase = MMAP_TOP;
  /** resolvePolicy's output: preferred node, nodemask, interleave target, fallback */
  private readonly pol = new Int32Array(4);
  private readonly out = new WalkOut();
  private readonly entry = new Uint32Array(2);
  private readonly leaf = new LeafRef();

  constructor(
    readonly mem: PhysMem,
    readonly pools: ReadonlyMap<number, HugetlbPool>,
    readonly name: string,
  ) {
    this.root = this.allocTable(4);
    this.out.setAd = false;
  }

  // TableSpace: host tables live in host frames, identity-addressed
  tablePfn(frame: number): number {
    return frame;
  }
  allocTable(_level: number): number {
    // page tables follow the task's (local) policy, not the VMA's
    const pfn = this.mem.allocFrom(0, KIND_KERNEL, this.homeNode, ALL_NODES, this.homeNode);
    if (pfn < 0) throw new Error("host out of memory for page tables");
    this.mem.bytes(pfn);
    return pfn;
  }
  tableEntryLo(child: number): number {
    return makePteLo(child, PTE_P | PTE_RW | PTE_US | PTE_A);
  }
  tableEntryHi(child: number): number {
    return makePteHi(child, false);
  }
  setEntry(tableFrame: number, index: number, _level: number, lo: number, hi: number): void {
    this.mem.writeEntry(tableFrame, index, lo, hi);
  }

  /** mmap(): reserve a VMA top-down; returns its start hva. */
  mmap(
    size: number,
    opts: {
      kind?: VmaKind;
      pageSize?: number;
      thp?: boolean;
      name?: string;
      align?: number;
      policy?: MemPolicy;
      shared?: boolean;
    } = {},
  ): number {
    const kind = opts.kind ?? "anon";
    const pageSize = kind === "hugetlb" ? (opts.pageSize ?? 2097152) : 4096;
    if (size <= 0 || size % pageSize !== 0) {
      throw new RangeError(`mmap size ${size} is not a multiple of ${pageSize}`);
    }
    let align = opts.align ?? (kind === "hugetlb" ? pageSize : size >= 2097152 ? 2097152 : 4096);
    if (align < pageSize) align = pageSize;
    let start = this.mmapBase - size;
    start -= start % align;
    this.mmapBase = start - 1073741824; // leave a guard gap so regions never touch
    const vma: Vma = {
      start,
      end: start + size,
      kind,
      pageSize,
      thp: kind === "anon" && (opts.thp ?? false),
      name: opts.name ?? (kind === "hugetlb" ? "/dev/hugepages" : "[anon]"),
      ...(opts.policy ? { policy: opts.policy } : {}),
      ...(opts.shared && kind === "anon" ? { shared: true } : {}),
    };
    this.vmas.push(vma);
    this.vmas.sort((a, b) => a.start - b.start);
    return start;
  }

  /** mbind(hva, len, policy): set the memory policy of a range of one VMA. */
  mbind(hva: number, len: number, policy: MemPolicy): void {
    const vma = this.findVma(hva);
    if (!vma || hva + len > vma.end) throw new RangeError("mbind range is not inside one VMA");
    if (hva === vma.start && len === vma.end - vma.start) vma.policy = policy;
    else {
      vma.policies ??= [];
      vma.policies.push({ start: hva, end: hva + len, policy });
    }
  }

  findVma(hva: number): Vma | undefined {
    for (const v of this.vmas) if (hva >= v.start && hva < v.end) return v;
    return undefined;
  }

  /**
   * Side-effect-free lookup: pfn of the 4K frame backing `hva` or -1; `levelOut[0]` gets the
   * host mapping level (1 = 4K, 2 = 2M, 3 = 1G) and `entryOut` the leaf entry when given.
   */
  lookup(hva: number, levelOut?: Int32Array, entryOut?: Uint32Array): number {
    const out = this.out;
    out.reset();
    const pfn = walk(
      out,
      this.mem,
      GUEST_4LEVEL,
      this.root,
      Math.floor(hva / 4096),
      0,
      DIM_NATIVE,
      null,
      0,
      -1,
    );
    if (levelOut) levelOut[0] = pfn < 0 ? 0 : out.gLevel;
    if (entryOut && out.n > 0) {
      entryOut[0] = out.lo[out.n - 1];
      entryOut[1] = out.hi[out.n - 1];
    }
    return pfn;
  }

  /** handle_mm_fault: make `hva` present; returns the 4K pfn or throws (SIGSEGV/SIGBUS). */
  fault(hva: number, write: boolean): number {
    if (this.killed) throw new Error(`SIGKILL: ${this.name} was killed by the OOM killer`);
    const present = this.lookup(hva, undefined, this.entry);
    if (present >= 0) {
      // a write to a read-only pte in a writable VMA: do_wp_page (KSM page or the zero page)
      if (write && (this.entry[0] & PTE_RW) === 0 && this.wp) {
        return this.wp.wpFault(this, hva, present);
      }
      return present;
    }
    const vma = this.findVma(hva);
    if (!vma) throw new Error(`SIGSEGV: ${this.name} hva 0x${hva.toString(16)} is in no VMA`);
    if (this.pressure && vma.kind === "anon") {
      const swapped = this.pressure.swapIn(this, hva);
      if (swapped >= 0) return swapped;
      this.pressure.beforeAlloc();
    }
    const vpn = Math.floor(hva / 4096);
    if (vma.kind === "hugetlb") {
      const pool = this.pools.get(vma.pageSize);
      const pfn = pool ? this.policyAlloc(vma, hva, -1, 0, pool) : -1;
      if (pfn < 0) {
        throw new Error(`SIGBUS: no free ${vma.pageSize / 1048576}M huge page for ${this.name}`);
      }
      const level = vma.pageSize === 1073741824 ? 3 : 2;
      this.fillContent(vma, vpn - (vpn % LEVEL_PAGES[level]), pfn, LEVEL_PAGES[level]);
      this.installLeaf(vpn, level, pfn);
      return pfn + (vpn % LEVEL_PAGES[level]);
    }
    if (vma.thp) {
      const base = hva - (hva % 2097152);
      if (base >= vma.start && base + 2097152 <= vma.end && this.pmdEmpty(vpn)) {
        const pfn = this.policyAlloc(vma, hva, 9, KIND_THP, null);
        if (pfn >= 0) {
          this.mem.thpFaultAlloc++; // __do_huge_pmd_anonymous_page: THP_FAULT_ALLOC
          this.fillContent(vma, vpn - (vpn % 512), pfn, 512);
          this.installLeaf(vpn, 2, pfn);
          this.pressure?.newAnon?.(this, pfn, 512);
          return pfn + (vpn % 512);
        }
        // no free 2M block: fall back to 4K as the kernel does (do_huge_pmd_anonymous_page
        // counts THP_FAULT_FALLBACK and returns VM_FAULT_FALLBACK)
        this.mem.thpFaultFallback++;
      }
    }
    let pfn = this.policyAlloc(vma, hva, 0, KIND_ANON, null);
    // __alloc_pages_slowpath: direct reclaim, then try again
    while (pfn < 0 && this.pressure && this.pressure.directReclaim() > 0)
      pfn = this.policyAlloc(vma, hva, 0, KIND_ANON, null);
    if (this.killed) {
      if (pfn >= 0) this.mem.free(pfn, 0);
      throw new Error(`SIGKILL: ${this.name} was killed by the OOM killer`);
    }
    if (pfn < 0) throw new Error("host out of memory");
    this.fillContent(vma, vpn, pfn, 1);
    this.installLeaf(vpn, 1, pfn);
    this.pressure?.newAnon?.(this, pfn, 1);
    return pfn;
  }

  /**
   * Allocate for `hva` with the VMA's policy (numa.ts): a block of `order` from the buddy
   * allocator, or a page from hugetlb `pool`. The interleave index is the page's offset in the
   * VMA in units of the allocation (get_vma_policy); an interleaved page that lands on its target
   * node counts interleave_hit there (alloc_pages_mpol).
   */
  private policyAlloc(
    vma: Vma,
    hva: number,
    order: 0 | 9 | 18 | -1,
    kind: number,
    pool: HugetlbPool | null,
  ): number {
    const pol = this.pol;
    const unit = pool ? vma.pageSize : order === 9 ? 2097152 : 4096;
    const ilx = Math.floor((hva - vma.start) / unit);
    let policy = vma.policy ?? DEFAULT_POLICY;
    const ranges = vma.policies;
    if (ranges)
      for (let i = 0; i < ranges.length; i++)
        if (hva >= ranges[i].start && hva < ranges[i].end) policy = ranges[i].policy;
    resolvePolicy(policy, this.homeNode, ilx, pol);
    let pfn = pool
      ? pool.dequeue(this.mem, pol[0], pol[1])
      : this.mem.allocFrom(order as 0 | 9, kind, pol[0], pol[1], this.homeNode);
    // MPOL_PREFERRED_MANY: nothing on its nodes, so any node (alloc_pages_preferred_many,
    // dequeue_hugetlb_folio_vma's second dequeue)
    if (pfn < 0 && pol[3] === 1)
      pfn = pool
        ? pool.dequeue(this.mem, pol[0], ALL_NODES)
        : this.mem.allocFrom(order as 0 | 9, kind, pol[0], ALL_NODES, this.homeNode);
    if (pol[2] >= 0 && pfn >= 0 && !pool && this.mem.nodeOf(pfn) === pol[2])
      this.mem.numaStat[pol[2] * 6 + NUMA_INTERLEAVE_HIT]++;
    return pfn;
  }

  private fillContent(vma: Vma, firstVpn: number, pfn: number, n: number): void {
    const c = this.content;
    if (c === null) return;
    const first = firstVpn - vma.start / 4096;
    for (let i = 0; i < n; i++) this.mem.token[pfn + i] = c.token(vma, first + i);
  }

  private pmdEmpty(vpn: number): boolean {
    findLeaf(this.mem, this, GUEST_4LEVEL, this.root, vpn, this.leaf);
    return !this.leaf.present && this.leaf.level >= 2;
  }

  private installLeaf(vpn: number, level: number, pfn: number): void {
    const table = descend(this.mem, this, GUEST_4LEVEL, this.root, vpn, level);
    const idx = (vpn / LEVEL_PAGES[level]) & 511;
    const flags = PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | (level > 1 ? PTE_PS : 0);
    this.setEntry(table, idx, level, makePteLo(pfn, flags), makePteHi(pfn, true));
    this.rss += LEVEL_PAGES[level];
    if (this.rss > this.hiwaterRss) this.hiwaterRss = this.rss;
  }

  assertInvariants(): void {
    let rss = 0;
    forEachEntry(this.mem, this, GUEST_4LEVEL, this.root, (level, _t, _i, lo, hi, leaf, first) => {
      if (!leaf) return true;
      const hva = first * 4096;
      const vma = this.findVma(hva);
      if (!vma) throw new Error(`${this.name}: leaf at 0x${hva.toString(16)} outside any VMA`);
      if (vma.kind === "hugetlb" && LEVEL_PAGES[level] * 4096 !== vma.pageSize) {
        throw new Error(`${this.name}: hugetlb leaf at wrong level ${level}`);
      }
      if (vma.kind === "anon" && level > 2) throw new Error("anonymous 1G leaf");
      if ((lo & PTE_PS) === 0 && level > 1) throw new Error("leaf without PS");
      // the shared zero page KSM maps (a special pte, vm_normal_page() is NULL) is not in rss
      if (level === 1 && this.mem.kind[(hi & 0xfffff) * 1048576 + (lo >>> 12)] === KIND_KERNEL)
        return true;
      rss += LEVEL_PAGES[level];
      return true;
    });
    if (rss !== this.rss) throw new Error(`${this.name}: rss ${this.rss} != mapped ${rss}`);
  }
}
