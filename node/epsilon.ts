/**
 * ε → ρ for `--epsilon`: the largest simple rational ρ = num/10^k (four
 * significant digits, rounded down) whose (ε, δ) guarantee by CKS20
 * Corollary 13 (engine/dp epsilonFromRho) is no worse than the ε asked:
 * epsilonFromRho(ρ, δ) ≤ ε, and epsilonFromRho((num + 1)/10^k, δ) > ε. Jobs,
 * budgets and the ledger keep counting in exact ρ; ε only chooses it. δ is
 * 1e-6 unless said (`--delta`). See docs/differential-privacy.md.
 */
import { InvalidArgumentError } from "../engine/errors.js";
import { epsilonFromRho, rational, rationalToNumber, type Rational } from "../engine/dp/index.js";

/** δ when none is given: 10^−6. */
export const DEFAULT_DELTA = 1e-6;

/** Significant decimal digits of the ρ chosen for an ε. */
export const EPSILON_RHO_DIGITS = 4;

const rhoNumber = (r: Rational): number => rationalToNumber(r);

/**
 * The largest ρ = num/10^k with four significant digits (in lowest terms)
 * such that ρ-zCDP implies (ε, δ)-DP by CKS20 Corollary 13.
 * @throws InvalidArgumentError when ε is not finite and positive, δ not in (0, 1), or ε so small that no such ρ of that form is above 10^−30
 */
export function rhoForEpsilon(epsilon: number, delta: number = DEFAULT_DELTA): Rational {
  if (!(Number.isFinite(epsilon) && epsilon > 0)) throw new InvalidArgumentError("epsilon must be a finite number > 0");
  if (!(delta > 0 && delta < 1)) throw new InvalidArgumentError("delta must be in (0, 1)");
  // epsilonFromRho is increasing in ρ and ε(ρ) ≥ ρ: the ρ sought lies in (0, ε]. Bisect on a log scale.
  let lo = epsilon * 1e-30;
  let hi = epsilon;
  if (epsilonFromRho(lo, delta) > epsilon) throw new InvalidArgumentError("epsilon is too small for this delta");
  for (let i = 0; i < 200 && hi / lo > 1 + 1e-12; i++) {
    const mid = Math.sqrt(lo * hi);
    if (epsilonFromRho(mid, delta) <= epsilon) lo = mid;
    else hi = mid;
  }
  // lo meets ε; round it down to four significant digits: num/10^k.
  const k = EPSILON_RHO_DIGITS - 1 - Math.floor(Math.log10(lo));
  const scale = (e: number): Rational => (e >= 0 ? { num: 1n, den: 10n ** BigInt(e) } : { num: 10n ** BigInt(-e), den: 1n });
  const unit = scale(k);
  let num = BigInt(Math.floor(lo * 10 ** k));
  const at = (n: bigint): Rational => rational(n * unit.num, unit.den, "rho");
  // The float product may be one off either way: step until num meets ε and num + 1 does not.
  while (num > 0n && epsilonFromRho(rhoNumber(at(num)), delta) > epsilon) num--;
  while (epsilonFromRho(rhoNumber(at(num + 1n)), delta) <= epsilon) num++;
  if (num <= 0n) throw new InvalidArgumentError("epsilon is too small for this delta");
  return at(num);
}
