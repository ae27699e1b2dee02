/**
 * The host's page cache: the file pages QEMU's disk I/O leaves in host memory, and how reclaim
 * takes them back.
 *
 * How it works: each guest disk is an image file of `pages` 4 KiB pages, opened by QEMU as its
 * cache mode says (QEMU's block cache modes, libvirt formatdomain <driver cache>): 'none' and
 * 'directsync' use O_DIRECT, so reads and writes go to the disk and never touch the page cache;
 * 'writeback' (QEMU's default), 'unsafe' and 'writethrough' go through it, and 'writethrough'
 * (like 'directsync') opens the image O_DSYNC, so a write reaches the disk before it completes
 * and the cached page stays clean. A read (filemap_read, mm/filemap.c) finds the page in the
 * cache (a hit: no I/O) or reads it from the disk into a new page (filemap_add_folio ->
 * folio_add_lru: the inactive file list); either way folio_mark_accessed (mm/swap.c) marks it:
 * a first access sets PG_referenced, a second while on the inactive list activates it
 * (pgactivate). A write finds or creates the page and dirties it (Dirty in /proc/meminfo).
 * Reclaim (shrinkInactive, shrink_inactive_list -> shrink_folio_list) takes pages from the
 * inactive tail: an unmapped page-cache page has no pte references, so folio_check_references
 * says reclaim (PG_referenced only spares a dirty page, FOLIOREF_RECLAIM_CLEAN); a clean page
 * is dropped without I/O; a dirty page is written back first (pgpgout). shrinkActive is
 * shrink_active_list: pages move from the active tail to the inactive list (pgrefill,
 * pgdeactivate). A page of a raw block device (<disk type='block'>) is the device's page cache
 * and shows as Buffers rather than Cached (nr_blockdev_pages). pgpgin and pgpgout count KiB of
 * block I/O as /proc/vmstat does (sectors / 2), O_DIRECT I/O included.
 * Shadow entries (mm/workingset.c): an evicted page leaves the node's nonresident age (advanced
 * by every eviction and activation) in its place; when it is read or written again, a refault
 * distance within the workingset (the active file list, and the anon lists when there is swap)
 * starts it on the active list (workingset_refault_file, workingset_activate_file, and
 * workingset_restore_file with lru_note_cost_refault when it had been active). Reclaim sees the
 * activations and deactivates the active file list (prepare_scan_control).
 * Simplified: no readahead (each 4 KiB read is one page), shadow entries are never reclaimed
 * (no shadow-node shrinker) and host files have none, no flusher threads or dirty throttling (a dirty page is written back
 * when reclaim meets it, and freed at once instead of after the write completes), and guest
 * flushes (fdatasync) are not modelled, so 'writeback' and 'unsafe' behave alike.
 *
 * Invariants (assertInvariants): every cached page is a KIND_FILE frame on a file list whose
 * index entry names it back; cached, dirty and buffer counts equal recounts.
 */
import type { Lru } from "./lru.js";
import {
  LRU_ACTIVE_ANON,
  LRU_ACTIVE_FILE,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  PG_DIRTY,
  PG_REFERENCED,
  PG_WORKINGSET,
} from "./lru.js";
import { KIND_FILE, type PhysMem } from "./memory.js";

/** libvirt <driver cache>: 'default' is QEMU's default, writeback */
export type CacheMode = "none" | "directsync" | "writeback" | "writethrough" | "unsafe" | "default";

export class DiskImage {
  /** page -> pfn of its cached page, -1 when not cached */
  readonly pfnOf: Int32Array;
  /**
   * page -> the shadow entry an evicted page left in the mapping (workingset_eviction): the
   * node's nonresident age at eviction x 2 + PG_workingset; -1 when there is none
   */
  readonly shadow: Float64Array;
  cached = 0;
  reads = 0;
  readHits = 0;
  writes = 0;
  /** 4 KiB pages read from / written to the disk */
  diskReads = 0;
  diskWrites = 0;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly pages: number,
    readonly mode: CacheMode,
    /** a block device: its page cache is Buffers */
    readonly block: boolean,
  ) {
    this.pfnOf = new Int32Array(this.direct ? 0 : pages).fill(-1);
    this.shadow = new Float64Array(this.direct ? 0 : pages).fill(-1);
  }
  /** O_DIRECT: no page cache */
  get direct(): boolean {
    return this.mode === "none" || this.mode === "directsync";
  }
  /** O_DSYNC: written through to the disk */
  get sync(): boolean {
    return this.mode === "writethrough" || this.mode === "directsync";
  }
}

/** The result of one shrink_inactive_list pass over the file list. */
export interface ShrinkResult {
  scanned: number;
  reclaimed: number;
  /** pages written back before they could be freed */
  written: number;
}

