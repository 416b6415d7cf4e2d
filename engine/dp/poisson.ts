/**
 * An exact Poisson(λ) sampler for a rational λ ≥ 0, from uniform integers
 * only — the building block of the Skellam noise (skellam.ts).
 *
 * Poisson(λ) is the sum of independent Poisson pieces (the Poisson family
 * is closed under addition): ⌊2λ⌋ pieces of mean 1/2 and one of mean
 * λ − ⌊2λ⌋/2 ∈ [0, 1/2). A piece of mean γ = p/q ≤ 1/2 is drawn by
 * rejection from the run length of Algorithm 1 of Canonne, Kamath and
 * Steinke (arXiv:2004.00010): R = the number of successes of
 * Bernoulli(γ/1), Bernoulli(γ/2), … before the first failure has
 * P[R ≥ k] = γ^k/k!, so P[R = k] = (γ^k/k!)·(k + 1 − γ)/(k + 1); accepting
 * R = k with probability (1 − γ)(k + 1)/(k + 1 − γ) ≤ 1 (a rational: one
 * uniform integer) leaves P[R = k, accepted] = (1 − γ)·γ^k/k! ∝ the Poisson
 * pmf. The acceptance rate is (1 − γ)e^γ ≥ 0.82 for γ ≤ 1/2, so a piece
 * costs about 2.6 uniform draws and Poisson(λ) about 5.2·λ: linear in λ,
 * like the other exact samplers from uniform integers (Duchon and
 * Duvignau 2016, Algorithm 1, draws Poisson(1) in about e draws and thins
 * for the fraction, Devroye 1986, p. 487). Means above {@link POISSON_MAX_MEAN}
 * are refused: past it one draw takes longer than a second.
 */
import { InvalidArgumentError } from "../errors.js";
import { cryptoUniformSource, type UniformSource } from "./random.js";
import { rational, type IntLike, type Rational } from "./rational.js";

/** The largest mean the sampler accepts (2^24: about 10^8 uniform draws). */
export const POISSON_MAX_MEAN = 2 ** 24;

/** A piece Poisson(p/q), 0 ≤ p/q ≤ 1/2, p and q safe integers (products past 2^53 go through BigInt). */
function pieceNumber(rng: UniformSource, p: number, q: number): number {
  for (;;) {
    let r = 0;
    // Bernoulli(γ/(r+1)) = Bernoulli(p / (q·(r+1)))
    for (;;) {
      const bound = q * (r + 1);
      const success = Number.isSafeInteger(bound) ? rng.below(bound) < p : rng.belowBig(BigInt(q) * BigInt(r + 1)) < BigInt(p);
      if (!success) break;
      r++;
    }
    if (r === 0) return 0; // accepted with probability (1 − γ)/(1 − γ) = 1
    // accept with probability (q − p)(r + 1) / (q(r + 1) − p)
    const bound = q * (r + 1) - p;
    const accept = Number.isSafeInteger(q * (r + 1))
      ? rng.below(bound) < (q - p) * (r + 1)
      : rng.belowBig(BigInt(q) * BigInt(r + 1) - BigInt(p)) < BigInt(q - p) * BigInt(r + 1);
    if (accept) return r;
  }
}

/** The same piece on BigInt, for a remainder whose denominator is past 2^53. */
function pieceBig(rng: UniformSource, p: bigint, q: bigint): number {
  for (;;) {
    let r = 0n;
    while (rng.belowBig(q * (r + 1n)) < p) r++;
    if (r === 0n) return 0;
    if (rng.belowBig(q * (r + 1n) - p) < (q - p) * (r + 1n)) return Number(r);
  }
}

/** A checked mean λ split into ⌊2λ⌋ halves and a remainder p/q < 1/2. */
export interface PoissonPlan {
  readonly halves: number;
  readonly rest: Rational;
}

export function poissonPlan(mean: Rational, what: string): PoissonPlan {
  if (mean.num > BigInt(POISSON_MAX_MEAN) * mean.den) {
    throw new InvalidArgumentError(`${what} must be at most 2^24 (the exact Poisson sampler's cost grows with the mean)`);
  }
  const twice = 2n * mean.num;
  const halves = twice / mean.den;
  return { halves: Number(halves), rest: rational(twice - halves * mean.den, 2n * mean.den, what) };
}

/** One Poisson draw following `plan`. */
export function poissonFromPlan(rng: UniformSource, plan: PoissonPlan): number {
  let n = 0;
  for (let i = 0; i < plan.halves; i++) n += pieceNumber(rng, 1, 2);
  const { num, den } = plan.rest;
  if (num === 0n) return n;
  return n + (den <= BigInt(Number.MAX_SAFE_INTEGER) ? pieceNumber(rng, Number(num), Number(den)) : pieceBig(rng, num, den));
}

/**
 * One draw of Poisson(meanNum/meanDen), 0 ≤ mean ≤ 2^24.
 * @throws InvalidArgumentError when the mean is not a non-negative rational of integers, or too large
 */
export function samplePoisson(meanNum: IntLike, meanDen: IntLike, rng: UniformSource = cryptoUniformSource()): bigint {
  return BigInt(poissonFromPlan(rng, poissonPlan(rational(meanNum, meanDen, "Poisson mean"), "Poisson mean")));
}
