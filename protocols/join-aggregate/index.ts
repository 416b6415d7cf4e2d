/**
 * join-aggregate: COUNT(*) / SUM / AVG / VAR_SAMP / STDDEV_SAMP of provider
 * columns over a private join of the buyer's and the provider's tables,
 * optionally GROUP BY a buyer column, a group released only when it has at
 * least k distinct matched keys and at least k joined rows. Three roles: the
 * buyer (HE key holder; key column(s), optional group column), the provider
 * (key column(s), numeric columns) and the exchange (matcher and aggregator).
 *
 * The result equals
 *
 *   SELECT g, COUNT(*), SUM(v), AVG(v), VAR_SAMP(v), STDDEV_SAMP(v)
 *   FROM buyer JOIN provider USING (key) GROUP BY g
 *   HAVING COUNT(DISTINCT key) >= k AND COUNT(*) >= k
 *
 * with SQL's semantics: duplicate keys on either side multiply (every pair of
 * rows with equal keys is a joined row), null keys never match, a null value
 * is counted by COUNT(*) but not by SUM/AVG/VAR, SUM of no values is NULL,
 * VAR_SAMP of fewer than two values is NULL, a null group value is a group.
 *
 * Everything that shapes the computation comes from the job (aggregates,
 * grouping, k as `minGroupSize`, value range and scale, `maxJoinRows`, the
 * group), never from a message; every party derives the same HE options
 * from it ({@link jaHeOptions}). Each role takes each step from one role only
 * and refuses it from any other; every received point is strictly decoded;
 * a refused message leaves the state unchanged. The buyer learns the
 * released groups' aggregates, the provider the buyer's set size, the
 * exchange the intersection size and each pseudonymous group's size. The
 * threat model, the k rule and why it is secure: docs/protocols/join-aggregate.md.
 *
 * With `dp` (dp.ts) the buyer learns only noisy totals: the provider adds
 * its noise shares (encrypted in step 8: in its columns' spare slots when
 * there is room, else as extra chunks) and the exchange its
 * own (in the zero-sum mask) to every group's block; COUNT(*) is then a
 * noisy statistic (the exchange puts the count it computed into its mask
 * with its share; the provider sends only the count's noise) and step 13
 * carries zeros for it; every group is
 * released and k applied by the buyer to the noisy count. The provider and
 * the exchange learn nothing more than without dp (dp.ts says why).
 *
 * ## Flow (version 1)
 *
 *   buyer → provider   1 AggregateKey (HE options, buyer public key)
 *                      2 JoinHello {buyer set size}   3 ElementBatch H(x)^b
 *   buyer → exchange   1 AggregateKey                 10 JoinHello {buyer set size, groups}
 *                      11 JoinWeights per position    12 ElementBatch H(y)^pb
 *   provider → buyer   4 JoinHello {padded set size}  5 ElementBatch H(y)^p
 *   provider → exchange 6 JoinHello {its size, the buyer's}   7 JoinCounts
 *                      8 JoinCiphertext (its encrypted statistics; with dp
 *                        its encrypted noise shares in them or after them)
 *                      9 ElementBatch H(x)^bp (in the buyer's order)
 *   exchange → buyer   13 JoinResult {released codes, COUNT(*) (with dp: zeros)}
 *                      14 JoinCiphertext (per released group, masked; dp COUNT(*): one block)
 *
 * References: Huberman, Franklin, Hogg, "Enhancing privacy and trust in
 * electronic communities" (1999) — the DH-based matching; RFC 9380
 * (hashing to the group, with the per-job DST of {@link jaDst}); RFC 7748
 * (x25519) and RFC 9496 (ristretto255); Fan–Vercauteren (BFV, ePrint
 * 2012/144) as implemented by Microsoft SEAL, packed over CRT primes.
 *
 * ## Layout
 *
 * - params.ts: the job's parameters, resolved; HE options, DST, padding.
 * - aggregates.ts: the aggregate list, value scaling, AVG/VAR from sums.
 * - messages.ts: building and checking messages; who sends which step.
 * - groups.ts: group codes, weights, the exchange's counts and the k rule.
 * - buyer.ts, provider.ts, exchange.ts: the three roles ({@link jaBuyer},
 *   {@link jaProvider}, {@link jaExchange}), each a protocols/role.ts Role
 *   with one handler per step, named after who sends what.
 * - dp.ts: differential privacy — the noise plan, the provider's and the
 *   exchange's noise shares added under encryption, the contribution bounds.
 * - result.ts: the buyer's result; run.ts: runJoinAggregate, every role in one process.
 * - The HE residue and zero-sum mask arithmetic is engine/he (block-residues.ts).
 */
export {
  JA_DEFAULT_CHUNK_ELEMENTS,
  JA_DEFAULT_MAX_JOIN_ROWS,
  JA_DEFAULT_MAX_SET_SIZE,
  JA_MAX_GROUPS,
  JA_VERSION,
  JaStep,
  jaDst,
  jaHeOptions,
  paddedSize,
  resolveJaParams,
  type JaContext,
  type JaResolved,
  type JoinAggregateParams,
} from "./params.js";
export type { JaColumnResult, JaStat } from "./aggregates.js";
export { jaBuyer, type JaBuyerInit, type JaBuyerInput, type JaBuyerState } from "./buyer.js";
export { jaProvider, type JaProviderInit, type JaProviderInput, type JaProviderState } from "./provider.js";
export { jaExchange, type JaExchangeInit, type JaExchangeState } from "./exchange.js";
export type { JaAvgInterval, JaGroupResult, JaNoiseGroup, JaNoisyValue, JaResult } from "./result.js";
export {
  JA_DP_DEFAULT_MAX_ROWS_PER_KEY,
  JA_DP_MAX_ROWS_PER_KEY,
  JA_DP_PARTIES,
  JA_NOISE_SLOTS,
  jaDpLaw,
  jaDpPlan,
  jaExchangeNoise,
  jaProviderNoise,
  type JaDpParams,
  type JaDpResolved,
  type JaDpStatistic,
  type JaDpSummary,
} from "./dp.js";
export type { AggregateSpec } from "../aggregate.js";
export { groupLabels, groupLabelsAsync, jaResultTable, runJoinAggregate, RUN_JOIN_AGGREGATE_OPTIONS, type JaRunResult, type JaSide, type RunJoinAggregateOptions } from "./run.js";
