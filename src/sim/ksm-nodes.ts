/**
 * KSM's stable nodes, as struct-of-arrays: one per KSM page (a dup, when chained).
 *
 * How it works: struct ksm_stable_node (mm/ksm.c) holds the KSM page's pfn (kpfn), the hlist
 * of rmap_items that map it and its length (rmap_hlist_len), and with CONFIG_NUMA the node id
 * of the tree it sits in (nid). Here each field is a typed array indexed by node id, with the
 * content token the tree is keyed by, the number of ptes mapping the page (its mapcount) and
 * the chain the node is a dup of (-1: none). A scan that merges millions of pages makes a
 * million nodes; as objects they would cost the garbage collector more than the merging costs.
 * Freed ids are reused (free_stable_node puts the struct back in its kmem_cache).
 *
 * Invariants: an id is either live (alloc'd and not freed) or on the free list.
 */
export class StableNodes {
  token = new Uint32Array(1024);
  /** the KSM page; -1 once its last mapping went (a stale node, dropped when met) */
  kpfn = new Int32Array(1024);
  /** first rmap_item of the hlist (-1: empty) and rmap_hlist_len */
  head = new Int32Array(1024);
  len = new Int32Array(1024);
  /** ptes mapping kpfn */
  mapcount = new Int32Array(1024);
  /** chain id when the node is a dup (stable_node_chain), else -1 */
  chain = new Int32Array(1024);
  /** the tree (NUMA node, or 0 when merging across nodes) the node went into */
  nid = new Int32Array(1024);
  live = new Uint8Array(1024);
  private used = 0;
  private readonly free: number[] = [];

  private grow(): void {
    const n = this.token.length * 2;
    const g = <T extends Int32Array | Uint32Array | Uint8Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.token = g(this.token);
    this.kpfn = g(this.kpfn);
    this.head = g(this.head);
    this.len = g(this.len);
    this.mapcount = g(this.mapcount);
    this.chain = g(this.chain);
    this.nid = g(this.nid);
    this.live = g(this.live);
  }

  /** alloc_stable_node: a node for KSM page `kpfn` of content `token`, mapped once */
  alloc(token: number, kpfn: number, nid: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      if (this.used === this.token.length) this.grow();
      id = this.used++;
    }
    this.token[id] = token;
    this.kpfn[id] = kpfn;
    this.head[id] = -1;
    this.len[id] = 0;
    this.mapcount[id] = 1;
    this.chain[id] = -1;
    this.nid[id] = nid;
    this.live[id] = 1;
    return id;
  }

  release(id: number): void {
    this.live[id] = 0;
    this.kpfn[id] = -1;
    this.free.push(id);
  }

  /** ids ever handed out (live ones are those with live[id] = 1) */
  get size(): number {
    return this.used;
  }
}
