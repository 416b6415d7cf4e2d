/**
 * federated-aggregate: COUNT / SUM / AVG / VAR / STDDEV and histograms across
 * N ≥ 2 providers, per public category, computed under the buyer's BFV key
 * (engine/he) with pairwise masks that cancel in the sum — exactly, by
 * default; or, where the job declares approximate arithmetic, under a CKKS
 * key with real-valued masks (see Approximate mode: weaker hiding).
 *
 * ## Roles and job parameters
 *
 * buyer = the HE key holder; providers 0 … N−1; the exchange = the
 * aggregator that relays. Everything that shapes the computation comes from
 * the job, known to every party, never from a message: the job id, the
 * aggregates, the group-by column and its declared categories (the cells;
 * a row whose category is not declared, or null, goes to no cell), the
 * histogram column and its bin edges, N, the minimum number of providers,
 * k (`minGroupSize`: the minimum rows per provider per cell, per bin and per
 * range outside the edges, see below), the value range (maxAbsValue, scale,
 * maxRowsPerProvider) from which the HE context is derived, and whether the
 * arithmetic is exact (BFV, the default) or approximate (CKKS).
 *
 * ## In short
 *
 * Each provider aggregates its table into a vector of slots (per cell: count,
 * sums, sums of squares; one count per histogram bin), leaving out every
 * cell, bin and range in which it alone has 1 … k−1 rows (local.ts), so no
 * co-provider's rows can lift a victim's small cell over k. It adds
 * pairwise masks that cancel in the sum of all N vectors, encrypts under
 * the buyer's key and sends to the exchange, which adds the N ciphertexts,
 * re-randomises and sends the buyer only the complete sum. The buyer learns
 * the totals (cells under k suppressed); the exchange and the providers
 * learn nothing of another provider's vector. Approximate mode (CKKS, real
 * masks) hides a provider's vector only statistically (~20 bits per slot).
 * The vector's layout, the k rule, the threat model and why it is secure:
 * docs/protocols/federated-aggregate.md.
 *
 * ## Flow (version 1)
 *
 *   step 1  buyer → exchange → every provider   AggregateKey {HE context options,
 *                                              fingerprint, public key}
 *   step 2  provider i → exchange              AggregateCiphertext {party i,
 *                                              Enc(x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji)}
 *   step 3  exchange → buyer                   AggregateCiphertext {N contributors,
 *                                              ReRandomize(Σ_i ct_i)}
 *
 * The pairwise mask m_ij (i < j) is, for each CRT prime p and slot, a
 * uniform residue mod p drawn (by rejection) from AES-256-CTR keyed by
 * HKDF-SHA256(X25519(sk_i, pk_j), salt "umbra/federated-aggregate/v1",
 * info = job ‖ i ‖ j ‖ pk_i ‖ pk_j ‖ HE fingerprint ‖ buyer key-set id).
 * Provider i adds it, provider j subtracts it, in the residue space of each
 * prime (engine/he `maskedResidues`), so Σ_i (x_i + masks_i) ≡ Σ_i x_i
 * (mod p) for every prime and the CRT recombination of the sum is exact. The
 * providers' X25519 box keys are their registered keys: no extra round.
 *
 * The exchange refuses to produce step 3 unless it holds a step-2 ciphertext
 * from every one of the N providers, each of exactly L slots, row bound 1,
 * under the buyer's key set. A provider that never sends fails the job
 * (`MissingProviderError`); nothing partial is released — and nothing
 * partial could be decrypted to anything meaningful, since an incomplete sum
 * still carries the uncancelled masks.
 *
 * ## Files
 *
 * params.ts (job parameters, the vector's layout, the HE scheme picked once:
 * BFV or CKKS behind engine/he's HeScheme), local.ts (a provider's local
 * vector), masks.ts (pairwise mask keys; the mask arithmetic is engine/he
 * masks.ts), messages.ts (step 1 and the checks every role makes),
 * buyer.ts, provider.ts and exchange.ts (the three roles, each a
 * protocols/role.ts `Role`, written once for both schemes), result.ts (the
 * buyer's result), run.ts (every role in one process over runRoles, Arrow
 * tables in and out), dp.ts (differential privacy: each provider's share of
 * distributed discrete Gaussian noise, added before masking, and its
 * accounting). The aggregate plumbing shared with join-aggregate is
 * protocols/aggregate.ts.
 *
 * ## Senders
 *
 * Each role checks who sent a message, by role name (protocols/role.ts):
 * the exchange takes the key set only from "buyer" and provider i's vector
 * only from "provider-<i>" (i the vector's party index); the providers and
 * the buyer take messages only from "exchange". Anything else is refused
 * with WrongSenderError (UMBRA_WRONG_SENDER), the state unchanged.
 *
 * References: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017) — pairwise cancelling
 * masks; Fan–Vercauteren (BFV) and Cheon–Kim–Kim–Song (CKKS, "Homomorphic
 * Encryption for Arithmetic of Approximate Numbers", ASIACRYPT 2017) as
 * implemented by Microsoft SEAL; Shewchuk, "Adaptive Precision Floating-Point
 * Arithmetic and Fast Robust Geometric Predicates" (1997) — exactly rounded
 * local sums.
 */
export { AggregateFn, DEFAULT_MAX_ABS_VALUE, DEFAULT_MIN_GROUP_SIZE, type AggregateSpec } from "../aggregate.js";
export { providerRole } from "../role.js";
export {
  FA_CKKS_PRECISION_BITS,
  FA_MASK_BITS,
  FA_MAX_PROVIDERS,
  FA_MAX_SLOTS,
  FA_VERSION,
  faCkksOptions,
  faHeOptions,
  faRoundingError,
  faSchemeOptions,
  FaStep,
  MissingProviderError,
  resolveFaParams,
  withFaScheme,
  type FaContext,
  type FaResolved,
  type FederatedAggregateParams,
} from "./params.js";
export { faLocalVector, faPlaintext } from "./local.js";
export { faDpLaw, faDpPlan, faDpSigma2, faNoiseShares, NoiseBoundError, parseRho, type FaDpParams, type FaDpResolved, type FaDpStatistic } from "./dp.js";
export { faBoxKeyPair, faPairMasks } from "./masks.js";
export { faBuyer, type FaBuyerState } from "./buyer.js";
export { faMaskedResidues, faMaskedValues, faProvider, type FaProviderInit, type FaProviderInput, type FaProviderState } from "./provider.js";
export { faExchange, faExchangeMissing, type FaExchangeState } from "./exchange.js";
export {
  faBuyerResult,
  type FaApprox,
  type FaApproxCell,
  type FaApproxColumn,
  type FaApproxCount,
  type FaAvgInterval,
  type FaBuyerTotals,
  type FaDpSummary,
  type FaNoiseCell,
  type FaNoisyValue,
  type FaCell,
  type FaColumnResult,
  type FaResult,
} from "./result.js";
export { faResultTable, runFederatedAggregate, RUN_FEDERATED_AGGREGATE_OPTIONS, type FaProviderSide, type FaRunResult, type RunFederatedAggregateOptions } from "./run.js";
