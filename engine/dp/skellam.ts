/**
 * Skellam noise for distributed differential privacy: Sk(μ) = X − Y with
 * X, Y independent Poisson(μ/2), so E = 0 and Var = μ, on the integers
 * (P[Sk(μ) = k] = e^(−μ)·I_|k|(μ), I the modified Bessel function of the
 * first kind; see pmf.ts).
 *
 * The family is closed under addition: Sk(μ1) + Sk(μ2) = Sk(μ1 + μ2) for
 * independent draws (the Poisson parts add: Poisson(a) + Poisson(b) =
 * Poisson(a + b)). So when each of n parties adds its own share Sk(μ/n),
 * the total is exactly Sk(μ), and no party knows the total noise: it knows
 * its own share only, and the rest is Sk(μ(n − 1)/n). This is the
 * mechanism of Agarwal, Kairouz and Liu, "The Skellam Mechanism for
 * Differentially Private Federated Learning" (NeurIPS 2021,
 * arXiv:2110.04995); its privacy bound is in accounting.ts.
 *
 * Exact: the Poisson parts come from poisson.ts (uniform integers only). The
 * cost is linear in μ (about 5.2·μ uniform draws), so μ is capped at 2^25.
 */
import { checkCount, toInt64 } from "./batch.js";
import { InvalidArgumentError } from "../errors.js";
import { poissonFromPlan, poissonPlan, type PoissonPlan } from "./poisson.js";
import { cryptoUniformSource, type UniformSource } from "./random.js";
import { rational, toBigInt, type IntLike } from "./rational.js";

function skellamPlan(muNum: IntLike, muDen: IntLike, parties: IntLike): PoissonPlan {
  const mu = rational(muNum, muDen, "Skellam μ", { positive: true });
  const n = toBigInt(parties, "parties");
  if (n < 1n) throw new InvalidArgumentError("parties must be ≥ 1");
  // Each share is Sk(μ/n) = Poisson(μ/(2n)) − Poisson(μ/(2n)).
  return poissonPlan(rational(mu.num, 2n * n * mu.den, "Skellam μ"), "Skellam μ/2 (per party)");
}

function draw(rng: UniformSource, plan: PoissonPlan): bigint {
  const x = poissonFromPlan(rng, plan);
  return BigInt(x - poissonFromPlan(rng, plan));
}

/**
 * One draw of Sk(muNum/muDen), variance μ.
 * @throws InvalidArgumentError when μ is not a positive rational of integers, or above 2^25
 */
export function sampleSkellam(muNum: IntLike, muDen: IntLike, rng: UniformSource = cryptoUniformSource()): bigint {
  return draw(rng, skellamPlan(muNum, muDen, 1));
}

/** `count` independent draws of Sk(muNum/muDen). */
export function sampleSkellamBatch(muNum: IntLike, muDen: IntLike, count: number, rng: UniformSource = cryptoUniformSource({ bufferBytes: 4096 })): BigInt64Array {
  const plan = skellamPlan(muNum, muDen, 1);
  const out = new BigInt64Array(checkCount(count));
  for (let i = 0; i < out.length; i++) out[i] = toInt64(draw(rng, plan));
  return out;
}

/**
 * One party's share of Sk(μ) split among `parties`: a draw of Sk(μ/parties).
 * The shares of all parties, drawn independently, sum to exactly Sk(μ).
 */
export function sampleSkellamShare(muNum: IntLike, muDen: IntLike, parties: IntLike, rng: UniformSource = cryptoUniformSource()): bigint {
  return draw(rng, skellamPlan(muNum, muDen, parties));
}

/** `count` independent shares (one per released value) of Sk(μ) split among `parties`. */
export function sampleSkellamShareBatch(muNum: IntLike, muDen: IntLike, parties: IntLike, count: number, rng: UniformSource = cryptoUniformSource({ bufferBytes: 4096 })): BigInt64Array {
  const plan = skellamPlan(muNum, muDen, parties);
  const out = new BigInt64Array(checkCount(count));
  for (let i = 0; i < out.length; i++) out[i] = toInt64(draw(rng, plan));
  return out;
}
