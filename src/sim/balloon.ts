/**
 * virtio-balloon: the guest driver gives pages to the host or takes them back; the host discards
 * the memory behind them.
 *
 * How it works (drivers/virtio/virtio_balloon.c, QEMU hw/virtio/virtio-balloon.c): the host
 * sets the balloon target, num_pages = (RAM - target) / 4 KiB (virtio_balloon_to_target; libvirt
 * sets it from <currentMemory> at start and on `virsh setmem`). The guest's update_balloon_size
 * work inflates (fill_balloon: allocate free guest pages, VIRTIO_BALLOON_ARRAY_PFNS_MAX = 256 per
 * virtqueue message) or deflates (leak_balloon) towards it, one batch after another: here at
 * `pagesPerMs` of simulated time. A ballooned page leaves the guest's MemTotal
 * (adjust_managed_page_count) unless VIRTIO_BALLOON_F_DEFLATE_ON_OOM (<memballoon
 * autodeflate='on'>) is negotiated, in which case the guest gives back OOM_PAGES pages whenever
 * it runs out of memory (virtio_balloon_oom_notify) and the target is not pursued again until it
 * changes. QEMU discards the host page behind each inflated 4 KiB page (balloon_inflate_page ->
 * ram_block_discard_range: MADV_DONTNEED, splitting a THP; a KSM page loses one mapping). With a
 * backing page larger than 4 KiB (hugetlbfs) QEMU only discards a host page once every 4 KiB
 * piece of it sits in the balloon (PartiallyBalloonedPage, "Balloon used with backing page size
 * > 4kiB, this may not be reliable"), and the discarded huge page returns to the hugetlb pool,
 * not to the host's free memory: a hugepage-backed VM's balloon frees no host RAM. Deflating
 * does nothing on the host (QEMU only hints MADV_WILLNEED); the guest's next touch faults a
 * page in again. Free page reporting (<memballoon freePageReporting='on'>, mm/page_reporting.c)
 * reports free guest memory in 2 MiB blocks (page_reporting_order = pageblock_order) every
 * 2 s (PAGE_REPORTING_DELAY) and QEMU discards it, without the guest losing it.
 * Simplified: a 4 KiB discard inside a THP frees the 4 KiB at once (the kernel defers it to the
 * deferred-split shrinker); the guest driver takes its pages from the top of the guest's 4 KiB
 * data zone, so only guests with 4 KiB data pages balloon much. A guest with swap (guest/swap.ts)
 * out of free pages reclaims once per page (balloon_page_alloc's __GFP_NORETRY allows direct
 * reclaim but no OOM kill), so a balloon below the working set pushes the guest into swapping.
 * Balloon latency: the time from a target change until `actual` equals it.
 *
 * Invariants (assertInvariants): with 4 KiB or THP backing no 4 KiB host pte maps a ballooned
 * gfn (a later THP fault of a neighbour may back its whole 2 MiB again, as on Linux); every
 * ballooned gfn is outside the guest's free memory.
 */
import { GUEST_4LEVEL, LEVEL_PAGES } from "../x86/paging.js";
import { pteLeafFrame } from "../x86/pte.js";
import { findLeaf, LeafRef } from "../x86/tables.js";
import type { GuestOs } from "./guest/os.js";
import type { HostPtes } from "./hostpte.js";
import { releaseHugePage } from "./hugetlb.js";
import type { Ksm } from "./ksm.js";
import type { Vm } from "./kvm/vm.js";
import { KIND_HUGETLB } from "./memory.js";
import type { Mm } from "./mm.js";

/** VIRTIO_BALLOON_ARRAY_PFNS_MAX: pages per inflate/deflate message */
export const BALLOON_BATCH = 256;
/** VIRTIO_BALLOON_OOM_NR_PAGES: pages given back per guest OOM with deflate-on-oom */
export const OOM_PAGES = 256;
/** PAGE_REPORTING_DELAY (2 * HZ) */
export const REPORTING_DELAY_MS = 2000;

