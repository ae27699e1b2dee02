/**
 * Synthetic access patterns over a footprint of guest virtual memory, the classic ones of memory
 * system studies: sequential, strided, uniform random, Zipfian hot set (YCSB's generator, Gray et
 * al., "Quickly generating billion-record synthetic databases", SIGMOD 1994, with YCSB's
 * scrambling of ranks over the footprint), and pointer chase (a dependent walk visiting every
 * line once per lap in a pseudo-random order: a full-period LCG modulo 2^k, Hull-Dobell theorem,
 * with cycle walking to stay inside the footprint). Each yields line-aligned addresses of
 * `granularity` bytes; a read/write mix, several guest processes switched every `switchEvery`
 * accesses, and I/O exits at a rate per million accesses are layered on top by `SyntheticWorkload`.
 */
import {
  ACC_READ,
  ACC_WRITE,
  EV_EXIT,
  EV_SWITCH,
  type EventBatch,
  EXIT_IO,
  type Workload,
} from "./batch.js";
import { Prng } from "./prng.js";

export type PatternName = "sequential" | "strided" | "uniform" | "zipf" | "chase";

export interface PatternSpec {
  pattern: PatternName;
  /** bytes of guest virtual memory each process touches */
  footprint: number;
  /** first address of the footprint in each process */
  base: number;
  /** access size and alignment in bytes (64: a cache line) */
  granularity: number;
  /** strided: bytes between accesses */
  stride: number;
  /** zipf: skew (YCSB default 0.99) */
  theta: number;
  /** total accesses (all processes) */
  accesses: number;
  /** fraction of accesses that are writes */
  writeRatio: number;
  processes: number;
  /** accesses between context switches (0: never) */
  switchEvery: number;
  /** VM exits for I/O per million accesses */
  ioExitsPerMillion: number;
  seed: number;
}

/** Index (in lines) generators: each returns the next line number in [0, lines). */
interface LineSource {
  next(): number;
}

class Sequential implements LineSource {
  private i = 0;
  constructor(private readonly lines: number) {}
  next(): number {
    const v = this.i;
    this.i = this.i + 1 === this.lines ? 0 : this.i + 1;
    return v;
  }
}

class Strided implements LineSource {
  private pos = 0;
  private lap = 0;
  constructor(
    private readonly lines: number,
    private readonly step: number,
  ) {}
  next(): number {
    const v = this.pos + this.lap;
    this.pos += this.step;
    if (this.pos >= this.lines) {
      this.pos = 0;
      this.lap = (this.lap + 1) % this.step; // shift by one line each lap to cover all lines
    }
    return v % this.lines;
  }
}

class Uniform implements LineSource {
  constructor(
    private readonly lines: number,
    private readonly rng: Prng,
  ) {}
  next(): number {
    return this.rng.below(this.lines);
  }
}

/** YCSB ZipfianGenerator over `items`, ranks scrambled over the footprint by an affine bijection. */
export class Zipf implements LineSource {
  private readonly zetan: number;
  private readonly alpha: number;
  private readonly eta: number;
  private readonly half: number;
  private readonly mul: number;
  private readonly add: number;

  constructor(
    private readonly items: number,
    theta: number,
    private readonly rng: Prng,
  ) {
    const z = zeta(items, theta);
    this.zetan = z;
    const zeta2 = 1 + 1 / 2 ** theta;
    this.alpha = 1 / (1 - theta);
    this.eta = (1 - (2 / items) ** (1 - theta)) / (1 - zeta2 / z);
    this.half = 1 + 0.5 ** theta;
    // an odd multiplier coprime with items scrambles ranks (hot items spread over the footprint)
    let m = (Math.floor(items * 0.6180339887) | 1) % Math.max(1, items);
    while (m > 1 && gcd(m, items) !== 1) m -= 2;
    this.mul = Math.max(1, m);
    this.add = Math.floor(items / 3);
  }

  /** the rank (0 = hottest) */
  rank(): number {
    const u = this.rng.float();
    const uz = u * this.zetan;
    if (uz < 1) return 0;
    if (uz < this.half) return 1;
    return Math.min(
      this.items - 1,
      Math.floor(this.items * (this.eta * u - this.eta + 1) ** this.alpha),
    );
  }

  next(): number {
    return (this.rank() * this.mul + this.add) % this.items;
  }
}

