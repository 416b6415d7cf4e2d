/**
 * Confidence intervals for a released noisy value: the smallest integer w
 * with P[|Z| ≤ w] ≥ level for the noise Z, and [value − w, value + w].
 * Since the noise is symmetric and independent of the data, the interval
 * covers the true value with probability at least `level` (95% unless
 * said). The coverage is summed from pmf.ts in double precision (cost
 * linear in the noise's standard deviation; for Skellam, in μ): a report,
 * not a sampling decision. For the distributed discrete Gaussian (a sum of
 * parties' shares, not one pmf) w is distributed.ts's sub-Gaussian bound.
 */
import { InvalidArgumentError } from "../errors.js";
import { distributedGaussianHalfWidth } from "./distributed.js";
import { discreteGaussianPmf, discreteLaplacePmf, poissonTable, skellamPmfFromTable } from "./pmf.js";
import { rationalToNumber, toBigInt, type IntLike, type Rational } from "./rational.js";

/** The law of the noise added to a released value. */
export type NoiseLaw =
  | { readonly kind: "discrete-gaussian"; readonly sigma2: Rational }
  | { readonly kind: "discrete-laplace"; readonly scale: Rational }
  | { readonly kind: "skellam"; readonly mu: Rational }
  /** The sum of `parties` independent N_Z(0, sigma2) (sigma2 per party): distributed.ts, a sub-Gaussian bound. */
  | { readonly kind: "distributed-discrete-gaussian"; readonly parties: number; readonly sigma2: Rational };

function pmfOf(law: NoiseLaw): (d: number) => number {
  switch (law.kind) {
    case "discrete-gaussian":
      return (d) => discreteGaussianPmf(law.sigma2.num, law.sigma2.den, d);
    case "discrete-laplace":
      return (d) => discreteLaplacePmf(law.scale.num, law.scale.den, d);
    case "distributed-discrete-gaussian":
      throw new InvalidArgumentError("the distributed discrete Gaussian's interval is a tail bound, not a pmf sum");
    case "skellam": {
      const table = poissonTable(rationalToNumber(law.mu) / 2);
      return (d) => skellamPmfFromTable(table, d);
    }
    default:
      throw new InvalidArgumentError("unknown noise law");
  }
}

/** The smallest w ≥ 0 with P[|Z| ≤ w] ≥ level for Z of `law`, 0 < level < 1. */
export function noiseHalfWidth(law: NoiseLaw, level = 0.95): bigint {
  if (!(level > 0 && level < 1)) throw new InvalidArgumentError("level must be in (0, 1)");
  if (law.kind === "distributed-discrete-gaussian") return distributedGaussianHalfWidth(law.parties, law.sigma2.num, law.sigma2.den, level);
  const pmf = pmfOf(law);
  let covered = pmf(0);
  let w = 0;
  while (covered < level) {
    w++;
    const p = pmf(w);
    if (p === 0) throw new InvalidArgumentError("the noise pmf underflowed before reaching the level");
    covered += 2 * p;
  }
  return BigInt(w);
}

/** A released value's interval at `level` (95% unless said): the true value lies in [low, high] with at least that probability. */
export interface NoisyInterval {
  readonly low: bigint;
  readonly high: bigint;
  readonly halfWidth: bigint;
  readonly level: number;
}

export function noisyValueInterval(released: IntLike, law: NoiseLaw, level = 0.95): NoisyInterval {
  const v = toBigInt(released, "released value");
  const w = noiseHalfWidth(law, level);
  return { low: v - w, high: v + w, halfWidth: w, level };
}
