/**
 * Sizes: libvirt's scaled integers, the kernel's "kB", and procps free(1) rounding.
 *
 * libvirt (src/util/virutil.c virScaleInteger, docs/formatdomain.rst "Memory Allocation"):
 *   the unit is matched case-insensitively; "b", "byte", "bytes" = 1; a single letter or a
 *   letter + "iB" is a power of 1024 (k, KiB, M, MiB, ...); a letter + "B" is a power of 1000
 *   (KB, MB, ...). Letters k, m, g, t, p, e. No unit means the caller's default (KiB for memory).
 * virDomainParseMemory (src/conf/domain_conf.c) then rounds the byte count up to whole KiB and
 * caps it at LLONG_MAX bytes.
 * Sizes are held as JS numbers of bytes: exact up to 2^53 bytes (8 PiB); anything larger is
 * rejected with an error instead of being silently rounded.
 */
import { KvmemError } from "./errors.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

const LETTERS = ["k", "m", "g", "t", "p", "e"] as const;

/** The libvirt unit names and their factors, as formatdomain.rst lists them. */
export const LIBVIRT_UNITS: ReadonlyArray<{ names: string[]; factor: bigint }> = [
  { names: ["b", "bytes"], factor: 1n },
  { names: ["KB"], factor: 1000n },
  { names: ["k", "KiB"], factor: 1024n },
  { names: ["MB"], factor: 1000n ** 2n },
  { names: ["M", "MiB"], factor: 1024n ** 2n },
  { names: ["GB"], factor: 1000n ** 3n },
  { names: ["G", "GiB"], factor: 1024n ** 3n },
  { names: ["TB"], factor: 1000n ** 4n },
  { names: ["T", "TiB"], factor: 1024n ** 4n },
  { names: ["PB"], factor: 1000n ** 5n },
  { names: ["P", "PiB"], factor: 1024n ** 5n },
  { names: ["EB"], factor: 1000n ** 6n },
  { names: ["E", "EiB"], factor: 1024n ** 6n },
];

const ACCEPTED = "b, bytes, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB";

/** Factor of a libvirt unit suffix, as virScaleInteger decides it; undefined if unknown. */
export function libvirtUnitFactor(unit: string): bigint | undefined {
  const u = unit.toLowerCase();
  if (u === "b" || u === "byte" || u === "bytes") return 1n;
  const idx = LETTERS.indexOf(u[0] as (typeof LETTERS)[number]);
  if (idx < 0) return undefined;
  let base: bigint;
  if (u.length === 1 || u.slice(1) === "ib") base = 1024n;
  else if (u.length === 2 && u[1] === "b") base = 1000n;
  else return undefined;
  return base ** BigInt(idx + 1);
}

export interface SizeContext {
  /** what is being read: a file, a flag */
  input: string;
  /** where in it */
  place?: string;
}

const LLONG_MAX = (1n << 63n) - 1n;

/**
 * Parse a non-negative integer with a libvirt unit into bytes (virScaleInteger).
 * `defaultFactor` applies when `unit` is empty or undefined.
 */
export function parseScaled(
  value: string,
  unit: string | undefined,
  defaultFactor: bigint,
  ctx: SizeContext,
  limit: bigint = LLONG_MAX,
): number {
  const v = value.trim();
  if (!/^[0-9]+$/.test(v)) {
    throw new KvmemError({
      code: "E_NUMBER",
      input: ctx.input,
      place: ctx.place,
      message: `'${value}' is not a non-negative integer`,
      hint: "a decimal number such as 2097152",
    });
  }
  let factor = defaultFactor;
  if (unit !== undefined && unit !== "") {
    const f = libvirtUnitFactor(unit);
    if (f === undefined) {
      throw new KvmemError({
        code: "E_UNIT",
        input: ctx.input,
        place: ctx.place,
        message: `unknown unit '${unit}'`,
        hint: `libvirt accepts ${ACCEPTED}`,
      });
    }
    factor = f;
  }
  const bytes = BigInt(v) * factor;
  if (bytes > limit) {
    throw new KvmemError({
      code: "E_NUMBER",
      input: ctx.input,
      place: ctx.place,
      message: `value too large: ${v}${unit ?? ""}`,
      hint: `at most ${limit} bytes`,
    });
  }
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KvmemError({
      code: "E_NUMBER",
      input: ctx.input,
      place: ctx.place,
      message: `value too large for kvmem: ${v}${unit ?? ""}`,
      hint: "at most 2^53 bytes (8 PiB)",
    });
  }
  return Number(bytes);
}

/** virDomainParseMemory: a scaled value (default KiB) rounded up to whole KiB. Returns KiB. */
export function parseLibvirtMemoryKiB(
  value: string,
  unit: string | undefined,
  ctx: SizeContext,
): number {
  const bytes = parseScaled(value, unit, 1024n, ctx);
  return Math.ceil(bytes / 1024);
}

/**
 * Parse a size written on a command line or in a scenario: "2G", "2 GiB", "2048MiB", "4K",
 * "512" (default unit applies). Units as libvirt's.
 */
export function parseSize(text: string, ctx: SizeContext, defaultFactor = 1024n): number {
  const m = /^\s*([0-9]+)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) {
    throw new KvmemError({
      code: "E_UNIT",
      input: ctx.input,
      place: ctx.place,
      message: `'${text}' is not a size`,
      hint: `a whole number with an optional unit (${ACCEPTED}), e.g. 2GiB`,
    });
  }
  return parseScaled(m[1], m[2], defaultFactor, ctx);
}

/** Exact binary formatting: "2 GiB", "4 KiB", "1536 MiB", "100 B". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  let v = bytes;
  while (i < units.length - 1 && v >= 1024 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}

/** Approximate human formatting with one decimal: "1.5 GiB", "23.6 GiB". */
export function formatBytesHuman(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  let v = Math.abs(bytes);
  while (i < units.length - 1 && v >= 1024) {
    v /= 1024;
    i++;
  }
  const sign = bytes < 0 ? "-" : "";
  const s = i === 0 || Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${sign}${s} ${units[i]}`;
}

/** Short page-size name as the kernel and libvirt users say it: 4K, 2M, 1G. */
export function pageSizeName(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB}G`;
  if (bytes % MiB === 0) return `${bytes / MiB}M`;
  if (bytes % KiB === 0) return `${bytes / KiB}K`;
  return `${bytes}B`;
}
