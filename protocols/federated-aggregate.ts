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
 * k (`minCount`: the minimum rows per provider per cell, per bin and per
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
 * k (`minCount`) holds for each provider on its own: every provider
 * contributes 0 or at least k rows to any cell, and 0 or at least k rows to
 * any histogram bin (bins are released, or nulled, against k one by one, so
 * they are cells for k too). Before masking and encrypting, a provider's
 * local vector ({@link faLocalVector}) leaves out:
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
 * prime (engine/he `encryptResidues`), so Σ_i (x_i + masks_i) ≡ Σ_i x_i
 * (mod p) for every prime and the CRT recombination of the sum is exact. The
 * providers' X25519 box keys are their registered keys: no extra round.
 *
 * The exchange refuses to produce step 3 unless it holds a step-2 ciphertext
 * from every one of the N providers, each of exactly L slots, row bound 1,
 * under the buyer's key set. A provider that never sends fails the job
 * ({@link MissingProviderError}); nothing partial is released — and nothing
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
 *   runner after decryption** ({@link faBuyerResult}): the output
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
 * and the expected row bound. A refused message leaves the state unchanged.
 *
 * References: Bonawitz et al., "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS 2017) — pairwise cancelling
 * masks; Fan–Vercauteren (BFV) and Cheon–Kim–Kim–Song (CKKS, "Homomorphic
 * Encryption for Arithmetic of Approximate Numbers", ASIACRYPT 2017) as
 * implemented by Microsoft SEAL; Shewchuk, "Adaptive Precision Floating-Point
 * Arithmetic and Fast Robust Geometric Predicates" (1997) — exactly rounded
 * local sums.
 */
import { createCipheriv } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Table } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError } from "../engine/errors.js";
import {
  BoundExceededError,
  CKKS_DEFAULT_PRECISION_BITS,
  CkksContext,
  CkksLevel,
  createCkksContext,
  HE_MAX_ROWS_4096,
  HeContext,
  withHeContext,
  KeyMismatchError,
  ParameterMismatchError,
  scaledBound,
  ValueOutOfRangeError,
  valuesFromArrow,
  type CkksContextOptions,
  type HeContextOptions,
} from "../engine/he/index.js";
import { isJobId, ProtocolName, type AggregateCiphertext, type AggregateKey, type ProtocolMessage } from "./codec.js";
import { InvalidMessageError, InvalidStateError, ProtocolError, RefusedError, WrongStepError } from "./errors.js";
import { checkBinding, expectStep, header } from "./steps.js";

export const FA_VERSION = 1;

export const FaStep = { Key: 1, Masked: 2, Sum: 3 } as const;
export type FaStep = (typeof FaStep)[keyof typeof FaStep];

/** The most providers one job may have. */
export const FA_MAX_PROVIDERS = 256;
/** The most slots (cells × per-cell values) a job's vector may have: one ciphertext block. */
export const FA_MAX_SLOTS = 4096;

export type AggregateSpec = { readonly fn: "count" } | { readonly fn: "sum" | "avg" | "var" | "stddev"; readonly column: string };

/** What every party of one job agrees on (from the job, not from messages). */
export interface FederatedAggregateParams {
  readonly job: string;
  /** N, the number of providers (≥ 2). */
  readonly providers: number;
  /** The job is refused below this many providers (≥ 2, ≤ N). */
  readonly minProviders: number;
  /** k (≥ 1): each provider contributes 0 or ≥ k rows to any cell, bin and range outside the edges (rows of a smaller range in none of its cell's slots); totals below k are suppressed. */
  readonly minCount: number;
  readonly aggregates: readonly AggregateSpec[];
  readonly groupBy?: { readonly column: string; readonly categories: readonly string[] };
  readonly histogram?: { readonly column: string; readonly edges: readonly number[] };
  /** The largest |value| of an aggregated column, in the value's units. */
  readonly maxAbsValue: number | bigint;
  /** Decimal digits kept (fixed point). Default 0. */
  readonly scale?: number;
  /** The most rows any one provider's table may have. */
  readonly maxRowsPerProvider: number;
  /** Approximate arithmetic: CKKS with real-valued masks (see Approximate mode). Default false: exact BFV. */
  readonly approximate?: boolean;
}

/** The resolved, plain-data form every state carries. */
export interface FaResolved {
  readonly protocol: ProtocolName;
  readonly version: number;
  readonly job: string;
  readonly providers: number;
  readonly minProviders: number;
  readonly minCount: number;
  readonly aggregates: readonly { readonly fn: string; readonly column: string }[];
  readonly groupColumn: string;
  readonly categories: readonly string[];
  readonly histColumn: string;
  readonly edges: readonly number[];
  readonly scale: number;
  /** V, the scaled value bound (decimal). */
  readonly valueBound: string;
  readonly maxRowsPerProvider: number;
  /** Distinct value columns, in first-use order; squares[c] when var/stddev needs sumsq. */
  readonly columns: readonly string[];
  readonly squares: readonly boolean[];
  /** Slot offset within a cell of column c's sum (its sumsq follows when squares[c]). */
  readonly columnOffsets: readonly number[];
  readonly histOffset: number;
  readonly bins: number;
  readonly stride: number;
  readonly cells: number;
  readonly length: number;
  /**
   * The HE context options step 1 announces (maxAbsValue as decimal): BFV's,
   * or in approximate mode CKKS's (N = 8192, maxAbsValue the bound
   * (N−1)·2^20 + 1 on a provider's normalised masked slot).
   */
  readonly he: { readonly polyModulusDegree: 4096 | 8192; readonly maxAbsValue: string; readonly scale: 0; readonly maxRows: number; readonly maxLength: number };
  /** CKKS instead of BFV (absent in states of older versions: exact). */
  readonly approximate: boolean;
  /** Approximate mode: log2 of the CKKS scale (0 in exact mode). */
  readonly precisionBits: number;
  /** Approximate mode: B, the bound on one provider's |slot|, per slot within a cell (stride entries; empty in exact mode). */
  readonly slotBounds: readonly number[];
}

/** Local resources: not part of the state. */
export interface FaContext {
  /** An HE context to reuse when its parameters match the job's (else one is created per call and disposed). */
  readonly he?: HeContext;
  /** Approximate mode: a CKKS context to reuse likewise. */
  readonly ckks?: CkksContext;
}

export type FaRole = "buyer" | "exchange" | `provider-${number}`;
export const providerRole = (i: number): FaRole => `provider-${i}`;

export interface Addressed {
  readonly to: FaRole;
  readonly message: ProtocolMessage;
}

export interface FaStepResult<S> {
  readonly state: S;
  readonly messages: Addressed[];
}

/** A provider that did not contribute: the job fails and nothing is released. */
export class MissingProviderError extends ProtocolError {
  readonly missing: readonly number[];
  constructor(missing: readonly number[]) {
    super(`provider(s) ${missing.join(", ")} did not contribute: the job fails and nothing is released`, "UMBRA_MISSING_PROVIDER");
    this.missing = missing;
  }
}

// ------------------------------------------------------------------ parameters

