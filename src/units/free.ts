/**
 * free(1) as procps-ng 4.x computes and prints it.
 *
 * Figures (procps-ng library/meminfo.c, meminfo_read_failed):
 *   available = MemAvailable, or MemFree when MemAvailable is 0/absent (kernels < 3.14) or
 *               larger than MemTotal (containers)
 *   used      = MemTotal - available (falls back to MemTotal - MemFree if negative)
 *   buff/cache= Buffers + Cached + SReclaimable
 *   shared    = Shmem
 *   swap used = SwapTotal - SwapFree
 * Printing (procps-ng src/free.c scale_size): sizes are KiB from /proc/meminfo, bytes = kib*1024;
 *   default (-k)  bytes / 1024 (1000 with --si)
 *   -b            bytes
 *   -m/-g/-t/-p   (long)(bytes / base^(exponent-1)), truncated
 *   -h            "<bytes>B" if it fits 4 chars, else for K, M, G, T, P: "%.1f<u>i" of
 *                 (float)(bytes/base^i) if it fits 5 chars (4 with --si, no "i"), else "%ld<u>i".
 * Columns: "%-9s" label, "%11s" first value, " %11s" the rest (free.c print_head_col).
 */

export interface MemFigures {
  total: number;
  used: number;
  free: number;
  shared: number;
  buffCache: number;
  available: number;
  swapTotal: number;
  swapUsed: number;
  swapFree: number;
}

/** The fields free(1) reads, in KiB; missing ones are 0 as procps treats them. */
export interface MeminfoForFree {
  MemTotal?: number;
  MemFree?: number;
  MemAvailable?: number;
  Buffers?: number;
  Cached?: number;
  SReclaimable?: number;
  Shmem?: number;
  SwapTotal?: number;
  SwapFree?: number;
}

/** Compute free(1)'s figures (KiB) exactly as procps-ng 4 does. */
export function freeFigures(m: MeminfoForFree): MemFigures {
  const total = m.MemTotal ?? 0;
  const memFree = m.MemFree ?? 0;
  let available = m.MemAvailable ?? 0;
  if (available === 0) available = memFree;
  if (available > total) available = memFree;
  let used = total - available;
  if (used < 0) used = total - memFree;
  const swapTotal = m.SwapTotal ?? 0;
  const swapFree = m.SwapFree ?? 0;
  return {
    total,
    used,
    free: memFree,
    shared: m.Shmem ?? 0,
    buffCache: (m.Buffers ?? 0) + (m.Cached ?? 0) + (m.SReclaimable ?? 0),
    available,
    swapTotal,
    swapUsed: swapFree < swapTotal ? swapTotal - swapFree : 0,
    swapFree,
  };
}

export type FreeUnit = "b" | "k" | "m" | "g" | "t" | "p" | "h";

export interface FreeScale {
  unit: FreeUnit;
  /** --si: powers of 1000 */
  si?: boolean;
}

const EXPONENT: Record<Exclude<FreeUnit, "h">, number> = { b: 1, k: 0, m: 3, g: 4, t: 5, p: 6 };

/** C printf("%.1f", (double)(float)x): round the float's exact value to 1 decimal, ties to even. */
export function printfFloat1(x: number): string {
  const f = Math.fround(x);
  const scaled = f * 10; // exact in a double: a float has 24 significant bits
  const floor = Math.floor(scaled);
  const frac = scaled - floor;
  let r: number;
  if (frac > 0.5) r = floor + 1;
  else if (frac < 0.5) r = floor;
  else r = floor % 2 === 0 ? floor : floor + 1;
  const intPart = Math.trunc(r / 10);
  const dec = Math.abs(r % 10);
  return `${intPart}.${dec}`;
}

/** One value as free(1) prints it. `kib` is a /proc/meminfo figure. */
export function freeScale(kib: number, scale: FreeScale): string {
  const base = scale.si ? 1000 : 1024;
  const bytes = kib * 1024;
  if (scale.unit !== "h") {
    const e = EXPONENT[scale.unit];
    if (e === 0) return String(Math.trunc(bytes / base));
    if (e === 1) return String(bytes);
    return String(Math.trunc(bytes / base ** (e - 1)));
  }
  const b = `${bytes}B`;
  if (b.length <= 4) return b;
  const up = ["K", "M", "G", "T", "P"];
  const width = scale.si ? 4 : 5;
  const suffix = scale.si ? "" : "i";
  let s = b;
  for (let i = 0; i < up.length; i++) {
    const v = bytes / base ** (i + 1);
    s = `${printfFloat1(v)}${up[i]}${suffix}`;
    if (s.length <= width) return s;
    s = `${Math.trunc(v)}${up[i]}${suffix}`;
    if (s.length <= width) return s;
  }
  return s;
}

/** The table `free` prints (without -w/-t/-l), byte for byte. */
export function freeTable(f: MemFigures, scale: FreeScale): string {
  const col = (v: number, first: boolean) =>
    first ? freeScale(v, scale).padStart(11) : ` ${freeScale(v, scale).padStart(11)}`;
  const head = "               total        used        free      shared  buff/cache   available";
  const mem =
    "Mem:".padEnd(9) +
    col(f.total, true) +
    col(f.used, false) +
    col(f.free, false) +
    col(f.shared, false) +
    col(f.buffCache, false) +
    col(f.available, false);
  const swap =
    "Swap:".padEnd(9) + col(f.swapTotal, true) + col(f.swapUsed, false) + col(f.swapFree, false);
  return `${head}\n${mem}\n${swap}\n`;
}
