/**
 * Parameter selection and the CRT that makes sums exact.
 *
 * ## The parameter sets (BFV with batching, 128-bit security)
 *
 * Both use SEAL's `CoeffModulus.BFVDefault(N, tc128)`, which follows the
 * HomomorphicEncryption.org security standard (ternary secret, 128 bits):
 *
 * | N    | coeff modulus (bits)       | total | slots | CRT primes | fresh noise budget |
 * |------|----------------------------|-------|-------|------------|--------------------|
 * | 4096 | 36 + 36 + 37 (special)     | 109   | 4096  | 20 bits    | ~45 bits           |
 * | 8192 | 43 + 43 + 44 + 44 + 44 (sp)| 218   | 8192  | 21 bits    | ~145 bits          |
 *
 * Measured noise costs (SEAL's invariant noise budget, N = 4096 / 8192): a
 * plaintext 0/1 mask ~24 / ~25 bits; a full rotate-and-sum ~10 bits; adding
 * F fresh ciphertexts ~log2(F)/2 bits (independent noises add like a random
 * walk); switching to the last modulus leaves at most ~9 / ~15 bits.
 *
 * **The rule.** N = 4096 when `maxRows ≤ 2^12`, else N = 8192. A slot's
 * total includes at least one row per fresh ciphertext added into it, so
 * F ≤ maxRows. Measured at N = 4096 with the largest 20-bit prime: after
 * F = 4096 fresh ciphertexts summed, one mask, a full rotate-and-sum and
 * re-randomisation, 4 bits of budget remain (2 bits at F = 16384, so 2^12
 * keeps a margin). N = 8192 starts at ~145 bits and keeps over 100 after the
 * same work, so no row count that fits the CRT bound exhausts it. Decryption
 * checks the actual budget anyway: a ciphertext whose budget is spent (e.g.
 * a second mask at N = 4096, or a mask after re-randomisation) is refused
 * with `NoiseBudgetExhaustedError`, never decrypted to a wrong total.
 *
 * ## Exact sums: CRT over batching primes
 *
 * A batching plaintext modulus must be a prime p ≡ 1 (mod 2N) and costs its
 * size in noise budget, so each holds ~20 bits. An integer x is represented
 * by its residues x mod p_1, …, x mod p_k, one SEAL context (same N and
 * coefficient modulus, plaintext modulus p_j) per prime. Sums are computed
 * per prime; decryption recombines the k residues with Garner's algorithm
 * into x mod M (M = p_1·…·p_k) and maps [0, M) to (−M/2, M/2).
 *
 * **The bound.** With n rows and |value| ≤ V (V in units of 10^-scale), every
 * total lies in [−n·V, n·V], so the result is exact iff **n·V < M/2**.
 * `selectParameters` takes the smallest k with 2·maxRows·V < M; the
 * operations track how many input rows each slot may hold and refuse to go
 * past maxRows. k ≤ 8 primes at N = 4096 (M ≥ 2^155) and ≤ 10 at N = 8192
 * (M ≥ 2^205): totals up to 2^62 in magnitude need 4 primes.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import type { SEALLibrary } from "./seal.js";

/** The polynomial modulus degrees this engine uses. */
export const PolyModulusDegree = { N4096: 4096, N8192: 8192 } as const;
export type PolyModulusDegree = (typeof PolyModulusDegree)[keyof typeof PolyModulusDegree];

/** Above this many rows, N = 4096 does not leave enough noise budget (see the rule above). */
export const HE_MAX_ROWS_4096 = 2 ** 12;
/** The largest row count a context accepts. */
export const HE_MAX_ROWS = 2 ** 40;
/** The largest fixed-point scale (10^18 < 2^60). */
export const HE_MAX_SCALE = 18;

const PRIME_BITS: Record<PolyModulusDegree, number> = { 4096: 20, 8192: 21 };
const MAX_PRIMES: Record<PolyModulusDegree, number> = { 4096: 8, 8192: 10 };

export interface HeContextOptions {
  /** The largest |value| of one input row, in the value's own units (before scaling). */
  readonly maxAbsValue: bigint | number;
  /** The most input rows any one total may include, across every column, party and addition. */
  readonly maxRows: number;
  /** Decimal digits kept after the point: values are encoded as round(value · 10^scale). Default 0. */
  readonly scale?: number;
  /** The most values one encrypted column may hold (default: max(maxRows, slot count)). */
  readonly maxLength?: number;
  /** Force a parameter set (default: chosen by the rule above). */
  readonly polyModulusDegree?: PolyModulusDegree;
}