export class PageCache {
  readonly images: DiskImage[] = [];
  /** per pfn: the image (-1: another host process's file) and page of a cached page */
  private imageOf: Int32Array | null = null;
  private pageOf: Int32Array | null = null;
  /** pages cached (NR_FILE_PAGES), of them dirty, and of them block-device pages (Buffers) */
  pages = 0;
  dirty = 0;
  buffers = 0;
  /** KiB read from and written to disks (pgpgin, pgpgout; swap I/O is added by reclaim.ts) */
  pgpginKiB = 0;
  pgpgoutKiB = 0;
  /** lruvec->nonresident_age: evictions and activations, the clock of refault distances */
  nonresidentAge = 0;
  /** /proc/vmstat workingset_refault_file, workingset_activate_file, workingset_restore_file */
  refaults = 0;
  activations = 0;
  restores = 0;

  constructor(
    readonly mem: PhysMem,
    readonly lru: Lru,
    /** allocate a frame of KIND_FILE (watermarks, direct reclaim, OOM); -1 when there is none */
    private readonly alloc: () => number,
    /** free swap slots: anon counts in the workingset only when it can be swapped */
    private readonly swapFree: () => number = () => 0,
  ) {}

  addImage(name: string, bytes: number, mode: CacheMode, block = false): DiskImage {
    const img = new DiskImage(
      this.images.length,
      name,
      Math.max(1, Math.floor(bytes / 4096)),
      mode,
      block,
    );
    this.images.push(img);
    return img;
  }

  private index(): [Int32Array, Int32Array] {
    if (!this.imageOf || !this.pageOf) {
      this.imageOf = new Int32Array(this.mem.nframes).fill(-1);
      this.pageOf = new Int32Array(this.mem.nframes).fill(-1);
    }
    return [this.imageOf, this.pageOf];
  }

  /** A new page-cache page of `img` (null: another host file) on the inactive list, or -1. */
  private insert(img: DiskImage | null, page: number): number {
    const pfn = this.alloc();
    if (pfn < 0) return -1;
    if (this.mem.kind[pfn] !== KIND_FILE)
      throw new Error(`page-cache frame ${pfn} is not KIND_FILE`);
    const [imageOf, pageOf] = this.index();
    imageOf[pfn] = img ? img.id : -1;
    pageOf[pfn] = page;
    this.lru.flags[pfn] = 0;
    const shadow = img ? img.shadow[page] : -1;
    if (img && shadow >= 0 && this.refault(img, page, pfn, shadow)) {
      this.lru.addFile(pfn, LRU_ACTIVE_FILE);
    } else this.lru.addFile(pfn, LRU_INACTIVE_FILE);
    this.pages++;
    if (img) {
      img.pfnOf[page] = pfn;
      img.cached++;
      if (img.block) this.buffers++;
    }
    return pfn;
  }

  /**
   * workingset_refault (mm/workingset.c) for a page whose shadow entry was found: the refault
   * distance (the nonresident age now less at eviction) against the workingset (the active file
   * list, plus both anon lists when there is swap): within it, the page starts active
   * (WORKINGSET_ACTIVATE), and if it was active before eviction it was workingset: restored,
   * and its reload charged to the file cost (lru_note_cost_refault). Returns true to activate.
   */
  private refault(img: DiskImage, page: number, pfn: number, shadow: number): boolean {
    img.shadow[page] = -1;
    this.refaults++;
    const eviction = Math.floor(shadow / 2);
    const workingset = shadow % 2 === 1;
    const distance = this.nonresidentAge - eviction;
    const lru = this.lru;
    let size = lru.nr[LRU_ACTIVE_FILE];
    if (this.swapFree() > 0) size += lru.nr[LRU_ACTIVE_ANON] + lru.nr[LRU_INACTIVE_ANON];
    if (distance > size) return false;
    this.nonresidentAge++;
    this.activations++;
    if (workingset) {
      lru.flags[pfn] |= PG_WORKINGSET;
      this.restores++;
      lru.noteCost(true, 1, 0);
    }
    return true;
  }

  /** folio_mark_accessed */
  markAccessed(pfn: number): void {
    const lru = this.lru;
    if ((lru.flags[pfn] & PG_REFERENCED) === 0) {
      lru.flags[pfn] |= PG_REFERENCED;
    } else if (lru.lru[pfn] === LRU_INACTIVE_FILE) {
      // folio_activate: to the active list's head, counted
      lru.delFile(pfn);
      lru.addFile(pfn, LRU_ACTIVE_FILE);
      lru.pgactivate++;
      lru.flags[pfn] &= ~PG_REFERENCED;
      this.nonresidentAge++; // workingset_activation
    }
  }

  /** QEMU reads page `page` of the image: true when the page cache had it. */
  read(img: DiskImage, page: number): boolean {
    img.reads++;
    if (!img.direct) {
      const pfn = img.pfnOf[page];
      if (pfn >= 0) {
        img.readHits++;
        this.markAccessed(pfn);
        return true;
      }
    }
    img.diskReads++;
    this.pgpginKiB += 4;
    if (img.direct) return false;
    const pfn = this.insert(img, page);
    if (pfn >= 0) this.markAccessed(pfn);
    return false;
  }

