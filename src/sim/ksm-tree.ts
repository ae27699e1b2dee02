/**
 * KSM's stable and unstable trees and their counters (mm/ksm.c), the part of ksm.ts that keeps
 * the books.
 *
 * How it works: a stable node is a KSM page (kpfn) with the hlist of rmap_items mapping it; the
 * stable tree finds nodes by content. A node holds at most max_page_sharing items; a second
 * KSM page of the same content turns the tree entry into a chain whose "dups" are the nodes
 * (stable_tree_insert, alloc_stable_node_chain), and a lookup picks the fullest dup that still
 * has room (stable_node_dup) and drops a chain left with one dup. A node whose KSM page was
 * freed is stale and goes when met (remove_node_from_stable_tree). stable_tree_append and
 * remove_rmap_item_from_tree move pages_shared (first item of a node), pages_sharing (the
 * others) and per-mm ksm_merging_pages; unstable items count in pages_unshared until removed,
 * and the unstable tree itself is only erased from for items of the current scan (seqnr age 0).
 * There is a stable and an unstable tree per NUMA node (root_stable_tree[nid],
 * root_unstable_tree[nid]); get_kpfn_nid picks tree 0 while merge_across_nodes is 1, else the
 * frame's node; a node and an unstable item remember the tree they went into. Nodes are
 * struct-of-arrays (ksm-nodes.ts) and the trees are U32Maps by content token; memcmp_pages is
 * priced per rbtree level an equivalent search would pass (ksm-cost.ts).
 *
 * Invariants: see Ksm.assertInvariants.
 */
import { KSM_MEMCMP_DIFF_CYCLES, KSM_MEMCMP_SAME_CYCLES, treeDepth } from "./ksm-cost.js";
import { KsmItems, STABLE, UNSTABLE } from "./ksm-items.js";
import { StableNodes } from "./ksm-nodes.js";
import type { PhysMem } from "./memory.js";
import type { Mm } from "./mm.js";
import { U32Map } from "./u32map.js";

export interface KsmSettings {
  run: 0 | 1 | 2;
  pages_to_scan: number;
  sleep_millisecs: number;
  max_page_sharing: number;
  merge_across_nodes: 0 | 1;
  use_zero_pages: 0 | 1;
  smart_scan: 0 | 1;
}

/** The kernel's defaults (ksm.c: ksm_thread_pages_to_scan = 100, sleep 20 ms, ...). */
export const KSM_DEFAULTS: Readonly<KsmSettings> = Object.freeze({
  run: 0,
  pages_to_scan: 100,
  sleep_millisecs: 20,
  max_page_sharing: 256,
  merge_across_nodes: 1,
  use_zero_pages: 0,
  smart_scan: 1,
});

export class Chain {
  /** index in KsmTrees.chains once in the tree */
  id = -1;
  /** dups (stable node ids), head first (hlist order) */
  readonly dups: number[] = [];
  constructor(
    readonly token: number,
    readonly nid: number,
  ) {}
}

/** ksm_mm_slot: a process KSM scans, with /proc/PID/ksm_stat's counters. */
export class KsmMmSlot {
  head = -1;
  rmapItems = 0;
  mergingPages = 0;
  zeroPages = 0;
  pagesSharing = 0;
  /** mergeable [startVpn, endVpn) ranges, sorted */
  readonly ranges: Array<[number, number]> = [];
  constructor(
    readonly index: number,
    readonly mm: Mm,
  ) {}
}

export class KsmTrees {
  pagesShared = 0;
  pagesSharing = 0;
  pagesUnshared = 0;
  stableNodeChains = 0;
  stableNodeDups = 0;
  /** ksm_scan.seqnr: completed full scans */
  fullScans = 0;
  /** ksmd's cycles in memcmp_pages (ksm-cost.ts) */
  compareCycles = 0;
  readonly slots: KsmMmSlot[] = [];
  /** stable node id of a KSM frame, -1 for other frames (PageKsm) */
  readonly stableOf: Int32Array;
  readonly items = new KsmItems();
  protected readonly sn = new StableNodes();
  /**
   * root_stable_tree[nid] and root_unstable_tree[nid]: one pair per NUMA node, of which only
   * tree 0 is used while merge_across_nodes is 1 (ksm_nr_node_ids = 1). The stable tree maps
   * content to a node id (>= 0) or a chain (-2 - chain id); the unstable one to an rmap_item.
   */
  protected readonly stable: U32Map[] = [];
  protected readonly unstable: U32Map[] = [];
  protected readonly chains: Array<Chain | null> = [];

