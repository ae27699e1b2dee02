/**
 * Intel EPT paging-structure entries and the EPT pointer, bit-exact.
 *
 * How it works: like x86/pte.ts, an entry is two 32-bit halves as stored in the table page. Layout
 * per Intel SDM vol. 3C 29.3.2 (EPT translation mechanism, tables 29-1..29-6; chapter 28 in older
 * editions): R(0) W(1) X(2) memory type(3..5, leaves) ignore-PAT(6, leaves) large page(7)
 * accessed(8) dirty(9, leaves) user-execute(10, mode-based execute control) ignored(11)
 * address(12..51) ignored(52..62) suppress-#VE(63). An entry is present when any of R/W/X is set
 * (bit 10 too with mode-based execute, not modelled). Misconfigurations (29.3.3.1): W without R,
 * a reserved memory type (2, 3, 7) in a leaf, reserved address bits, bit 7 in a PML4E/PML5E.
 * EPTP (vol. 3C 25.6.11): memory type(0..2) walk length - 1(3..5) A/D enable(6) root address.
 * KVM makes MMIO sptes deliberately misconfigured (W|X without R, spte.h
 * VMX_EPT_MISCONFIG_WX_VALUE) so that the next access exits with EPT_MISCONFIG.
 */

export const EPT_R = 1 << 0;
export const EPT_W = 1 << 1;
export const EPT_X = 1 << 2;
export const EPT_RWX = 7;
export const EPT_MT_MASK = 0x38;
export const EPT_MT_SHIFT = 3;
export const EPT_IPAT = 1 << 6;
export const EPT_LARGE = 1 << 7;
export const EPT_A = 1 << 8;
export const EPT_D = 1 << 9;
export const EPT_XU = 1 << 10;
export const EPT_IGN11 = 1 << 11;
export const EPT_ADDR_LO = 0xfffff000;
export const EPT_ADDR_HI = 0x000fffff;
export const EPT_IGN_HI = 0x7ff00000;
export const EPT_SVE_HI = 0x80000000;

/** Memory types (SDM vol. 3A 12.3, 11.11 in older editions). */
export const MT_UC = 0;
export const MT_WC = 1;
export const MT_WT = 4;
export const MT_WP = 5;
export const MT_WB = 6;

/** KVM's value for an MMIO spte: writable + executable but not readable (a misconfiguration). */
export const EPT_MISCONFIG_WX = EPT_W | EPT_X;

export const EPT_FIELDS: ReadonlyArray<{ name: string; lo: number; hi: number }> = [
  { name: "R", lo: EPT_R, hi: 0 },
  { name: "W", lo: EPT_W, hi: 0 },
  { name: "X", lo: EPT_X, hi: 0 },
  { name: "MT", lo: EPT_MT_MASK, hi: 0 },
  { name: "IPAT", lo: EPT_IPAT, hi: 0 },
  { name: "LARGE", lo: EPT_LARGE, hi: 0 },
  { name: "A", lo: EPT_A, hi: 0 },
  { name: "D", lo: EPT_D, hi: 0 },
  { name: "XU", lo: EPT_XU, hi: 0 },
  { name: "IGN11", lo: EPT_IGN11, hi: 0 },
  { name: "ADDR", lo: EPT_ADDR_LO, hi: EPT_ADDR_HI },
  { name: "IGN", lo: 0, hi: EPT_IGN_HI },
  { name: "SVE", lo: 0, hi: EPT_SVE_HI },
];

const TWO20 = 1048576;

export function eptFrame(lo: number, hi: number): number {
  return (hi & EPT_ADDR_HI) * TWO20 + (lo >>> 12);
}

export function eptLeafFrame(lo: number, hi: number, level: number): number {
  const high = (hi & EPT_ADDR_HI) * TWO20;
  if (level === 1) return high + (lo >>> 12);
  if (level === 2) return high + (lo >>> 21) * 512;
  return high + (lo >>> 30) * 262144;
}

/** lo half of a non-leaf EPT entry (RWX, as KVM builds them: spte.h make_nonleaf_spte). */
export function makeEptTableLo(frame: number): number {
  return ((frame % TWO20) * 4096 + EPT_RWX) >>> 0;
}

