/**
 * The discrete Gaussian N_Z(0, σ²): P[X = x] ∝ e^(−x²/(2σ²)) on the
 * integers, for a rational σ² > 0 — Algorithm 3 of Canonne, Kamath and
 * Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
 * arXiv:2004.00010, §5.3), in integer arithmetic only.
 *
 * Algorithm 3: t = ⌊σ⌋ + 1; repeat: Y ← Lap_Z(t) (Algorithm 2); accept Y
 * with probability exp(−(|Y| − σ²/t)² / (2σ²)) (Algorithm 1). With
 * σ² = a/b the exponent is the rational (|Y|·b·t − a)² / (2·a·b·t²), and
 * ⌊σ⌋ = ⌊√⌊a/b⌋⌋, so nothing is rounded.
 *
 * Adding N_Z(0, σ²) to an integer query of sensitivity Δ is
 * ρ-zCDP with ρ = Δ²/(2σ²) (CKS20 Theorem 4; see accounting.ts).
 *
 * Number fast path when t ≤ 2^26: the Laplace proposal runs on Numbers, and
 * each acceptance test too when its numerator and denominator are below
 * 2^53, else on BigInt; the BigInt reference makes the same draws.
 */
import { checkCount, toInt64 } from "./batch.js";
import { bernoulliExpBig, bernoulliExpNumber } from "./bernoulli.js";
import { discreteLaplaceBig, discreteLaplaceNumber, LAPLACE_FAST_MAX } from "./laplace.js";
import { cryptoUniformSource, type UniformSource } from "./random.js";
import { isqrt, rational, type IntLike } from "./rational.js";

/** Algorithm 3 on BigInt (the reference): σ² = a/b in lowest terms. */
export function discreteGaussianBig(rng: UniformSource, a: bigint, b: bigint): bigint {
  const t = isqrt(a / b) + 1n;
  const den = 2n * a * b * t * t;
  for (;;) {
    const y = discreteLaplaceBig(rng, 1n, t);
    const c = (y < 0n ? -y : y) * b * t - a;
    if (bernoulliExpBig(rng, c * c, den)) return y;
  }
}

/** Algorithm 3 with the Number fast path (t ≤ 2^26): the same draws as discreteGaussianBig. */
function discreteGaussianFast(a: bigint, b: bigint): (rng: UniformSource) => bigint {
  const tBig = isqrt(a / b) + 1n;
  const t = Number(tBig);
  const denBig = 2n * a * b * tBig * tBig;
  const small = denBig <= BigInt(Number.MAX_SAFE_INTEGER);
  const den = Number(denBig);
  const an = Number(a);
  const bt = Number(b * tBig);
  return (rng) => {
    for (;;) {
      const y = discreteLaplaceNumber(rng, 1, t);
      const m = Math.abs(y) * bt;
      const c = m - an;
      const accept =
        small && Number.isSafeInteger(m) && Number.isSafeInteger(c * c)
          ? bernoulliExpNumber(rng, c * c, den)
          : bernoulliExpBig(rng, (BigInt(Math.abs(y)) * b * tBig - a) ** 2n, denBig);
      if (accept) return BigInt(y);
    }
  };
}

function gaussianSampler(sigma2Num: IntLike, sigma2Den: IntLike): (rng: UniformSource) => bigint {
  const { num: a, den: b } = rational(sigma2Num, sigma2Den, "discrete Gaussian σ²", { positive: true });
  if (isqrt(a / b) + 1n <= BigInt(LAPLACE_FAST_MAX)) return discreteGaussianFast(a, b);
  return (rng) => discreteGaussianBig(rng, a, b);
}

/**
 * One draw of N_Z(0, sigma2Num/sigma2Den).
 * @throws InvalidArgumentError when σ² is not a positive rational of integers
 */
export function sampleDiscreteGaussian(sigma2Num: IntLike, sigma2Den: IntLike, rng: UniformSource = cryptoUniformSource()): bigint {
  return gaussianSampler(sigma2Num, sigma2Den)(rng);
}

/** `count` independent draws of N_Z(0, sigma2Num/sigma2Den). */
export function sampleDiscreteGaussianBatch(sigma2Num: IntLike, sigma2Den: IntLike, count: number, rng: UniformSource = cryptoUniformSource({ bufferBytes: 4096 })): BigInt64Array {
  const draw = gaussianSampler(sigma2Num, sigma2Den);
  const out = new BigInt64Array(checkCount(count));
  for (let i = 0; i < out.length; i++) out[i] = toInt64(draw(rng));
  return out;
}