  constructor(
    readonly mem: PhysMem,
    readonly settings: KsmSettings,
  ) {
    this.stableOf = new Int32Array(mem.nframes).fill(-1);
    for (let n = 0; n < mem.nodes; n++) {
      this.stable.push(new U32Map(n === 0 ? 4096 : 16));
      this.unstable.push(new U32Map(n === 0 ? 4096 : 16));
    }
  }

  /** get_kpfn_nid: the tree of frame `pfn` (0 when merging across nodes) */
  protected nidOf(pfn: number): number {
    return this.settings.merge_across_nodes ? 0 : this.mem.nodeOf(pfn);
  }

  /** ptes mapping KSM frame `pfn` (0 when it is not a KSM frame) */
  mapcountOf(pfn: number): number {
    const id = this.stableOf[pfn];
    return id < 0 ? 0 : this.sn.mapcount[id];
  }

  private setEntry(nid: number, token: number, id: number, chain: Chain | null): void {
    if (chain) {
      if (chain.id < 0) {
        chain.id = this.chains.length;
        this.chains.push(chain);
      }
      this.stable[nid].set(token, -2 - chain.id);
    } else this.stable[nid].set(token, id);
  }

  /** is_page_sharing_candidate */
  protected candidate(id: number): boolean {
    return this.sn.len[id] < this.settings.max_page_sharing;
  }

  /** stable_tree_search: the node to merge into, or -1 (none, or all dups full). */
  protected stableSearch(pfn: number): number {
    const own = this.stableOf[pfn];
    if (own >= 0) return own; // a KSM page finds itself
    const tree = this.stable[this.nidOf(pfn)];
    const v = tree.get(this.mem.token[pfn]);
    // memcmp_pages down the rbtree: different pages on the way, the identical one at the end
    const depth = treeDepth(tree.size);
    this.compareCycles +=
      v === -1
        ? depth * KSM_MEMCMP_DIFF_CYCLES
        : (depth - 1) * KSM_MEMCMP_DIFF_CYCLES + KSM_MEMCMP_SAME_CYCLES;
    if (v === -1) return -1;
    let dup: number;
    if (v <= -2) dup = this.chainBest(this.chains[-2 - v]!);
    else if (this.sn.kpfn[v] < 0) {
      this.removeNode(v);
      dup = -1;
    } else dup = v;
    return dup >= 0 && this.candidate(dup) ? dup : -1;
  }

  /** stable_node_dup: prune stale dups, pick the fullest candidate, collapse a chain of one. */
  protected chainBest(c: Chain): number {
    const sn = this.sn;
    for (const d of [...c.dups]) if (sn.kpfn[d] < 0) this.removeNode(d);
    let found = -1;
    for (const d of c.dups) {
      if (found < 0 || (this.candidate(d) && (!this.candidate(found) || sn.len[d] > sn.len[found])))
        found = d;
    }
    if (found >= 0 && c.dups.length === 1) {
      sn.chain[found] = -1;
      this.setEntry(c.nid, c.token, found, null);
      this.chains[c.id] = null;
      this.stableNodeChains--;
      this.stableNodeDups--;
    } else if (
      found >= 0 &&
      c.dups[0] !== found &&
      sn.len[found] + 1 < this.settings.max_page_sharing
    ) {
      c.dups.splice(c.dups.indexOf(found), 1);
      c.dups.unshift(found);
    }
    return found;
  }

  /** stable_tree_insert: a new KSM page; an existing node of that content becomes a chain. */
  protected stableInsert(kpfn: number): number {
    const sn = this.sn;
    const token = this.mem.token[kpfn];
    const nid = this.nidOf(kpfn);
    const tree = this.stable[nid];
    const id = sn.alloc(token, kpfn, nid);
    this.stableOf[kpfn] = id;
    let v = tree.get(token);
    if (v <= -2 || (v >= 0 && sn.kpfn[v] < 0)) {
      // prune first: a stale node goes, a chain may collapse or empty
      if (v <= -2) this.chainBest(this.chains[-2 - v]!);
      else this.removeNode(v);
      v = tree.get(token);
    }
    if (v === -1) {
      this.setEntry(nid, token, id, null);
    } else {
      let chain: Chain;
      if (v <= -2) chain = this.chains[-2 - v]!;
      else {
        chain = new Chain(token, nid);
        chain.dups.push(v);
        this.setEntry(nid, token, -1, chain);
        sn.chain[v] = chain.id;
        this.stableNodeChains++;
        this.stableNodeDups++;
      }
      chain.dups.unshift(id);
      sn.chain[id] = chain.id;
      this.stableNodeDups++;
    }
    return id;
  }