export function resolveFaParams(p: FederatedAggregateParams): FaResolved {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  const n = p.providers;
  if (!Number.isInteger(n) || n < 2 || n > FA_MAX_PROVIDERS) throw new InvalidArgumentError(`providers must be an integer in [2, ${FA_MAX_PROVIDERS}]`);
  if (!Number.isInteger(p.minProviders) || p.minProviders < 2) throw new InvalidArgumentError("minProviders must be an integer ≥ 2");
  if (n < p.minProviders) throw new ProtocolError(`the job needs at least ${p.minProviders} providers, it has ${n}`);
  if (!Number.isSafeInteger(p.minCount) || p.minCount < 1) throw new InvalidArgumentError("minCount must be a positive integer");
  if (!Number.isSafeInteger(p.maxRowsPerProvider) || p.maxRowsPerProvider < 1) throw new InvalidArgumentError("maxRowsPerProvider must be a positive integer");
  const scale = p.scale ?? 0;
  if (!Array.isArray(p.aggregates) || p.aggregates.length === 0) throw new InvalidArgumentError("at least one aggregate is needed");
  const aggregates: { fn: string; column: string }[] = [];
  const columns: string[] = [];
  const squares: boolean[] = [];
  for (const a of p.aggregates) {
    if (a.fn === "count") {
      aggregates.push({ fn: "count", column: "" });
      continue;
    }
    if (!["sum", "avg", "var", "stddev"].includes(a.fn)) throw new InvalidArgumentError(`unknown aggregate ${String((a as { fn: unknown }).fn)}`);
    if (typeof a.column !== "string" || a.column.length === 0) throw new InvalidArgumentError(`${a.fn} needs a column`);
    aggregates.push({ fn: a.fn, column: a.column });
    let c = columns.indexOf(a.column);
    if (c < 0) {
      c = columns.length;
      columns.push(a.column);
      squares.push(false);
    }
    if (a.fn === "var" || a.fn === "stddev") squares[c] = true;
  }
  const categories = p.groupBy ? [...p.groupBy.categories] : [];
  if (p.groupBy) {
    if (categories.length === 0) throw new InvalidArgumentError("group-by needs at least one declared category");
    if (new Set(categories).size !== categories.length) throw new InvalidArgumentError("group-by categories must be distinct");
  }
  const edges = p.histogram ? [...p.histogram.edges] : [];
  if (p.histogram) {
    if (edges.length < 2) throw new InvalidArgumentError("a histogram needs at least two bin edges");
    for (let i = 0; i < edges.length; i++) {
      if (!Number.isFinite(edges[i] as number)) throw new InvalidArgumentError("histogram edges must be finite");
      if (i > 0 && !((edges[i] as number) > (edges[i - 1] as number))) throw new InvalidArgumentError("histogram edges must be strictly increasing");
    }
  }
  const approximate = p.approximate === true;
  if (p.approximate !== undefined && typeof p.approximate !== "boolean") throw new InvalidArgumentError("approximate must be a boolean");
  const columnOffsets: number[] = [];
  let off = 1; // slot 0 of a cell: count
  for (let c = 0; c < columns.length; c++) {
    columnOffsets.push(off);
    off += squares[c] ? 2 : 1;
  }
  const bins = Math.max(0, edges.length - 1);
  const stride = off + bins;
  const cells = p.groupBy ? categories.length : 1;
  const length = cells * stride;
  if (length > FA_MAX_SLOTS) throw new InvalidArgumentError(`the job's vector has ${length} slots, at most ${FA_MAX_SLOTS}`);
  if (n > HE_MAX_ROWS_4096) throw new InvalidArgumentError("too many providers");
  const common = {
    protocol: ProtocolName.FederatedAggregate,
    version: FA_VERSION,
    job: p.job,
    providers: n,
    minProviders: p.minProviders,
    minCount: p.minCount,
    aggregates,
    groupColumn: p.groupBy?.column ?? "",
    categories,
    histColumn: p.histogram?.column ?? "",
    edges,
    scale,
    maxRowsPerProvider: p.maxRowsPerProvider,
    columns,
    squares,
    columnOffsets,
    histOffset: off,
    bins,
    stride,
    cells,
    length,
  };
  if (approximate) {
    // Values as doubles: V in the value's units; the scale is not used (but must be well-formed).
    if (!Number.isInteger(scale) || scale < 0) throw new InvalidArgumentError("scale must be a non-negative integer");
    const V = approximateBound(p.maxAbsValue);
    return { ...common, valueBound: String(V), ...approximateLayout(p.maxRowsPerProvider, V, n, squares, bins, length) };
  }
  const V = scaledBound(p.maxAbsValue, scale); // also checks scale
  const R = BigInt(p.maxRowsPerProvider);
  let perSlot = 1n;
  if (columns.length > 0 && V > perSlot) perSlot = V;
  if (squares.some((s) => s) && V * V > perSlot) perSlot = V * V;
  return {
    ...common,
    valueBound: V.toString(),
    he: { polyModulusDegree: 4096, maxAbsValue: (R * perSlot).toString(), scale: 0, maxRows: n, maxLength: length },
    approximate: false,
    precisionBits: 0,
    slotBounds: [],
  };
}

/** V for approximate mode: maxAbsValue as a double (a bigint rounded to the nearest; values are compared after the same rounding). */
function approximateBound(maxAbsValue: number | bigint): number {
  const v = typeof maxAbsValue === "bigint" ? Number(maxAbsValue) : maxAbsValue;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError("maxAbsValue must be a positive finite number or a bigint");
  return v;
}

/** The scale of the CKKS context of approximate mode (log2 Δ). */
export const FA_CKKS_PRECISION_BITS = CKKS_DEFAULT_PRECISION_BITS;
/** log2 of the masks' half-width in units of a slot's bound: masks uniform in [−2^20·B, 2^20·B]. */
export const FA_MASK_BITS = 20;
/** Slot bounds are taken this much above R·V and R·V², so that the local sums' rounding never crosses them. */
const BOUND_SLACK = 1 + 2 ** -40;

/**
 * F of Approximate mode: the doubles' rounding in a sum of N providers'
 * normalised masked slots — per provider, its local sum and 64-bit
 * conversion (2^-51), the division by B (2^-53) and N − 1 mask additions of
 * magnitude up to (N−1)·2^20 + 1 (2^-53 of it each).
 */
export function faRoundingError(n: number): number {
  const m = (n - 1) * 2 ** FA_MASK_BITS + 1;
  return n * (2 ** -51 + 2 ** -53 + (n - 1) * 2 ** -53 * m);
}

/** Approximate mode: each slot's bound B (per position in a cell) and the CKKS options. */
function approximateLayout(rows: number, V: number, n: number, squares: readonly boolean[], bins: number, length: number) {
  // V² must stay a normal double (the sums of squares' rounding analysis assumes no underflow of the bound).
  if (V < 2 ** -400) throw new InvalidArgumentError("maxAbsValue below 2^-400 is not supported in approximate mode");
  const slotBounds: number[] = [rows];
  for (const sq of squares) {
    slotBounds.push(rows * V * BOUND_SLACK);
    if (sq) slotBounds.push(rows * V * V * BOUND_SLACK);
  }
  for (let b = 0; b < bins; b++) slotBounds.push(rows);
  if (!slotBounds.every((b) => Number.isFinite(b) && b > 0)) throw new InvalidArgumentError("maxRowsPerProvider · maxAbsValue² overflows a double: lower maxAbsValue");
  if (rows > Number.MAX_SAFE_INTEGER / 2 ** 10) throw new InvalidArgumentError("maxRowsPerProvider is too large for approximate mode");
  return {
    he: { polyModulusDegree: 8192 as const, maxAbsValue: String((n - 1) * 2 ** FA_MASK_BITS + 1), scale: 0 as const, maxRows: n, maxLength: length },
    approximate: true,
    precisionBits: FA_CKKS_PRECISION_BITS,
    slotBounds,
  };
}

export function faHeOptions(s: FaResolved): HeContextOptions {
  return { maxAbsValue: BigInt(s.he.maxAbsValue), maxRows: s.he.maxRows, scale: 0, maxLength: s.he.maxLength, polyModulusDegree: s.he.polyModulusDegree };
}

/** Approximate mode: the CKKS context options the job derives (refused in exact mode). */
export function faCkksOptions(s: FaResolved): CkksContextOptions {
  if (s.approximate !== true) throw new InvalidArgumentError("the job does not declare approximate arithmetic");
  return { maxAbsValue: Number(s.he.maxAbsValue), maxRows: s.he.maxRows, maxLength: s.he.maxLength, precisionBits: s.precisionBits };
}