/** lo half of a leaf: permissions, memory type, ignore-PAT, large bit at level > 1. */
export function makeEptLeafLo(
  frame: number,
  level: number,
  rwx: number,
  memType: number,
  ipat: boolean,
): number {
  let lo = (frame % TWO20) * 4096 + (rwx & 7) + ((memType & 7) << EPT_MT_SHIFT);
  if (ipat) lo += EPT_IPAT;
  if (level > 1) lo += EPT_LARGE;
  return lo >>> 0;
}

export function makeEptHi(frame: number): number {
  return Math.floor(frame / TWO20) >>> 0;
}

export const eptPresent = (lo: number): boolean => (lo & EPT_RWX) !== 0;
export const eptReadable = (lo: number): boolean => (lo & EPT_R) !== 0;
export const eptWritable = (lo: number): boolean => (lo & EPT_W) !== 0;
export const eptExecutable = (lo: number): boolean => (lo & EPT_X) !== 0;
export const eptLarge = (lo: number): boolean => (lo & EPT_LARGE) !== 0;
export const eptMemType = (lo: number): number => (lo & EPT_MT_MASK) >>> EPT_MT_SHIFT;
/** W without R: a misconfiguration (the MMIO spte pattern when X is also set). */
export const eptIsWriteOnly = (lo: number): boolean => (lo & 3) === EPT_W;
/** Memory types 2, 3 and 7 are reserved in a leaf. */
export const eptBadMemType = (lo: number): boolean => {
  const mt = (lo & EPT_MT_MASK) >>> EPT_MT_SHIFT;
  return mt === 2 || mt === 3 || mt === 7;
};

/** EPTP as a (lo, hi) pair: WB memory type, walk length, A/D enable, root frame. */
export function makeEptp(
  rootFrame: number,
  levels: 4 | 5,
  ad: boolean,
): { lo: number; hi: number } {
  const lo = (rootFrame % TWO20) * 4096 + MT_WB + ((levels - 1) << 3) + (ad ? 1 << 6 : 0);
  return { lo: lo >>> 0, hi: Math.floor(rootFrame / TWO20) >>> 0 };
}

/** Fields of an EPTP, decoded. */
export function decodeEptp(
  lo: number,
  hi: number,
): {
  memType: number;
  levels: number;
  ad: boolean;
  rootFrame: number;
} {
  return {
    memType: lo & 7,
    levels: ((lo >>> 3) & 7) + 1,
    ad: (lo & (1 << 6)) !== 0,
    rootFrame: eptFrame(lo, hi),
  };
}

/**
 * Exit qualification of an EPT violation (SDM vol. 3C 28.2.1, table 28-7): bits 0..2 the access
 * (read, write, fetch), bits 3..5 the AND of R, W, X over the entries used (0 when not present),
 * bit 7 guest-linear address valid, bit 8 (with bit 7) 1 = the access was to the translated
 * linear address, 0 = to a guest paging-structure entry.
 */
export const QUAL_READ = 1 << 0;
export const QUAL_WRITE = 1 << 1;
export const QUAL_FETCH = 1 << 2;
export const QUAL_READABLE = 1 << 3;
export const QUAL_WRITABLE = 1 << 4;
export const QUAL_EXECUTABLE = 1 << 5;
export const QUAL_GLA_VALID = 1 << 7;
export const QUAL_GLA_TRANSLATION = 1 << 8;

export function eptFlagNames(lo: number, hi: number, leaf: boolean): string[] {
  const names: string[] = [];
  if (lo & EPT_R) names.push("R");
  if (lo & EPT_W) names.push("W");
  if (lo & EPT_X) names.push("X");
  if (leaf && eptPresent(lo)) {
    names.push(`MT=${["UC", "WC", "2", "3", "WT", "WP", "WB", "7"][eptMemType(lo)]}`);
    if (lo & EPT_IPAT) names.push("IPAT");
  }
  if (lo & EPT_LARGE) names.push("LARGE");
  if (lo & EPT_A) names.push("A");
  if (lo & EPT_D) names.push("D");
  if (hi & EPT_SVE_HI) names.push("SVE");
  return names;
}
