/**
 * federated-aggregate with differential privacy (docs/differential-privacy.md):
 * each provider adds its own share of discrete Gaussian noise to its vector
 * before masking, so the buyer decrypts only noisy totals and no single
 * party — provider, exchange or buyer — knows the noise in them.
 *
 * ## Mechanism: the distributed discrete Gaussian
 *
 * Provider i adds N_Z(0, σ²) (σ² the per-provider variance of that slot,
 * CKS20 Algorithm 3, engine/dp) to each slot of its local vector, in its
 * own process, from node:crypto's CSPRNG (a seeded source only in tests,
 * through FaContext.noise). The totals carry Z = X_1 + … + X_n, and
 * provider i knows only X_i. Z is not exactly a discrete Gaussian; the
 * accounting uses Kairouz, Liu and Steinke 2021 (arXiv:2102.06387,
 * Theorem 1 / Proposition 14; engine/dp distributed.ts), which bounds the
 * sum's Rényi divergence by the discrete Gaussian's of variance nσ² plus a
 * term in τ = 10·Σ_{k<n} e^(−2π²σ²k/(k+1)). Why not Skellam shares (exactly
 * closed under addition): the exact Poisson sampler's cost grows with μ
 * and is capped at 2^24, and a sum's μ is Δ²/ρ with Δ = k·maxAbsValue·10^scale
 * — routinely 10^12 and more; the discrete Gaussian's cost does not grow
 * with σ.
 *
 * ## Sensitivity (neighbours: one row added to or removed from one provider's table)
 *
 * A row lies in one cell (group): parallel composition across cells, so a
 * job's ρ is what one cell's statistics spend. Within a cell there are m
 * statistics, composed sequentially, each given ρ/m: the count (Δ = 1), each
 * aggregated column's sum (Δ = V = maxAbsValue·10^scale in fixed point; values
 * are clipped to ±V in a DP job instead of refused, so a value out of range
 * changes nothing observable), its sum of squares when VAR/STDDEV is asked
 * (Δ = V²), and the histogram's bins together (a row is in one bin: Δ1 = Δ2 = 1,
 * dimension = bins). The per-provider k rule (local.ts) moves a provider's
 * cell or (cell, range) between 0 and k rows when one row crosses it, so
 * each Δ above is multiplied by k: with DP, k = 1 gives the least noise,
 * and suppression of noisy totals below k at the buyer is post-processing
 * (free).
 *
 * ## Per-statistic noise
 *
 * For a statistic of sensitivity Δ, dimension d and share ρ_s = ρ/m, with
 * η = 1/1000: σ² = max(1, Δ²/(2n·ρ_s·(1 − η))) (exact rationals), doubled
 * until τ·d ≤ η·ρ_s/2 (in doubles, with that factor-2 margin). Then KLS21's
 * ρ ≤ Δ²/(2nσ²) + τd ≤ ρ_s(1 − η) + ηρ_s = ρ_s; checked again with
 * engine/dp's distributedGaussianRho. σ ≥ 1 meets the theorem's σ ≥ 1/2.
 *
 * ## Tail and the HE bound
 *
 * A provider's noise is bounded by B = 40·⌈σ⌉ + 40 per slot (P[|X| > 40σ]
 * < 2e^(−800)); the HE context's slot bound is raised by the largest B. A
 * draw beyond B fails the job (NoiseBoundError) — an event of probability
 * below 10^(−340), which we count as negligible rather than in δ.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import {
  cryptoUniformSource,
  distributedGaussianRho,
  distributedGaussianTau,
  rational,
  rationalToNumber,
  sampleDiscreteGaussian,
  type NoiseLaw,
  type Rational,
  type UniformSource,
} from "../../engine/dp/index.js";
import { ProtocolError } from "../errors.js";

/** A job's differential privacy: its zCDP ρ, a positive rational ("1/10", "0.1", 0.1). */
export interface FaDpParams {
  readonly rho: string | number;
}

/** One statistic of a cell: its slots within the cell, sensitivity, share of ρ and per-provider σ². */
export interface FaDpStatistic {
  /** "count", "sum(c)", "sumsq(c)" or "histogram(c)". */
  readonly name: string;
  /** Offsets within a cell (one, or the histogram's bins). */
  readonly offsets: readonly number[];
  /** Δ (L1 = L2 for the scalar statistics; the histogram's bins too: one bin moves), decimal. */
  readonly sensitivity: string;
  /** The per-provider σ² of each of its slots, "num/den". */
  readonly sigma2: string;
  /** ρ_s = ρ/m, "num/den". */
  readonly rho: string;
}