/** Runs fn with a CKKS context for the job: ctx.ckks when its parameters match, else a fresh one disposed afterwards. */
async function withCkks<R>(s: FaResolved, ctx: FaContext, fn: (ckks: CkksContext) => R | Promise<R>): Promise<R> {
  const o = faCkksOptions(s);
  if (ctx.ckks && !ctx.ckks.disposed) {
    const q = ctx.ckks.params;
    if (q.maxAbsValue === o.maxAbsValue && q.maxRows === o.maxRows && q.maxLength === o.maxLength && q.scaleBits === o.precisionBits) return fn(ctx.ckks);
  }
  const ckks = await createCkksContext(o);
  try {
    return await fn(ckks);
  } finally {
    ckks.dispose();
  }
}

/** Runs fn with an HE context for the job: ctx.he when its parameters match, else a fresh one disposed afterwards. */
function withHe<R>(s: FaResolved, ctx: FaContext, fn: (he: HeContext) => R | Promise<R>): Promise<R> {
  return withHeContext(ctx.he, faHeOptions(s), fn);
}

// ------------------------------------------------------------------ local aggregation

/** round(x · 10^scale), half away from zero — the rule engine/he's encoder applies to floats. */
function scaleNumber(x: number, f: number): bigint {
  const y = x * f;
  return BigInt(y < 0 ? -Math.round(-y) : Math.round(y));
}

/** A column's values as scaled integers round(v · 10^scale), half away from zero (as engine/he encodes). */
function scaledColumn(table: Table, column: string, scale: number, bound: bigint | null): bigint[] {
  const vector = table.getChild(column);
  if (!vector) throw new MissingColumnError(column, "provider table");
  const values = valuesFromArrow(vector);
  const bigF = 10n ** BigInt(scale);
  const f = Number(bigF);
  const out = new Array<bigint>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number | bigint;
    let s: bigint;
    if (typeof v === "bigint") s = v * bigF;
    else if (values instanceof Int32Array) s = BigInt(v) * bigF;
    else {
      if (!Number.isFinite(v)) throw new ValueOutOfRangeError("value is not a finite number", i);
      s = scaleNumber(v, f);
    }
    if (bound !== null && (s > bound || -s > bound)) throw new ValueOutOfRangeError("value outside the declared range", i);
    out[i] = s;
  }
  return out;
}

/** Each row's cell (−1: none): a null or undeclared group-by value puts the row in no cell. */
function cellsOf(s: FaResolved, table: Table): Int32Array {
  const rows = table.numRows;
  if (rows > s.maxRowsPerProvider) throw new BoundExceededError(`the table has ${rows} rows, the job allows at most ${s.maxRowsPerProvider} per provider`);
  const cellOf = new Int32Array(rows);
  if (s.groupColumn) {
    const col = table.getChild(s.groupColumn);
    if (!col) throw new MissingColumnError(s.groupColumn, "provider table");
    const index = new Map(s.categories.map((c, i) => [c, i]));
    for (let r = 0; r < rows; r++) {
      const v: unknown = col.get(r);
      cellOf[r] = v === null || v === undefined ? -1 : (index.get(typeof v === "string" ? v : String(v)) ?? -1);
    }
  }
  return cellOf;
}

/**
 * The slots a provider zeroes before masking (see k per provider per cell):
 * every slot of a cell in which it has 1 … k−1 rows, and in the other cells
 * each histogram bin in which it has 1 … k−1 rows. `countAt(slot)` reads a
 * count or bin slot of its vector. With a histogram the rows of small ranges
 * are already out ({@link dropSmallRanges}) and nothing is left to zero here.
 */
function belowK(s: FaResolved, countAt: (slot: number) => number): number[] {
  const k = s.minCount;
  const out: number[] = [];
  for (let c = 0; c < s.cells; c++) {
    const base = c * s.stride;
    const n = countAt(base);
    if (n > 0 && n < k) {
      for (let i = 0; i < s.stride; i++) out.push(base + i);
      continue;
    }
    for (let b = 0; b < s.bins; b++) {
      const o = base + s.histOffset + b;
      const h = countAt(o);
      if (h > 0 && h < k) out.push(o);
    }
  }
  return out;
}

/**
 * A row's histogram range: its bin 0 … bins−1, `bins` below the first edge,
 * `bins` + 1 above the last (see k per provider per cell).
 */
function rangeOf(bin: number, below: boolean, bins: number): number {
  return bin >= 0 ? bin : below ? bins : bins + 1;
}

/**
 * The histogram rule of k per provider per cell: a row in a (cell, range) in
 * which this provider has 1 … k−1 rows is taken out of its cell altogether
 * (cellOf set to −1), so it counts in no count, sum, sum of squares or bin.
 */
function dropSmallRanges(s: FaResolved, cellOf: Int32Array, ranges: Int32Array): void {
  const per = s.bins + 2;
  const n = new Float64Array(s.cells * per);
  for (let r = 0; r < cellOf.length; r++) {
    const cell = cellOf[r] as number;
    if (cell >= 0) n[cell * per + (ranges[r] as number)] = (n[cell * per + (ranges[r] as number)] as number) + 1;
  }
  for (let r = 0; r < cellOf.length; r++) {
    const cell = cellOf[r] as number;
    if (cell < 0) continue;
    const m = n[cell * per + (ranges[r] as number)] as number;
    if (m < s.minCount) cellOf[r] = -1;
  }
}

/**
 * One provider's plaintext vector: per cell, count, then per value column
 * sum (and sumsq), then histogram counts — with k applied to this provider
 * alone (a cell where it has 1 … k−1 rows zeroed; with a histogram, the rows
 * of a bin or outside range where it has 1 … k−1 rows left out of every
 * slot; see k per provider per cell). Exact mode: decimal strings of
 * exact integers. Approximate mode: decimal strings of doubles (each the
 * exactly rounded sum of the row values as doubles; see Approximate mode).
 * Nulls in aggregated columns are refused (engine/he valuesFromArrow); a null
 * or undeclared group-by value puts the row in no cell.
 */
export function faLocalVector(s: FaResolved, table: Table): string[] {
  if (s.approximate === true) return localVectorApproximate(s, table);
  const rows = table.numRows;
  const cellOf = cellsOf(s, table);
  const V = BigInt(s.valueBound);
  const cols = s.columns.map((c) => scaledColumn(table, c, s.scale, V));
  const acc = new Array<bigint>(s.length).fill(0n);
  let ranges: Int32Array | null = null;
  if (s.bins > 0) {
    const hist = scaledColumn(table, s.histColumn, s.scale, null);
    const bigF = 10n ** BigInt(s.scale);
    const edges = s.edges.map((e) => scaleNumber(e, Number(bigF)));
    ranges = Int32Array.from(hist, (x) => rangeOf(binOf(x, edges), x < (edges[0] as bigint), s.bins));
    dropSmallRanges(s, cellOf, ranges);
  }
  for (let r = 0; r < rows; r++) {
    const cell = cellOf[r] as number;
    if (cell < 0) continue;
    const base = cell * s.stride;
    acc[base] = (acc[base] as bigint) + 1n;
    for (let c = 0; c < cols.length; c++) {
      const x = (cols[c] as bigint[])[r] as bigint;
      const o = base + (s.columnOffsets[c] as number);
      acc[o] = (acc[o] as bigint) + x;
      if (s.squares[c]) acc[o + 1] = (acc[o + 1] as bigint) + x * x;
    }
    const bin = ranges ? (ranges[r] as number) : -1;
    if (bin >= 0 && bin < s.bins) {
      const o = base + s.histOffset + bin;
      acc[o] = (acc[o] as bigint) + 1n;
    }
  }
  for (const i of belowK(s, (o) => Number(acc[o]))) acc[i] = 0n;
  return acc.map((x) => x.toString());
}