/** The parameters a context runs with: plain data, safe to log and compare. */
export interface HeParameters {
  readonly scheme: "bfv";
  readonly polyModulusDegree: PolyModulusDegree;
  readonly slotCount: number;
  /** The coefficient modulus primes (SEAL's BFVDefault, 128-bit security), the last one the special prime. */
  readonly coeffModulus: readonly bigint[];
  readonly coeffModulusBits: number;
  /** The CRT plaintext primes, each ≡ 1 mod 2N. */
  readonly plainModuli: readonly number[];
  /** M, the product of the plaintext primes. */
  readonly crtModulus: bigint;
  readonly scale: number;
  /** V: the largest |value| after scaling, an integer. */
  readonly maxAbsScaled: bigint;
  readonly maxRows: number;
  readonly maxLength: number;
  /** maxRows · V: the largest |total|, below M/2. */
  readonly maxTotal: bigint;
  /** 16 bytes that identify these parameters (hex): ciphertexts and keys carry it. */
  readonly fingerprint: string;
}

/** V = ceil(|maxAbsValue| · 10^scale), exactly for bigint input. */
export function scaledBound(maxAbsValue: bigint | number, scale: number): bigint {
  const f = 10n ** BigInt(scale);
  if (typeof maxAbsValue === "bigint") {
    if (maxAbsValue <= 0n) throw new InvalidArgumentError("maxAbsValue must be positive");
    return maxAbsValue * f;
  }
  if (typeof maxAbsValue !== "number" || !Number.isFinite(maxAbsValue) || maxAbsValue <= 0) {
    throw new InvalidArgumentError("maxAbsValue must be a positive finite number or a bigint");
  }
  if (Number.isInteger(maxAbsValue)) return BigInt(maxAbsValue) * f;
  const scaled = Math.ceil(maxAbsValue * Number(f));
  if (!Number.isSafeInteger(scaled)) throw new InvalidArgumentError("maxAbsValue · 10^scale must be a safe integer when maxAbsValue is fractional; pass a bigint");
  return BigInt(scaled);
}

/** Chooses N and the CRT primes for the declared range (see the module comment for the rule). */
export function selectParameters(seal: SEALLibrary, options: HeContextOptions): HeParameters {
  const scale = options.scale ?? 0;
  if (!Number.isInteger(scale) || scale < 0 || scale > HE_MAX_SCALE) throw new InvalidArgumentError(`scale must be an integer in [0, ${HE_MAX_SCALE}]`);
  const maxRows = options.maxRows;
  if (!Number.isSafeInteger(maxRows) || maxRows < 1 || maxRows > HE_MAX_ROWS) throw new InvalidArgumentError("maxRows must be an integer in [1, 2^40]");
  const V = scaledBound(options.maxAbsValue, scale);

  let n: PolyModulusDegree = maxRows <= HE_MAX_ROWS_4096 ? 4096 : 8192;
  if (options.polyModulusDegree !== undefined) {
    if (options.polyModulusDegree !== 4096 && options.polyModulusDegree !== 8192) throw new InvalidArgumentError("polyModulusDegree must be 4096 or 8192");
    if (options.polyModulusDegree === 4096 && maxRows > HE_MAX_ROWS_4096) throw new InvalidArgumentError(`N = 4096 leaves noise budget for at most ${HE_MAX_ROWS_4096} rows`);
    n = options.polyModulusDegree;
  }
  const maxLength = options.maxLength ?? Math.max(maxRows, n);
  if (!Number.isSafeInteger(maxLength) || maxLength < 1 || maxLength > 2 ** 32) throw new InvalidArgumentError("maxLength must be an integer in [1, 2^32]");

  const maxTotal = BigInt(maxRows) * V;
  const candidates = primesFor(seal, n); // ascending
  // The largest primes first: the smallest k with 2·maxTotal < M.
  const chosen: number[] = [];
  let m = 1n;
  for (let i = candidates.length - 1; i >= 0 && 2n * maxTotal >= m; i--) {
    const p = candidates[i] as number;
    chosen.push(p);
    m *= BigInt(p);
  }
  if (2n * maxTotal >= m) {
    throw new InvalidArgumentError(`maxRows · maxAbsValue · 10^scale must be below 2^${bitLength(m) - 2} for N = ${n}`);
  }
  const coeff = coeffModulusFor(seal, n);
  const coeffModulusBits = coeff.reduce((s, q) => s + bitLength(q), 0);
  const fingerprint = fingerprintOf({ n, coeff, plain: chosen, scale, V, maxRows, maxLength });
  return {
    scheme: "bfv",
    polyModulusDegree: n,
    slotCount: n,
    coeffModulus: coeff,
    coeffModulusBits,
    plainModuli: chosen,
    crtModulus: m,
    scale,
    maxAbsScaled: V,
    maxRows,
    maxLength,
    maxTotal,
    fingerprint,
  };
}

