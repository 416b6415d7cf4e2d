/**
 * Probability mass functions of engine/dp's noise, in double precision: for
 * tests (goodness of fit), accuracy reports and confidence intervals — never
 * for drawing noise (the samplers use integers only).
 *
 * - Discrete Gaussian N_Z(0, σ²): e^(−x²/2σ²)/Z, Z = Σ_y e^(−y²/2σ²),
 *   summed directly for σ² < 1 and otherwise by the Poisson summation
 *   (Jacobi theta) identity Z = √(2πσ²)·(1 + 2Σ_{k≥1} e^(−2π²σ²k²)),
 *   accurate to a few ulps.
 * - Discrete Laplace Lap_Z(t): ((e^(1/t) − 1)/(e^(1/t) + 1))·e^(−|x|/t),
 *   i.e. tanh(1/2t)·e^(−|x|/t).
 * - Poisson(λ): weights built outward from the mode by p(j+1) = p(j)·λ/(j+1)
 *   over mode ± (12√λ + 30) and normalised (the mass outside is below 1e−30).
 * - Skellam Sk(μ): e^(−μ)·I_|k|(μ) through the Bessel series
 *   e^(−μ)·Σ_j (μ/2)^(2j+|k|)/(j!(j+|k|)!), whose terms are the products
 *   P[X = j]·P[Y = j + |k|] of the two Poisson(μ/2) parts.
 */
import { rational, rationalToNumber, toBigInt, type IntLike } from "./rational.js";

function xNumber(x: IntLike, what: string): number {
  return Number(toBigInt(x, what));
}

/** Σ_y e^(−y²/(2σ²)) over the integers. */
export function discreteGaussianNormalizer(sigma2: number): number {
  if (sigma2 < 1) {
    let z = 1;
    for (let y = 1; ; y++) {
      const term = Math.exp((-y * y) / (2 * sigma2));
      z += 2 * term;
      if (term < 1e-20 * z) return z;
    }
  }
  let theta = 1;
  for (let k = 1; ; k++) {
    const term = Math.exp(-2 * Math.PI * Math.PI * sigma2 * k * k);
    theta += 2 * term;
    if (term < 1e-20) break;
  }
  return Math.sqrt(2 * Math.PI * sigma2) * theta;
}

/** P[N_Z(0, σ²) = x], σ² = sigma2Num/sigma2Den. */
export function discreteGaussianPmf(sigma2Num: IntLike, sigma2Den: IntLike, x: IntLike): number {
  const s2 = rationalToNumber(rational(sigma2Num, sigma2Den, "discrete Gaussian σ²", { positive: true }));
  const v = xNumber(x, "x");
  return Math.exp((-v * v) / (2 * s2)) / discreteGaussianNormalizer(s2);
}

/** P[Lap_Z(t) = x], t = scaleNum/scaleDen. */
export function discreteLaplacePmf(scaleNum: IntLike, scaleDen: IntLike, x: IntLike): number {
  const t = rationalToNumber(rational(scaleNum, scaleDen, "discrete Laplace scale", { positive: true }));
  const e = Math.expm1(1 / t);
  return (e / (e + 2)) * Math.exp(-Math.abs(xNumber(x, "x")) / t);
}

/** Poisson(λ) probabilities over [lo, lo + p.length): the rest of the mass is negligible (< 1e−30). */
export function poissonTable(lambda: number): { lo: number; p: Float64Array } {
  if (lambda === 0) return { lo: 0, p: Float64Array.of(1) };
  const mode = Math.floor(lambda);
  const spread = Math.ceil(12 * Math.sqrt(lambda) + 30);
  const lo = Math.max(0, mode - spread);
  const hi = mode + spread;
  const p = new Float64Array(hi - lo + 1);
  p[mode - lo] = 1;
  for (let j = mode + 1; j <= hi; j++) p[j - lo] = ((p[j - lo - 1] ?? 0) * lambda) / j;
  for (let j = mode - 1; j >= lo; j--) p[j - lo] = ((p[j - lo + 1] ?? 0) * (j + 1)) / lambda;
  let sum = 0;
  for (let i = p.length - 1; i >= 0; i--) sum += p[i] ?? 0;
  for (let i = 0; i < p.length; i++) p[i] = (p[i] ?? 0) / sum;
  return { lo, p };
}

/** P[Poisson(λ) = k], λ = meanNum/meanDen. */
export function poissonPmf(meanNum: IntLike, meanDen: IntLike, k: IntLike): number {
  const { lo, p } = poissonTable(rationalToNumber(rational(meanNum, meanDen, "Poisson mean")));
  return p[xNumber(k, "k") - lo] ?? 0;
}

/** P[Sk(μ) = k] = e^(−μ)·I_|k|(μ), μ = muNum/muDen (Sk(μ) = Poisson(μ/2) − Poisson(μ/2)). */
export function skellamPmf(muNum: IntLike, muDen: IntLike, k: IntLike): number {
  const mu = rationalToNumber(rational(muNum, muDen, "Skellam μ", { positive: true }));
  return skellamPmfFromTable(poissonTable(mu / 2), Math.abs(xNumber(k, "k")));
}

/** Σ_j P[X = j]·P[X = j + d] for X ~ the Poisson of `table`, d ≥ 0. */
export function skellamPmfFromTable(table: { lo: number; p: Float64Array }, d: number): number {
  const { p } = table;
  let sum = 0;
  for (let i = 0; i + d < p.length; i++) sum += (p[i] ?? 0) * (p[i + d] ?? 0);
  return sum;
}
