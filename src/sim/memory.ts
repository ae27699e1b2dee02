/**
 * Host physical memory: frames, an allocator, and bytes where bytes matter.
 *
 * How it works: the host has `nframes` 4 KiB frames. A frame is free or owned by a kind (kernel
 * page tables and KVM MMU pages, anonymous user memory, THP, hugetlbfs). Frames that hold page
 * tables get real bytes: a 4 KiB slot (1024 32-bit words) in one growing Uint32Array arena, found
 * through `slotOf[pfn]` (an array index, never a Map); every other frame carries only a content
 * token (`token[pfn]`) that later mechanisms (KSM, swap) compare and move. The allocator hands out
 * naturally aligned blocks of order 0 (4K), 9 (2M) or 18 (1G), like the buddy allocator's
 * alignment guarantee (mm/page_alloc.c): small blocks come from the bottom of memory, large ones
 * from the top, and per-2M/per-1G used counts make finding a free aligned block a scan over
 * blocks rather than frames.
 * NUMA: each node owns a contiguous range of frames (nodeStart) with its own free count and 4K
 * cursor. allocFrom() walks a zonelist (numa.ts: the preferred node, then the others in order)
 * restricted to a nodemask, as get_page_from_freelist does, and counts each allocation once in
 * the node's numastat counters as zone_statistics(preferred_zone, zone, 1) does in rmqueue
 * (mm/page_alloc.c): numa_hit on the node when it is the first node of the zonelist in the mask,
 * else numa_miss there and numa_foreign on that first node; local_node or other_node by the
 * allocating CPU's node (drivers/base/node.c node_read_numastat, Documentation/admin-guide/
 * numastat.rst). alloc() is allocFrom() with node 0's zonelist and no mask.
 *
 * Invariants (assertInvariants): freeFrames + used frames = nframes; per node, nodeFree + used
 * frames in its range = its frames; used2M/used1G equal the sum of `kind[] != FREE` over their
 * blocks; a frame with a byte slot is in use; slots are unique.
 */

export const KIND_FREE = 0;
export const KIND_KERNEL = 1;
export const KIND_ANON = 2;
export const KIND_THP = 3;
export const KIND_HUGETLB = 4;
/** a page-cache page (file data; the host's page cache, pagecache.ts) */
export const KIND_FILE = 5;

const WORDS_PER_PAGE = 1024;

/** numastat counters per node, in node_read_numastat's order (drivers/base/node.c) */
export const NUMA_HIT = 0;
export const NUMA_MISS = 1;
export const NUMA_FOREIGN = 2;
export const NUMA_INTERLEAVE_HIT = 3;
export const NUMA_LOCAL = 4;
export const NUMA_OTHER = 5;
const NUMA_ITEMS = 6;
const ALL = 0x7fffffff;

export class PhysMem {
  readonly nframes: number;
  /** table bytes: 1024 words per slot */
  words: Uint32Array;
  /** word offset of a frame's bytes in `words`, -1 when the frame has none (reads as zeros) */
  readonly slotOf: Int32Array;
  readonly kind: Uint8Array;
  readonly token: Uint32Array;
  private readonly used2M: Uint16Array;
  private readonly used1G: Int32Array;
  private nslots = 0;
  private readonly freeSlots: number[] = [];
  /** per node: where the next 4K search starts (alloc4K's cursor idea, one per node) */
  private readonly nodeCursor: Int32Array;
  /** next token for freshly written content: unique, in [2^31, 2^32), wrapping (content.ts) */
  private nextWritten = 0x80000000;
  freeFrames: number;
  /**
   * NUMA nodes: node n owns frames [nodeStart[n], nodeStart[n + 1]) (a contiguous range per node,
   * as the firmware's SRAT usually lays them out). One node unless the host says otherwise.
   */
  readonly nodeStart: Int32Array;
  /** free frames per node */
  readonly nodeFree: Int32Array;
  /** numastat counters: [node * 6 + NUMA_HIT..NUMA_OTHER] */
  readonly numaStat: Float64Array;
  /**
   * THP fault events (/proc/vmstat, mm/huge_memory.c do_huge_pmd_anonymous_page): a fault that
   * got a 2M page (thp_fault_alloc) and one that wanted one and fell back to 4K
   * (thp_fault_fallback). Global vm events, counted by Mm.fault.
   */
  thpFaultAlloc = 0;
  thpFaultFallback = 0;
  /** frames per kind (kind[] counted as it changes: take, free, setKind) */
  readonly kindFrames = new Float64Array(16);

