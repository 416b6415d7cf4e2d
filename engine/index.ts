/**
 * Umbra's engine: the compute core as a library (no network, no files beyond
 * the column readers, no global state beyond a lazily created worker pool).
 *
 * - group: ristretto255 (RFC 9496) and the x25519 bulk group behind one `Group` interface
 * - oprf: RFC 9497 OPRF(ristretto255, SHA-512) — `oprf.blind`, `oprf.blindEvaluate`, `oprf.finalize`, …
 * - pool: the piscina worker pool for batch hashing, multiplication and OPRF over columns
 * - columns: Arrow IPC / CSV / Parquet in, Arrow out; key normalisation
 * - psi: distinct keys with their row mapping, uniform shuffles, an exact-match index over fixed-size elements
 * - ot: base OT, IKNP/KKRT OT extension and the batched OPRF of the OT-extension PSI
 * - he: homomorphic aggregation on SEAL (node-seal): BFV (exact, CRT over several primes) and CKKS (approximate)
 * - dp: exact discrete Laplace, discrete Gaussian and Skellam noise, their pmfs, zCDP accounting (not yet used by the protocols)
 */
export * from "./errors.js";
export * from "./packed.js";
export * from "./group/index.js";
export { oprf, voprf, poprf, createOprf, OprfMode, VerifyError, contextString, SUITE_ID } from "./oprf/index.js";
export type { BlindResult, KeyPair, OprfSuite, PoprfBlindResult, ProvedEvaluation } from "./oprf/index.js";
export * from "./pool/index.js";
export * from "./columns/index.js";
export * from "./psi/index.js";
export * from "./he/index.js";
export * from "./dp/index.js";
export * from "./ot/index.js";
