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
 * ## Job parameters
 *
 * Everything that shapes the computation comes from the job, known to every
 * party, never from a message: the job id, the aggregates, whether the buyer
 * groups, k (`minGroupSize`), the value range (maxAbsValue, scale), the most
 * joined rows any total may include (`maxJoinRows`), the group, the chunk
 * sizes, and whether the provider pads its set. From these every party
 * derives the same HE options ({@link jaHeOptions}, ./params.ts). The job may also cap
 * the buyer's distinct keys (`maxBuyerKeys`, see the threat model): a limit
 * each role enforces on its own, that shapes nothing.
 *
 * ## Flow (version 1)
 *
 *   buyer → provider   1 AggregateKey (HE options, buyer public key)
 *                      2 JoinHello {buyer set size}   3 ElementBatch H(x)^b
 *   buyer → exchange   1 AggregateKey                 10 JoinHello {buyer set size, groups}
 *                      11 JoinWeights per position    12 ElementBatch H(y)^pb
 *   provider → buyer   4 JoinHello {padded set size}  5 ElementBatch H(y)^p
 *   provider → exchange 6 JoinHello {its size, the buyer's}   7 JoinCounts
 *                      8 JoinCiphertext (its encrypted statistics)
 *                      9 ElementBatch H(x)^bp (in the buyer's order)
 *   exchange → buyer   13 JoinResult {released codes, COUNT(*)}
 *                      14 JoinCiphertext (per released group, masked)
 *
 * - The buyer de-duplicates its keys, shuffles them, hashes them to the group
 *   with a per-job DST and blinds them with a fresh scalar b. It maps its
 *   group labels to random codes 0 … G−1 and tells the exchange, per
 *   position, the code of the one group the rows with that key fall in and
 *   how many rows (the weight). Each key falls in exactly one group: the
 *   buyer refuses its own input otherwise (see the threat model).
 * - The provider de-duplicates its keys and pre-aggregates per key: c (rows),
 *   and per value column n (non-null values), s (sum) and, for VAR/STDDEV,
 *   q (sum of squares), in scaled units. It shuffles its keys, pads them with
 *   random elements up to a bucket size (so the buyer learns its set size
 *   only to within 1/8), blinds them with a fresh scalar p, and encrypts the
 *   statistic columns under the buyer's key in that same shuffled order: the
 *   values travel as BFV ciphertexts in the provider's own order.
 * - Each side raises the other's elements to its own scalar: H(x)^bp reaches
 *   the exchange in the buyer's order, H(y)^pb in the provider's order.
 * - The exchange matches the two. For every group g, with the weight mask
 *   w_g[j] = (rows of g whose key is the one at provider position j), it
 *   computes COUNT(*)_g = Σ_j w_g[j]·c_j and g's distinct matched keys in
 *   the clear and suppresses g unless both are at least k (see the threat
 *   model); for every released group and statistic column it computes under
 *   encryption block sums Σ_b ct_b ⊙ w_g,b (engine/he maskedBlockSums). It
 *   then adds a fresh encryption of a random vector whose slots sum to zero modulo every
 *   CRT prime, one per group block, re-randomises (engine/he reRandomize:
 *   fresh encryption of zero, switch to the last modulus) and sends one block
 *   per released group. The buyer decrypts and sums each block's slots: the
 *   zero-sum mask cancels, and every single slot it sees is uniformly random
 *   apart from that sum — no rotations (and no Galois keys) are needed.
 *
 * ## Threat model and leakage (semi-honest parties; inputs validated as if malicious)
 *
 * - Buyer learns: the released groups' COUNT(*) and statistics (hence the
 *   aggregates), that each of its other groups was not released, and the
 *   provider's distinct key count rounded up to its padding bucket (the size
 *   of step 5). It receives no identifier of the provider's it does not hold
 *   in a usable form (only H(y)^p, which without p it cannot test against
 *   anything), no value of a single row, and no matching: the exchange's
 *   reply holds only per-group totals.
 * - k counts distinct keys, and rows. A group g is released only when it has
 *   at least k distinct matched keys — keys the buyer holds in g that the
 *   provider holds with at least one row (the exchange counts the buyer
 *   positions matched by a provider position with rows, so an element
 *   repeated on either side counts once) — and COUNT(*)_g ≥ k (implied by
 *   the first, each matched key having a row; both are checked). Rows alone
 *   would not do: COUNT(*)_g = Σ_j w_g[j]·c_j, so a buyer that repeats one key
 *   ten times (a weight of 10), or a provider with ten rows of one key, makes
 *   a group of one person look like ten rows and would release that person's
 *   value. The exchange enforces it (it alone sees the matching and the
 *   weights). Rows of one key still all count in COUNT(*) and the sums, as in
 *   SQL; the rule only decides which groups are released.
 * - What k does not bound (residual): how much one key weighs in a released
 *   group. The sums weight each key by its joined rows (SQL's semantics), so
 *   a buyer that repeats one key W times beside k − 1 other matched keys
 *   gets SUM = W·s_t + R with |R| ≤ (the others' joined rows)·V, and reads
 *   s_t = round(SUM / W) once W > 2·|R| — e.g. W = 20,000 repeats beside 9
 *   single-row keys, V = 1,000 (maxJoinRows must allow the rows). Closing
 *   that needs a per-key weight limit or a dominance rule on the rows each
 *   key contributes, which this version does not apply: here only the job's
 *   maxJoinRows bounds W.
 * - Released or not, nothing more. Every group of the buyer's that is not
 *   released — whether it matched no key or 1 … k−1 keys — counts as
 *   suppressed: the exchange sends `suppressed` = (the buyer's groups) −
 *   (released groups), and the buyer refuses a result where the two do not
 *   add up to its groups. So per group the buyer learns only "released, with
 *   these totals" or "not released": a group of fewer than k keys (a one-key
 *   group probing one person's membership) always reads "not released",
 *   whether or not its keys matched. Released or not is itself one bit per
 *   group (at least k matched keys or not), as every threshold reveals.
 * - Provider learns: the buyer's distinct key count (step 2; at most
 *   maxBuyerKeys) and the HE
 *   options — nothing about the matches or the results.
 * - Exchange learns: both set sizes, the intersection size (the number of
 *   matching positions), and, as pseudonymous data with no identifier or
 *   value: per position the buyer's row count per group code and the
 *   provider's row count (it needs them for COUNT(*) and k), hence with
 *   GROUP BY the COUNT(*) and the distinct matched keys of each pseudonymous
 *   group. When keys are unique on both sides (customer ids) this is only
 *   "this position has one row". It sees the values only as ciphertexts
 *   under the buyer's key.
 * - One group per key. k bounds what a single group releases; it would not
 *   bound the difference of two groups of the same job: with a key in two
 *   groups, A = {target, x1 … x10} and B = {x1 … x10} are each ≥ k and
 *   A − B is the target's value. So every buyer key falls in at most one
 *   group: the buyer's role refuses an input with a key in two groups
 *   ({@link OverlappingGroupsError}: the group column and the two data rows,
 *   never the key), and the exchange — so that a modified buyer agent cannot
 *   bypass it — refuses JoinWeights that give one position weights for more
 *   than one group code (InvalidMessageError, state unchanged). A buyer that
 *   repeats a key as two positions gains nothing: the exchange matches each
 *   provider position to one buyer position (the first, with duplicates), so
 *   each provider row still counts in one group only. Groups of different
 *   jobs can still be differenced: what bounds that is the provider's key
 *   budget across jobs.
 * - `maxBuyerKeys` (a job parameter; default maxSetSize): the provider
 *   refuses a buyer hello announcing more distinct keys, and so does the
 *   exchange (the buyer's hello, and the buyer set size the provider and the
 *   buyer's raised elements name) — KeyLimitExceededError, state unchanged;
 *   every chunk of step 3 must hold exactly the elements the hello announced.
 *   The provider's role thus measures the buyer's key count (its hello) and
 *   a node charges the budget by it. No role sizes a buffer from a peer's
 *   announcement: the exchange's buffers grow as chunks arrive.
 * - Non-collusion is assumed between the exchange and either party: the
 *   exchange with the buyer's secret key could decrypt the provider's
 *   per-key statistics; the exchange with b or p could test identifiers.
 * - Re-randomisation hides the ciphertexts' history heuristically (engine/he
 *   reRandomize), not statistically.
 *
 * ## Validation
 *
 * Messages are bound to job, protocol, version, step and chunk (steps.ts),
 * and to their sender: each role takes each step from one role only (the
 * flow above) and refuses it from any other (WrongSenderError, messages.ts);
 * every received group element is strictly decoded (identity refused) or, for
 * elements only compared, checked canonical (checkComparedEncodings);
 * announced sizes are bounded; HE options must equal the ones this party
 * derives from the job; ciphertexts are parsed and size-checked by engine/he
 * before SEAL sees them. A refused message leaves the state unchanged.
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
 * - result.ts: the buyer's result.
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
export type { JaGroupResult, JaResult } from "./result.js";
export type { AggregateSpec } from "../federated-aggregate.js";