  constructor(bytes: number, nodes = 1) {
    if (bytes % 1073741824 !== 0 || bytes <= 0) {
      throw new RangeError("host memory must be a whole number of GiB");
    }
    this.nframes = bytes / 4096;
    this.words = new Uint32Array(WORDS_PER_PAGE * 64);
    this.slotOf = new Int32Array(this.nframes).fill(-1);
    this.kind = new Uint8Array(this.nframes);
    this.token = new Uint32Array(this.nframes);
    this.used2M = new Uint16Array(this.nframes / 512);
    this.used1G = new Int32Array(this.nframes / 262144);
    this.freeFrames = this.nframes;
    const perNodeGiB = bytes / 1073741824 / nodes;
    if (!Number.isInteger(nodes) || nodes < 1 || !Number.isInteger(perNodeGiB)) {
      throw new RangeError("host memory must split into whole GiB per NUMA node");
    }
    this.nodeStart = new Int32Array(nodes + 1);
    for (let n = 0; n <= nodes; n++) this.nodeStart[n] = n * perNodeGiB * 262144;
    this.nodeFree = new Int32Array(nodes).fill(perNodeGiB * 262144);
    this.nodeCursor = new Int32Array(nodes);
    for (let n = 0; n < nodes; n++) this.nodeCursor[n] = this.nodeStart[n];
    this.numaStat = new Float64Array(nodes * NUMA_ITEMS);
  }

  /** Frames of node `n`. */
  nodeFrames(n: number): number {
    return this.nodeStart[n + 1] - this.nodeStart[n];
  }

  get nodes(): number {
    return this.nodeStart.length - 1;
  }

  /** The NUMA node that frame `pfn` belongs to. */
  nodeOf(pfn: number): number {
    let n = 0;
    while (pfn >= this.nodeStart[n + 1]) n++;
    return n;
  }

  /** Allocate a naturally aligned block of 2^order frames; returns its first pfn or -1. */
  alloc(order: 0 | 9 | 18, kind: number): number {
    return this.allocFrom(order, kind, 0, ALL, 0);
  }

  /**
   * Allocate from the zonelist of node `preferred` (preferred, preferred + 1, ..., wrapping)
   * restricted to `mask` (bit n = node n), for a task running on node `local`; -1 when no node
   * of the mask has a free block. Counts the allocation in the numastat counters (not when
   * `local` is -1: memory the kernel takes from memblock at boot, outside the buddy allocator).
   */
  allocFrom(
    order: 0 | 9 | 18,
    kind: number,
    preferred: number,
    mask: number,
    local: number,
  ): number {
    const nodes = this.nodeStart.length - 1;
    let first = -1;
    for (let i = 0; i < nodes; i++) {
      const node = (preferred + i) % nodes;
      if (((mask >>> node) & 1) === 0) continue;
      if (first < 0) first = node;
      const pfn = order === 0 ? this.alloc4K(node, kind) : this.allocBlock(node, order, kind);
      if (pfn < 0) continue;
      if (local < 0) return pfn; // not a buddy allocation the kernel counts (memblock at boot)
      const st = this.numaStat;
      if (node === first) st[node * NUMA_ITEMS + NUMA_HIT]++;
      else {
        st[node * NUMA_ITEMS + NUMA_MISS]++;
        st[first * NUMA_ITEMS + NUMA_FOREIGN]++;
      }
      st[node * NUMA_ITEMS + (node === local ? NUMA_LOCAL : NUMA_OTHER)]++;
      return pfn;
    }
    return -1;
  }

  /** A free aligned 2M or 1G block of `node`, searched from the node's top. */
  private allocBlock(node: number, order: 9 | 18, kind: number): number {
    const size = 1 << order;
    if (this.nodeFree[node] < size) return -1;
    const blocks = order === 9 ? this.used2M : this.used1G;
    const lo = this.nodeStart[node] / size;
    for (let b = this.nodeStart[node + 1] / size - 1; b >= lo; b--) {
      if (blocks[b] === 0 && (order === 18 || this.used1G[Math.floor(b / 512)] < 262144)) {
        const first = b * size;
        for (let i = 0; i < size; i++) this.take(first + i, kind);
        this.nodeFree[node] -= size;
        return first;
      }
    }
    return -1;
  }

  private alloc4K(node: number, kind: number): number {
    if (this.nodeFree[node] === 0) return -1;
    const start = this.nodeStart[node];
    const size = this.nodeStart[node + 1] - start;
    const from = this.nodeCursor[node] - start;
    for (let n = 0; n < size; n++) {
      const pfn = start + ((from + n) % size);
      if (this.kind[pfn] === KIND_FREE) {
        this.nodeCursor[node] = pfn + 1;
        this.take(pfn, kind);
        this.nodeFree[node]--;
        return pfn;
      }
    }
    return -1;
  }

  private take(pfn: number, kind: number): void {
    this.kind[pfn] = kind;
    this.kindFrames[kind]++;
    this.used2M[pfn >>> 9]++;
    this.used1G[Math.floor(pfn / 262144)]++;
    this.freeFrames--;
  }

  /** Free a block of 2^order frames starting at `pfn` (their bytes and tokens go too). */
  free(pfn: number, order: 0 | 9 | 18): void {
    const size = 1 << order;
    const node = this.nodeOf(pfn);
    for (let i = 0; i < size; i++) {
      const f = pfn + i;
      if (this.kind[f] === KIND_FREE) throw new Error(`double free of pfn ${f}`);
      this.kindFrames[this.kind[f]]--;
      this.kind[f] = KIND_FREE;
      this.token[f] = 0;
      this.used2M[f >>> 9]--;
      this.used1G[Math.floor(f / 262144)]--;
      this.freeFrames++;
      const s = this.slotOf[f];
      if (s >= 0) {
        this.slotOf[f] = -1;
        this.freeSlots.push(s);
      }
    }
    this.nodeFree[node] += size;
    if (pfn < this.nodeCursor[node]) this.nodeCursor[node] = pfn;
  }