/** The batching primes of PRIME_BITS bits for N, ascending (SEAL's CoeffModulus.Create finds primes ≡ 1 mod 2N). */
function primesFor(seal: SEALLibrary, n: PolyModulusDegree): number[] {
  const v = seal.CoeffModulus.Create(n, new Int32Array(MAX_PRIMES[n]).fill(PRIME_BITS[n]));
  try {
    return Array.from(v.toArray() as BigUint64Array, (p) => Number(p)).sort((a, b) => a - b);
  } finally {
    v.delete();
  }
}

function coeffModulusFor(seal: SEALLibrary, n: PolyModulusDegree): bigint[] {
  const v = seal.CoeffModulus.BFVDefault(n, seal.SecurityLevel.tc128);
  try {
    return Array.from(v.toArray() as BigUint64Array);
  } finally {
    v.delete();
  }
}

function fingerprintOf(p: { n: number; coeff: bigint[]; plain: number[]; scale: number; V: bigint; maxRows: number; maxLength: number }): string {
  const text = ["umbra-he-v1", "bfv", p.n, p.coeff.join(","), p.plain.join(","), p.scale, p.V, p.maxRows, p.maxLength].join("|");
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

export function bitLength(x: bigint): number {
  return x <= 0n ? 0 : x.toString(2).length;
}

/**
 * Garner's CRT recombination for fixed primes: residues in, the signed
 * integer in (−M/2, M/2) out. The mixed-radix digits are computed with
 * Number arithmetic (primes < 2^22, so every product is < 2^44, exact).
 */
export class CrtBasis {
  readonly primes: readonly number[];
  readonly modulus: bigint;
  readonly #half: bigint;
  /** inv[i][j] = p_j^{-1} mod p_i, for j < i. */
  readonly #inv: number[][];
  /** radix[i] = p_0 · … · p_{i−1}. */
  readonly #radix: bigint[];

  constructor(primes: readonly number[]) {
    this.primes = primes;
    this.#inv = primes.map((pi, i) => primes.slice(0, i).map((pj) => modInverse(pj % pi, pi)));
    this.#radix = [];
    let m = 1n;
    for (const p of primes) {
      this.#radix.push(m);
      m *= BigInt(p);
    }
    this.modulus = m;
    this.#half = m / 2n;
  }

  /** residues[j][s] = x_s mod p_j; returns x_s for s in [0, count). */
  combine(residues: readonly ArrayLike<number>[], count: number): bigint[] {
    const k = this.primes.length;
    const out = new Array<bigint>(count);
    const digits = new Array<number>(k);
    for (let s = 0; s < count; s++) {
      let x = 0n;
      for (let i = 0; i < k; i++) {
        const pi = this.primes[i] as number;
        const inv = this.#inv[i] as number[];
        let t = (residues[i] as ArrayLike<number>)[s] as number;
        for (let j = 0; j < i; j++) {
          t -= (digits[j] as number) % pi;
          if (t < 0) t += pi;
          t = (t * (inv[j] as number)) % pi;
        }
        digits[i] = t;
        if (t !== 0) x += BigInt(t) * (this.#radix[i] as bigint);
      }
      out[s] = x > this.#half ? x - this.modulus : x;
    }
    return out;
  }
}

function modInverse(a: number, p: number): number {
  // Extended Euclid on Numbers (p < 2^22).
  let [r0, r1] = [a, p];
  let [s0, s1] = [1, 0];
  while (r1 !== 0) {
    const q = Math.floor(r0 / r1);
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1) throw new InvalidArgumentError("CRT moduli are not coprime");
  return ((s0 % p) + p) % p;
}