/** A column's values as doubles (64-bit integers rounded to the nearest), each finite with |x| ≤ bound when a bound is given. */
function doubleColumn(table: Table, column: string, bound: number | null): Float64Array {
  const vector = table.getChild(column);
  if (!vector) throw new MissingColumnError(column, "provider table");
  const values = valuesFromArrow(vector);
  const out = values instanceof Float64Array ? values : Float64Array.from(values as ArrayLike<number | bigint>, (v) => Number(v));
  for (let i = 0; i < out.length; i++) {
    const x = out[i] as number;
    if (!Number.isFinite(x)) throw new ValueOutOfRangeError("value is not a finite number", i);
    if (bound !== null && !(Math.abs(x) <= bound)) throw new ValueOutOfRangeError("value outside the declared range", i);
  }
  return out;
}

/**
 * Shewchuk's exactly rounded summation of doubles (as Python's math.fsum):
 * the running sum is kept as non-overlapping partials, so value() is the
 * exact sum of everything added, rounded once.
 */
class ExactSum {
  readonly #p: number[] = [];

  add(x: number): void {
    const p = this.#p;
    let i = 0;
    for (let j = 0; j < p.length; j++) {
      let y = p[j] as number;
      if (Math.abs(x) < Math.abs(y)) {
        const t = x;
        x = y;
        y = t;
      }
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) p[i++] = lo;
      x = hi;
    }
    p.length = i;
    p.push(x);
  }

  /** x² added exactly: as hi + lo with hi = fl(x²) (Dekker's product; |x| < 2^996). */
  addSquare(x: number): void {
    const hi = x * x;
    const c = 134217729 * x; // 2^27 + 1: Veltkamp's split
    const xh = c - (c - x);
    const xl = x - xh;
    this.add(hi);
    this.add(xh * xh - hi + 2 * xh * xl + xl * xl);
  }

  value(): number {
    const p = this.#p;
    let n = p.length;
    if (n === 0) return 0;
    let hi = p[--n] as number;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = p[--n] as number;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // Round half-even correctly when the rest of the partials push the tie one way.
    const next = n > 0 ? (p[n - 1] as number) : 0;
    if (n > 0 && ((lo < 0 && next < 0) || (lo > 0 && next > 0))) {
      const y = lo * 2;
      const x = hi + y;
      if (y === x - hi) hi = x;
    }
    return hi;
  }
}

/** Approximate mode's local vector (see faLocalVector). */
function localVectorApproximate(s: FaResolved, table: Table): string[] {
  const rows = table.numRows;
  const cellOf = cellsOf(s, table);
  const V = Number(s.valueBound);
  const cols = s.columns.map((c) => doubleColumn(table, c, V));
  const counts = new Float64Array(s.length); // counts and bins: integers below 2^53, exact
  const sums = new Map<number, ExactSum>();
  const sumAt = (o: number): ExactSum => {
    let a = sums.get(o);
    if (!a) {
      a = new ExactSum();
      sums.set(o, a);
    }
    return a;
  };
  let ranges: Int32Array | null = null;
  if (s.bins > 0) {
    const hist = doubleColumn(table, s.histColumn, null);
    ranges = Int32Array.from(hist, (x) => rangeOf(binOfNumber(x, s.edges), x < (s.edges[0] as number), s.bins));
    dropSmallRanges(s, cellOf, ranges);
  }
  for (let r = 0; r < rows; r++) {
    const cell = cellOf[r] as number;
    if (cell < 0) continue;
    const base = cell * s.stride;
    counts[base] = (counts[base] as number) + 1;
    for (let c = 0; c < cols.length; c++) {
      const x = (cols[c] as Float64Array)[r] as number;
      const o = base + (s.columnOffsets[c] as number);
      sumAt(o).add(x);
      if (s.squares[c]) sumAt(o + 1).addSquare(x);
    }
    const bin = ranges ? (ranges[r] as number) : -1;
    if (bin >= 0 && bin < s.bins) {
      const o = base + s.histOffset + bin;
      counts[o] = (counts[o] as number) + 1;
    }
  }
  const out = new Array<string>(s.length);
  for (let i = 0; i < s.length; i++) out[i] = String(sums.get(i)?.value() ?? counts[i]);
  for (const i of belowK(s, (o) => counts[o] as number)) out[i] = "0";
  return out;
}

/** binOf over doubles (approximate mode bins the values as they are). */
function binOfNumber(x: number, edges: readonly number[]): number {
  const m = edges.length - 1;
  if (!(x >= (edges[0] as number) && x <= (edges[m] as number))) return -1;
  if (x === edges[m]) return m - 1;
  let lo = 0;
  let hi = m;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x < (edges[mid] as number)) hi = mid;
    else lo = mid;
  }
  return lo;
}

/** Bin i holds [e_i, e_{i+1}); the last bin is closed; −1 outside. */
function binOf(x: bigint, edges: readonly bigint[]): number {
  const m = edges.length - 1;
  if (x < (edges[0] as bigint) || x > (edges[m] as bigint)) return -1;
  if (x === edges[m]) return m - 1;
  let lo = 0;
  let hi = m; // edges[lo] <= x < edges[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (x < (edges[mid] as bigint)) hi = mid;
    else lo = mid;
  }
  return lo;
}

// ------------------------------------------------------------------ masks

const SALT = new TextEncoder().encode(`umbra/federated-aggregate/v${FA_VERSION}`);

function u32be(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, false);
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A fresh X25519 key pair for a provider (its registered box key in the node). */
export function faBoxKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const { secretKey, publicKey } = x25519.keygen();
  return { publicKey, secretKey };
}

/**
 * The mask vector of pair (lo, hi), lo < hi: per prime j, `length` uniform
 * residues mod primes[j]. Both providers of the pair derive the same vector.
 */
export function pairMask(
  s: FaResolved,
  shared: Uint8Array,
  lo: number,
  hi: number,
  pkLo: Uint8Array,
  pkHi: Uint8Array,
  fingerprint: string,
  keyId: string,
  primes: readonly number[],
): Uint32Array[] {
  const { next, cipher } = maskStream(s, shared, lo, hi, pkLo, pkHi, fingerprint, keyId);
  const out = primes.map((p) => {
    const limit = Math.floor(2 ** 32 / p) * p;
    const m = new Uint32Array(s.length);
    for (let i = 0; i < s.length; i++) {
      let u = next();
      while (u >= limit) u = next();
      m[i] = u % p;
    }
    return m;
  });
  cipher.final();
  return out;
}

/** The pair's PRG: AES-256-CTR keyed by HKDF-SHA256(shared, SALT, job ‖ lo ‖ hi ‖ pk_lo ‖ pk_hi ‖ fingerprint ‖ key-set id), as uint32 words. */
function maskStream(s: FaResolved, shared: Uint8Array, lo: number, hi: number, pkLo: Uint8Array, pkHi: Uint8Array, fingerprint: string, keyId: string) {
  const job = new TextEncoder().encode(s.job);
  const info = concat([u32be(job.length), job, u32be(lo), u32be(hi), pkLo, pkHi, Buffer.from(fingerprint, "hex"), Buffer.from(keyId, "hex")]);
  const key = hkdf(sha256, shared, SALT, info, 32);
  const cipher = createCipheriv("aes-256-ctr", key, new Uint8Array(16));
  const zeros = new Uint8Array(4096);
  let buf = new Uint8Array(0);
  let pos = 0;
  const next = (): number => {
    if (pos + 4 > buf.length) {
      buf = new Uint8Array(cipher.update(zeros));
      pos = 0;
    }
    const v = ((buf[pos] as number) | ((buf[pos + 1] as number) << 8) | ((buf[pos + 2] as number) << 16) | ((buf[pos + 3] as number) << 24)) >>> 0;
    pos += 4;
    return v;
  };
  return { next, cipher };
}