/** The resolved plan every party derives from the job (plain data: it is part of each role's state). */
export interface FaDpResolved {
  /** The job's ρ, "num/den" in lowest terms. */
  readonly rho: string;
  readonly statistics: readonly FaDpStatistic[];
  /** Per offset within a cell: the index of its statistic. */
  readonly statisticOf: readonly number[];
  /** B, the bound on one provider's |noise| in any slot (decimal): added to the HE slot bound. */
  readonly noiseBound: string;
}

/** A noise draw beyond the bound the HE context allows for it (probability < 10^−340): the job fails. */
export class NoiseBoundError extends ProtocolError {
  constructor() {
    super("a noise draw exceeded its bound of 40 standard deviations: the job fails, nothing is released", "UMBRA_NOISE_BOUND");
  }
}

/** "a/b" of a Rational. */
export function rationalString(r: Rational): string {
  return `${r.num}/${r.den}`;
}

/** A Rational from "a/b" (integers). */
export function parseRationalString(x: string, what: string): Rational {
  const m = /^(\d{1,60})\/(\d{1,60})$/.exec(x);
  if (!m) throw new InvalidArgumentError(`${what} must be "num/den"`);
  return rational(BigInt(m[1] as string), BigInt(m[2] as string), what);
}

const DECIMAL = /^(\d{1,30})(?:\.(\d{1,30}))?(?:[eE]([+-]?\d{1,3}))?$/;

/**
 * ρ as an exact positive rational: "num/den", a decimal string ("0.25",
 * "1e-3") or a finite Number (read through its shortest decimal form).
 * @throws InvalidArgumentError for anything else, or ρ ≤ 0
 */
export function parseRho(x: unknown): Rational {
  const text = typeof x === "number" ? (Number.isFinite(x) ? String(x) : "") : typeof x === "string" ? x.trim() : "";
  if (text.includes("/")) return rational(parseRationalString(text, "rho").num, parseRationalString(text, "rho").den, "rho", { positive: true });
  const m = DECIMAL.exec(text);
  if (!m) throw new InvalidArgumentError('rho must be a positive rational: "num/den", a decimal such as "0.1" or "1e-3", or a number');
  const frac = m[2] ?? "";
  let num = BigInt((m[1] as string) + frac);
  let den = 10n ** BigInt(frac.length);
  const e = Number(m[3] ?? "0");
  if (e >= 0) num *= 10n ** BigInt(e);
  else den *= 10n ** BigInt(-e);
  return rational(num, den, "rho", { positive: true });
}

const ETA = { num: 1n, den: 1000n };

/** The per-party σ² of one statistic (see the file's comment), and a check that it meets ρ_s (join-aggregate's dp.ts uses it too, with 2 parties). */
export function sigma2For(delta: bigint, dimension: number, parties: number, rhoS: Rational): Rational {
  const n = BigInt(parties);
  // Δ²/(2n·ρ_s·(1 − η)) = Δ²·ρs.den·η.den / (2n·ρs.num·(η.den − η.num))
  let s2 = rational(delta * delta * rhoS.den * ETA.den, 2n * n * rhoS.num * (ETA.den - ETA.num), "σ²", { positive: delta > 0n });
  if (s2.num < s2.den) s2 = { num: 1n, den: 1n };
  const budget = (rationalToNumber(rhoS) * Number(ETA.num)) / Number(ETA.den) / 2;
  for (let i = 0; distributedGaussianTau(parties, rationalToNumber(s2)) * dimension > budget; i++) {
    if (i > 200) throw new InvalidArgumentError("rho is too small for the distributed discrete Gaussian's bound");
    s2 = rational(2n * s2.num, s2.den, "σ²");
  }
  const spent = distributedGaussianRho(parties, s2.num, s2.den, { l1: Number(delta), l2: Number(delta), dimension });
  if (!(spent <= rationalToNumber(rhoS))) throw new InvalidArgumentError("internal: the noise does not meet its share of rho");
  return s2;
}