export interface BalloonOptions {
  /** guest RAM in 4 KiB pages */
  ramPages: number;
  autodeflate: boolean;
  freePageReporting: boolean;
  /**
   * inflate/deflate speed: 256 pages (one message) per 1 ms by default, about 1 GiB/s: a teaching
   * number for a guest allocating pages, a virtqueue kick and QEMU's madvise per page
   */
  pagesPerMs?: number;
}

export class Balloon {
  /** ballooned gfns, in the order inflated */
  readonly pages: number[] = [];
  /** num_pages: pages the host asks the balloon to hold */
  targetPages = 0;
  inflated = 0;
  deflated = 0;
  oomDeflations = 0;
  /** host frames discarded (returned to the host's free memory) */
  framesFreed = 0;
  /** huge pages discarded back to the hugetlb pool */
  hugePagesFreed = 0;
  /** inflated pages whose discard freed nothing (inside a huge page not wholly ballooned) */
  heldInHugePages = 0;
  /** 4 KiB pages reported free (free page reporting) and discarded */
  reported = 0;
  /** the last inflate/deflate ran out of guest memory (fill_balloon: "Out of puff!") */
  outOfPuff = false;
  /**
   * balloon latency: target changes the balloon had to move for, how many it reached and how
   * long each took (from the change to `actual` equal to the target), superseded ones
   */
  readonly latency = { changes: 0, reached: 0, superseded: 0, totalMs: 0, maxMs: 0, lastMs: 0 };
  private pendingSinceMs = -1;
  private owed = 0;
  /** the guest deflated on OOM: it leaves the target alone until the host sets a new one */
  private oomHold = false;
  private nextReportMs = REPORTING_DELAY_MS;
  // QEMU's PartiallyBalloonedPage: the huge page being filled and which 4K pieces are in
  private pbpBase = -1;
  private pbpCount = 0;
  private pbpBits: Uint8Array = new Uint8Array(0);
  private readonly leaf = new LeafRef();
  private readonly level = new Int32Array(1);
  readonly pagesPerMs: number;

  constructor(
    readonly vm: Vm,
    readonly mm: Mm,
    readonly os: GuestOs,
    readonly ptes: HostPtes,
    readonly ksm: Ksm,
    readonly opts: BalloonOptions,
  ) {
    this.pagesPerMs = opts.pagesPerMs ?? BALLOON_BATCH;
  }

  /**
   * virtio_balloon_to_target: the guest should end up with `bytes` of RAM, from `nowMs` on.
   * A target the balloon does not hold yet starts a latency measurement (a new target before
   * it is reached supersedes it; the same target again lets the clock run on).
   */
  setTarget(bytes: number, nowMs = 0): void {
    const old = this.targetPages;
    const want = this.opts.ramPages - Math.floor(bytes / 4096);
    this.targetPages = Math.max(0, Math.min(this.opts.ramPages, want));
    this.oomHold = false;
    if (this.pendingSinceMs >= 0 && this.targetPages === old) return;
    if (this.pendingSinceMs >= 0) this.latency.superseded++;
    this.pendingSinceMs = -1;
    if (this.pages.length !== this.targetPages) {
      this.pendingSinceMs = nowMs;
      this.latency.changes++;
    }
  }

  /** simulated ms since the target the balloon is still moving towards was set (-1: none) */
  get pendingSince(): number {
    return this.pendingSinceMs;
  }

  /** The guest's RAM as its /proc/meminfo MemTotal counts it, in 4 KiB pages. */
  get guestTotalPages(): number {
    return this.opts.ramPages - (this.opts.autodeflate ? 0 : this.pages.length);
  }