/**
 * Approximate mode: the real-valued mask vector of pair (lo, hi), lo < hi —
 * `length` values uniform in [−2^20, 2^20), multiples of 2^-32 (53 random
 * bits each, exact as doubles), in units of each slot's bound. From the same
 * stream as pairMask (the fingerprint and key-set id are CKKS's here). Both
 * providers of the pair derive the same vector.
 */
export function pairMaskReal(s: FaResolved, shared: Uint8Array, lo: number, hi: number, pkLo: Uint8Array, pkHi: Uint8Array, fingerprint: string, keyId: string): Float64Array {
  const { next, cipher } = maskStream(s, shared, lo, hi, pkLo, pkHi, fingerprint, keyId);
  const out = new Float64Array(s.length);
  const shift = 2 ** (52 - FA_MASK_BITS);
  for (let i = 0; i < s.length; i++) {
    const u = (next() >>> 11) * 2 ** 32 + next(); // uniform in [0, 2^53)
    out[i] = (u - 2 ** 52) / shift;
  }
  cipher.final();
  return out;
}

function sharedSecret(secretKey: Uint8Array, peer: Uint8Array, who: number): Uint8Array {
  let z: Uint8Array;
  try {
    z = x25519.getSharedSecret(secretKey, peer);
  } catch {
    throw new InvalidArgumentError(`provider ${who}'s box public key is not a valid X25519 key`);
  }
  if (z.every((b) => b === 0)) throw new InvalidArgumentError(`provider ${who}'s box public key is of small order`);
  return z;
}

// ------------------------------------------------------------------ common checks

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkKeyMessage(s: FaResolved, m: ProtocolMessage): AggregateKey {
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  expectStep(m.header, FaStep.Key, 0, 1, "aggregateKey", m.kind);
  const k = m as AggregateKey;
  const approximate = s.approximate === true;
  if ((k.approximate === true) !== approximate || (approximate && k.precisionBits !== s.precisionBits)) {
    throw new ParameterMismatchError(`the announced arithmetic differs from the job's, which is ${approximate ? "approximate (CKKS)" : "exact (BFV)"}`);
  }
  const h = s.he;
  if (k.polyModulusDegree !== h.polyModulusDegree || k.maxAbsValue !== h.maxAbsValue || k.scale !== h.scale || k.maxRows !== h.maxRows || k.maxLength !== h.maxLength) {
    throw new ParameterMismatchError("the announced HE context options differ from the ones this job derives");
  }
  return k;
}

/** Loads and checks the public key under the job's context; returns its key-set id (hex). */
function checkPublicKey(he: HeContext, k: AggregateKey): string {
  if (k.fingerprint !== he.params.fingerprint) throw new ParameterMismatchError("the announced HE parameter fingerprint differs from this job's");
  const pk = he.loadPublicKey(k.publicKey);
  try {
    return Buffer.from(pk.keyId).toString("hex");
  } finally {
    pk.dispose();
  }
}

/** Which engine/he frame the bytes claim to be (by magic), to refuse the other scheme's as a parameter mismatch. */
function frameScheme(ct: Uint8Array): "bfv" | "ckks" | "" {
  if (ct.length < 4 || ct[0] !== 0x55 || ct[1] !== 0x48 || ct[3] !== 0x31) return "";
  return ct[2] === 0x45 ? "bfv" : ct[2] === 0x43 ? "ckks" : "";
}

function checkCiphertext(he: HeContext, s: FaResolved, ct: Uint8Array, keyId: string, rows: number): void {
  if (frameScheme(ct) === "ckks") throw new ParameterMismatchError("a CKKS ciphertext in a job of exact arithmetic");
  const info = he.validate(ct);
  if (info.keyId !== keyId) throw new KeyMismatchError("the ciphertext is not under the buyer's key set");
  if (info.length !== s.length) throw new InvalidMessageError(`the ciphertext holds ${info.length} slots, the job's vector ${s.length}`);
  if (info.rows !== rows) throw new InvalidMessageError(`the ciphertext's row bound is ${info.rows}, expected ${rows}`);
}

/** Approximate mode: loads and checks the CKKS public key under the job's context; returns its key-set id (hex). */
function checkCkksPublicKey(ckks: CkksContext, k: AggregateKey): string {
  if (k.fingerprint !== ckks.params.fingerprint) throw new ParameterMismatchError("the announced CKKS parameter fingerprint differs from this job's");
  const pk = ckks.loadPublicKey(k.publicKey);
  try {
    return Buffer.from(pk.keyId).toString("hex");
  } finally {
    pk.dispose();
  }
}

/** What a CKKS ciphertext of the protocol must say in its header: step 2 (one provider, fresh) or step 3 (the N providers' sum, re-randomised). */
function expectedCkks(s: FaResolved, step: typeof FaStep.Masked | typeof FaStep.Sum) {
  const n = s.providers;
  return step === FaStep.Masked
    ? { level: CkksLevel.Data, rows: 1, encryptions: 1, keySwitches: 0, encodings: 1 }
    : { level: CkksLevel.Last, rows: n, encryptions: n + 1, keySwitches: 0, encodings: n };
}

/** Approximate mode: parses and checks a CKKS ciphertext against the job, header first, then each block through SEAL. */
function checkCkksCiphertext(ckks: CkksContext, s: FaResolved, ct: Uint8Array, keyId: string, step: typeof FaStep.Masked | typeof FaStep.Sum): void {
  if (frameScheme(ct) === "bfv") throw new ParameterMismatchError("a BFV ciphertext in a job of approximate arithmetic");
  const info = ckks.inspect(ct);
  if (info.keyId !== keyId) throw new KeyMismatchError("the ciphertext is not under the buyer's key set");
  if (info.length !== s.length) throw new InvalidMessageError(`the ciphertext holds ${info.length} slots, the job's vector ${s.length}`);
  const want = expectedCkks(s, step);
  for (const [field, value] of Object.entries(want)) {
    const got = info[field as keyof typeof want];
    if (got !== value) throw new InvalidMessageError(`the CKKS ciphertext's ${field} is ${got}, expected ${value}`);
  }
  ckks.validate(ct);
}

interface Common extends FaResolved {
  readonly role: "buyer" | "exchange" | "provider";
}

function assertRole(s: { role?: unknown; protocol?: unknown; version?: unknown }, role: Common["role"]): void {
  if (!s || s.role !== role || s.protocol !== ProtocolName.FederatedAggregate || s.version !== FA_VERSION) {
    throw new InvalidStateError(`not a federated-aggregate ${role} state`);
  }
}

// ------------------------------------------------------------------ buyer

export interface FaBuyerState extends Common {
  readonly role: "buyer";
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  readonly keyId: string;
  readonly fingerprint: string;
  readonly done: boolean;
  /** The decrypted totals (decimal), once done: exact integers, or in approximate mode doubles in the slots' own units. */
  readonly totals: readonly string[];
  /** Approximate mode, once done: per slot, the bound on |total − exact total| (decimal doubles). Absent or empty otherwise. */
  readonly bounds?: readonly string[];
}

