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
 *
 * Invariants: see Ksm.assertInvariants.
 */
import { KsmItems, STABLE, UNSTABLE } from "./ksm-items.js";
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

export class StableNode {
  /** first rmap_item of the hlist, count (rmap_hlist_len), ptes mapping kpfn */
  head = -1;
  len = 0;
  mapcount = 1;
  chain: Chain | null = null;
  constructor(
    readonly id: number,
    readonly token: number,
    public kpfn: number,
  ) {}
}

export class Chain {
  /** index in KsmTrees.chains once in the tree */
  id = -1;
  /** dups, head first (hlist order) */
  readonly dups: StableNode[] = [];
  constructor(readonly token: number) {}
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
  readonly slots: KsmMmSlot[] = [];
  /** stable node id of a KSM frame, -1 for other frames (PageKsm) */
  readonly stableOf: Int32Array;
  readonly items = new KsmItems();
  protected readonly nodes: Array<StableNode | null> = [];
  /** the stable tree: content -> node id (>= 0) or chain (-2 - chain id) */
  protected readonly stable = new U32Map(4096);
  /** the unstable tree: content -> rmap_item */
  protected readonly unstable = new U32Map(4096);
  protected readonly chains: Array<Chain | null> = [];

  /** ptes mapping KSM frame `pfn` (0 when it is not a KSM frame) */
  mapcountOf(pfn: number): number {
    const id = this.stableOf[pfn];
    return id < 0 ? 0 : (this.nodes[id]?.mapcount ?? 0);
  }

  protected entry(token: number): StableNode | Chain | null {
    const v = this.stable.get(token);
    if (v >= 0) return this.nodes[v];
    return v === -1 ? null : this.chains[-2 - v];
  }

  protected setEntry(token: number, e: StableNode | Chain): void {
    if (e instanceof Chain) {
      if (e.id < 0) {
        e.id = this.chains.length;
        this.chains.push(e);
      }
      this.stable.set(token, -2 - e.id);
    } else this.stable.set(token, e.id);
  }

  constructor(
    readonly mem: PhysMem,
    readonly settings: KsmSettings,
  ) {
    this.stableOf = new Int32Array(mem.nframes).fill(-1);
  }

  protected candidate(n: StableNode): boolean {
    return n.len < this.settings.max_page_sharing;
  }

  /** stable_tree_search: the node to merge into, or null (none, or all dups full). */
  protected stableSearch(pfn: number): StableNode | null {
    const own = this.stableOf[pfn];
    if (own >= 0) return this.nodes[own]!; // a KSM page finds itself
    const e = this.entry(this.mem.token[pfn]);
    if (!e) return null;
    let dup: StableNode | null;
    if (e instanceof Chain) dup = this.chainBest(e);
    else if (e.kpfn < 0) {
      this.removeNode(e);
      dup = null;
    } else dup = e;
    return dup && this.candidate(dup) ? dup : null;
  }

  /** stable_node_dup: prune stale dups, pick the fullest candidate, collapse a chain of one. */
  protected chainBest(c: Chain): StableNode | null {
    for (const d of [...c.dups]) if (d.kpfn < 0) this.removeNode(d);
    let found: StableNode | null = null;
    for (const d of c.dups) {
      if (!found || (this.candidate(d) && (!this.candidate(found) || d.len > found.len))) found = d;
    }
    if (found && c.dups.length === 1) {
      found.chain = null;
      this.setEntry(c.token, found);
      this.chains[c.id] = null;
      this.stableNodeChains--;
      this.stableNodeDups--;
    } else if (found && c.dups[0] !== found && found.len + 1 < this.settings.max_page_sharing) {
      c.dups.splice(c.dups.indexOf(found), 1);
      c.dups.unshift(found);
    }
    return found;
  }

  /** stable_tree_insert: a new KSM page; an existing node of that content becomes a chain. */
  protected stableInsert(kpfn: number): StableNode {
    const token = this.mem.token[kpfn];
    const node = new StableNode(this.nodes.length, token, kpfn);
    this.nodes.push(node);
    this.stableOf[kpfn] = node.id;
    let e = this.entry(token);
    if (e instanceof Chain) this.chainBest(e);
    else if (e && e.kpfn < 0) this.removeNode(e);
    e = this.entry(token);
    if (!e) {
      this.setEntry(token, node);
    } else {
      let chain: Chain;
      if (e instanceof Chain) chain = e;
      else {
        chain = new Chain(token);
        chain.dups.push(e);
        e.chain = chain;
        this.setEntry(token, chain);
        this.stableNodeChains++;
        this.stableNodeDups++;
      }
      chain.dups.unshift(node);
      node.chain = chain;
      this.stableNodeDups++;
    }
    return node;
  }

  /** stable_tree_append */
  protected append(item: number, node: StableNode, _bypass: boolean): void {
    const it = this.items;
    const slot = this.slots[it.mm[item]];
    it.node[item] = node.id;
    it.flags[item] |= STABLE;
    it.hprev[item] = -1;
    it.hnext[item] = node.head;
    if (node.head >= 0) it.hprev[node.head] = item;
    node.head = item;
    node.len++;
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
      const node = this.nodes[it.node[item]]!;
      if (node.kpfn < 0) {
        this.removeNode(node); // ksm_get_folio found it stale: the whole node goes
        return;
      }
      const slot = this.slots[it.mm[item]];
      const p = it.hprev[item];
      const n = it.hnext[item];
      if (p >= 0) it.hnext[p] = n;
      else node.head = n;
      if (n >= 0) it.hprev[n] = p;
      node.len--;
      if (node.head >= 0) {
        this.pagesSharing--;
        slot.pagesSharing--;
      } else this.pagesShared--;
      slot.mergingPages--;
      it.flags[item] = 0;
      it.node[item] = -1;
    } else if ((f & UNSTABLE) !== 0) {
      const age = (this.fullScans - it.seq[item]) & 0xff;
      if (age > 1) throw new Error("unstable rmap_item older than one scan");
      if (age === 0 && this.unstable.get(it.utok[item]) === item)
        this.unstable.delete(it.utok[item]);
      this.pagesUnshared--;
      it.flags[item] = 0;
    }
  }

  /** remove_node_from_stable_tree: a stale KSM page; its rmap_items leave the tree */
  protected removeNode(node: StableNode): void {
    const it = this.items;
    for (let i = node.head; i >= 0; ) {
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
    node.head = -1;
    node.len = 0;
    const c = node.chain;
    if (c) {
      c.dups.splice(c.dups.indexOf(node), 1);
      this.stableNodeDups--;
      node.chain = null;
      if (c.dups.length === 0) {
        this.stable.delete(c.token);
        this.chains[c.id] = null;
        this.stableNodeChains--;
      }
    } else if (this.entry(node.token) === node) this.stable.delete(node.token);
    this.nodes[node.id] = null;
  }
}