  /** stable_tree_append */
  protected append(item: number, id: number, _bypass: boolean): void {
    const it = this.items;
    const sn = this.sn;
    const slot = this.slots[it.mm[item]];
    it.node[item] = id;
    it.flags[item] |= STABLE;
    it.hprev[item] = -1;
    it.hnext[item] = sn.head[id];
    if (sn.head[id] >= 0) it.hprev[sn.head[id]] = item;
    sn.head[id] = item;
    sn.len[id]++;
    if (it.hnext[item] >= 0) {
      this.pagesSharing++;
      slot.pagesSharing++;
    } else this.pagesShared++;
    slot.mergingPages++;
  }

  /** remove_rmap_item_from_tree */
  removeFromTree(item: number): void {
    const it = this.items;
    const f = it.flags[item];
    if ((f & STABLE) !== 0) {
      const sn = this.sn;
      const id = it.node[item];
      if (sn.kpfn[id] < 0) {
        this.removeNode(id); // ksm_get_folio found it stale: the whole node goes
        return;
      }
      const slot = this.slots[it.mm[item]];
      const p = it.hprev[item];
      const n = it.hnext[item];
      if (p >= 0) it.hnext[p] = n;
      else sn.head[id] = n;
      if (n >= 0) it.hprev[n] = p;
      sn.len[id]--;
      if (sn.head[id] >= 0) {
        this.pagesSharing--;
        slot.pagesSharing--;
      } else this.pagesShared--;
      slot.mergingPages--;
      it.flags[item] = 0;
      it.node[item] = -1;
    } else if ((f & UNSTABLE) !== 0) {
      const age = (this.fullScans - it.seq[item]) & 0xff;
      if (age > 1) throw new Error("unstable rmap_item older than one scan");
      if (age === 0) this.unstable[it.unid[item]].deleteIf(it.utok[item], item);
      this.pagesUnshared--;
      it.flags[item] = 0;
    }
  }

  /** remove_node_from_stable_tree: a stale KSM page; its rmap_items leave the tree */
  protected removeNode(id: number): void {
    const it = this.items;
    const sn = this.sn;
    for (let i = sn.head[id]; i >= 0; ) {
      const next = it.hnext[i];
      const slot = this.slots[it.mm[i]];
      if (next >= 0) {
        this.pagesSharing--;
        slot.pagesSharing--;
      } else this.pagesShared--;
      slot.mergingPages--;
      it.flags[i] = 0;
      it.node[i] = -1;
      i = next;
    }
    const tree = this.stable[sn.nid[id]];
    const ci = sn.chain[id];
    if (ci >= 0) {
      const c = this.chains[ci]!;
      c.dups.splice(c.dups.indexOf(id), 1);
      this.stableNodeDups--;
      if (c.dups.length === 0) {
        tree.delete(c.token);
        this.chains[c.id] = null;
        this.stableNodeChains--;
      }
    } else tree.deleteIf(sn.token[id], id);
    sn.release(id);
  }

  /**
   * remove_all_stable_nodes, as a sysfs store that changes how pages are grouped calls it
   * (merge_across_nodes_store, max_page_sharing_store): with KSM pages still shared the write
   * fails with EBUSY; else the stale nodes left (KSM pages whose mappings all went) are dropped.
   */
  protected removeAllStableNodes(): boolean {
    const sn = this.sn;
    if (this.pagesShared !== 0) return false;
    // a KSM page still mapped cannot go (remove_stable_node: folio_mapped -> EBUSY)
    for (let id = 0; id < sn.size; id++) if (sn.live[id] && sn.kpfn[id] >= 0) return false;
    for (let id = 0; id < sn.size; id++) if (sn.live[id]) this.removeNode(id);
    return true;
  }
}
