/**
 * KKRT's pseudorandom code C: {0,1}^128 → {0,1}^w.
 *
 * Source: Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient Batched
 * Oblivious PRF with Applications to Private Set Intersection", CCS 2016
 * (KKRT16), §3–4: IKNP generalised from the repetition code to any code C
 * whose codewords are pairwise at Hamming distance ≥ κ = 128 on the inputs
 * used; a PRF-based code gives that with overwhelming probability.
 *
 * Construction: C(x) = AES_{κ0}(x) ‖ AES_{κ1}(x) ‖ AES_{κ2}(x) ‖ AES_{κ3}(x),
 * truncated to w bits (AES as the PRF, as libOTe's KKRT does with its
 * multi-key AES), the four keys expanded from a 16-byte code seed by the
 * AES-CTR PRG (prg.ts).
 *
 * Width. A PSI of n receiver elements makes at most P = (3 + s)·n pairs
 * (its bins' inputs against the sender's 3 candidates per element, its s
 * stash rows against every sender element), and each pair must have
 * distance ≥ 128: P · Pr[Binomial(w, ½) < 128] ≤ 2^-40. KKRT16's parameter
 * table gives w = 424, 432, 440, 448, 448 for n = 2^8, 2^12, 2^16, 2^20,
 * 2^24 at 2^-40; our own evaluation of that bound reproduces those values
 * (`codeFailureLog2`, checked in test/ot-kkrt.test.ts). We use w = 448 for
 * every size up to 2^24, the table's largest, so one width serves all sizes
 * (14 words per row).
 */
import { InvalidArgumentError, InvalidLengthError } from "../errors.js";
import { aesEcbInto, prgInto } from "./prg.js";

/** Code width w in bits (KKRT16's table, n ≤ 2^24, 2^-40). */
export const CODE_WIDTH = 448;
/** Bytes of the seed the code's keys expand from. */
export const CODE_SEED_BYTES = 16;
/** Bytes of a code input (one AES block). */
export const CODE_INPUT_BYTES = 16;
/** Distance the code must keep between any two codewords (κ). */
export const CODE_DISTANCE = 128;

const CHUNK = 4096;

/** The code's four AES keys (64 bytes), from a 16-byte seed. */
export function codeKeys(seed: Uint8Array): Uint8Array {
  if (seed.length !== 16) throw new InvalidLengthError("code seed", "16", seed.length);
  const keys = new Uint8Array(64);
  prgInto(seed, keys);
  return keys;
}

function assertWidth(width: number): void {
  if (!Number.isSafeInteger(width) || width % 32 !== 0 || width < 128 || width > 512) {
    throw new InvalidArgumentError(`code width must be a multiple of 32 in [128, 512], got ${width}`);
  }
}

/**
 * Writes C(x_i) for the n 16-byte inputs into `out` (n rows of width/8
 * bytes). Works in chunks with one scratch buffer: no per-element allocation.
 */
export function encodeInto(keys: Uint8Array, inputs: Uint8Array, out: Uint8Array, width = CODE_WIDTH): void {
  assertWidth(width);
  if (keys.length !== 64) throw new InvalidLengthError("code keys", "64", keys.length);
  if (inputs.length % CODE_INPUT_BYTES !== 0) throw new InvalidLengthError("code inputs", "a multiple of 16", inputs.length);
  const n = inputs.length / CODE_INPUT_BYTES;
  const rowBytes = width >>> 3;
  if (out.length !== n * rowBytes) throw new InvalidLengthError("codewords", String(n * rowBytes), out.length);
  const blocks = Math.ceil(rowBytes / 16);
  const tmp = new Uint8Array(Math.min(n, CHUNK) * 16);
  const tmp32 = new Uint32Array(tmp.buffer);
  // Word copies when `out` is 4-byte aligned (rowBytes is, width being a multiple of 32).
  const out32 = out.byteOffset % 4 === 0 ? new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2) : undefined;
  const rowWords = rowBytes >>> 2;
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    const src = inputs.subarray(start * 16, (start + count) * 16);
    const enc = tmp.subarray(0, count * 16);
    for (let b = 0; b < blocks; b++) {
      aesEcbInto(keys.subarray(b * 16, b * 16 + 16), src, enc);
      const take = Math.min(16, rowBytes - b * 16);
      if (out32 !== undefined) {
        const words = take >>> 2;
        let o = start * rowWords + b * 4;
        for (let i = 0; i < count; i++, o += rowWords) for (let w = 0; w < words; w++) out32[o + w] = tmp32[i * 4 + w] as number;
      } else {
        let o = start * rowBytes + b * 16;
        for (let i = 0; i < count; i++, o += rowBytes) out.set(enc.subarray(i * 16, i * 16 + take), o);
      }
    }
  }
}

/** log2 of Pr[Binomial(w, ½) < d]: the chance two random w-bit codewords are closer than d. */
export function closePairLog2(width: number, distance = CODE_DISTANCE): number {
  // Sum of C(w, i) for i < d, in log space.
  let logC = 0; // log2 C(w, 0)
  let acc = 0; // log2 of the running sum
  for (let i = 1; i < distance; i++) {
    logC += Math.log2((width - i + 1) / i);
    acc = Math.max(acc, logC) + Math.log2(1 + 2 ** (Math.min(acc, logC) - Math.max(acc, logC)));
  }
  return acc - width;
}

/** log2 of the union bound on any of `pairs` pairs being closer than κ. */
export function codeFailureLog2(pairs: number, width = CODE_WIDTH): number {
  return Math.log2(pairs) + closePairLog2(width);
}
