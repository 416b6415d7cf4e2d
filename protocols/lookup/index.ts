/**
 * lookup: labeled PSI / enrichment over the RFC 9497 OPRF (ristretto255-SHA512).
 *
 * ## Preparation (provider, once per product version)
 *
 * The provider's OPRF key for a product version is
 * DeriveKeyPair(masterSeed, "umbra/lookup/v1/<product>/<version>") — a new
 * version rotates the key. For each distinct key y of its table it computes
 * F = Evaluate(sk, y) (64 bytes) and
 *
 *   tag   = HKDF-SHA256(F, info "umbra/lookup/v1/tag")[0..16]
 *   key   = HKDF-SHA256(F, info "umbra/lookup/v1/aead")[0..32]
 *   sealed = nonce ‖ ChaCha20-Poly1305(key, nonce, labels of every row with key y,
 *                                       aad = product ‖ version ‖ tag)
 *
 * The prepared table (tag, sealed), shuffled, is an Arrow table the node keeps
 * as Arrow IPC and reuses across buyers and restarts. It holds no key and no
 * label in the clear.
 *
 * ## Flow (version 1)
 *
 *   step 1  buyer → provider   LookupHello {product, version, n = distinct buyer keys}
 *   step 2  buyer → provider   Blind(x_i) with a fresh blind per key, in chunks
 *   step 3  provider → buyer   LookupTableInfo {rows, tag size, label schema}
 *   step 4  provider → buyer   BlindEvaluate(sk, ·) of each, same order and chunks
 *   step 5  provider → buyer   the prepared table's (tag, sealed) rows, in chunks
 *
 * The buyer finalises F(x_i), derives tag and key, keeps the sealed rows whose
 * tag it knows, and opens them; its output is its own rows with the
 * provider's label columns (a left join: null where no match, one output row
 * per matching provider row).
 *
 * The provider learns n and refuses n over the buyer's budget
 * (BudgetExceededError); the buyer learns the labels of the keys it holds
 * and the number of prepared rows; the exchange, relaying, sees sizes. The
 * buyer withholds labels under the job's `minIntersection`
 * (BelowMinimumError). Every received element is strictly decoded; messages
 * are bound to job, step and chunk; a refused message leaves the state
 * unchanged. The threat model, the limits and who enforces them, and why it
 * is secure: docs/protocols/lookup.md.
 *
 * References: RFC 9497 (OPRF), RFC 5869 (HKDF), RFC 8439 (ChaCha20-Poly1305);
 * Chen, Huang, Laine, Rindal, "Labeled PSI from fully homomorphic encryption
 * with malicious security" (2018) for the labeled-PSI setting.
 */
export * from "./prepare.js";
export * from "./roles.js";
export { joinLabels, runLookup, RUN_LOOKUP_OPTIONS, type LookupRunResult, type RunLookupOptions } from "./run.js";
