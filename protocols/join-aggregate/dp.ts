/**
 * join-aggregate with differential privacy (docs/differential-privacy.md):
 * the provider and the exchange each add a share of discrete Gaussian noise
 * to every released per-group statistic under the buyer's HE key, so the
 * buyer decrypts only noisy totals and no single party knows the noise in
 * them. A job declares `dp: { rho, maxRowsPerKey? }` in its parameters
 * (never in a message); every role derives the same plan from it
 * ({@link jaDpPlan}).
 *
 * ## Mechanism: the distributed discrete Gaussian with two shares
 *
 * Per released group and statistic the buyer decrypts T + X_p + X_e: T the
 * exact total, X_p the provider's share and X_e the exchange's, each
 * N_Z(0, σ²) (CKS20 Algorithm 3, engine/dp) drawn from node:crypto's CSPRNG
 * (a seeded source only in tests, through JaContext.noise). The accounting
 * is federated-aggregate's (protocols/federated-aggregate/dp.ts, the same
 * σ² rule) with n = 2 parties: Kairouz, Liu and Steinke 2021 (KLS21,
 * arXiv:2102.06387, Proposition 14; engine/dp distributedGaussianRho).
 *
 * - The provider does not know which groups exist or are released, so it
 *   sends, per statistic column, JA_NOISE_SLOTS (1,024 = JA_MAX_GROUPS,
 *   whatever the buyer's groups: the provider learns nothing from it) noise
 *   shares, encrypted. When the column's last block has 1,024 spare slots
 *   after its `size` positions they go there, at slots size … size + 1,023
 *   (messages.ts noiseInline: a function of the padded size every role
 *   knows); else in one block of their own (N slots, zeros after them), an
 *   extra chunk of step 8 that the exchange reads as block 0 of the
 *   statistic's column. Either way the exchange adds share number `code` to
 *   the released block of the group with that (random, buyer-chosen) code,
 *   under encryption: the group's mask over the column has weight 1 at the
 *   share's slot ({@link withNoiseShares}), so the same masked block sum
 *   that totals the group's rows adds the share — inline, without reading
 *   one more block per group. The exchange sees only ciphertexts of the
 *   provider's noise.
 * - The exchange adds its own share to the same block through the zero-sum
 *   mask it adds anyway: the mask's residues sum to X_e instead of 0. The
 *   provider never sees the result; the buyer sees only T + X_p + X_e.
 * - COUNT(*) (statistic "c") is released only noisy too — step 13 carries
 *   zeros with dp — but its exact total is not encrypted by anyone: the
 *   exchange already computes every group's count from the provider's row
 *   counts (step 7) and the buyer's weights, as it does without dp. So the
 *   provider sends no c column, only c's noise shares: in the spare slots
 *   of the first column it encrypts, after that column's own shares, when
 *   its last block has room for both (messages.ts countNoiseInline), else
 *   in a block of their own. Nothing but those shares needs to reach the
 *   buyer (there are no rows to mask), so COUNT(*) is released as ONE block
 *   for all groups, not one per group: the exchange multiplies the shares'
 *   column by a mask that is 1 at the share of every released code and 0
 *   elsewhere (a slot per code holds X_p of that code; every other slot is
 *   exactly 0, the data's slots included), adds an encryption with
 *   count_g + X_e in group g's slot (slotResidues) and re-randomises; the
 *   buyer decrypts that block and reads each group's slot (messages.ts
 *   resultLayout, countSlot). The buyer learns per group exactly
 *   count + X_p + X_e, as from any other statistic's block total. This
 *   saves one encrypted column over every provider position, and three
 *   quarters of a per-group statistic's fixed work at four groups
 *   (docs/differential-privacy.md: "Accuracy and cost").
 *
 * What each party learns beyond a job without dp: the provider, nothing
 * (the noise shares' number and place follow from the job and its own
 * padded size); the exchange, nothing (it already knows each pseudonymous
 * group's row count — which is why it may put the count into its mask —
 * and it knows X_e, not X_p; where the shares sit follows from the size
 * the provider announced); the
 * buyer, noisy totals — no exact count. The count's sensitivity is the same
 * whoever adds it (w per provider row: one row changes one key's row count
 * in step 7 by 1, and its group's count by the key's weight ≤ w), and its
 * noise is the same two independent shares, so the accounting is
 * unchanged. A single corrupt party knows one share and so still faces
 * N_Z(0, σ²) noise: the accounting covers collusion of the buyer with
 * neither, and a buyer colluding with one of them faces half the variance
 * (ρ doubles; stated, not hidden).
 *
 * ## Neighbours, contribution bounds and sensitivity
 *
 * The budget is the provider's dataset's: neighbours differ by one provider
 * row. That row joins every buyer row with its key — the buyer's duplicate
 * keys multiply its contribution — so with dp the buyer's rows per key are
 * capped at `maxRowsPerKey` (default 1): rows beyond the cap are dropped
 * (a key's rows are all alike for the join and all in one group, so which
 * ones does not matter), and the exchange refuses a weight above it. Values
 * are clipped to ±V = maxAbsValue·10^scale instead of refused (a refusal
 * would be an observable that depends on one row). One provider row then
 * changes one group's statistics only (one group per key: parallel
 * composition across groups) by at most, with w = maxRowsPerKey:
 * COUNT(*) c and each column's non-null count n by w, its sum s by w·V, its
 * sum of squares q (VAR/STDDEV only) by w·V². The m statistics of a group
 * compose sequentially, each given ρ/m, each with its own σ².
 *
 * ## k
 *
 * The k rule (a group released only with ≥ k distinct keys and ≥ k rows)
 * reads exact counts: whether a group is released would itself depend on
 * one row without noise, and with unbounded rows per key on the provider's
 * side the jump from suppressed to released has no bounded sensitivity. So
 * with dp the exchange releases every group of the buyer's (noise only for
 * a group with no match) and k is applied by the buyer to the noisy count —
 * post-processing, free of privacy cost. Δ is not multiplied by k here
 * (unlike federated-aggregate, whose providers zero small cells).
 *
 * ## Tail and the HE bound
 *
 * A share is bounded by B = 40·⌈σ⌉ + 40 (P[|X| > 40σ] < 2e^(−800)); a draw
 * beyond it fails the job (NoiseBoundError). The HE context's per-row bound
 * stays the data's, U = V (or V² with VAR/STDDEV), and its row bound grows
 * by 2·⌈B/U⌉: each share counts as ⌈B/U⌉ rows of U ({@link jaNoiseRows}),
 * so a noisy total never wraps (|T| + 2B ≤ U·(rows + 2⌈B/U⌉)). Raising the
 * per-row bound to B instead would multiply every total's range by B/U and
 * could cost another plaintext CRT prime, one more SEAL ciphertext per block
 * in every HE operation (V = 100, ρ for ε = 1: three primes instead of two).
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { cryptoUniformSource, epsilonFromRho, rational, rationalToNumber, sampleDiscreteGaussian, type NoiseLaw, type Rational, type UniformSource } from "../../engine/dp/index.js";
import { NoiseBoundError, parseRationalString, parseRho, rationalString, sigma2For, tailBound } from "../federated-aggregate/dp.js";
import type { JaStat } from "./aggregates.js";

/** A job's differential privacy: its zCDP ρ and the cap on the buyer's rows per key. */
export interface JaDpParams {
  /** ρ-zCDP in all, a positive rational ("1/10", "0.1", 0.1). */
  readonly rho: string | number;
  /** The most buyer rows of one key that join (default 1): a provider row's contribution is multiplied by it. */
  readonly maxRowsPerKey?: number;
}