/**
 * zeta(n, theta) = sum 1/i^theta for i = 1..n: exact up to 2^16 terms, then the Euler-Maclaurin
 * tail (integral + endpoint and first-derivative corrections), relative error far below 1e-9.
 */
export function zeta(n: number, theta: number): number {
  const m = Math.min(n, 1 << 16);
  let z = 0;
  for (let i = 1; i <= m; i++) z += 1 / i ** theta;
  if (n === m) return z;
  const f = (x: number) => x ** -theta;
  const df = (x: number) => -theta * x ** (-theta - 1);
  const integral =
    theta === 1 ? Math.log(n / m) : (n ** (1 - theta) - m ** (1 - theta)) / (1 - theta);
  return z + integral + (f(n) - f(m)) / 2 + (df(n) - df(m)) / 12;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Full-period LCG over 2^k >= lines (a = 4m+1, c odd: Hull-Dobell), skipping values >= lines. */
class Chase implements LineSource {
  private x: number;
  private readonly mask: number;
  private readonly a: number;
  private readonly c: number;
  constructor(
    private readonly lines: number,
    rng: Prng,
  ) {
    let k = 1;
    while (2 ** k < lines) k++;
    this.mask = 2 ** k - 1;
    this.a = ((rng.u32() & 0x3ffff) << 2) + 1;
    this.c = (rng.u32() & 0x3ffff) * 2 + 1;
    this.x = rng.below(lines);
  }
  next(): number {
    do {
      // (a*x + c) mod 2^k, exact in doubles for k <= 32 and a < 2^20
      this.x = (this.a * this.x + this.c) % (this.mask + 1);
    } while (this.x >= this.lines);
    return this.x;
  }
}

export function lineSource(spec: PatternSpec, rng: Prng): LineSource {
  const lines = Math.max(1, Math.floor(spec.footprint / spec.granularity));
  switch (spec.pattern) {
    case "sequential":
      return new Sequential(lines);
    case "strided":
      return new Strided(lines, Math.max(1, Math.round(spec.stride / spec.granularity)));
    case "uniform":
      return new Uniform(lines, rng);
    case "zipf":
      return new Zipf(lines, spec.theta, rng);
    case "chase":
      return new Chase(lines, rng);
  }
}

export class SyntheticWorkload implements Workload {
  readonly name: string;
  readonly processes: number;
  private readonly rng: Prng;
  private readonly sources: LineSource[];
  private done = 0;
  private proc = 0;
  private sinceSwitch = 0;
  private readonly exitEvery: number;
  private sinceExit = 0;
  private started = false;

  constructor(private readonly spec: PatternSpec) {
    this.name = spec.pattern;
    this.processes = Math.max(1, spec.processes);
    this.rng = new Prng(spec.seed);
    this.sources = [];
    for (let p = 0; p < this.processes; p++) this.sources.push(lineSource(spec, this.rng.fork(p)));
    this.exitEvery =
      spec.ioExitsPerMillion > 0 ? Math.max(1, Math.round(1e6 / spec.ioExitsPerMillion)) : 0;
  }

  fill(batch: EventBatch, max: number): number {
    const s = this.spec;
    const start = batch.count;
    const limit = Math.min(batch.capacity, start + max);
    if (!this.started && this.processes > 1 && batch.count < limit) {
      batch.push(EV_SWITCH, 0, 0);
      this.started = true;
    }
    while (batch.count < limit && this.done < s.accesses) {
      if (s.switchEvery > 0 && this.processes > 1 && this.sinceSwitch >= s.switchEvery) {
        this.proc = (this.proc + 1) % this.processes;
        this.sinceSwitch = 0;
        batch.push(EV_SWITCH, 0, this.proc);
        continue;
      }
      if (this.exitEvery > 0 && this.sinceExit >= this.exitEvery) {
        this.sinceExit = 0;
        batch.push(EV_EXIT, 0, EXIT_IO);
        continue;
      }
      const line = this.sources[this.proc].next();
      const kind = s.writeRatio > 0 && this.rng.float() < s.writeRatio ? ACC_WRITE : ACC_READ;
      batch.push(kind, s.base + line * s.granularity, this.proc);
      this.done++;
      this.sinceSwitch++;
      this.sinceExit++;
    }
    return batch.count - start;
  }
}
