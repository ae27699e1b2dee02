/**
 * x86-64 paging-structure entries (guest page tables and the host's own tables), bit-exact.
 *
 * How it works: a 64-bit entry is held as two 32-bit halves (lo = bits 31..0, hi = bits 63..32),
 * exactly as a little-endian Uint32Array view of the table page stores it. JS bit operators work
 * on 32 bits, so every field below names the half it lives in and its mask there; nothing else in
 * kvmem touches these bits. Field layout per Intel SDM vol. 3A 4.5 (4-level and 5-level paging),
 * tables 4-15..4-20: P(0) R/W(1) U/S(2) PWT(3) PCD(4) A(5) D(6) PS or PAT(7) G(8) ignored(9..11)
 * [PAT(12) in 2M/1G leaves] address(12..51, M = MAXPHYADDR) ignored(52..58) PK(59..62) XD(63).
 * Protection keys are left zero. Frame numbers are 4 KiB frame numbers (address >> 12).
 */

export const PTE_P = 1 << 0;
export const PTE_RW = 1 << 1;
export const PTE_US = 1 << 2;
export const PTE_PWT = 1 << 3;
export const PTE_PCD = 1 << 4;
export const PTE_A = 1 << 5;
export const PTE_D = 1 << 6;
/** page size (in PDPTE/PDE); PAT in a 4K PTE */
export const PTE_PS = 1 << 7;
export const PTE_G = 1 << 8;
/** bits 9..11, ignored by hardware (software available) */
export const PTE_AVL_LO = 0x0e00;
/** PAT bit of a 2M/1G leaf */
export const PTE_PAT_LARGE = 1 << 12;
/** address bits 12..31 of a 4K frame (lo half) */
export const PTE_ADDR_LO = 0xfffff000;
/** address bits 32..51 (hi half bits 0..19) */
export const PTE_ADDR_HI = 0x000fffff;
/** bits 52..58, ignored */
export const PTE_AVL_HI = 0x07f00000;
/** protection key, bits 59..62 */
export const PTE_PK_HI = 0x78000000;
/** execute-disable, bit 63 */
export const PTE_XD_HI = 0x80000000;

/** Every field of the format, for the no-overlap test and the CLI's flag names. */
export const PTE_FIELDS: ReadonlyArray<{ name: string; lo: number; hi: number }> = [
  { name: "P", lo: PTE_P, hi: 0 },
  { name: "RW", lo: PTE_RW, hi: 0 },
  { name: "US", lo: PTE_US, hi: 0 },
  { name: "PWT", lo: PTE_PWT, hi: 0 },
  { name: "PCD", lo: PTE_PCD, hi: 0 },
  { name: "A", lo: PTE_A, hi: 0 },
  { name: "D", lo: PTE_D, hi: 0 },
  { name: "PS", lo: PTE_PS, hi: 0 },
  { name: "G", lo: PTE_G, hi: 0 },
  { name: "AVL", lo: PTE_AVL_LO, hi: PTE_AVL_HI },
  { name: "ADDR", lo: PTE_ADDR_LO, hi: PTE_ADDR_HI },
  { name: "PK", lo: 0, hi: PTE_PK_HI },
  { name: "XD", lo: 0, hi: PTE_XD_HI },
];

const TWO20 = 1048576;

/** 4K frame number held in an entry's address field (bits 12..51). */
export function pteFrame(lo: number, hi: number): number {
  return (hi & PTE_ADDR_HI) * TWO20 + (lo >>> 12);
}

/** First 4K frame of the page a leaf at `level` maps (1 = 4K, 2 = 2M, 3 = 1G). */
export function pteLeafFrame(lo: number, hi: number, level: number): number {
  const high = (hi & PTE_ADDR_HI) * TWO20;
  if (level === 1) return high + (lo >>> 12);
  if (level === 2) return high + (lo >>> 21) * 512;
  return high + (lo >>> 30) * 262144;
}

/** lo half of an entry pointing at `frame` with `flags` (the lo-half flag bits). */
export function makePteLo(frame: number, flags: number): number {
  return (((frame % TWO20) * 4096) | flags) >>> 0;
}

