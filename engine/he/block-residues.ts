/**
 * Residue arithmetic for masked per-block sums (join-aggregate's result
 * path): signed 64-bit values as residues modulo each CRT prime, and the
 * uniform masks whose slots sum to zero in every block.
 *
 * A party that sends an encrypted per-group total as one block of n slots
 * (engine/he maskedBlockSums) adds a fresh encryption of a zero-sum mask
 * before it re-randomises: the receiver decrypts and sums each block's
 * slots, the mask cancels, and every single slot it sees is uniformly
 * random apart from that sum — no rotations and no Galois keys needed.
 */
import { randomBytes } from "node:crypto";
import { int64Residues } from "./encode.js";

/** Signed 64-bit integers [from, to) as residues modulo each prime (engine/he int64Residues). */
export function residuesOf(values: BigInt64Array, from: number, to: number, primes: readonly number[]): Uint32Array[] {
  return int64Residues(values, from, to, primes);
}

/**
 * Uniform residues per prime for `blocks` blocks of n slots, each block
 * summing to 0 modulo the prime: slots 0 … n−2 uniform in [0, p) by
 * rejection sampling of 32-bit words, the last slot the negated sum.
 * `random(bytes)` is the source of randomness (default node:crypto
 * randomBytes); a test may pass a seeded one to replay a mask exactly.
 */
export function zeroSumMasks(primes: readonly number[], blocks: number, n: number, random: (bytes: number) => Uint8Array = randomBytes): Uint32Array[] {
  return primes.map((p) => {
    const out = new Uint32Array(blocks * n);
    const limit = Math.floor(2 ** 32 / p) * p;
    let buf: Uint32Array = new Uint32Array(0);
    let at = 0;
    const next = (): number => {
      for (;;) {
        if (at >= buf.length) {
          const r = random(4 * 65_536);
          const b = r.byteOffset % 4 === 0 ? r : r.slice(); // a Uint32Array view needs an aligned offset
          buf = new Uint32Array(b.buffer, b.byteOffset, 65_536);
          at = 0;
        }
        const v = buf[at++] as number;
        if (v < limit) return v % p;
      }
    };
    for (let b = 0; b < blocks; b++) {
      let sum = 0;
      for (let i = 0; i < n - 1; i++) {
        const r = next();
        out[b * n + i] = r;
        sum = (sum + r) % p;
      }
      out[b * n + n - 1] = (p - sum) % p;
    }
    return out;
  });
}
