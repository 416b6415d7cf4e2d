/**
 * Randomness for the exact samplers of engine/dp: uniform integers in
 * [0, n) by rejection sampling (no modulo bias) from a stream of random
 * 32-bit words.
 *
 * - {@link cryptoUniformSource} (the default of every sampler) draws its words
 *   from node:crypto's CSPRNG (`randomFillSync`, the generator behind
 *   `randomBytes` and `randomInt`).
 * - {@link seededUniformSource} is for tests only: the ChaCha20 keystream
 *   (RFC 8439, node:crypto's `chacha20` cipher) under a key derived from a
 *   seed, so a statistical test replays one outcome. Noise drawn from it
 *   protects nothing: anyone with the seed knows it.
 * - {@link createUniformSource} turns any byte source into a UniformSource.
 *
 * The rule: take b = bitLength(n − 1) random bits and redraw while the
 * value is ≥ n (each try succeeds with probability > 1/2; no modulo, so no
 * bias). For b ≤ 32 the bits come from a reservoir word, low bits first (a
 * request the word cannot fill takes a fresh word; unused bits are
 * independent, so dropping them changes nothing). For b > 32: the top
 * b − 32·(m−1) bits of the first of m = ⌈b/32⌉ fresh words, then whole
 * words, most significant first. `below` (Number) and `belowBig` (BigInt)
 * apply the same rule, so for the same n they consume the same words and
 * return the same value: the samplers' Number fast paths and their BigInt
 * reference paths stay in lock step on a seeded source (test/dp-samplers.test.ts checks
 * it). n = 1 returns 0 and draws nothing.
 */
import { createCipheriv, createHash, randomFillSync } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";

/** A source of uniform integers, as the samplers consume it. */
export interface UniformSource {
  /** A uniformly random integer in [0, n), for an integer 1 ≤ n ≤ 2^53. */
  below(n: number): number;
  /** A uniformly random integer in [0, n), for n ≥ 1; the same draws as `below` when n ≤ 2^53. */
  belowBig(n: bigint): bigint;
}

/** Bytes drawn from the byte source at a time. */
const BUFFER_BYTES = 4096;
const TWO32 = 4294967296;
const TWO53 = 2n ** 53n;
const TWO53N = 2 ** 53;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

class WordStream implements UniformSource {
  private readonly bytes: Uint8Array;
  private readonly words: Uint32Array;
  private pos: number;
  private reservoir = 0;
  private avail = 0;

  constructor(private readonly fill: (out: Uint8Array) => void, bufferBytes: number) {
    this.bytes = new Uint8Array(bufferBytes);
    this.words = new Uint32Array(this.bytes.buffer);
    this.pos = this.words.length;
  }

  private refill(): void {
    this.fill(this.bytes);
    // Words are little-endian whatever the platform, so a seed replays everywhere.
    if (!LITTLE_ENDIAN) for (let i = 0; i < this.words.length; i++) {
      const w = this.words[i] ?? 0;
      this.words[i] = (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;
    }
    this.pos = 0;
  }

  word(): number {
    if (this.pos === this.words.length) this.refill();
    return this.words[this.pos++] ?? 0;
  }

  /** The next `bits` (1 … 32) random bits, low bits of the reservoir word first. */
  private bitsOf(bits: number): number {
    if (this.avail < bits) {
      this.reservoir = this.word();
      this.avail = 32;
    }
    const v = bits === 32 ? this.reservoir : this.reservoir & ((1 << bits) - 1);
    this.reservoir = bits === 32 ? 0 : this.reservoir >>> bits;
    this.avail -= bits;
    return v >>> 0;
  }

  below(n: number): number {
    if (n <= TWO32) {
      if (n === 1) return 0;
      if (!(n >= 1) || !Number.isInteger(n)) throw new InvalidArgumentError("below: the bound must be an integer ≥ 1");
      const bits = 32 - Math.clz32(n - 1);
      for (;;) {
        const v = this.bitsOf(bits);
        if (v < n) return v;
      }
    }
    if (!Number.isInteger(n) || n > TWO53N) throw new InvalidArgumentError("below: the bound must be an integer ≤ 2^53; use belowBig");
    const shift = 64 - bitLength(n - 1); // of the first word keep its top (bits − 32) bits
    for (;;) {
      const v = (this.word() >>> shift) * TWO32 + this.word();
      if (v < n) return v;
    }
  }

  belowBig(n: bigint): bigint {
    if (n <= TWO53) {
      if (n < 1n) throw new InvalidArgumentError(`belowBig: the bound must be ≥ 1`);
      return BigInt(this.below(Number(n)));
    }
    const bits = bitLengthBig(n - 1n);
    const m = Math.ceil(bits / 32);
    const shift = 32 * m - bits;
    for (;;) {
      let v = BigInt(this.word() >>> shift);
      for (let i = 1; i < m; i++) v = (v << 32n) | BigInt(this.word());
      if (v < n) return v;
    }
  }
}

function bitLength(x: number): number {
  let b = 0;
  while (x >= TWO32) {
    x = Math.floor(x / TWO32);
    b += 32;
  }
  return b + (32 - Math.clz32(x));
}

function bitLengthBig(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** A UniformSource over any byte source: `fill(out)` must fill `out` with uniformly random bytes. */
export function createUniformSource(fill: (out: Uint8Array) => void, options?: { bufferBytes?: number }): UniformSource {
  const bufferBytes = options?.bufferBytes ?? BUFFER_BYTES;
  if (!Number.isSafeInteger(bufferBytes) || bufferBytes < 8 || bufferBytes % 4 !== 0) {
    throw new InvalidArgumentError("bufferBytes must be a multiple of 4, at least 8");
  }
  return new WordStream(fill, bufferBytes);
}

/** node:crypto's CSPRNG: the source every sampler uses unless given another. */
export function cryptoUniformSource(options?: { bufferBytes?: number }): UniformSource {
  return createUniformSource((out) => randomFillSync(out), { bufferBytes: options?.bufferBytes ?? 512 });
}

/**
 * FOR TESTS ONLY: a deterministic source, the ChaCha20 keystream under the
 * key SHA-256("umbra-dp-seed" ‖ seed) with a zero nonce and counter.
 */
export function seededUniformSource(seed: string | Uint8Array): UniformSource {
  const key = createHash("sha256").update("umbra-dp-seed").update(seed).digest();
  const cipher = createCipheriv("chacha20", key, new Uint8Array(16));
  const zeros = new Uint8Array(64 * 1024);
  return createUniformSource((out) => {
    for (let off = 0; off < out.length; off += zeros.length) {
      const len = Math.min(zeros.length, out.length - off);
      out.set(cipher.update(zeros.subarray(0, len)), off);
    }
  }, { bufferBytes: 64 * 1024 });
}
