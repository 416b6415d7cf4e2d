/**
 * Exact Bernoulli samplers: Bernoulli(p) for a rational p, and
 * Bernoulli(exp(−γ)) for a rational γ ≥ 0 — Algorithm 1 of Canonne, Kamath
 * and Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS
 * 2020, arXiv:2004.00010, §5.1). Only uniform integers and integer
 * comparisons; no floating point.
 *
 * Algorithm 1, for γ ∈ [0, 1]: K ← 1; while Bernoulli(γ/K) = 1, K ← K + 1;
 * return 1 iff K is odd (P[K > k] = γ^k/k!, so P[K odd] = Σ (−γ)^k/k! = e^−γ).
 * For γ > 1: ⌊γ⌋ draws of Bernoulli(e^−1), returning 0 at the first 0, then
 * Bernoulli(exp(−(γ − ⌊γ⌋))).
 *
 * Two forms, the same draws: `bernoulliExpNumber` on safe-integer Numbers
 * (the fast path; a product den·K beyond 2^53 falls back to BigInt for that
 * one draw) and `bernoulliExpBig` on BigInt (the reference). Reference
 * design read, not copied: OpenDP rust/src/traits/samplers/cks20.
 */
import { cryptoUniformSource, type UniformSource } from "./random.js";
import { rational, type IntLike } from "./rational.js";

/** Bernoulli(num/den): 0 ≤ num ≤ den, den ≥ 1 (safe integers). */
export function bernoulliNumber(rng: UniformSource, num: number, den: number): boolean {
  return rng.below(den) < num;
}

/** Bernoulli(num/den) on BigInt. */
export function bernoulliBig(rng: UniformSource, num: bigint, den: bigint): boolean {
  return rng.belowBig(den) < num;
}

/** Bernoulli(exp(−num/den)) for safe integers num ≥ 0, den ≥ 1. */
export function bernoulliExpNumber(rng: UniformSource, num: number, den: number): boolean {
  if (num > den) {
    const rem = num % den;
    const whole = (num - rem) / den; // exact: num − rem is a multiple of den
    for (let i = 0; i < whole; i++) if (!bernoulliExpUnitNumber(rng, 1, 1)) return false;
    return bernoulliExpUnitNumber(rng, rem, den);
  }
  return bernoulliExpUnitNumber(rng, num, den);
}

/** Algorithm 1 for γ = num/den ∈ [0, 1]. */
function bernoulliExpUnitNumber(rng: UniformSource, num: number, den: number): boolean {
  let k = 1;
  for (;;) {
    const bound = den * k; // Bernoulli(γ/k) = Bernoulli(num / (den·k))
    const success = Number.isSafeInteger(bound) ? rng.below(bound) < num : rng.belowBig(BigInt(den) * BigInt(k)) < BigInt(num);
    if (!success) return (k & 1) === 1;
    k++;
  }
}

/** Bernoulli(exp(−num/den)) for num ≥ 0, den ≥ 1, on BigInt. */
export function bernoulliExpBig(rng: UniformSource, num: bigint, den: bigint): boolean {
  if (num > den) {
    const whole = num / den;
    for (let i = 0n; i < whole; i++) if (!bernoulliExpUnitBig(rng, 1n, 1n)) return false;
    return bernoulliExpUnitBig(rng, num % den, den);
  }
  return bernoulliExpUnitBig(rng, num, den);
}

function bernoulliExpUnitBig(rng: UniformSource, num: bigint, den: bigint): boolean {
  let k = 1n;
  for (;;) {
    if (rng.belowBig(den * k) >= num) return (k & 1n) === 1n;
    k++;
  }
}

/**
 * One draw of Bernoulli(exp(−num/den)) for a rational γ = num/den ≥ 0 (CKS20 Algorithm 1).
 * @throws InvalidArgumentError when γ is not a non-negative rational of integers
 */
export function sampleBernoulliExp(num: IntLike, den: IntLike, rng: UniformSource = cryptoUniformSource()): boolean {
  const g = rational(num, den, "γ");
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  return g.num <= safe && g.den <= safe ? bernoulliExpNumber(rng, Number(g.num), Number(g.den)) : bernoulliExpBig(rng, g.num, g.den);
}
