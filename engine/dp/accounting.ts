/**
 * Privacy accounting for engine/dp's noise, in zero-concentrated DP (zCDP,
 * Bun and Steinke 2016: M is ρ-zCDP when D_α(M(x) ‖ M(x')) ≤ ρ·α for every
 * α > 1 and neighbours x, x'; ρ adds up under composition) with the
 * equivalent (ε, δ).
 *
 * - Discrete Gaussian: adding N_Z(0, σ²) to an integer query of sensitivity
 *   Δ is ρ-zCDP with ρ = Δ²/(2σ²) — Canonne, Kamath and Steinke, "The
 *   Discrete Gaussian for Differential Privacy" (NeurIPS 2020,
 *   arXiv:2004.00010), Theorem 4. Returned as an exact rational.
 * - Skellam: Agarwal, Kairouz and Liu, "The Skellam Mechanism for
 *   Differentially Private Federated Learning" (NeurIPS 2021,
 *   arXiv:2110.04995, §3, the Rényi-DP bound of the Skellam mechanism):
 *   with Sk(μ) of variance μ (Poisson(μ/2) − Poisson(μ/2)) and L1, L2
 *   sensitivities Δ1, Δ2, for every integer α > 1
 *     D_α ≤ τ(α) = α·Δ2²/(2μ) + min( ((2α − 1)·Δ2² + 6·Δ1)/(4μ²), 3·Δ1/(2μ) ).
 *   The bound is stated for integer orders, so the ρ we derive from it must
 *   hold for real α too: D_α is non-decreasing in α (van Erven and
 *   Harremoës 2014, Theorem 3), so for α ∈ (k − 1, k]
 *   D_α ≤ τ(k) and ρ = sup_{k≥2} τ(k)/(k − 1) serves; τ(k)/(k − 1)
 *   decreases in k (its parts α/(α − 1), (2α − 1)/(α − 1)·const and
 *   const/(α − 1) all do, since 6Δ1 + Δ2² > 0), so ρ = τ(2) =
 *   Δ2²/μ + min((3Δ2² + 6Δ1)/(4μ²), 3Δ1/(2μ)). That is about twice the
 *   ρ of a Gaussian of the same variance (Δ2²/(2μ)): conservative. For an
 *   (ε, δ) statement use skellamEpsilon, which converts τ(α) at each
 *   integer order directly and is not doubled.
 * - ρ → (ε, δ): CKS20 §2.3 (Proposition 12 and Corollary 13):
 *   ρ-zCDP implies (ε, δ)-DP for δ = exp((α − 1)(αρ − ε))·(1 − 1/α)^α/(α − 1)
 *   at any α > 1; we take the best α (the exponent is convex in α; its
 *   derivative (2α − 1)ρ − ε + ln(1 − 1/α) is found by bisection). From a
 *   single Rényi order, D_α ≤ τ gives ε = τ + ln(1 − 1/α) − (ln α + ln δ)/(α − 1)
 *   (the same proposition solved for ε).
 *
 * The samplers are exact; these numbers are computed in double precision
 * (each is a valid bound at the α it picks, so a slightly sub-optimal α only
 * makes ε or δ slightly larger, never optimistic).
 */
import { InvalidArgumentError } from "../errors.js";
import { rational, rationalToNumber, toBigInt, type IntLike, type Rational } from "./rational.js";

/**
 * ρ = Δ²/(2σ²) of the discrete Gaussian mechanism, exactly (CKS20 Theorem 4).
 * @throws InvalidArgumentError when Δ is negative or σ² not a positive rational
 */
export function discreteGaussianRho(sensitivity: IntLike, sigma2Num: IntLike, sigma2Den: IntLike): Rational {
  const d = toBigInt(sensitivity, "sensitivity");
  if (d < 0n) throw new InvalidArgumentError("sensitivity must be ≥ 0");
  const s2 = rational(sigma2Num, sigma2Den, "discrete Gaussian σ²", { positive: true });
  return rational(d * d * s2.den, 2n * s2.num, "ρ");
}

/** The L1 and L2 sensitivities of a released integer vector (for one value: both Δ). */
export interface Sensitivity {
  readonly l1: number;
  readonly l2: number;
}

function checkSensitivity(s: Sensitivity): void {
  if (!(Number.isFinite(s.l1) && Number.isFinite(s.l2) && s.l1 >= 0 && s.l2 >= 0)) {
    throw new InvalidArgumentError("sensitivity: l1 and l2 must be finite and ≥ 0");
  }
}