  /** QEMU writes page `page` of the image. */
  write(img: DiskImage, page: number): void {
    img.writes++;
    if (!img.direct) {
      let pfn = img.pfnOf[page];
      if (pfn < 0) pfn = this.insert(img, page);
      if (pfn >= 0 && !img.sync) {
        if ((this.lru.flags[pfn] & PG_DIRTY) === 0) {
          this.lru.flags[pfn] |= PG_DIRTY;
          this.dirty++;
        }
        return;
      }
    }
    // O_DIRECT, O_DSYNC, or no page to cache it in: the write goes to the disk now
    img.diskWrites++;
    this.pgpgoutKiB += 4;
  }

  /** Other host processes' files, read once, in the page cache at boot (host.pageCache). */
  fillHostFiles(pages: number): number {
    let n = 0;
    for (; n < pages; n++) {
      const pfn = this.insert(null, n);
      if (pfn < 0) break;
      this.lru.flags[pfn] = PG_REFERENCED;
    }
    return n;
  }

  /** Drop a page from the cache (written back first when dirty) and free its frame. */
  private evict(pfn: number): boolean {
    const [imageOf, pageOf] = this.index();
    const id = imageOf[pfn];
    const img = id >= 0 ? this.images[id] : null;
    let written = false;
    if (this.lru.flags[pfn] & PG_DIRTY) {
      this.dirty--;
      this.pgpgoutKiB += 4;
      if (img) img.diskWrites++;
      written = true;
    }
    if (img) {
      // workingset_eviction: age the node, leave a shadow entry in the mapping
      this.nonresidentAge++;
      const ws = (this.lru.flags[pfn] & PG_WORKINGSET) !== 0 ? 1 : 0;
      img.shadow[pageOf[pfn]] = this.nonresidentAge * 2 + ws;
      img.pfnOf[pageOf[pfn]] = -1;
      img.cached--;
      if (img.block) this.buffers--;
    }
    imageOf[pfn] = -1;
    pageOf[pfn] = -1;
    this.lru.delFile(pfn);
    this.lru.flags[pfn] = 0;
    this.pages--;
    this.mem.free(pfn, 0);
    return written;
  }

  /** shrink_inactive_list over the inactive file list: up to `nr` pages from its tail. */
  shrinkInactive(nr: number): ShrinkResult {
    const r: ShrinkResult = { scanned: 0, reclaimed: 0, written: 0 };
    while (r.scanned < nr) {
      const pfn = this.lru.fileTail(LRU_INACTIVE_FILE);
      if (pfn < 0) break;
      r.scanned++;
      // folio_check_references: no ptes map it; PG_referenced is tested and cleared, and
      // spares only a dirty page (FOLIOREF_RECLAIM_CLEAN: kept, back at the list's head)
      const referenced = (this.lru.flags[pfn] & PG_REFERENCED) !== 0;
      this.lru.flags[pfn] &= ~PG_REFERENCED;
      if (referenced && (this.lru.flags[pfn] & PG_DIRTY) !== 0) {
        this.lru.delFile(pfn);
        this.lru.addFile(pfn, LRU_INACTIVE_FILE);
        continue;
      }
      if (this.evict(pfn)) r.written++;
      r.reclaimed++;
    }
    return r;
  }

  /** shrink_active_list over the active file list: up to `nr` pages deactivated. */
  shrinkActive(nr: number): number {
    let n = 0;
    for (; n < nr; n++) {
      const pfn = this.lru.fileTail(LRU_ACTIVE_FILE);
      if (pfn < 0) break;
      // folio_referenced finds no pte (unmapped page cache, not VM_EXEC): deactivate, and
      // remember it was active (folio_set_workingset)
      this.lru.delFile(pfn);
      this.lru.addFile(pfn, LRU_INACTIVE_FILE);
      this.lru.flags[pfn] |= PG_WORKINGSET;
    }
    this.lru.pgrefill += n;
    this.lru.pgdeactivate += n;
    return n;
  }

  assertInvariants(): void {
    let pages = 0;
    let dirty = 0;
    let buffers = 0;
    const mem = this.mem;
    for (let f = 0; f < mem.nframes; f++) {
      if (mem.kind[f] !== KIND_FILE) continue;
      pages++;
      if (this.lru.flags[f] & PG_DIRTY) dirty++;
      const [imageOf, pageOf] = this.index();
      const id = imageOf[f];
      if (id >= 0) {
        const img = this.images[id];
        if (img.pfnOf[pageOf[f]] !== f)
          throw new Error(`page-cache pfn ${f} not indexed by its image`);
        if (img.block) buffers++;
      }
    }
    if (pages !== this.pages) throw new Error(`page cache ${this.pages} != ${pages} file frames`);
    if (dirty !== this.dirty) throw new Error(`dirty ${this.dirty} != ${dirty}`);
    if (buffers !== this.buffers) throw new Error(`buffers ${this.buffers} != ${buffers}`);
    for (const img of this.images) {
      let n = 0;
      for (let p = 0; p < img.pfnOf.length; p++) if (img.pfnOf[p] >= 0) n++;
      if (n !== img.cached) throw new Error(`${img.name}: cached ${img.cached} != ${n}`);
    }
  }
}
