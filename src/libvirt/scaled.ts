/**
 * libvirt's numbers: scaled integers with units, memory sizes in KiB, node bitmaps.
 *
 * How it works: a size is `<value>` plus an optional unit. libvirt reads the value with
 * virStrToLong_ullp (base 10, leading blanks allowed, no sign '-', nothing after the digits),
 * multiplies it by the unit's factor in virScaleInteger (src/util/virutil.c; the unit rules are
 * the ones src/units/size.ts `libvirtUnitFactor` implements) refusing results above a limit, and
 * virDomainParseMemory (src/conf/domain_conf.c) then rounds the bytes UP to whole KiB and refuses
 * KiB >= ceil(LLONG_MAX / 1024) = 2^53 ("size value too large"). So every memory size libvirt keeps
 * is an integer number of KiB below 2^53, exact in a JS number; the byte products are computed in
 * BigInt. Memory tunables (virDomainParseMemoryLimit) cap at VIR_DOMAIN_MEMORY_PARAM_UNLIMITED
 * (2^53 - 1 KiB), which means "unlimited". Node and CPU sets are virBitmapParse lists
 * ("0-3,^2,8"), items applied left to right, bits below VIR_DOMAIN_CPUMASK_LEN (16384).
 * These functions return results or error strings; they never throw.
 */
import { libvirtUnitFactor } from "../units/size.js";

export const LLONG_MAX = (1n << 63n) - 1n;
/** VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (include/libvirt/libvirt-domain.h): 2^53 - 1 KiB */
export const MEMORY_UNLIMITED_KIB = 9007199254740991;
/** VIR_DOMAIN_CPUMASK_LEN (src/conf/domain_conf.h) */
export const CPUMASK_LEN = 16384;

export type Scaled<T> = { ok: true; value: T } | { ok: false; error: string };

/** virStrToLong_ullp: base-10 unsigned, leading whitespace and '+' allowed, nothing after. */
export function parseULL(text: string): bigint | undefined {
  const m = /^[ \t\n\r\f\v]*\+?([0-9]+)$/.exec(text);
  if (!m) return undefined;
  const v = BigInt(m[1]);
  return v > (1n << 64n) - 1n ? undefined : v;
}

/**
 * virParseScaledValue + virScaleInteger: `value` with `unit` (undefined = no unit attribute)
 * to bytes; `defaultFactor` applies without a unit; refuses products above `limit`.
 */
export function scaleToBytes(
  value: string,
  unit: string | undefined,
  defaultFactor: bigint,
  limit: bigint,
  what: string,
): Scaled<bigint> {
  const v = parseULL(value);
  if (v === undefined) {
    return { ok: false, error: `Invalid value '${value}' for element or attribute '${what}'` };
  }
  let factor = defaultFactor;
  if (unit !== undefined && unit !== "") {
    const f = libvirtUnitFactor(unit);
    if (f === undefined) return { ok: false, error: `unknown suffix '${unit}'` };
    factor = f;
  }
  if (v > limit / factor) return { ok: false, error: `Value too large: ${value}${unit ?? ""}` };
  return { ok: true, value: v * factor };
}

/** virDomainParseMemory: default unit KiB, limit LLONG_MAX, rounded up to KiB, < 2^53 KiB. */
export function parseMemoryKiB(
  value: string,
  unit: string | undefined,
  what: string,
): Scaled<number> {
  const r = scaleToBytes(value, unit, 1024n, LLONG_MAX, what);
  if (!r.ok) return r;
  const kib = (r.value + 1023n) / 1024n;
  if (kib >= (LLONG_MAX + 1023n) / 1024n) return { ok: false, error: "size value too large" };
  return { ok: true, value: Number(kib) };
}

/**
 * virDomainParseMemoryLimit: memtune values. Limit (2^53-1) << 10 bytes, rounded up to KiB and
 * truncated to VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (virMemoryLimitTruncate). Returns KiB.
 */
export function parseMemoryLimitKiB(
  value: string,
  unit: string | undefined,
  what: string,
): Scaled<number> {
  const r = scaleToBytes(value, unit, 1024n, BigInt(MEMORY_UNLIMITED_KIB) << 10n, what);
  if (!r.ok) return r;
  const kib = Number((r.value + 1023n) / 1024n);
  return { ok: true, value: Math.min(kib, MEMORY_UNLIMITED_KIB) };
}

/**
 * The unit libvirt would print and the value in it, keeping `preferUnit` when the size is exact
 * in it (so an edit of `<memory unit='GiB'>2</memory>` to 4 GiB writes `4`, not `4194304`).
 */
export function expressKiB(
  kib: number,
  preferUnit: string | undefined,
): { value: string; unit: string } {
  if (preferUnit) {
    const f = libvirtUnitFactor(preferUnit);
    if (f !== undefined) {
      const bytes = BigInt(kib) * 1024n;
      if (bytes % f === 0n) return { value: String(bytes / f), unit: preferUnit };
    }
  }
  return { value: String(kib), unit: "KiB" };
}

/** virBitmapParse: "0-3,^2,8" -> sorted bit list; undefined with a message on bad syntax. */
export function parseBitmap(text: string, size = CPUMASK_LEN): Scaled<number[]> {
  const bad = { ok: false as const, error: `Failed to parse bitmap '${text}'` };
  const bits = new Set<number>();
  const items = text.split(",");
  for (const raw of items) {
    const item = raw.trim();
    const neg = item.startsWith("^");
    const body = neg ? item.slice(1).trim() : item;
    const m = /^([0-9]+)(?:\s*-\s*([0-9]+))?$/.exec(body);
    if (!m) return bad;
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (a >= size || b >= size || b < a) return bad;
    if (neg && m[2] !== undefined) return bad;
    for (let i = a; i <= b; i++) {
      if (neg) bits.delete(i);
      else bits.add(i);
    }
  }
  return { ok: true, value: [...bits].sort((x, y) => x - y) };
}

/** virBitmapFormat: sorted bits as "0-3,5". Empty set formats as "". */
export function formatBitmap(bits: readonly number[]): string {
  const s = [...new Set(bits)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

/** Plain-words size of a KiB count: "2 GiB", "1.5 GiB", "512 KiB". */
export function kibWords(kib: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = kib;
  let i = 0;
  while (i < units.length - 1 && v >= 1024) {
    v /= 1024;
    i++;
  }
  const fmt = (x: number) =>
    Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1).replace(/\.?0+$/, "");
  // 1023.97 TiB would print as "1024 TiB": say "1 PiB" instead
  if (Number(fmt(v)) >= 1024 && i < units.length - 1) return `${fmt(v / 1024)} ${units[i + 1]}`;
  return `${fmt(v)} ${units[i]}`;
}
