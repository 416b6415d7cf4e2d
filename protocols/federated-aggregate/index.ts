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
 * ## The vector
 *
 * Each provider aggregates its table locally into a vector of L slots: per
 * cell, `count`, then per value column `sum` (units of 10^-scale) and, when
 * VAR/STDDEV asks for it, `sumsq` (units of 10^-2·scale), then one count per
 * histogram bin (bins [e_i, e_{i+1}), the last one closed). Values are exact
 * integers (bigint); the HE context is built with scale 0 and
 * maxAbsValue B = maxRowsPerProvider · max(1, V, V² if sumsq) (V the scaled
 * value bound) and maxRows = N, so N·B < M/2 and every total is exact.
 *
 * ## k per provider per cell
 *
 * k (`minGroupSize`) holds for each provider on its own: every provider
 * contributes 0 or at least k rows to any cell, and 0 or at least k rows to
 * any histogram bin (bins are released, or nulled, against k one by one, so
 * they are cells for k too). Before masking and encrypting, a provider's
 * local vector (`faLocalVector`, local.ts) leaves out:
 *
 * - without a histogram: every cell in which it has 1 … k−1 rows (count,
 *   sums and sums of squares all zero);
 * - with a histogram: every row of a cell that falls in a **range** of that
 *   cell in which the provider has 1 … k−1 rows, where a cell's ranges are
 *   its bins and the two outside the edges (below the first edge, above the
 *   last). Such a row is taken out of the cell's count, sums and sums of
 *   squares as well as its bin — as if the provider did not hold it. A cell
 *   where it has 1 … k−1 rows has every range under k, so it is left out
 *   whole, as without a histogram.
 *
 * So every count, bin and difference of released slots covers 0 or at least
 * k of one provider's rows: count − Σ bins is that provider's rows below the
 * first edge (0 or ≥ k) plus those above the last (0 or ≥ k). Zeroing a small
 * bin while keeping its rows in the count and sums would not do: count − Σ
 * bins would give the bin's rows (one person aged 42 under edges [0, 42, 43,
 * 1000]), and edges [0, 993] would isolate the rows above 993 (the extreme
 * value, from the sums). A total count is then 0 or at least k from one
 * provider alone, so rows of another provider — a sybil co-provider's ten
 * zero rows beside a victim's single row — can never lift a victim's small
 * cell over k. This runs in the provider's own role (its own agent protects
 * its own data), exact and approximate alike, and in the library runner
 * too. The buyer then suppresses totals below k as before (a total is 0 or
 * ≥ k unless every provider zeroed the cell). The result is the plaintext
 * computation over every provider's rows with this rule applied: a cell's
 * count, sums and bins are over the rows each provider keeps — all its rows
 * in the cell when it has at least k there (no histogram), or its rows in
 * the ranges where it has at least k (histogram). Two jobs with different
 * edges over the same data can still be differenced (bins [0, 42) and [0,
 * 43)): within one job the rule holds, across jobs the provider's budget is
 * what bounds it.
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
 * ## Approximate mode (`approximate: true`; exact mode is the default)
 *
 * The same vector, encrypted with CKKS (engine/he CkksContext: N = 8192,
 * coefficient modulus [60, 40, 40, 60], scale 2^40) instead of BFV. Slots
 * hold doubles: counts, and the sums and sums of squares of the values as
 * doubles (64-bit integers converted), each summed locally with Shewchuk's
 * exactly rounded summation (squares split exactly first); no fixed-point
 * scale (`scale` is not used, and a histogram bins the values as they are).
 * Each slot has a public bound B on one provider's |slot| from the job (R =
 * maxRowsPerProvider, V = maxAbsValue): R for counts and bins, R·V for
 * sums, R·V² for sums of squares (each × (1 + 2^-40) against rounding).
 * Provider i encrypts every slot divided by its B, plus real-valued masks:
 *
 *   y_i = x_i / B + Σ_{j>i} m_ij − Σ_{j<i} m_ji,    m_ij uniform in [−2^20, 2^20)
 *
 * — in the slot's own units masks uniform in [−R', R'] with R' = 2^20·B, B
 * the job's bound on the slot's magnitude. m_ij are multiples of 2^-32 (53
 * random bits each) from the same ECDH-keyed HKDF/AES-CTR stream as the BFV
 * masks (the info names the CKKS fingerprint and key-set id). Masks cannot
 * cancel exactly in CKKS: they cancel in the sum up to rounding — CKKS's
 * own (encoding the masked vector, of magnitude up to (N−1)·2^20 + 1, is
 * what the context is sized for: its encoding error is ~2^20 times what the
 * bare values would cause) and the doubles' (each y_i is rounded N − 1
 * times). The exchange adds the N ciphertexts and re-randomises the sum
 * (CkksContext.reRandomize: a fresh encryption of zero, the last level,
 * |total| ≤ N since the masks cancel); the buyer decrypts, multiplies back
 * by B and reports each slot with a bound on its error,
 *
 *   bound = B·(E + F) + 2^-52·|result|,
 *
 * E the received ciphertext's CKKS errorBound (ckks.ts: noise, encoding and
 * decoding terms at maxAbsValue (N−1)·2^20 + 1, which covers the masks'
 * cancellation error) and F = N·(2^-51 + 2^-53 + (N−1)·2^-53·((N−1)·2^20 + 1))
 * the doubles' rounding (local sums and 64-bit conversion, the division by
 * B, the mask additions). A count or bin whose bound is below 0.5 is
 * reported rounded to the integer, which is then exact (`rounded`);
 * otherwise as an approximate double. AVG, VAR and STDDEV carry bounds by
 * interval arithmetic over their inputs' bounds. k-suppression as in exact
 * mode, on the rounded count — or, where a count is approximate, a cell or
 * bin is released only when count − bound ≥ k.
 *
 * The step-1 message says `approximate` and the CKKS scale; every party
 * derives both from the job and refuses a message that differs
 * (ParameterMismatchError), and a BFV ciphertext in an approximate job (or
 * the reverse) is refused as well.
 *
 * ## Threat model and leakage (semi-honest parties; inputs validated as if malicious)
 *
 * - Buyer learns: the exact totals of every slot — per declared category,
 *   count, sums, sums of squares and histogram counts summed over all N
 *   providers — and from them AVG/VAR/STDDEV. It learns no provider's own
 *   vector: it only ever receives the re-randomised sum (tests check this on
 *   the transport). Every provider's share of a cell, of a bin and of each
 *   range outside the edges is 0 or at least k rows, and rows of a range it
 *   leaves out are in none of its cell's slots, enforced by that provider's
 *   own role before it encrypts (see k per provider per cell): this holds
 *   against a deviating buyer too (no difference of one job's slots covers
 *   1 … k−1 of a provider's rows), and against a co-provider that pads a cell.
 *   Cells whose total count is below k are **suppressed by the buyer's
 *   runner after decryption** (`faBuyerResult`, result.ts): the output
 *   table carries them with nulls and `suppressed = true`. This protects what
 *   the buyer's software releases downstream; it does not hide those cells
 *   from a buyer that deviates — the key holder decrypts every slot, small
 *   cells included. Enforcing k against the key holder itself would need the
 *   suppression under encryption (or threshold decryption), which this
 *   version does not do. The cell and bin layout, N and k are public.
 * - Providers learn: nothing about each other's data — they receive only the
 *   buyer's public key and the context options.
 * - Exchange learns: nothing but sizes — it sees BFV ciphertexts under the
 *   buyer's key, and which providers took part.
 * - Non-collusion: each provider's ciphertext decrypts to its vector plus
 *   masks that are uniform modulo every prime, so even the exchange and the
 *   buyer together (who can decrypt every step-2 ciphertext) see a uniformly
 *   random vector for each provider — unless N − 1 providers collude with
 *   them: they know every mask shared with the remaining provider, and its
 *   vector is then the total minus theirs (which no aggregate can hide).
 *   Masks are PRG outputs: the guarantee is computational (X25519 + HKDF +
 *   AES-CTR), not information-theoretic.
 * - Masks are a deterministic function of the two providers' registered keys,
 *   the job id and the buyer's key-set id: a provider must never take part
 *   twice in the same job id with the same buyer key set and different data
 *   (the two masked vectors would differ by exactly the data's difference).
 *   Job ids are unique per job, and a fresh buyer key set is drawn per job.
 * - Step-3 re-randomisation (engine/he reRandomize) hides the ciphertext's
 *   history from the key holder heuristically (see its comment), not
 *   statistically.
 * - In approximate mode a provider's vector is hidden from the exchange and
 *   the buyer together only **statistically, and only to about 20 bits per
 *   slot** — not computationally. Decrypting a step-2 ciphertext gives
 *   x_i/B + (a sum of masks), |x_i/B| ≤ 1, each mask uniform over an
 *   interval 2^21 wide: the masked slot's distributions for any two values
 *   of x_i lie within statistical distance 2^-20 (L slots: L·2^-20), so each
 *   slot leaks up to ~2^-20 of an advantage rather than a negligible one.
 *   The CKKS decryption also carries encoding and noise residue in its low
 *   bits (see ckks.ts reRandomize), and the buyer's totals are approximate.
 *   Exact mode (BFV, uniform masks modulo every prime) is the default; a job
 *   must ask for approximate arithmetic.
 *
 * ## Validation
 *
 * Messages are bound to job, protocol, version, step and chunk (steps.ts).
 * The step-1 options must equal the ones this party derives from the job
 * (ParameterMismatchError otherwise) and the key must parse under them
 * (InvalidKeyError / ParameterMismatchError); ciphertexts are parsed and
 * size-checked by engine/he before SEAL sees them (InvalidCiphertextError,
 * ParameterMismatchError, KeyMismatchError) and must have exactly L slots
 * and the history of the expected sum in their header (its row bound; for
 * CKKS also its level and counts: engine/he HeScheme.sumHistory). A refused
 * message leaves the state unchanged.
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
 * tables in and out). The aggregate plumbing shared with join-aggregate is
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
export { AggregateFn, type AggregateSpec } from "../aggregate.js";
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
  type FaBuyerTotals,
  type FaCell,
  type FaColumnResult,
  type FaResult,
} from "./result.js";
export { faResultTable, runFederatedAggregate, type FaProviderSide, type FaRunResult, type RunFederatedAggregateOptions } from "./run.js";
