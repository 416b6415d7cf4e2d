/**
 * Pairwise masks that cancel in a sum: the plaintext arithmetic of each HE
 * scheme's slot space. No SEAL object, no key derivation: a protocol keys a
 * pseudorandom word stream per pair of parties (both members of the pair
 * derive the same one), one member adds the mask it draws, the other
 * subtracts it, and the masks cancel in the sum of every party's vector.
 *
 * - BFV (exact): per CRT plaintext prime p, `length` residues uniform mod p,
 *   drawn by rejection from 32-bit words ({@link uniformResidues}), added or
 *   subtracted mod p ({@link maskedResidues}): the masks cancel exactly, and
 *   one party's masked vector is uniform modulo every prime.
 * - CKKS (approximate): reals uniform in [−2^b, 2^b), multiples of 2^-32 (53
 *   random bits each, exact as doubles) ({@link uniformReals}), added as
 *   doubles ({@link maskedReals}): they cancel up to rounding, and hide a
 *   slot of magnitude ≤ 1 only statistically (distance 2^-b per slot).
 *
 * Reference: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017), §4 (pairwise masks).
 */
import { InvalidArgumentError } from "../errors.js";

/** A pseudorandom stream of uint32 words (a pair's PRG, keyed by the protocol). */
export type WordStream = () => number;

/** One pair's mask as one party sees it: the pair's stream, added (+1) or subtracted (−1). */
export interface PairMask {
  readonly stream: WordStream;
  readonly sign: 1 | -1;
}

/** CKKS masks' default half-width: reals uniform in [−2^20, 2^20). */
export const CKKS_MASK_BITS = 20;

/** `length` residues uniform mod `prime` (< 2^32), by rejection from the stream's words. */
export function uniformResidues(next: WordStream, prime: number, length: number): Uint32Array {
  if (!Number.isInteger(prime) || prime < 2 || prime > 2 ** 32) throw new InvalidArgumentError("a modulus must be an integer in [2, 2^32]");
  const limit = Math.floor(2 ** 32 / prime) * prime;
  const m = new Uint32Array(length);
  for (let i = 0; i < length; i++) {
    let u = next();
    while (u >= limit) u = next();
    m[i] = u % prime;
  }
  return m;
}

/** `length` reals uniform in [−2^bits, 2^bits), multiples of 2^(bits−52): 53 random bits each (two words). */
export function uniformReals(next: WordStream, bits: number, length: number): Float64Array {
  const out = new Float64Array(length);
  const shift = 2 ** (52 - bits);
  for (let i = 0; i < length; i++) {
    const u = (next() >>> 11) * 2 ** 32 + next(); // uniform in [0, 2^53)
    out[i] = (u - 2 ** 52) / shift;
  }
  return out;
}

/**
 * x + Σ sign · mask over every prime of a CRT basis: per prime p, the values
 * reduced mod p, then each pair's mask (drawn from its stream, prime by
 * prime, `values.length` residues each) added or subtracted mod p.
 */
export function maskedResidues(values: readonly bigint[], primes: readonly number[], masks: readonly PairMask[] = []): Uint32Array[] {
  const out = primes.map((p) => {
    const P = BigInt(p);
    return Uint32Array.from(values, (v) => Number(((v % P) + P) % P));
  });
  for (const { stream, sign } of masks) {
    const drawn = primes.map((p) => uniformResidues(stream, p, values.length));
    primes.forEach((p, q) => {
      const r = out[q] as Uint32Array;
      const m = drawn[q] as Uint32Array;
      for (let i = 0; i < r.length; i++) {
        const a = r[i] as number;
        const b = m[i] as number;
        r[i] = sign === 1 ? (a + b) % p : (a - b + p) % p;
      }
    });
  }
  return out;
}

/** x + Σ sign · mask over doubles, each pair's mask uniform in [−2^bits, 2^bits) (added in the masks' order). */
export function maskedReals(values: Float64Array, bits: number, masks: readonly PairMask[] = []): Float64Array {
  const out = Float64Array.from(values);
  for (const { stream, sign } of masks) {
    const m = uniformReals(stream, bits, out.length);
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + sign * (m[i] as number);
  }
  return out;
}
