/**
 * KSM's counters, knobs and CPU time: what /sys/kernel/mm/ksm and /proc/PID/ksm_stat show, the
 * sysfs stores that can fail, and the cycles ksmd has spent (ksm-cost.ts).
 *
 * How it works: counters() reads the *_show values of mm/ksm.c (pages_volatile and
 * general_profit computed as there); ksmStat() is fs/proc/base.c proc_pid_ksm_stat. setKnob()
 * is the sysfs *_store: merge_across_nodes and max_page_sharing change how KSM pages are
 * grouped, so their stores refuse with EBUSY while KSM pages are shared (ksm_pages_shared != 0,
 * or remove_all_stable_nodes failing); run, pages_to_scan, sleep_millisecs, use_zero_pages and
 * smart_scan always take. The cycles are kept per kind of work (scan and checksum, tree
 * comparisons, merges) as Ksm does it; cpuMs() converts them at the host's clock.
 *
 * Invariants (assertInvariants): the counters equal recounts over rmap_items and nodes; a KSM
 * frame's mapcount is positive and its node points back at it.
 */
import { STABLE, UNSTABLE } from "./ksm-items.js";
import { type KsmMmSlot, type KsmSettings, KsmTrees } from "./ksm-tree.js";
import type { Mm } from "./mm.js";

/** sizeof(struct ksm_rmap_item) on x86-64, as general_profit uses it */
export const RMAP_ITEM_SIZE = 64;

/** the kernel's limits of each writable knob (the *_store functions' checks) */
const KNOB_MAX: Record<keyof KsmSettings, number> = {
  run: 2,
  pages_to_scan: 0xffffffff,
  sleep_millisecs: 0xffffffff,
  max_page_sharing: 0x7fffffff,
  merge_across_nodes: 1,
  use_zero_pages: 1,
  smart_scan: 1,
};

export class KsmStats extends KsmTrees {
  pagesScanned = 0;
  pagesSkipped = 0;
  zeroPages = 0;
  /** copy-on-write breaks of KSM pages and of the zero page */
  cowBreaks = 0;
  /** ksmd's cycles: page walks and checksums, merges (with THP splits); compareCycles in trees */
  scanCycles = 0;
  mergeCycles = 0;
  /** the host's clock (cycles per second) that turns ksmd's cycles into time */
  cpuHz = 3e9;
  /** the share of its CPU ksmd gets while it runs (ksmdShare; the run loop sets it) */
  cpuShare = 1;
  protected readonly bySlot = new Map<Mm, KsmMmSlot>();

  slotOf(mm: Mm): KsmMmSlot | undefined {
    return this.bySlot.get(mm);
  }

  /** every cycle ksmd has spent */
  get cpuCycles(): number {
    return this.scanCycles + this.compareCycles + this.mergeCycles;
  }

  /** ksmd's CPU time so far, ms */
  cpuMs(): number {
    return (this.cpuCycles / this.cpuHz) * 1000;
  }

  /**
   * echo VALUE > /sys/kernel/mm/ksm/KEY: null when it took, else the write's error as the shell
   * reports it (merge_across_nodes_store and max_page_sharing_store return -EBUSY while KSM
   * pages are shared: `echo 2 > run` unmerges them first).
   */
  setKnob(key: keyof KsmSettings, value: number): string | null {
    const s = this.settings;
    const min = key === "max_page_sharing" ? 2 : 0;
    if (!Number.isInteger(value) || value < min || value > KNOB_MAX[key])
      return `${key}: write error: Invalid argument (EINVAL)`;
    if ((key === "merge_across_nodes" || key === "max_page_sharing") && s[key] !== value) {
      if (!this.removeAllStableNodes())
        return `${key}: write error: Device or resource busy (EBUSY: pages_shared is ${this.pagesShared}; echo 2 > run unmerges first)`;
    }
    (s as unknown as Record<string, number>)[key] = value;
    return null;
  }

  /** The sysfs counters (ksm.c *_show; pages_volatile and general_profit as computed there). */
  counters(): Record<string, number> {
    const s = this.settings;
    const rmap = this.items.count;
    const volatile = rmap - this.pagesShared - this.pagesSharing - this.pagesUnshared;
    return {
      run: s.run,
      pages_to_scan: s.pages_to_scan,
      sleep_millisecs: s.sleep_millisecs,
      max_page_sharing: s.max_page_sharing,
      merge_across_nodes: s.merge_across_nodes,
      use_zero_pages: s.use_zero_pages,
      smart_scan: s.smart_scan,
      stable_node_chains_prune_millisecs: 2000,
      pages_shared: this.pagesShared,
      pages_sharing: this.pagesSharing,
      pages_unshared: this.pagesUnshared,
      pages_volatile: Math.max(volatile, 0),
      pages_scanned: this.pagesScanned,
      pages_skipped: this.pagesSkipped,
      full_scans: this.fullScans,
      stable_node_chains: this.stableNodeChains,
      stable_node_dups: this.stableNodeDups,
      ksm_zero_pages: this.zeroPages,
      general_profit: (this.pagesSharing + this.zeroPages) * 4096 - rmap * RMAP_ITEM_SIZE,
    };
  }

  /** /proc/PID/ksm_stat of a process (fs/proc/base.c proc_pid_ksm_stat). */
  ksmStat(mm: Mm): string {
    const s = this.bySlot.get(mm);
    const items = s?.rmapItems ?? 0;
    const merging = s?.mergingPages ?? 0;
    const zero = s?.zeroPages ?? 0;
    const profit = (merging + zero) * 4096 - items * RMAP_ITEM_SIZE;
    return `ksm_rmap_items ${items}\nksm_zero_pages ${zero}\nksm_merging_pages ${merging}\nksm_process_profit ${profit}\nksm_merge_any: no\nksm_mergeable: ${s ? "yes" : "no"}\n`;
  }

  assertInvariants(): void {
    const it = this.items;
    let shared = 0;
    let sharing = 0;
    let unshared = 0;
    let n = 0;
    for (const slot of this.slots) {
      let merging = 0;
      let last = -1;
      for (let i = slot.head; i >= 0; i = it.next[i]) {
        n++;
        if (it.addr[i] <= last) throw new Error("rmap_list not sorted");
        last = it.addr[i];
        if ((it.flags[i] & STABLE) !== 0) {
          merging++;
          if (it.hnext[i] >= 0) sharing++;
          else shared++;
        } else if ((it.flags[i] & UNSTABLE) !== 0) unshared++;
      }
      if (merging !== slot.mergingPages) throw new Error(`${slot.mm.name}: ksm_merging_pages`);
    }
    if (n !== it.count) throw new Error(`rmap_items ${it.count} != listed ${n}`);
    if (shared !== this.pagesShared || sharing !== this.pagesSharing)
      throw new Error(
        `pages_shared/sharing ${this.pagesShared}/${this.pagesSharing} != ${shared}/${sharing}`,
      );
    if (unshared !== this.pagesUnshared) throw new Error("pages_unshared");
    const sn = this.sn;
    for (let id = 0; id < sn.size; id++) {
      if (!sn.live[id] || sn.kpfn[id] < 0) continue;
      if (this.stableOf[sn.kpfn[id]] !== id) throw new Error("stableOf");
      if (sn.mapcount[id] <= 0) throw new Error("live KSM page without mappings");
      if (!this.settings.merge_across_nodes && sn.nid[id] !== this.mem.nodeOf(sn.kpfn[id]))
        throw new Error("KSM page in another node's stable tree");
    }
  }
}
