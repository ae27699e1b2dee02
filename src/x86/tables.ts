/**
 * Structural page-table operations: descend-and-create, find a leaf, iterate leaves.
 *
 * How it works: every owner of tables (the host mm, the guest OS, KVM's EPT and shadow MMUs) says
 * how its table frames are backed and how an entry is written through a TableSpace; the loops
 * here are shared, as KVM's tdp_iter.c gives tdp_mmu.c one iterator for map, zap, write-protect
 * and age. Entries are read straight from memory (TableMemory) and written only through
 * `space.setEntry`, so an owner can count every change (KVM's handle_changed_spte) or trap it
 * (write-protected guest tables under shadow paging). Table entries are made by the owner too
 * (`space.tableEntryLo/Hi`): x86 and EPT non-leaf entries differ.
 */
import { EPT_LARGE, EPT_RWX } from "./ept.js";
import { FMT_EPT, LEVEL_PAGES, type PagingMode } from "./paging.js";
import { PTE_P, PTE_PS } from "./pte.js";
import type { TableMemory } from "./walk.js";

export interface TableSpace {
  /** host frame holding the bytes of the table entries call `frame` (identity for host tables) */
  tablePfn(frame: number): number;
  /** allocate a zeroed table to sit at `level`; returns the frame entries point at */
  allocTable(level: number): number;
  tableEntryLo(childFrame: number): number;
  tableEntryHi(childFrame: number): number;
  /** the one place entries change */
  setEntry(tableFrame: number, index: number, level: number, lo: number, hi: number): void;
}

export function entryPresent(mode: PagingMode, lo: number): boolean {
  return mode.format === FMT_EPT ? (lo & EPT_RWX) !== 0 : (lo & PTE_P) !== 0;
}

export function entryIsLeaf(mode: PagingMode, level: number, lo: number): boolean {
  if (level === 1) return true;
  return mode.format === FMT_EPT ? (lo & EPT_LARGE) !== 0 : (lo & PTE_PS) !== 0;
}

const ENTRY_ADDR = (lo: number, hi: number): number => (hi & 0xfffff) * 1048576 + (lo >>> 12);

function readLo(mem: TableMemory, pfn: number, idx: number): number {
  const s = mem.slotOf[pfn];
  return s < 0 ? 0 : mem.words[s + idx * 2];
}
function readHi(mem: TableMemory, pfn: number, idx: number): number {
  const s = mem.slotOf[pfn];
  return s < 0 ? 0 : mem.words[s + idx * 2 + 1];
}

/**
 * The table frame at `level` on the path to `pn`, creating missing tables. A leaf found above
 * `level` is replaced by a new table (the caller has decided the mapping must be smaller, as
 * KVM does when it zaps a huge spte to install smaller ones); `onZapLeaf` hears about it.
 */
export function descend(
  mem: TableMemory,
  space: TableSpace,
  mode: PagingMode,
  root: number,
  pn: number,
  level: number,
  onZapLeaf?: (level: number, lo: number, hi: number, firstPn: number) => void,
): number {
  let table = root;
  for (let l = mode.levels; l > level; l--) {
    const idx = (pn / LEVEL_PAGES[l]) & 511;
    const pfn = space.tablePfn(table);
    const lo = readLo(mem, pfn, idx);
    const hi = readHi(mem, pfn, idx);
    if (entryPresent(mode, lo) && !entryIsLeaf(mode, l, lo)) {
      table = ENTRY_ADDR(lo, hi);
      continue;
    }
    if (entryPresent(mode, lo)) {
      onZapLeaf?.(l, lo, hi, pn - (pn % LEVEL_PAGES[l]));
      space.setEntry(table, idx, l, 0, 0);
    }
    const child = space.allocTable(l - 1);
    space.setEntry(table, idx, l, space.tableEntryLo(child), space.tableEntryHi(child));
    table = child;
  }
  return table;
}

/** Result of findLeaf, reused by callers. */
export class LeafRef {
  level = 0;
  tableFrame = 0;
  index = 0;
  lo = 0;
  hi = 0;
  /** false: the walk stopped at a non-present entry at `level` */
  present = false;
}

/** Find the entry that maps `pn` (a present leaf, or the non-present entry that ends the walk). */
export function findLeaf(
  mem: TableMemory,
  space: TableSpace,
  mode: PagingMode,
  root: number,
  pn: number,
  into: LeafRef,
): LeafRef {
  let table = root;
  for (let l = mode.levels; l >= 1; l--) {
    const idx = (pn / LEVEL_PAGES[l]) & 511;
    const pfn = space.tablePfn(table);
    const lo = readLo(mem, pfn, idx);
    const hi = readHi(mem, pfn, idx);
    into.level = l;
    into.tableFrame = table;
    into.index = idx;
    into.lo = lo;
    into.hi = hi;
    if (!entryPresent(mode, lo)) {
      into.present = false;
      return into;
    }
    if (entryIsLeaf(mode, l, lo)) {
      into.present = true;
      return into;
    }
    table = ENTRY_ADDR(lo, hi);
  }
  into.present = false;
  return into;
}

/**
 * Visit every present entry under `root` (pre-order: tables before their children). `visit`
 * gets the first page number the entry covers; return false from it to skip a table's children.
 */
export function forEachEntry(
  mem: TableMemory,
  space: TableSpace,
  mode: PagingMode,
  root: number,
  visit: (
    level: number,
    tableFrame: number,
    index: number,
    lo: number,
    hi: number,
    leaf: boolean,
    firstPn: number,
  ) => boolean | undefined,
): void {
  const rec = (table: number, level: number, basePn: number): void => {
    const pfn = space.tablePfn(table);
    for (let i = 0; i < 512; i++) {
      const lo = readLo(mem, pfn, i);
      if (!entryPresent(mode, lo)) continue;
      const hi = readHi(mem, pfn, i);
      const leaf = entryIsLeaf(mode, level, lo);
      const first = basePn + i * LEVEL_PAGES[level];
      const go = visit(level, table, i, lo, hi, leaf, first);
      if (!leaf && go !== false) rec(ENTRY_ADDR(lo, hi), level - 1, first);
    }
  };
  rec(root, mode.levels, 0);
}

/** Frame an entry points at (table or first frame of a leaf; low reserved bits ignored). */
export function entryFrame(mode: PagingMode, level: number, lo: number, hi: number): number {
  const f = ENTRY_ADDR(lo, hi);
  if (!entryIsLeaf(mode, level, lo) || level === 1) return f;
  return f - (f % LEVEL_PAGES[level]);
}