/** Starts the buyer: a fresh key set for the job; returns step 1 for the exchange. */
export async function faBuyerStart(params: FederatedAggregateParams, ctx: FaContext = {}): Promise<FaStepResult<FaBuyerState>> {
  const p = resolveFaParams(params);
  if (p.approximate) {
    return withCkks(p, ctx, (ckks) => {
      const keys = ckks.generateKeys({ galois: false });
      const pk = ckks.loadPublicKey(keys.publicKey);
      const keyId = Buffer.from(pk.keyId).toString("hex");
      pk.dispose();
      const state: FaBuyerState = { ...p, role: "buyer", publicKey: keys.publicKey, secretKey: keys.secretKey, keyId, fingerprint: ckks.params.fingerprint, done: false, totals: [], bounds: [] };
      const message: AggregateKey = {
        kind: "aggregateKey",
        header: header(p, FaStep.Key, 0, 1),
        polyModulusDegree: p.he.polyModulusDegree,
        maxAbsValue: p.he.maxAbsValue,
        scale: p.he.scale,
        maxRows: p.he.maxRows,
        maxLength: p.he.maxLength,
        fingerprint: ckks.params.fingerprint,
        publicKey: keys.publicKey,
        approximate: true,
        precisionBits: p.precisionBits,
      };
      return { state, messages: [{ to: "exchange", message }] };
    });
  }
  return withHe(p, ctx, (he) => {
    const keys = he.generateKeys({ galois: false });
    const pk = he.loadPublicKey(keys.publicKey);
    const keyId = Buffer.from(pk.keyId).toString("hex");
    pk.dispose();
    const state: FaBuyerState = { ...p, role: "buyer", publicKey: keys.publicKey, secretKey: keys.secretKey, keyId, fingerprint: he.params.fingerprint, done: false, totals: [] };
    const message: AggregateKey = {
      kind: "aggregateKey",
      header: header(p, FaStep.Key, 0, 1),
      polyModulusDegree: p.he.polyModulusDegree,
      maxAbsValue: p.he.maxAbsValue,
      scale: p.he.scale,
      maxRows: p.he.maxRows,
      maxLength: p.he.maxLength,
      fingerprint: he.params.fingerprint,
      publicKey: keys.publicKey,
    };
    return { state, messages: [{ to: "exchange", message }] };
  });
}

/** The buyer takes step 3: the re-randomised sum of all N providers. */
export async function faBuyerReceive(s: FaBuyerState, m: ProtocolMessage, ctx: FaContext = {}): Promise<FaStepResult<FaBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (s.done) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  expectStep(m.header, FaStep.Sum, 0, 1, "aggregateCiphertext", m.kind);
  const c = m as AggregateCiphertext;
  if (c.party !== 0 || c.contributors !== s.providers) throw new ProtocolError(`the sum must include all ${s.providers} providers, it says ${c.contributors}`);
  if (s.approximate === true) {
    return withCkks(s, ctx, (ckks) => {
      checkCkksCiphertext(ckks, s, c.ciphertext, s.keyId, FaStep.Sum);
      const { values, errorBound } = ckks.decryptSums(c.ciphertext, s.secretKey);
      const f = faRoundingError(s.providers);
      const totals: string[] = [];
      const bounds: string[] = [];
      values.forEach((v, i) => {
        const b = s.slotBounds[i % s.stride] as number;
        const total = v * b;
        totals.push(String(total));
        bounds.push(String(b * (errorBound + f) + 2 ** -52 * Math.abs(total)));
      });
      return { state: { ...s, done: true, totals, bounds }, messages: [] };
    });
  }
  return withHe(s, ctx, (he) => {
    // The row bound is what add() accumulated: one per provider ciphertext summed in.
    checkCiphertext(he, s, c.ciphertext, s.keyId, s.providers);
    const totals = he.decryptSums(c.ciphertext, s.secretKey);
    return { state: { ...s, done: true, totals: totals.map((x) => x.toString()) }, messages: [] };
  });
}

export function faBuyerDone(s: FaBuyerState): boolean {
  return s.done;
}

export interface FaColumnResult {
  /** Exact sum in units of 10^-scale (null in approximate mode: see FaCell.approx). */
  readonly sum: bigint | null;
  readonly avg: number | null;
  /** Sample variance (var_samp; null for a single row). */
  readonly var: number | null;
  readonly stddev: number | null;
}

export interface FaCell {
  /** The declared category (null without group-by). */
  readonly category: string | null;
  readonly suppressed: boolean;
  readonly count: bigint | null;
  /** By column name. */
  readonly columns: Readonly<Record<string, FaColumnResult>>;
  /** Counts per histogram bin; a bin whose count is below k is null too. */
  readonly histogram: readonly (bigint | null)[];
  /**
   * Approximate mode only: every value with its error bound. The fields
   * above then hold what is exact — `count` and `histogram` where rounded
   * (else null), never a `sum` — and the approximate avg/var/stddev.
   */
  readonly approx?: FaApproxCell;
}

/** An approximate (CKKS) result: |value − the exact result| ≤ bound. */
export interface FaApprox {
  readonly value: number;
  readonly bound: number;
}

/**
 * An approximate count. When the bound on the decrypted value is below 0.5
 * the count is rounded to the integer, which is then the exact count:
 * `rounded: true`, `bound: 0`. Otherwise the decrypted double and its bound.
 */
export interface FaApproxCount extends FaApprox {
  readonly rounded: boolean;
}

export interface FaApproxColumn {
  readonly sum: FaApprox | null;
  readonly avg: FaApprox | null;
  readonly var: FaApprox | null;
  readonly stddev: FaApprox | null;
}

export interface FaApproxCell {
  readonly count: FaApproxCount | null;
  readonly columns: Readonly<Record<string, FaApproxColumn>>;
  readonly histogram: readonly (FaApproxCount | null)[];
}

export interface FaResult {
  readonly scale: number;
  readonly cells: readonly FaCell[];
  /** true: computed with CKKS; every cell has `approx`. */
  readonly approximate?: boolean;
}

function ratio(num: bigint, den: bigint): number {
  // Both stay below 2^170 here: Number() of each is within 1 ulp.
  return Number(num) / Number(den);
}

/** The buyer's output: per cell, the aggregates; cells with count < k suppressed (see the leakage section). */
export function faBuyerResult(s: FaBuyerState): FaResult {
  assertRole(s, "buyer");
  if (!s.done) throw new ProtocolError("the protocol has not finished");
  if (s.approximate === true) return approximateResult(s);
  const t = s.totals.map((x) => BigInt(x));
  const k = BigInt(s.minCount);
  const f = 10n ** BigInt(s.scale);
  const cells: FaCell[] = [];
  for (let c = 0; c < s.cells; c++) {
    const base = c * s.stride;
    const n = t[base] as bigint;
    const suppressed = n < k;
    const columns: Record<string, FaColumnResult> = {};
    s.columns.forEach((name, i) => {
      const o = base + (s.columnOffsets[i] as number);
      if (suppressed) {
        columns[name] = { sum: null, avg: null, var: null, stddev: null };
        return;
      }
      const sum = t[o] as bigint;
      const avg = n > 0n ? ratio(sum, n * f) : null;
      let v: number | null = null;
      if (s.squares[i] && n > 1n) {
        const q = t[o + 1] as bigint;
        const num = n * q - sum * sum; // ≥ 0, units 10^-2s
        v = ratio(num, n * (n - 1n) * f * f);
      }
      columns[name] = { sum, avg, var: v, stddev: v === null ? null : Math.sqrt(v) };
    });
    const histogram: (bigint | null)[] = [];
    for (let b = 0; b < s.bins; b++) {
      const h = t[base + s.histOffset + b] as bigint;
      histogram.push(suppressed || h < k ? null : h);
    }
    cells.push({ category: s.groupColumn ? (s.categories[c] as string) : null, suppressed, count: suppressed ? null : n, columns, histogram });
  }
  return { scale: s.scale, cells };
}

/** A decrypted count with its bound: rounded (and then exact) when the bound is below 0.5. */
function approxCount(value: number, bound: number): FaApproxCount {
  return bound < 0.5 ? { value: Math.round(value) + 0, bound: 0, rounded: true } : { value, bound, rounded: false };
}

