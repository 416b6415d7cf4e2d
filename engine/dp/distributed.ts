/**
 * Accounting and intervals for the distributed discrete Gaussian: each of n
 * parties adds its own N_Z(0, σ²) (σ² the per-party variance) to an integer
 * vector before secure aggregation, so the released sum carries
 * Z = X_1 + … + X_n, which no single party knows.
 *
 * Z is not exactly a discrete Gaussian, but close: Kairouz, Liu and
 * Steinke, "The Distributed Discrete Gaussian Mechanism for Federated
 * Learning with Secure Aggregation" (ICML 2021, arXiv:2102.06387),
 * Theorem 1 / Proposition 14: for σ ≥ 1/2 and a d-dimensional query whose
 * change Δ between neighbours has ‖Δ‖1 ≤ Δ1, ‖Δ‖2 ≤ Δ2, for every α > 1
 *   D_α(Z ‖ Z + Δ) ≤ min( α/2·Δ2²/(nσ²) + τd,
 *                         α/2·(Δ2²/(nσ²) + 2Δ1τ/(√n·σ) + τ²d),
 *                         α/2·(Δ2/(√n·σ) + τ√d)² ),
 *   τ = 10·Σ_{k=1}^{n−1} exp(−2π²σ²·k/(k+1)).
 * Each term is at most α·ρ for ρ = Δ2²/(2nσ²) + τd (the first, since
 * α > 1), ½(Δ2²/(nσ²) + 2Δ1τ/(√nσ) + τ²d) and ½(Δ2/(√nσ) + τ√d)²: the
 * mechanism is ρ-zCDP for the least of the three
 * ({@link distributedGaussianRho}). τ is tiny once σ ≥ 1 (e^(−π²) ≈ 5·10⁻⁵
 * per term at worst), so ρ is Δ2²/(2nσ²), the discrete Gaussian's of the
 * total variance nσ² (CKS20 Theorem 4), plus a negligible excess.
 *
 * Interval: each N_Z(0, σ²) is σ²-sub-Gaussian (Canonne, Kamath and
 * Steinke 2020, Corollary 9: E[e^(tX)] ≤ e^(t²σ²/2)), so Z is
 * nσ²-sub-Gaussian and P[|Z| ≥ w] ≤ 2·exp(−w²/(2nσ²)): the half-width
 * w = ⌈√(2nσ²·ln(2/(1 − level)))⌉ covers Z with probability ≥ level
 * (≈ 2.72 standard deviations at 95%: conservative, never optimistic).
 * Computed in double precision: a report, never a sampling decision.
 */
import { InvalidArgumentError } from "../errors.js";
import { rational, rationalToNumber, type IntLike } from "./rational.js";

function checkParties(parties: number): void {
  if (!Number.isSafeInteger(parties) || parties < 1) throw new InvalidArgumentError("parties must be an integer ≥ 1");
}

/** τ of KLS21 Theorem 1 for n parties each adding N_Z(0, σ²), σ² the per-party variance (a Number). */
export function distributedGaussianTau(parties: number, sigma2: number): number {
  checkParties(parties);
  if (!(sigma2 > 0 && Number.isFinite(sigma2))) throw new InvalidArgumentError("sigma2 must be a positive finite number");
  let tau = 0;
  for (let k = 1; k < parties; k++) tau += Math.exp(-2 * Math.PI * Math.PI * sigma2 * (k / (k + 1)));
  return 10 * tau;
}

/** The query's sensitivities and dimension for {@link distributedGaussianRho}. */
export interface DistributedQuery {
  readonly l1: number;
  readonly l2: number;
  /** d, the number of values released (1 for one count or sum). */
  readonly dimension: number;
}

/**
 * A ρ for which the sum of `parties` independent N_Z(0, σ²) per value
 * (σ² = sigma2Num/sigma2Den per party, σ ≥ 1/2) is ρ-zCDP: the least of
 * KLS21 Proposition 14's three bounds (see the file's comment).
 * @throws InvalidArgumentError when σ < 1/2 (the theorem's condition) or an argument is malformed
 */
export function distributedGaussianRho(parties: number, sigma2Num: IntLike, sigma2Den: IntLike, query: DistributedQuery): number {
  checkParties(parties);
  const s2r = rational(sigma2Num, sigma2Den, "per-party σ²", { positive: true });
  if (4n * s2r.num < s2r.den) throw new InvalidArgumentError("the distributed discrete Gaussian bound needs a per-party σ ≥ 1/2");
  const { l1, l2, dimension: d } = query;
  if (!(Number.isFinite(l1) && Number.isFinite(l2) && l1 >= 0 && l2 >= 0)) throw new InvalidArgumentError("sensitivity: l1 and l2 must be finite and ≥ 0");
  if (!Number.isSafeInteger(d) || d < 1) throw new InvalidArgumentError("dimension must be an integer ≥ 1");
  const s2 = rationalToNumber(s2r);
  const tau = distributedGaussianTau(parties, s2);
  const total = parties * s2;
  const sd = Math.sqrt(total);
  return Math.min(
    (l2 * l2) / (2 * total) + tau * d,
    ((l2 * l2) / total + (2 * l1 * tau) / sd + tau * tau * d) / 2,
    (l2 / sd + tau * Math.sqrt(d)) ** 2 / 2,
  );
}

/** The half-width w with P[|Z| < w] ≥ level for Z the sum of `parties` N_Z(0, σ²): ⌈√(2nσ²·ln(2/(1 − level)))⌉ (sub-Gaussian tail). */
export function distributedGaussianHalfWidth(parties: number, sigma2Num: IntLike, sigma2Den: IntLike, level = 0.95): bigint {
  checkParties(parties);
  if (!(level > 0 && level < 1)) throw new InvalidArgumentError("level must be in (0, 1)");
  const s2 = rationalToNumber(rational(sigma2Num, sigma2Den, "per-party σ²", { positive: true }));
  return BigInt(Math.ceil(Math.sqrt(2 * parties * s2 * Math.log(2 / (1 - level)))));
}