/** The parties adding noise shares: the provider and the exchange. */
export const JA_DP_PARTIES = 2;
export const JA_DP_DEFAULT_MAX_ROWS_PER_KEY = 1;
export const JA_DP_MAX_ROWS_PER_KEY = 65_536;
/** Noise shares the provider sends per statistic column (one per possible group code: JA_MAX_GROUPS). */
export const JA_NOISE_SLOTS = 1024;
/** A share's bound must stay far inside int64 (the provider encrypts its shares as int64). */
const NOISE_BOUND_LIMIT = 1n << 62n;

/**
 * The rows of per-row bound U (the HE context's) one noise share counts as
 * in the context's row bound: ⌈B / U⌉.
 * @throws InvalidArgumentError when that is not a safe integer
 */
export function jaNoiseRows(dp: JaDpResolved, rowBound: bigint): number {
  const B = BigInt(dp.noiseBound);
  const rows = (B + rowBound - 1n) / rowBound;
  if (rows > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError("the noise this rho needs is too large for the values' bound: raise rho");
  return Number(rows);
}

/** One statistic column's noise: its sensitivity, share of ρ and per-party σ². */
export interface JaDpStatistic {
  /** "count", "n(c)", "sum(c)" or "sumsq(c)". */
  readonly name: string;
  /** Δ (L1 = L2: one value), decimal. */
  readonly sensitivity: string;
  /** Per-party σ², "num/den". */
  readonly sigma2: string;
  /** ρ/m, "num/den". */
  readonly rho: string;
}

/** The resolved plan every role derives from the job (plain data: part of each role's state). */
export interface JaDpResolved {
  readonly rho: string;
  readonly maxRowsPerKey: number;
  /** One per statistic column of the layout, in its order. */
  readonly statistics: readonly JaDpStatistic[];
  /** B, the bound on one share's |noise| (decimal). */
  readonly noiseBound: string;
}

function statName(st: JaStat): string {
  return st.stat === "c" ? "count" : st.stat === "n" ? `n(${st.column})` : st.stat === "s" ? `sum(${st.column})` : `sumsq(${st.column})`;
}

/**
 * The job's DP plan over its statistic columns (`stats`, with "c" among
 * them), V the scaled value bound (see the file's comment).
 * @throws InvalidArgumentError for a malformed ρ or maxRowsPerKey, or a noise scale beyond int64
 */
export function jaDpPlan(dp: JaDpParams, stats: readonly JaStat[], V: bigint): JaDpResolved {
  const rho = parseRho(dp.rho);
  const w = dp.maxRowsPerKey ?? JA_DP_DEFAULT_MAX_ROWS_PER_KEY;
  if (!Number.isSafeInteger(w) || w < 1 || w > JA_DP_MAX_ROWS_PER_KEY) throw new InvalidArgumentError(`dp.maxRowsPerKey must be an integer in [1, ${JA_DP_MAX_ROWS_PER_KEY}]`);
  const W = BigInt(w);
  const rhoS = rational(rho.num, rho.den * BigInt(stats.length), "rho per statistic", { positive: true });
  let noiseBound = 0n;
  const statistics = stats.map((st) => {
    const delta = st.stat === "s" ? W * V : st.stat === "q" ? W * V * V : W;
    const s2 = sigma2For(delta, 1, JA_DP_PARTIES, rhoS);
    const b = tailBound(s2);
    if (b > noiseBound) noiseBound = b;
    return { name: statName(st), sensitivity: delta.toString(), sigma2: rationalString(s2), rho: rationalString(rhoS) };
  });
  if (noiseBound >= NOISE_BOUND_LIMIT) throw new InvalidArgumentError("the noise this rho needs at this maxAbsValue does not fit in 64 bits: lower maxAbsValue (or drop VAR/STDDEV) or raise rho");
  return { rho: rationalString(rho), maxRowsPerKey: w, statistics, noiseBound: noiseBound.toString() };
}

/** The law of the noise in a released total of statistic column `k`: the sum of the two shares. */
export function jaDpLaw(dp: JaDpResolved, k: number): NoiseLaw {
  const st = dp.statistics[k];
  if (!st) throw new InvalidArgumentError("no statistic at this index");
  return { kind: "distributed-discrete-gaussian", parties: JA_DP_PARTIES, sigma2: parseRationalString(st.sigma2, "σ²") };
}

function draw(s2: Rational, bound: bigint, rng: UniformSource): bigint {
  const x = sampleDiscreteGaussian(s2.num, s2.den, rng);
  if (x > bound || -x > bound) throw new NoiseBoundError();
  return x;
}

/**
 * The provider's shares: per statistic column, JA_NOISE_SLOTS draws (slot =
 * group code), column by column in order, from `rng` (the provider sends
 * each in its column's spare slots or padded with zeros to one block).
 * @throws NoiseBoundError when a draw exceeds B (probability < 10^−340)
 */
export function jaProviderNoise(dp: JaDpResolved, rng: UniformSource = cryptoUniformSource()): BigInt64Array[] {
  const bound = BigInt(dp.noiseBound);
  return dp.statistics.map((st) => {
    const s2 = parseRationalString(st.sigma2, "σ²");
    const out = new BigInt64Array(JA_NOISE_SLOTS);
    for (let i = 0; i < JA_NOISE_SLOTS; i++) out[i] = draw(s2, bound, rng);
    return out;
  });
}

/**
 * The exchange's shares of statistic column `k`: one per released group, in
 * the order of the released blocks, from `rng`.
 * @throws NoiseBoundError when a draw exceeds B
 */
export function jaExchangeNoise(dp: JaDpResolved, k: number, groups: number, rng: UniformSource): bigint[] {
  const st = dp.statistics[k];
  if (!st) throw new InvalidArgumentError("no statistic at this index");
  const s2 = parseRationalString(st.sigma2, "σ²");
  const bound = BigInt(dp.noiseBound);
  return Array.from({ length: groups }, () => draw(s2, bound, rng));
}

/**
 * Adds x_b to the sum of block b of a zero-sum mask (residues per plain
 * prime, blocks of n slots): its slots then sum to x_b modulo every prime.
 */
export function addToBlockSums(residues: readonly Uint32Array[], primes: readonly number[], n: number, x: readonly bigint[]): void {
  primes.forEach((p, j) => {
    const r = residues[j] as Uint32Array;
    const P = BigInt(p);
    x.forEach((v, b) => {
      const add = Number(((v % P) + P) % P);
      r[b * n] = ((r[b * n] as number) + add) % p;
    });
  });
}

/**
 * Points each released group's mask at its provider share: the provider's
 * JA_NOISE_SLOTS shares start at slot `at` of the column the masks span —
 * 0 when its noise block is read before the data, the number of positions
 * when they sit in the data's spare slots — and masks[i] gets weight 1 at
 * slot `at` + codes[i], where the share of that group code is.
 */
export function withNoiseShares(masks: readonly Uint32Array[], codes: readonly number[], at = 0): void {
  codes.forEach((g, i) => {
    if (g >= JA_NOISE_SLOTS) throw new InvalidArgumentError("a group code beyond the provider's noise shares");
    (masks[i] as Uint32Array)[at + g] = 1;
  });
}

/**
 * COUNT(*)'s one mask over `length` slots (its noise block, or the first
 * column when its shares are inline there from slot `at`): weight 1 at slot
 * `at` + g for every released code g, 0 elsewhere — the product holds the
 * provider's share of each released code and nothing else.
 */
export function countSlotsMask(codes: readonly number[], at: number, length: number): Uint32Array {
  const mask = new Uint32Array(length);
  for (const g of codes) {
    if (g >= JA_NOISE_SLOTS || at + g >= length) throw new InvalidArgumentError("a group code beyond the provider's noise shares");
    mask[at + g] = 1;
  }
  return mask;
}

/**
 * One block of residues per plain prime (n slots): slot slots[i] holds
 * values[i] modulo the prime, every other slot 0 — COUNT(*)'s addend with
 * dp, each released group's exact count plus the exchange's share, in the
 * slot of the provider's share of its code (messages.ts countSlot).
 */
export function slotResidues(primes: readonly number[], n: number, slots: readonly number[], values: readonly bigint[]): Uint32Array[] {
  return primes.map((p) => {
    const r = new Uint32Array(n);
    const P = BigInt(p);
    slots.forEach((g, i) => {
      if (g >= n) throw new InvalidArgumentError("a slot beyond the block");
      r[g] = Number((((values[i] as bigint) % P) + P) % P);
    });
    return r;
  });
}

/** The job's differential privacy, as the buyer's result states it. */
export interface JaDpSummary {
  readonly rho: string;
  readonly epsilonAtDelta1e6: number;
  readonly mechanism: "distributed-discrete-gaussian";
  /** The provider and the exchange. */
  readonly parties: number;
  /** Buyer rows per key beyond this were dropped. */
  readonly maxRowsPerKey: number;
  /** Values were clipped to ±this, in units of 10^-scale (V). */
  readonly clipBound: string;
  readonly statistics: readonly {
    readonly name: string;
    readonly sensitivity: string;
    readonly rho: string;
    readonly sigma2PerParty: string;
    /** 2·σ², the variance of the released noise ("num/den"). */
    readonly variance: string;
    /** √(2σ²), its standard deviation. */
    readonly sigma: number;
  }[];
}

export function jaDpSummary(dp: JaDpResolved, valueBound: string): JaDpSummary {
  return {
    rho: dp.rho,
    epsilonAtDelta1e6: epsilonFromRho(rationalToNumber(parseRationalString(dp.rho, "rho")), 1e-6),
    mechanism: "distributed-discrete-gaussian",
    parties: JA_DP_PARTIES,
    maxRowsPerKey: dp.maxRowsPerKey,
    clipBound: valueBound,
    statistics: dp.statistics.map((st) => {
      const s2 = parseRationalString(st.sigma2, "σ²");
      const variance = rational(s2.num * BigInt(JA_DP_PARTIES), s2.den, "variance");
      return { name: st.name, sensitivity: st.sensitivity, rho: st.rho, sigma2PerParty: st.sigma2, variance: rationalString(variance), sigma: Math.sqrt(rationalToNumber(variance)) };
    }),
  };
}
