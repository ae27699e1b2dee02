/**
 * Paging-mode descriptors: the data that drives the one walker (x86/walk.ts).
 *
 * How it works: every radix table on x86 has 512 eight-byte entries, so a level L entry maps
 * 512^(L-1) 4 KiB pages and the index at level L is (page number / 512^(L-1)) mod 512. A mode says
 * which entry format the tables use (x86 PTE or EPT), how many levels there are, and at which
 * levels a leaf (PS / large-page bit) is allowed. KVM's paging_tmpl.h builds one walker per
 * format with macros (PTTYPE 64 / PTTYPE_EPT); here the differences are data. Sources: Intel SDM
 * vol. 3A 4.5 (4-level and 5-level paging, 1G pages with CPUID.80000001H:EDX.Page1GB) and vol. 3C
 * 29.3.2 (EPT; 5-level EPT when IA32_VMX_EPT_VPID_CAP bit 7 is set).
 */

export const FMT_X86 = 0;
export const FMT_EPT = 1;

export interface PagingMode {
  readonly name: string;
  readonly format: typeof FMT_X86 | typeof FMT_EPT;
  readonly levels: 4 | 5;
  /** bit L set: a leaf may sit at level L (bit 1 always) */
  readonly leafMask: number;
  /** virtual-address (x86) or guest-physical (EPT) bits translated */
  readonly addressBits: number;
}

const LEAF_4K_2M_1G = (1 << 1) | (1 << 2) | (1 << 3);

export const GUEST_4LEVEL: PagingMode = {
  name: "4-level",
  format: FMT_X86,
  levels: 4,
  leafMask: LEAF_4K_2M_1G,
  addressBits: 48,
};
export const GUEST_5LEVEL: PagingMode = {
  name: "5-level",
  format: FMT_X86,
  levels: 5,
  leafMask: LEAF_4K_2M_1G,
  addressBits: 57,
};
export const EPT_4LEVEL: PagingMode = {
  name: "EPT 4-level",
  format: FMT_EPT,
  levels: 4,
  leafMask: LEAF_4K_2M_1G,
  addressBits: 48,
};
export const EPT_5LEVEL: PagingMode = {
  name: "EPT 5-level",
  format: FMT_EPT,
  levels: 5,
  leafMask: LEAF_4K_2M_1G,
  addressBits: 57,
};

export function guestMode(levels: 4 | 5): PagingMode {
  return levels === 5 ? GUEST_5LEVEL : GUEST_4LEVEL;
}
export function eptMode(levels: 4 | 5): PagingMode {
  return levels === 5 ? EPT_5LEVEL : EPT_4LEVEL;
}

/** 4 KiB pages mapped by one entry at level L (index 0 unused). */
export const LEVEL_PAGES: readonly number[] = [0, 1, 512, 262144, 134217728, 68719476736];
/** Bytes mapped by one entry at level L. */
export const LEVEL_BYTES: readonly number[] = [0, 4096, 2097152, 1073741824, 549755813888, 2 ** 48];

/** Index into the level-L table for page number `pn` (pn < 2^53). */
export function indexAt(pn: number, level: number): number {
  return (pn / LEVEL_PAGES[level]) & 511;
}

/** Level of a leaf mapping `bytes` (4K -> 1, 2M -> 2, 1G -> 3). */
export function levelOfSize(bytes: number): number {
  if (bytes === 4096) return 1;
  if (bytes === 2097152) return 2;
  if (bytes === 1073741824) return 3;
  throw new RangeError(`no x86 page of ${bytes} bytes`);
}

/** The names the SDM gives the tables of each level, per format. */
export function tableName(mode: PagingMode, level: number): string {
  if (mode.format === FMT_EPT)
    return ["", "EPT PT", "EPT PD", "EPT PDPT", "EPT PML4", "EPT PML5"][level];
  return ["", "PT", "PD", "PDPT", "PML4", "PML5"][level];
}