  /** `ms` of simulated time pass: inflate or deflate towards the target at the bounded rate. */
  advance(ms: number, nowMs: number): void {
    this.owed += ms * this.pagesPerMs;
    let budget = Math.floor(this.owed);
    this.owed -= budget;
    this.outOfPuff = false;
    const start = budget;
    while (budget > 0 && !this.oomHold && this.pages.length !== this.targetPages) {
      if (this.pages.length < this.targetPages) {
        if (!this.inflateOne()) {
          this.outOfPuff = true;
          this.owed = 0;
          break;
        }
      } else this.deflateOne();
      budget--;
    }
    if (this.pages.length === this.targetPages || this.oomHold) this.owed = 0;
    if (this.pendingSinceMs >= 0 && this.pages.length === this.targetPages) {
      // reached after the pages this step moved, at the driver's rate from the step's start
      const from = Math.max(this.pendingSinceMs, nowMs - ms);
      const at = Math.min(nowMs, from + (start - budget) / this.pagesPerMs);
      const l = this.latency;
      l.lastMs = at - this.pendingSinceMs;
      l.reached++;
      l.totalMs += l.lastMs;
      l.maxMs = Math.max(l.maxMs, l.lastMs);
      this.pendingSinceMs = -1;
    }
    if (this.opts.freePageReporting && nowMs >= this.nextReportMs) {
      this.reportFree();
      this.nextReportMs = nowMs + REPORTING_DELAY_MS;
    }
  }

  /** virtio_balloon_oom_notify: the guest is out of memory; give back up to OOM_PAGES. */
  oomDeflate(): number {
    if (!this.opts.autodeflate || this.pages.length === 0) return 0;
    let n = 0;
    while (n < OOM_PAGES && this.pages.length > 0) {
      this.deflateOne();
      n++;
    }
    this.oomDeflations++;
    this.oomHold = true;
    return n;
  }

  private inflateOne(): boolean {
    let gfn = this.os.takeFree4K();
    // balloon_page_alloc's __GFP_NORETRY: one light direct reclaim (the guest swaps), no OOM
    if (gfn < 0 && this.os.swap && this.os.swap.reclaim() > 0) gfn = this.os.takeFree4K();
    if (gfn < 0) return false;
    this.pages.push(gfn);
    this.inflated++;
    const hva = this.vm.gfnToHva(gfn);
    const vma = this.mm.findVma(hva);
    if (!vma) return true;
    if (vma.kind === "hugetlb") this.inflateHuge(hva, vma.pageSize);
    else this.framesFreed += discard4K(this.ptes, this.ksm, this.mm, hva / 4096);
    return true;
  }

  private deflateOne(): void {
    const gfn = this.pages.pop()!;
    this.os.freeData(gfn);
    this.deflated++;
    // the guest may use the page again: a partially ballooned huge page forgets it
    const hva = this.vm.gfnToHva(gfn);
    const size = this.mm.findVma(hva)?.pageSize ?? 4096;
    if (size > 4096 && this.pbpBase === hva - (hva % size)) {
      const i = (hva % size) / 4096;
      if (this.pbpBits[i]) {
        this.pbpBits[i] = 0;
        this.pbpCount--;
      }
    }
  }

  /** balloon_inflate_page's hard case: a 4 KiB piece of a huge host page. */
  private inflateHuge(hva: number, size: number): void {
    const base = hva - (hva % size);
    const n = size / 4096;
    if (this.pbpBase !== base) {
      this.pbpBase = base; // a piece of another huge page: QEMU forgets the previous one
      this.pbpBits = new Uint8Array(n);
      this.pbpCount = 0;
    }
    const i = (hva - base) / 4096;
    if (!this.pbpBits[i]) {
      this.pbpBits[i] = 1;
      this.pbpCount++;
    }
    this.heldInHugePages++;
    if (this.pbpCount < n) return;
    // the whole huge page is in the balloon: fallocate(PUNCH_HOLE) gives it back to the pool
    this.heldInHugePages -= n;
    this.pbpBase = -1;
    const mem = this.ptes.host.mem;
    const l = findLeaf(mem, this.mm, GUEST_4LEVEL, this.mm.root, base / 4096, this.leaf);
    if (!l.present || l.level < 2) return;
    const head = pteLeafFrame(l.lo, l.hi, l.level);
    if (mem.kind[head] !== KIND_HUGETLB) throw new Error("hugetlbfs leaf without a huge page");
    this.mm.setEntry(l.tableFrame, l.index, l.level, 0, 0);
    this.mm.rss -= LEVEL_PAGES[l.level];
    releaseHugePage(this.ptes.host, size, head);
    this.ptes.invalidate(this.mm, base / 4096, n);
    this.hugePagesFreed++;
  }