  /** A store changed frame `pfn`: it now holds content no other frame holds (a fresh token). */
  written(pfn: number): void {
    this.token[pfn] = this.freshToken();
  }

  /** A token no frame has been given since the last wrap (2^31 writes). */
  freshToken(): number {
    const t = this.nextWritten;
    this.nextWritten = t === 0xffffffff ? 0x80000000 : t + 1;
    return t;
  }

  /** Give a frame bytes (zeroed) if it has none; returns the word offset of its slot. */
  bytes(pfn: number): number {
    let s = this.slotOf[pfn];
    if (s >= 0) return s;
    if (this.kind[pfn] === KIND_FREE) throw new Error(`bytes for free pfn ${pfn}`);
    const reused = this.freeSlots.pop();
    if (reused !== undefined) {
      s = reused;
      this.words.fill(0, s, s + WORDS_PER_PAGE);
    } else {
      s = this.nslots++ * WORDS_PER_PAGE;
      if (s + WORDS_PER_PAGE > this.words.length) {
        const bigger = new Uint32Array(this.words.length * 2);
        bigger.set(this.words);
        this.words = bigger;
      }
    }
    this.slotOf[pfn] = s;
    return s;
  }

  /** Read the 64-bit entry `index` of frame `pfn` as [lo, hi] into `into`. */
  readEntry(pfn: number, index: number, into: Uint32Array): void {
    const s = this.slotOf[pfn];
    if (s < 0) {
      into[0] = 0;
      into[1] = 0;
      return;
    }
    into[0] = this.words[s + index * 2];
    into[1] = this.words[s + index * 2 + 1];
  }

  entryLo(pfn: number, index: number): number {
    const s = this.slotOf[pfn];
    return s < 0 ? 0 : this.words[s + index * 2];
  }

  entryHi(pfn: number, index: number): number {
    const s = this.slotOf[pfn];
    return s < 0 ? 0 : this.words[s + index * 2 + 1];
  }

  writeEntry(pfn: number, index: number, lo: number, hi: number): void {
    const s = this.bytes(pfn);
    this.words[s + index * 2] = lo;
    this.words[s + index * 2 + 1] = hi;
  }

  /** Give `n` used frames from `pfn` a new kind (a THP split makes its frames anonymous 4K). */
  setKind(pfn: number, n: number, kind: number): void {
    for (let i = 0; i < n; i++) {
      const f = pfn + i;
      if (this.kind[f] === KIND_FREE) throw new Error(`setKind on free pfn ${f}`);
      this.kindFrames[this.kind[f]]--;
      this.kind[f] = kind;
      this.kindFrames[kind]++;
    }
  }

  /** Frames in use by kind (on node `node` only, when given; a scan: use kindFrames per step). */
  countKind(kind: number, node?: number): number {
    const from = node === undefined ? 0 : this.nodeStart[node];
    const to = node === undefined ? this.nframes : this.nodeStart[node + 1];
    let n = 0;
    for (let i = from; i < to; i++) if (this.kind[i] === kind) n++;
    return n;
  }

  assertInvariants(): void {
    let used = 0;
    const u2 = new Uint16Array(this.used2M.length);
    const u1 = new Int32Array(this.used1G.length);
    const seen = new Set<number>();
    for (let f = 0; f < this.nframes; f++) {
      if (this.kind[f] !== KIND_FREE) {
        used++;
        u2[f >>> 9]++;
        u1[Math.floor(f / 262144)]++;
      }
      const s = this.slotOf[f];
      if (s >= 0) {
        if (this.kind[f] === KIND_FREE) throw new Error(`free pfn ${f} has bytes`);
        if (seen.has(s)) throw new Error(`slot ${s} used twice`);
        seen.add(s);
      }
    }
    if (used + this.freeFrames !== this.nframes) throw new Error("frame count mismatch");
    const byKind = new Float64Array(this.kindFrames.length);
    for (let f = 0; f < this.nframes; f++) byKind[this.kind[f]]++;
    for (let k = 1; k < byKind.length; k++)
      if (byKind[k] !== this.kindFrames[k])
        throw new Error(`kindFrames[${k}]: kind[] set directly?`);
    for (let n = 0; n < this.nodes; n++) {
      let usedN = 0;
      for (let f = this.nodeStart[n]; f < this.nodeStart[n + 1]; f++)
        if (this.kind[f] !== KIND_FREE) usedN++;
      if (usedN + this.nodeFree[n] !== this.nodeFrames(n)) throw new Error(`node ${n} free count`);
    }
    for (let i = 0; i < u2.length; i++)
      if (u2[i] !== this.used2M[i]) throw new Error(`used2M[${i}]`);
    for (let i = 0; i < u1.length; i++)
      if (u1[i] !== this.used1G[i]) throw new Error(`used1G[${i}]`);
  }
}
