/**
 * Addresses: hex in and out, canonical checks, page numbers, and the kernel's address words.
 *
 * Physical and guest-physical addresses (gpa, hpa; MAXPHYADDR <= 52, Intel SDM vol. 3 4.1.4) and
 * host virtual addresses of a user process (hva < 2^47 or 2^56) fit a JS number exactly. A guest
 * virtual address (gva) may be a 64-bit upper-half kernel address (0xffff888000001000) that does
 * not: gvas are parsed as BigInt at the edge and split into a virtual page number (vpn, at most 45
 * bits for 57-bit addresses, a number) and a page offset; hot paths use those.
 *
 * Canonical (Intel SDM vol. 1 3.3.7.1): bits 63..(N-1) all equal bit N-1, N = 48 (4-level) or
 * 57 (5-level, LA57).
 */
import { KvmemError } from "./errors.js";

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Guest physical address. */
export type Gpa = Brand<number, "Gpa">;
/** Host virtual address (in the VMM process). */
export type Hva = Brand<number, "Hva">;
/** Host physical address. */
export type Hpa = Brand<number, "Hpa">;
/** Guest frame number. */
export type Gfn = Brand<number, "Gfn">;
/** Host page frame number. */
export type Pfn = Brand<number, "Pfn">;
/** Guest virtual address: 64 bits, so a bigint at the edges. */
export type Gva = Brand<bigint, "Gva">;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

export const asGpa = (n: number) => n as Gpa;
export const asHva = (n: number) => n as Hva;
export const asHpa = (n: number) => n as Hpa;
export const asGfn = (n: number) => n as Gfn;
export const asPfn = (n: number) => n as Pfn;
export const asGva = (n: bigint) => BigInt.asUintN(64, n) as Gva;

export const gpaToGfn = (gpa: Gpa): Gfn => Math.floor(gpa / PAGE_SIZE) as Gfn;
export const gfnToGpa = (gfn: Gfn): Gpa => (gfn * PAGE_SIZE) as Gpa;
export const hpaToPfn = (hpa: Hpa): Pfn => Math.floor(hpa / PAGE_SIZE) as Pfn;
export const pfnToHpa = (pfn: Pfn): Hpa => (pfn * PAGE_SIZE) as Hpa;
export const pageOffset = (addr: number): number => addr % PAGE_SIZE;

/** Align `n` down/up to a power-of-two `align` (numbers up to 2^53). */
export const alignDown = (n: number, align: number): number => n - (n % align);
export const alignUp = (n: number, align: number): number => {
  const r = n % align;
  return r === 0 ? n : n + (align - r);
};
export const isAligned = (n: number, align: number): boolean => n % align === 0;

export interface AddressContext {
  input: string;
  place?: string;
}

/**
 * Parse an address: "0x7f00_0000_1000", "7f0000001000" (hex by default), or "0d1234" / a plain
 * decimal with `decimal: true`. Underscores are separators. Returns a 64-bit BigInt.
 */
export function parseAddress(text: string, ctx: AddressContext): bigint {
  const t = text.trim().replace(/_/g, "");
  const m = /^(0[xX])?([0-9a-fA-F]+)$/.exec(t);
  if (!m || text.trim().startsWith("_") || text.includes("__")) {
    throw new KvmemError({
      code: "E_ADDRESS",
      input: ctx.input,
      place: ctx.place,
      message: `'${text}' is not an address`,
      hint: "hex digits with an optional 0x and _ separators, e.g. 0xffff_8880_0000_1000",
    });
  }
  const v = BigInt(`0x${m[2]}`);
  if (v >= 1n << 64n) {
    throw new KvmemError({
      code: "E_ADDRESS",
      input: ctx.input,
      place: ctx.place,
      message: `'${text}' is wider than 64 bits`,
      hint: "at most 16 hex digits",
    });
  }
  return v;
}

/** Parse a physical address (must fit 52 bits) into a number. */
export function parsePhysAddress(text: string, ctx: AddressContext): number {
  const v = parseAddress(text, ctx);
  if (v >= 1n << 52n) {
    throw new KvmemError({
      code: "E_ADDRESS",
      input: ctx.input,
      place: ctx.place,
      message: `'${text}' is beyond the 52-bit physical address space`,
      hint: "a physical address below 0x10_0000_0000_0000",
    });
  }
  return Number(v);
}

/** Is a 64-bit virtual address canonical for `bits` (48 or 57) implemented bits? */
export function isCanonical(va: bigint, bits: 48 | 57): boolean {
  const top = va >> BigInt(bits - 1); // bits 63..bits-1
  const ones = (1n << BigInt(64 - bits + 1)) - 1n;
  return top === 0n || top === ones;
}

/** Sign-extend the low `bits` bits of an address to a canonical 64-bit address. */
export function canonicalize(va: bigint, bits: 48 | 57): bigint {
  return BigInt.asUintN(64, BigInt.asIntN(bits, va));
}

/** Hex as the kernel prints addresses: 0x-prefixed, lower case, optional `_` every 4 digits. */
export function formatHex(
  v: number | bigint,
  opts: { width?: number; group?: boolean } = {},
): string {
  let s = v.toString(16);
  if (opts.width && s.length < opts.width) s = s.padStart(opts.width, "0");
  if (opts.group) {
    const parts: string[] = [];
    for (let i = s.length; i > 0; i -= 4) parts.unshift(s.slice(Math.max(0, i - 4), i));
    s = parts.join("_");
  }
  return `0x${s}`;
}

/** Split a 64-bit virtual address into (vpn, offset) numbers for the hot path. */
export function splitVa(va: bigint): { vpn: number; offset: number } {
  // keep only the implemented 57 bits; vpn has at most 45 bits, exact in a number
  const low = BigInt.asUintN(57, va);
  return { vpn: Number(low >> 12n), offset: Number(low & 0xfffn) };
}
