/**
 * The discrete Laplace distribution Lap_Z(t): P[X = x] ∝ e^(−|x|/t) on the
 * integers, for a rational scale t > 0 — Algorithm 2 of Canonne, Kamath and
 * Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
 * arXiv:2004.00010, §5.2), in integer arithmetic only.
 *
 * Algorithm 2 with scale t/s (integers s, t ≥ 1): draw U uniform in
 * [0, t); reject unless Bernoulli(exp(−U/t)); draw V, the number of
 * Bernoulli(e^−1) successes before the first failure; X = U + t·V (so X is
 * geometric: P[X = x] ∝ e^(−x/t)); Y = ⌊X/s⌋; a sign B; reject B = 1 with
 * Y = 0 (so 0 is not counted twice); return (1 − 2B)·Y.
 *
 * Adding Lap_Z(Δ/ε) to an integer query of sensitivity Δ is ε-DP (pure).
 *
 * Number fast path when t ≤ 2^26 (X then stays exact below 2^53 unless V >
 * 2^27, an event of probability e^(−2^27), which throws rather than
 * return a wrong value); a BigInt reference otherwise. Both make the same
 * draws. Reference design read, not copied: OpenDP's cks20 samplers.
 */
import { ErrorCode, UmbraError } from "../errors.js";
import { bernoulliExpBig, bernoulliExpNumber } from "./bernoulli.js";
import { cryptoUniformSource, type UniformSource } from "./random.js";
import { rational, type IntLike } from "./rational.js";
import { checkCount, toInt64 } from "./batch.js";

/** Largest t (of scale t/s) that takes the Number path. */
export const LAPLACE_FAST_MAX = 2 ** 26;

/** Algorithm 2 on Numbers: scale t/s, 1 ≤ t ≤ 2^26, 1 ≤ s safe. */
export function discreteLaplaceNumber(rng: UniformSource, s: number, t: number): number {
  for (;;) {
    const u = rng.below(t);
    if (!bernoulliExpNumber(rng, u, t)) continue;
    let v = 0;
    while (bernoulliExpNumber(rng, 1, 1)) v++;
    const x = u + t * v;
    if (!Number.isSafeInteger(x)) throw new UmbraError(ErrorCode.Internal, "discrete Laplace: a draw beyond 2^53 (probability below e^(-2^27))");
    const y = (x - (x % s)) / s;
    const negative = rng.below(2) === 1;
    if (negative && y === 0) continue;
    return negative ? -y : y;
  }
}

/** Algorithm 2 on BigInt (the reference): scale t/s. */
export function discreteLaplaceBig(rng: UniformSource, s: bigint, t: bigint): bigint {
  for (;;) {
    const u = rng.belowBig(t);
    if (!bernoulliExpBig(rng, u, t)) continue;
    let v = 0n;
    while (bernoulliExpBig(rng, 1n, 1n)) v++;
    const y = (u + t * v) / s;
    const negative = rng.belowBig(2n) === 1n;
    if (negative && y === 0n) continue;
    return negative ? -y : y;
  }
}

function laplaceSampler(scaleNum: IntLike, scaleDen: IntLike): (rng: UniformSource) => bigint {
  const scale = rational(scaleNum, scaleDen, "discrete Laplace scale", { positive: true });
  // Algorithm 2's t/s is the scale: t = numerator, s = denominator.
  if (scale.num <= BigInt(LAPLACE_FAST_MAX) && scale.den <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const t = Number(scale.num);
    const s = Number(scale.den);
    return (rng) => BigInt(discreteLaplaceNumber(rng, s, t));
  }
  return (rng) => discreteLaplaceBig(rng, scale.den, scale.num);
}

/**
 * One draw of Lap_Z(scaleNum/scaleDen).
 * @throws InvalidArgumentError when the scale is not a positive rational of integers
 */
export function sampleDiscreteLaplace(scaleNum: IntLike, scaleDen: IntLike, rng: UniformSource = cryptoUniformSource()): bigint {
  return laplaceSampler(scaleNum, scaleDen)(rng);
}

/** `count` independent draws of Lap_Z(scaleNum/scaleDen). */
export function sampleDiscreteLaplaceBatch(scaleNum: IntLike, scaleDen: IntLike, count: number, rng: UniformSource = cryptoUniformSource({ bufferBytes: 4096 })): BigInt64Array {
  const draw = laplaceSampler(scaleNum, scaleDen);
  const out = new BigInt64Array(checkCount(count));
  for (let i = 0; i < out.length; i++) out[i] = toInt64(draw(rng));
  return out;
}
