/**
 * NUMA memory policies: where a page of a process's memory is allocated.
 *
 * How it works (Documentation/admin-guide/mm/numa_memory_policy.rst, mm/mempolicy.c 6.x): a
 * policy is a mode and a set of nodes. An allocation resolves it to a preferred node and a
 * nodemask (policy_node / policy_nodemask) and the page allocator walks the preferred node's
 * zonelist, taking the first node of the mask with a free block (get_page_from_freelist):
 * - default (MPOL_DEFAULT, "local allocation"): the node of the CPU the task runs on
 *   (numa_node_id()), then every other node;
 * - preferred (MPOL_PREFERRED): the policy's node, then every other node;
 * - preferred-many (MPOL_PREFERRED_MANY, 5.15+): the local zonelist within the policy's nodes
 *   first, then the local zonelist over every node (alloc_pages_preferred_many: two attempts);
 * - bind (MPOL_BIND): the local node's zonelist restricted to the policy's nodes, no fallback
 *   outside them;
 * - interleave (MPOL_INTERLEAVE): the page's interleave index ilx (its offset in the VMA in units
 *   of the allocation's size, get_vma_policy) picks the (ilx mod n)-th node of the set
 *   (interleave_nid), with fallback to every node (alloc_pages_mpol).
 * Zonelists (mm/page_alloc.c build_zonelists, find_next_best_node): the local node first, then
 * the others by distance; with equal remote distances (a two-socket SLIT: 10 local, 21 remote)
 * nodes above the local one come before those below it (find_next_best_node penalises
 * n < node), so node n's zonelist is n, n+1, ..., last, 0, ..., n-1. node_load balancing among
 * equal candidates (which only matters with four or more nodes) is not modelled.
 * Nodemasks are bit masks (bit n = node n), so at most 31 nodes.
 */

export type PolicyMode = "default" | "preferred" | "preferred-many" | "bind" | "interleave";

export interface MemPolicy {
  readonly mode: PolicyMode;
  /** bit n set: node n is in the policy's nodes (ignored for default) */
  readonly nodes: number;
}

/** every node: no restriction */
export const ALL_NODES = 0x7fffffff;

export const DEFAULT_POLICY: MemPolicy = Object.freeze({ mode: "default", nodes: ALL_NODES });

/** A nodemask from node ids. */
export function nodemask(ids: readonly number[]): number {
  let m = 0;
  for (const n of ids) {
    if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`NUMA node ${n}`);
    m |= 1 << n;
  }
  return m;
}

/** The node ids of a nodemask, ascending. */
export function maskNodes(mask: number, nodes = 31): number[] {
  const out: number[] = [];
  for (let n = 0; n < nodes; n++) if ((mask >>> n) & 1) out.push(n);
  return out;
}

/** The first node of `mask` (first_node), or -1 when empty. */
export function firstNode(mask: number): number {
  return mask === 0 ? -1 : 31 - Math.clz32(mask & -mask);
}

/** interleave_nid: the (ilx mod weight)-th node of `mask`. */
export function interleaveNid(mask: number, ilx: number): number {
  let weight = 0;
  for (let m = mask; m !== 0; m &= m - 1) weight++;
  let target = ilx % weight;
  let m = mask;
  while (target-- > 0) m &= m - 1;
  return firstNode(m);
}

/**
 * Resolve `policy` for one allocation by a task on node `local` at interleave index `ilx`:
 * out[0] = the node whose zonelist is walked, out[1] = the nodemask, out[2] = the interleave
 * target (-1 unless interleaving), out[3] = 1 when a failed attempt is retried on every node
 * (preferred-many).
 */
export function resolvePolicy(
  policy: MemPolicy,
  local: number,
  ilx: number,
  out: Int32Array,
): void {
  out[2] = -1;
  out[3] = 0;
  switch (policy.mode) {
    case "default":
      out[0] = local;
      out[1] = ALL_NODES;
      return;
    case "preferred":
      out[0] = firstNode(policy.nodes);
      out[1] = ALL_NODES;
      return;
    case "bind":
      out[0] = local;
      out[1] = policy.nodes;
      return;
    case "preferred-many":
      out[0] = local;
      out[1] = policy.nodes;
      out[3] = 1;
      return;
    case "interleave": {
      const nid = interleaveNid(policy.nodes, ilx);
      out[0] = nid;
      out[1] = ALL_NODES;
      out[2] = nid;
      return;
    }
  }
}