/** B for σ²: 40·⌈σ⌉ + 40. */
export function tailBound(s2: Rational): bigint {
  return 40n * BigInt(Math.ceil(Math.sqrt(rationalToNumber(s2)))) + 40n;
}

/** What faDpPlan reads of the resolved job. */
export interface FaDpLayout {
  readonly providers: number;
  readonly minGroupSize: number;
  readonly columns: readonly string[];
  readonly squares: readonly boolean[];
  readonly columnOffsets: readonly number[];
  readonly histColumn: string;
  readonly histOffset: number;
  readonly bins: number;
  readonly stride: number;
}

/**
 * The job's DP plan: its statistics per cell, each with ρ/m and the
 * per-provider σ² of the distributed discrete Gaussian (see the file's
 * comment). `valueBound` is V, the scaled bound on |value|.
 */
export function faDpPlan(dp: FaDpParams, s: FaDpLayout, valueBound: bigint): FaDpResolved {
  const rho = parseRho(dp.rho);
  const k = BigInt(s.minGroupSize);
  const stats: { name: string; offsets: number[]; delta: bigint; dimension: number }[] = [{ name: "count", offsets: [0], delta: k, dimension: 1 }];
  s.columns.forEach((c, i) => {
    const o = s.columnOffsets[i] as number;
    stats.push({ name: `sum(${c})`, offsets: [o], delta: k * valueBound, dimension: 1 });
    if (s.squares[i]) stats.push({ name: `sumsq(${c})`, offsets: [o + 1], delta: k * valueBound * valueBound, dimension: 1 });
  });
  if (s.bins > 0) stats.push({ name: `histogram(${s.histColumn})`, offsets: Array.from({ length: s.bins }, (_, b) => s.histOffset + b), delta: k, dimension: s.bins });
  const rhoS = rational(rho.num, rho.den * BigInt(stats.length), "rho per statistic", { positive: true });
  const statisticOf = new Array<number>(s.stride).fill(-1);
  let noiseBound = 0n;
  const statistics = stats.map((st, i) => {
    const s2 = sigma2For(st.delta, st.dimension, s.providers, rhoS);
    const b = tailBound(s2);
    if (b > noiseBound) noiseBound = b;
    for (const o of st.offsets) statisticOf[o] = i;
    return { name: st.name, offsets: st.offsets, sensitivity: st.delta.toString(), sigma2: rationalString(s2), rho: rationalString(rhoS) };
  });
  if (statisticOf.some((x) => x < 0)) throw new InvalidArgumentError("internal: a slot of the cell has no statistic");
  return { rho: rationalString(rho), statistics, statisticOf, noiseBound: noiseBound.toString() };
}

/** The per-provider σ² of the slot at `offset` within a cell. */
export function faDpSigma2(dp: FaDpResolved, offset: number): Rational {
  const st = dp.statistics[dp.statisticOf[offset] as number];
  if (!st) throw new InvalidArgumentError("no statistic at this offset");
  return parseRationalString(st.sigma2, "σ²");
}

/** The law of the noise in a released total at `offset` within a cell: the sum of the n providers' shares. */
export function faDpLaw(dp: FaDpResolved, providers: number, offset: number): NoiseLaw {
  return { kind: "distributed-discrete-gaussian", parties: providers, sigma2: faDpSigma2(dp, offset) };
}

/**
 * One provider's noise shares, one per slot of the vector (length cells ×
 * stride), drawn slot by slot in index order from `rng` — node:crypto's
 * CSPRNG unless a test passes a seeded source.
 * @throws NoiseBoundError when a draw exceeds B (probability < 10^−340)
 */
export function faNoiseShares(dp: FaDpResolved, stride: number, length: number, rng: UniformSource = cryptoUniformSource()): bigint[] {
  const laws = dp.statistics.map((st) => parseRationalString(st.sigma2, "σ²"));
  const bound = BigInt(dp.noiseBound);
  const out = new Array<bigint>(length);
  for (let i = 0; i < length; i++) {
    const s2 = laws[dp.statisticOf[i % stride] as number] as Rational;
    const x = sampleDiscreteGaussian(s2.num, s2.den, rng);
    if (x > bound || -x > bound) throw new NoiseBoundError();
    out[i] = x;
  }
  return out;
}
