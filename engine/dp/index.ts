/**
 * engine/dp — differential privacy's noise, exact: samplers of the
 * discrete Laplace, the discrete Gaussian (Canonne, Kamath and Steinke 2020,
 * Algorithms 1–3), Poisson and Skellam (distributed noise: shares that sum
 * to exactly Sk(μ), Agarwal, Kairouz and Liu 2021) in integer arithmetic
 * from a pluggable uniform source; their pmfs for tests; zCDP accounting
 * (ρ, the (ε, δ) conversion) and confidence intervals for released values.
 * The distributed discrete Gaussian's accounting (Kairouz, Liu and Steinke
 * 2021) is distributed.ts; federated-aggregate adds it (docs/differential-privacy.md).
 */
export { createUniformSource, cryptoUniformSource, seededUniformSource, type UniformSource } from "./random.js";
export { rational, rationalToNumber, type IntLike, type Rational } from "./rational.js";
export { sampleBernoulliExp } from "./bernoulli.js";
export { sampleDiscreteLaplace, sampleDiscreteLaplaceBatch } from "./laplace.js";
export { sampleDiscreteGaussian, sampleDiscreteGaussianBatch } from "./gaussian.js";
export { samplePoisson, POISSON_MAX_MEAN } from "./poisson.js";
export { sampleSkellam, sampleSkellamBatch, sampleSkellamShare, sampleSkellamShareBatch } from "./skellam.js";
export { discreteGaussianNormalizer, discreteGaussianPmf, discreteLaplacePmf, poissonPmf, skellamPmf } from "./pmf.js";
export {
  deltaFromRho,
  discreteGaussianRho,
  epsilonFromRdp,
  epsilonFromRho,
  skellamEpsilon,
  skellamRdp,
  skellamRho,
  SKELLAM_MAX_ORDER,
  type Sensitivity,
} from "./accounting.js";
export { distributedGaussianHalfWidth, distributedGaussianRho, distributedGaussianTau, type DistributedQuery } from "./distributed.js";
export { noiseHalfWidth, noisyValueInterval, type NoiseLaw, type NoisyInterval } from "./interval.js";