/** hi half of an entry pointing at `frame`; `xd` sets bit 63. */
export function makePteHi(frame: number, xd: boolean): number {
  return (Math.floor(frame / TWO20) | (xd ? PTE_XD_HI : 0)) >>> 0;
}

export const isPresent = (lo: number): boolean => (lo & PTE_P) !== 0;
export const isWritable = (lo: number): boolean => (lo & PTE_RW) !== 0;
export const isUser = (lo: number): boolean => (lo & PTE_US) !== 0;
export const isAccessed = (lo: number): boolean => (lo & PTE_A) !== 0;
export const isDirty = (lo: number): boolean => (lo & PTE_D) !== 0;
export const isLarge = (lo: number): boolean => (lo & PTE_PS) !== 0;
export const isGlobal = (lo: number): boolean => (lo & PTE_G) !== 0;
export const isExecuteDisable = (hi: number): boolean => (hi & PTE_XD_HI) !== 0;

/** Reserved address bits of the hi half for a MAXPHYADDR (SDM 4.1.4): bits M..51. */
export function pteReservedHi(maxPhyAddr: number): number {
  return (PTE_ADDR_HI & ~((1 << (maxPhyAddr - 32)) - 1)) >>> 0;
}

/** Reserved bits in the lo half of a large leaf: 13..20 (2M) or 13..29 (1G); bit 12 is PAT. */
export function pteLargeReservedLo(level: number): number {
  return level === 2 ? 0x001fe000 : 0x3fffe000;
}

/** The names of the flags set in an entry, in bit order ("P RW US A D PS G XD"). */
export function pteFlagNames(lo: number, hi: number, leaf: boolean): string[] {
  const names: string[] = [];
  if (lo & PTE_P) names.push("P");
  if (lo & PTE_RW) names.push("RW");
  if (lo & PTE_US) names.push("US");
  if (lo & PTE_PWT) names.push("PWT");
  if (lo & PTE_PCD) names.push("PCD");
  if (lo & PTE_A) names.push("A");
  if (lo & PTE_D) names.push("D");
  if (lo & PTE_PS) names.push(leaf && !(lo & PTE_P) ? "PAT" : "PS");
  if (lo & PTE_G) names.push("G");
  if (hi & PTE_XD_HI) names.push("XD");
  return names;
}

/**
 * Swap entries, as x86-64 Linux keeps them in a non-present pte since the L1TF mitigation
 * (arch/x86/include/asm/pgtable_64.h: __swp_entry with SWP_TYPE_BITS = 5 and
 * SWP_OFFSET_FIRST_BIT = _PAGE_BIT_PROTNONE + 1 = 9): P is clear, the swap type sits in bits
 * 59..63 and the offset, inverted, in bits 9..58, so the address bits never name real memory.
 */
const SWP_LO_BITS = 0x800000; // offset bits held in the lo half (bits 9..31)
const SWP_HI_MASK = 0x07ffffff; // offset bits 23..49 in hi bits 0..26 (pte bits 32..58)

/** lo half of the swap pte for `offset` (type bits are in the hi half). */
export function makeSwapPteLo(offset: number): number {
  return ((SWP_LO_BITS - 1 - (offset % SWP_LO_BITS)) * 512) >>> 0;
}

/** hi half of the swap pte for `offset` on swap device `type` (0..31). */
export function makeSwapPteHi(offset: number, type = 0): number {
  return ((SWP_HI_MASK - Math.floor(offset / SWP_LO_BITS)) | (type << 27)) >>> 0;
}

/** __swp_offset of a swap pte. */
export function swapPteOffset(lo: number, hi: number): number {
  return SWP_LO_BITS - 1 - (lo >>> 9) + (SWP_HI_MASK - (hi & SWP_HI_MASK)) * SWP_LO_BITS;
}

/** A swap entry: not present and not pte_none. */
export const isSwapPte = (lo: number, hi: number): boolean =>
  (lo & PTE_P) === 0 && (lo !== 0 || hi !== 0);