/** Released under k: an exact count ≥ k; an approximate one only when it is surely ≥ k. */
function released(c: FaApproxCount, k: number): boolean {
  return c.value - c.bound >= k;
}

/** Relative slack for the rounding of the few double operations behind a derived value and its interval. */
const DERIVED_SLACK = 2 ** -48;

/** AVG = S / n with a bound by interval arithmetic (S / n is monotone in each on n > 0: the extremes are at the corners). */
function approxAvg(n: FaApproxCount, sum: FaApprox): FaApprox | null {
  if (!(n.value > 0)) return null;
  const value = sum.value / n.value;
  const nLo = n.value - n.bound;
  if (!(nLo > 0)) return { value, bound: Infinity };
  const corners = [sum.value - sum.bound, sum.value + sum.bound].flatMap((x) => [x / nLo, x / (n.value + n.bound)]);
  const lo = Math.min(...corners);
  const hi = Math.max(...corners);
  return { value, bound: Math.max(value - lo, hi - value) + DERIVED_SLACK * Math.max(Math.abs(lo), Math.abs(hi)) };
}

/**
 * VAR_SAMP = (n·Q − S²) / (n·(n − 1)) and STDDEV with bounds by interval
 * arithmetic over n, S and Q (the numerator is ≥ 0 for exact data, so its
 * interval is clamped there; the result too).
 */
function approxVar(n: FaApproxCount, sum: FaApprox, sq: FaApprox): { var: FaApprox; stddev: FaApprox } | null {
  if (!(n.value > 1)) return null;
  const N = n.value;
  const S = sum.value;
  const Q = sq.value;
  const value = Math.max(0, (N * Q - S * S) / (N * (N - 1)));
  const sd = Math.sqrt(value);
  const nLo = N - n.bound;
  const nHi = N + n.bound;
  if (!(nLo > 1)) return { var: { value, bound: Infinity }, stddev: { value: sd, bound: Infinity } };
  const sLo = S - sum.bound;
  const sHi = S + sum.bound;
  const qLo = Math.max(0, Q - sq.bound);
  const qHi = Q + sq.bound;
  const s2Hi = Math.max(sLo * sLo, sHi * sHi);
  const s2Lo = sLo <= 0 && sHi >= 0 ? 0 : Math.min(sLo * sLo, sHi * sHi);
  const denLo = nLo * (nLo - 1);
  const slack = (DERIVED_SLACK * (nHi * qHi + s2Hi)) / denLo + DERIVED_SLACK * value;
  const lo = Math.max(0, Math.max(0, nLo * qLo - s2Hi) / (nHi * (nHi - 1)) - slack);
  const hi = Math.max(0, nHi * qHi - s2Lo) / denLo + slack;
  const sdLo = Math.sqrt(lo);
  const sdHi = Math.sqrt(hi);
  return {
    var: { value, bound: Math.max(value - lo, hi - value) },
    stddev: { value: sd, bound: Math.max(sd - sdLo, sdHi - sd) + DERIVED_SLACK * sdHi },
  };
}

/** faBuyerResult in approximate mode (see Approximate mode and FaCell.approx). */
function approximateResult(s: FaBuyerState): FaResult {
  const t = s.totals.map(Number);
  const e = (s.bounds ?? []).map(Number);
  if (t.length !== s.length || e.length !== s.length) throw new InvalidStateError("the buyer's approximate totals do not match the job's vector");
  const k = s.minCount;
  const cells: FaCell[] = [];
  for (let c = 0; c < s.cells; c++) {
    const base = c * s.stride;
    const count = approxCount(t[base] as number, e[base] as number);
    const suppressed = !released(count, k);
    const columns: Record<string, FaColumnResult> = {};
    const approxColumns: Record<string, FaApproxColumn> = {};
    s.columns.forEach((name, i) => {
      const o = base + (s.columnOffsets[i] as number);
      if (suppressed) {
        columns[name] = { sum: null, avg: null, var: null, stddev: null };
        approxColumns[name] = { sum: null, avg: null, var: null, stddev: null };
        return;
      }
      const sum: FaApprox = { value: t[o] as number, bound: e[o] as number };
      const avg = approxAvg(count, sum);
      const v = s.squares[i] ? approxVar(count, sum, { value: t[o + 1] as number, bound: e[o + 1] as number }) : null;
      columns[name] = { sum: null, avg: avg?.value ?? null, var: v?.var.value ?? null, stddev: v?.stddev.value ?? null };
      approxColumns[name] = { sum, avg, var: v?.var ?? null, stddev: v?.stddev ?? null };
    });
    const histogram: (bigint | null)[] = [];
    const approxHistogram: (FaApproxCount | null)[] = [];
    for (let b = 0; b < s.bins; b++) {
      const o = base + s.histOffset + b;
      const h = approxCount(t[o] as number, e[o] as number);
      const out = !suppressed && released(h, k);
      histogram.push(out && h.rounded ? BigInt(h.value) : null);
      approxHistogram.push(out ? h : null);
    }
    cells.push({
      category: s.groupColumn ? (s.categories[c] as string) : null,
      suppressed,
      count: !suppressed && count.rounded ? BigInt(count.value) : null,
      columns,
      histogram,
      approx: { count: suppressed ? null : count, columns: approxColumns, histogram: approxHistogram },
    });
  }
  return { scale: s.scale, cells, approximate: true };
}

// ------------------------------------------------------------------ provider

export interface FaProviderState extends Common {
  readonly role: "provider";
  readonly index: number;
  /** Its plaintext vector (decimal), computed at start. */
  readonly values: readonly string[];
  readonly boxSecretKey: Uint8Array;
  /** Every provider's box public key, by index (its own included). */
  readonly peers: readonly Uint8Array[];
  readonly done: boolean;
}

export interface FaProviderInput {
  readonly index: number;
  readonly table: Table;
  readonly boxKeyPair: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
  readonly peers: readonly Uint8Array[];
}

/** Starts provider `index`: aggregates its table locally. Sends nothing until step 1. */
export async function faProviderStart(params: FederatedAggregateParams, input: FaProviderInput): Promise<FaStepResult<FaProviderState>> {
  const p = resolveFaParams(params);
  const { index, peers, boxKeyPair } = input;
  if (!Number.isInteger(index) || index < 0 || index >= p.providers) throw new InvalidArgumentError(`provider index must be in [0, ${p.providers})`);
  if (peers.length !== p.providers) throw new InvalidArgumentError(`peers must list the ${p.providers} providers' box public keys`);
  for (const k of peers) if (!(k instanceof Uint8Array) || k.length !== 32) throw new InvalidArgumentError("box public keys are 32 bytes");
  if (!sameBytes(x25519.getPublicKey(boxKeyPair.secretKey), peers[index] as Uint8Array)) throw new InvalidArgumentError("the box key pair is not the one registered for this index");
  const values = faLocalVector(p, input.table);
  const state: FaProviderState = { ...p, role: "provider", index, values, boxSecretKey: boxKeyPair.secretKey, peers: peers.map((k) => Uint8Array.from(k)), done: false };
  return { state, messages: [] };
}

/** The provider's masked residues (exported for tests): x_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji, per prime. */
export function faMaskedResidues(s: FaProviderState, primes: readonly number[], fingerprint: string, keyId: string): Uint32Array[] {
  const x = s.values.map((v) => BigInt(v));
  const out = primes.map((p) => {
    const P = BigInt(p);
    return Uint32Array.from(x, (v) => Number(((v % P) + P) % P));
  });
  for (let j = 0; j < s.providers; j++) {
    if (j === s.index) continue;
    const lo = Math.min(s.index, j);
    const hi = Math.max(s.index, j);
    const shared = sharedSecret(s.boxSecretKey, s.peers[j] as Uint8Array, j);
    const mask = pairMask(s, shared, lo, hi, s.peers[lo] as Uint8Array, s.peers[hi] as Uint8Array, fingerprint, keyId, primes);
    const add = s.index === lo;
    primes.forEach((p, q) => {
      const r = out[q] as Uint32Array;
      const m = mask[q] as Uint32Array;
      for (let i = 0; i < r.length; i++) {
        const a = r[i] as number;
        const b = m[i] as number;
        r[i] = add ? (a + b) % p : (a - b + p) % p;
      }
    });
  }
  return out;
}