function muNumber(muNum: IntLike, muDen: IntLike): number {
  return rationalToNumber(rational(muNum, muDen, "Skellam μ", { positive: true }));
}

/** τ(α), AKL21's Rényi-DP bound of the Skellam mechanism Sk(μ) (variance μ) at an integer order α ≥ 2. */
export function skellamRdp(alpha: number, muNum: IntLike, muDen: IntLike, sensitivity: Sensitivity): number {
  if (!Number.isSafeInteger(alpha) || alpha < 2) throw new InvalidArgumentError("alpha must be an integer ≥ 2 (the Skellam bound is for integer orders)");
  checkSensitivity(sensitivity);
  const mu = muNumber(muNum, muDen);
  const { l1, l2 } = sensitivity;
  return (alpha * l2 * l2) / (2 * mu) + Math.min(((2 * alpha - 1) * l2 * l2 + 6 * l1) / (4 * mu * mu), (3 * l1) / (2 * mu));
}

/** A ρ for which Sk(μ) noise is ρ-zCDP at every real α > 1: τ(2) (see the file's comment). */
export function skellamRho(muNum: IntLike, muDen: IntLike, sensitivity: Sensitivity): number {
  return skellamRdp(2, muNum, muDen, sensitivity);
}

/** Orders tried by skellamEpsilon: 2 … 10,000. */
export const SKELLAM_MAX_ORDER = 10_000;

/** The smallest ε, over integer orders 2 … 10,000, for which Sk(μ) noise is (ε, δ)-DP by AKL21's bound and CKS20 Proposition 12. */
export function skellamEpsilon(muNum: IntLike, muDen: IntLike, sensitivity: Sensitivity, delta: number): number {
  checkDelta(delta);
  let best = Infinity;
  for (let alpha = 2; alpha <= SKELLAM_MAX_ORDER; alpha++) {
    best = Math.min(best, epsilonFromRdp(alpha, skellamRdp(alpha, muNum, muDen, sensitivity), delta));
  }
  return best;
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new InvalidArgumentError("delta must be in (0, 1)");
}

function checkRho(rho: number): void {
  if (!(Number.isFinite(rho) && rho >= 0)) throw new InvalidArgumentError("rho must be finite and ≥ 0");
}

/** ε from one Rényi order: D_α ≤ τ implies (ε, δ)-DP with ε = τ + ln(1 − 1/α) − (ln α + ln δ)/(α − 1). */
export function epsilonFromRdp(alpha: number, tau: number, delta: number): number {
  if (!(alpha > 1 && Number.isFinite(alpha))) throw new InvalidArgumentError("alpha must be > 1");
  if (!(tau >= 0 && Number.isFinite(tau))) throw new InvalidArgumentError("tau must be finite and ≥ 0");
  checkDelta(delta);
  return Math.max(0, tau + Math.log1p(-1 / alpha) - (Math.log(alpha) + Math.log(delta)) / (alpha - 1));
}

/** The δ for which ρ-zCDP implies (ε, δ)-DP (CKS20 Corollary 13, best α). */
export function deltaFromRho(rho: number, epsilon: number): number {
  checkRho(rho);
  if (!(Number.isFinite(epsilon) && epsilon >= 0)) throw new InvalidArgumentError("epsilon must be finite and ≥ 0");
  if (rho === 0) return 0;
  // The exponent's derivative (2α − 1)ρ − ε + ln(1 − 1/α) increases in α; bisect for its zero.
  let lo = 1 + 1e-9;
  let hi = (epsilon + 1) / (2 * rho) + 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if ((2 * mid - 1) * rho - epsilon + Math.log1p(-1 / mid) < 0) lo = mid;
    else hi = mid;
  }
  const alpha = hi;
  const logDelta = (alpha - 1) * (alpha * rho - epsilon) + alpha * Math.log1p(-1 / alpha) - Math.log(alpha - 1);
  return Math.min(1, Math.exp(logDelta));
}

/** The smallest ε (to 1e−12 relative) for which ρ-zCDP implies (ε, δ)-DP by CKS20 Corollary 13. */
export function epsilonFromRho(rho: number, delta: number): number {
  checkRho(rho);
  checkDelta(delta);
  if (rho === 0) return 0;
  let lo = 0; // deltaFromRho(rho, lo) > delta, or lo = 0
  let hi = rho + 2 * Math.sqrt(rho * Math.log(1 / delta)); // the classic bound (Bun–Steinke 2016 Prop. 1.3): δ there is ≤ delta
  while (deltaFromRho(rho, hi) > delta) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (deltaFromRho(rho, mid) <= delta) hi = mid;
    else lo = mid;
  }
  return hi;
}
