/**
 * A seeded PRNG: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, as in PractRand),
 * 32-bit state words, period >= 2^32, passes PractRand/BigCrush. Seeded from one number through
 * splitmix32 so that nearby seeds give unrelated streams. All state lives on the instance.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform integer in [0, n) for n <= 2^53 (two draws when n > 2^32). */
  below(n: number): number {
    if (n <= 4294967296) return Math.floor(this.float() * n);
    return Math.floor(((this.u32() * 4294967296 + this.u32()) / 2 ** 64) * n);
  }

  /** Derive an independent generator (for a VM, a process). */
  fork(salt: number): Prng {
    return new Prng((this.u32() ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  }
}

/** A 32-bit integer hash (lowbias32 by Chris Wellons); used for content tokens. */
export function hash32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Hash of two numbers (each up to 2^53) into 32 bits. */
export function hash2(a: number, b: number): number {
  const alo = a >>> 0;
  const ahi = Math.floor(a / 4294967296) >>> 0;
  const blo = b >>> 0;
  const bhi = Math.floor(b / 4294967296) >>> 0;
  return hash32(hash32(hash32(hash32(alo) ^ ahi) ^ blo) ^ bhi);
}