/**
 * Approximate mode: the provider's masked vector (exported for tests), each
 * slot in units of its bound B: x_i/B + Σ_{j>i} m_ij − Σ_{j<i} m_ji (see
 * Approximate mode). |each| ≤ (N−1)·2^20 + 1, the CKKS context's maxAbsValue.
 */
export function faMaskedValues(s: FaProviderState, fingerprint: string, keyId: string): Float64Array {
  if (s.approximate !== true) throw new InvalidArgumentError("the job does not declare approximate arithmetic");
  if (s.values.length !== s.length) throw new InvalidStateError("the provider's vector does not match the job's");
  const out = Float64Array.from(s.values, (v, i) => Number(v) / (s.slotBounds[i % s.stride] as number));
  for (let j = 0; j < s.providers; j++) {
    if (j === s.index) continue;
    const lo = Math.min(s.index, j);
    const hi = Math.max(s.index, j);
    const shared = sharedSecret(s.boxSecretKey, s.peers[j] as Uint8Array, j);
    const mask = pairMaskReal(s, shared, lo, hi, s.peers[lo] as Uint8Array, s.peers[hi] as Uint8Array, fingerprint, keyId);
    const sign = s.index === lo ? 1 : -1;
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + sign * (mask[i] as number);
  }
  return out;
}

/** The provider takes step 1 (the buyer's key, relayed) and returns its masked ciphertext (step 2). */
export async function faProviderReceive(s: FaProviderState, m: ProtocolMessage, ctx: FaContext = {}): Promise<FaStepResult<FaProviderState>> {
  assertRole(s, "provider");
  if (s.done) {
    checkBinding(s, m.header);
    throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  }
  const k = checkKeyMessage(s, m);
  if (s.approximate === true) {
    return withCkks(s, ctx, (ckks) => {
      const keyId = checkCkksPublicKey(ckks, k);
      const ciphertext = ckks.encryptColumn(faMaskedValues(s, ckks.params.fingerprint, keyId), k.publicKey);
      const message: AggregateCiphertext = { kind: "aggregateCiphertext", header: header(s, FaStep.Masked, 0, 1), party: s.index, contributors: 1, ciphertext };
      return { state: { ...s, done: true, values: [] }, messages: [{ to: "exchange", message }] };
    });
  }
  return withHe(s, ctx, (he) => {
    const keyId = checkPublicKey(he, k);
    const residues = faMaskedResidues(s, he.params.plainModuli, he.params.fingerprint, keyId);
    const ciphertext = he.encryptResidues(residues, k.publicKey);
    const message: AggregateCiphertext = { kind: "aggregateCiphertext", header: header(s, FaStep.Masked, 0, 1), party: s.index, contributors: 1, ciphertext };
    // The plaintext vector is no longer needed: drop it from the state.
    return { state: { ...s, done: true, values: [] }, messages: [{ to: "exchange", message }] };
  });
}

// ------------------------------------------------------------------ exchange

export interface FaExchangeState extends Common {
  readonly role: "exchange";
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  /** 1 for each provider whose step 2 is in. */
  readonly received: Uint8Array;
  /** The running sum (empty until the first). */
  readonly sum: Uint8Array;
  readonly done: boolean;
}

export async function faExchangeStart(params: FederatedAggregateParams): Promise<FaStepResult<FaExchangeState>> {
  const p = resolveFaParams(params);
  return { state: { ...p, role: "exchange", publicKey: new Uint8Array(0), keyId: "", received: new Uint8Array(p.providers), sum: new Uint8Array(0), done: false }, messages: [] };
}

/** Providers whose masked vector has not arrived. */
export function faExchangeMissing(s: FaExchangeState): number[] {
  const out: number[] = [];
  s.received.forEach((r, i) => {
    if (r === 0) out.push(i);
  });
  return out;
}

export function faExchangeDone(s: FaExchangeState): boolean {
  return s.done;
}

/**
 * The exchange takes step 1 (relays it to every provider) and step 2 (adds
 * each provider's ciphertext); once all N are in, re-randomises the sum and
 * sends it to the buyer (step 3). Never forwards anything else to the buyer.
 */
export async function faExchangeReceive(s: FaExchangeState, m: ProtocolMessage, ctx: FaContext = {}): Promise<FaStepResult<FaExchangeState>> {
  assertRole(s, "exchange");
  const approximate = s.approximate === true;
  if (s.keyId === "") {
    const k = checkKeyMessage(s, m);
    const check = (keyId: string) => {
      const messages: Addressed[] = [];
      for (let i = 0; i < s.providers; i++) messages.push({ to: providerRole(i), message: k });
      return { state: { ...s, publicKey: Uint8Array.from(k.publicKey), keyId }, messages };
    };
    return approximate ? withCkks(s, ctx, (ckks) => check(checkCkksPublicKey(ckks, k))) : withHe(s, ctx, (he) => check(checkPublicKey(he, k)));
  }
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (s.done) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  expectStep(m.header, FaStep.Masked, 0, 1, "aggregateCiphertext", m.kind);
  const c = m as AggregateCiphertext;
  if (c.party >= s.providers) throw new InvalidMessageError(`provider index ${c.party} out of range`);
  if (s.received[c.party] === 1) throw new WrongStepError(`provider ${c.party}'s vector was already received`);
  if (c.contributors !== 1) throw new InvalidMessageError("a provider's vector has exactly one contributor");
  if (approximate) {
    return withCkks(s, ctx, (ckks) => {
      checkCkksCiphertext(ckks, s, c.ciphertext, s.keyId, FaStep.Masked);
      const sum = s.sum.length === 0 ? Uint8Array.from(c.ciphertext) : ckks.add(s.sum, c.ciphertext);
      const received = Uint8Array.from(s.received);
      received[c.party] = 1;
      const state = { ...s, received, sum };
      if (received.some((r) => r === 0)) return { state, messages: [] };
      // The masks cancel in the sum: every slot's total is Σ_i x_i/B, at most N in magnitude (the header would allow N·maxAbsValue).
      const out = ckks.reRandomize(sum, s.publicKey, { maxAbsTotal: s.providers + 1 });
      const message: AggregateCiphertext = { kind: "aggregateCiphertext", header: header(s, FaStep.Sum, 0, 1), party: 0, contributors: s.providers, ciphertext: out };
      return { state: { ...state, done: true, sum: new Uint8Array(0) }, messages: [{ to: "buyer", message }] };
    });
  }
  return withHe(s, ctx, (he) => {
    checkCiphertext(he, s, c.ciphertext, s.keyId, 1);
    const sum = s.sum.length === 0 ? Uint8Array.from(c.ciphertext) : he.add(s.sum, c.ciphertext);
    const received = Uint8Array.from(s.received);
    received[c.party] = 1;
    const state = { ...s, received, sum };
    if (received.some((r) => r === 0)) return { state, messages: [] };
    const out = he.reRandomize(sum, s.publicKey);
    const message: AggregateCiphertext = { kind: "aggregateCiphertext", header: header(s, FaStep.Sum, 0, 1), party: 0, contributors: s.providers, ciphertext: out };
    return { state: { ...state, done: true, sum: new Uint8Array(0) }, messages: [{ to: "buyer", message }] };
  });
}