  /** page_reporting_process: discard every free, 2 MiB-aligned block of guest memory. */
  private reportFree(): void {
    const [first, end] = this.os.free4KRange();
    const blocks = new Map<number, number>(); // freed pages per 2M block
    for (const g of this.os.freed4K)
      blocks.set(Math.floor(g / 512), (blocks.get(Math.floor(g / 512)) ?? 0) + 1);
    const free = (b: number) => {
      const lo = Math.max(b * 512, first);
      const hi = Math.min(b * 512 + 512, end);
      return Math.max(0, hi - lo) + (blocks.get(b) ?? 0);
    };
    const candidates = new Set<number>(blocks.keys());
    for (let b = Math.ceil(first / 512); b * 512 + 512 <= end; b++) candidates.add(b);
    for (const b of [...candidates].sort((x, y) => x - y)) {
      if (free(b) < 512) continue;
      const hva = this.vm.gfnToHva(b * 512);
      if (hva < 0 || this.mm.findVma(hva)?.kind !== "anon") continue;
      for (let i = 0; i < 512; i++) {
        const freed = discard4K(this.ptes, this.ksm, this.mm, hva / 4096 + i);
        this.framesFreed += freed;
        this.reported += freed;
      }
    }
  }

  assertInvariants(): void {
    const [first, end] = this.os.free4KRange();
    const freed = new Set(this.os.freed4K);
    for (const gfn of this.pages) {
      if ((gfn >= first && gfn < end) || freed.has(gfn))
        throw new Error(`ballooned gfn ${gfn} is free in the guest`);
      const hva = this.vm.gfnToHva(gfn);
      const vma = this.mm.findVma(hva);
      // pieces of a huge page stay mapped until the whole huge page is in the balloon
      if (vma?.kind === "hugetlb") continue;
      // a THP fault of a neighbouring page may back the whole 2 MiB again (as on Linux: the
      // balloon's 4 KiB holes do not stop do_huge_pmd_anonymous_page); no 4 KiB pte may map it
      if (this.mm.lookup(hva, this.level) >= 0 && this.level[0] === 1)
        throw new Error(`ballooned gfn ${gfn} is mapped on the host`);
    }
  }
}

/**
 * MADV_DONTNEED of one 4 KiB anonymous page (zap_pte_range): split a THP over it, clear the pte,
 * drop the page (a KSM page loses a mapping, the zero page only its count). Returns frames freed.
 */
export function discard4K(ptes: HostPtes, ksm: Ksm, mm: Mm, vpn: number): number {
  const pfn = ptes.pte4K(mm, vpn);
  if (pfn < 0) {
    mm.pressure?.dropSwap(mm, vpn); // a swapped-out page: its swap slot goes
    return 0;
  }
  ptes.clearPte(mm, vpn);
  const mem = ptes.host.mem;
  if (pfn === ksm.zeroPfn) {
    ksm.unmapZero(mm);
    return 0;
  }
  mm.rss--;
  if (ksm.stableOf[pfn] >= 0) {
    const before = mem.freeFrames;
    ksm.putPage(pfn);
    return mem.freeFrames - before;
  }
  mem.free(pfn, 0);
  return 1;
}
