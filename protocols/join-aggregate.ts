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
 * derives the same HE options ({@link jaHeOptions}). The job may also cap
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
 * Messages are bound to job, protocol, version, step and chunk (steps.ts);
 * every received group element is strictly decoded (identity refused) or, for
 * elements only compared, checked canonical (checkComparedEncodings);
 * announced sizes are bounded; HE options must equal the ones this party
 * derives from the job; ciphertexts are parsed and size-checked by engine/he
 * before SEAL sees them. A refused message leaves the state unchanged.
 */
import { randomBytes } from "node:crypto";
import type { Table, Vector } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError } from "../engine/errors.js";
import { checkComparedEncodings, createGroup, GroupId, type BackendId } from "../engine/group/index.js";
import type { KeyColumn } from "../engine/columns/index.js";
import {
  BoundExceededError,
  HeContext,
  withHeContext,
  KeyMismatchError,
  ParameterMismatchError,
  scaledBound,
  ValueOutOfRangeError,
  valuesFromArrow,
  zeroSumMasks,
  type HeContextOptions,
} from "../engine/he/index.js";
import { ElementIndex, permuteFixedAsync, shuffledOrder } from "../engine/psi/index.js";
import { forEachSlice, SLICE_ITEMS } from "../engine/slices.js";
import type { CryptoPool } from "../engine/pool/index.js";
import type { PackedBytes } from "../engine/packed.js";
import {
  isJobId,
  MAX_CHUNK_ELEMENTS,
  ProtocolName,
  type AggregateKey,
  type ElementBatch,
  type JoinCiphertext,
  type JoinCounts,
  type JoinHello,
  type JoinResult,
  type JoinWeights,
  type ProtocolMessage,
} from "./codec.js";
import { InvalidMessageError, InvalidStateError, KeyLimitExceededError, OverlappingGroupsError, ProtocolError, RefusedError, WrongStepError } from "./errors.js";
import type { AggregateSpec } from "./federated-aggregate.js";
import { batches, checkBatch, checkBinding, chunkCount, expectStep, header, pointError, withRoom } from "./steps.js";

export type { AggregateSpec } from "./federated-aggregate.js";

export const JA_VERSION = 1;

export const JaStep = {
  Key: 1,
  BuyerHello: 2,
  BuyerBlinded: 3,
  ProviderHello: 4,
  ProviderBlinded: 5,
  ProviderExchangeHello: 6,
  ProviderCounts: 7,
  ProviderValues: 8,
  BuyerDoubled: 9,
  BuyerExchangeHello: 10,
  BuyerWeights: 11,
  ProviderDoubled: 12,
  Result: 13,
  ResultValues: 14,
} as const;
export type JaStep = (typeof JaStep)[keyof typeof JaStep];

const ELEMENT = 32;
export const JA_DEFAULT_CHUNK_ELEMENTS = 16_384;
export const JA_DEFAULT_MAX_SET_SIZE = 100_000_000;
export const JA_DEFAULT_MAX_JOIN_ROWS = 2 ** 32;
/** Most pseudonymous groups a job may have. */
export const JA_MAX_GROUPS = 1024;
/** Ciphertext blocks per JoinCiphertext chunk (a block is one SEAL ciphertext per CRT prime). */
const PROVIDER_BLOCKS_PER_CHUNK = 2;
const RESULT_BLOCKS_PER_CHUNK = 8;
/** join-aggregate's BFV degree, whatever the job's bounds (see jaHeOptions), and so its slots per block. */
const JA_SLOTS = 8192;
/** The longest encrypted column the HE context accepts (frames are size-checked against it). */
const JA_MAX_LENGTH = 2 ** 28;

export type JaRole = "buyer" | "provider" | "exchange";

export interface JaAddressed {
  readonly to: JaRole;
  readonly message: ProtocolMessage;
}

export interface JaStepResult<S> {
  readonly state: S;
  readonly messages: JaAddressed[];
}

/** What all three roles of one job agree on (from the job, not from messages). */
export interface JoinAggregateParams {
  readonly job: string;
  readonly aggregates: readonly AggregateSpec[];
  /** True when the buyer groups by one of its columns. */
  readonly grouped: boolean;
  /** k: a group is released only with at least k distinct matched keys and k joined rows (default 1). */
  readonly minGroupSize?: number;
  /** The largest |value| of an aggregated provider column, in the value's units. */
  readonly maxAbsValue: number | bigint;
  /** Decimal digits kept (fixed point). Default 0. */
  readonly scale?: number;
  /** The most joined rows any one total may include (default 2^32). */
  readonly maxJoinRows?: number;
  /** Default x25519 (the fast bulk group). */
  readonly group?: GroupId;
  /** Elements per chunk (default 16,384). */
  readonly chunkElements?: number;
  /** Largest set either side may announce (default 10^8). */
  readonly maxSetSize?: number;
  /** "bucket" (default): the provider pads its set to a bucket of 1/8 precision; "none": not at all. */
  readonly providerPadding?: "bucket" | "none";
  /** The most distinct keys the buyer may bring (default: maxSetSize); the provider and the exchange refuse a larger announcement. */
  readonly maxBuyerKeys?: number;
}

/** One encrypted statistic column of the layout. */
export interface JaStat {
  readonly column: string;
  readonly stat: "n" | "s" | "q";
}

/** The resolved, plain-data form every state carries. */
export interface JaResolved {
  readonly protocol: ProtocolName;
  readonly version: number;
  readonly job: string;
  readonly aggregates: readonly { readonly fn: string; readonly column: string }[];
  readonly grouped: boolean;
  readonly minGroupSize: number;
  readonly group: GroupId;
  readonly chunkElements: number;
  readonly maxSetSize: number;
  /** The most distinct keys the buyer may announce (absent in older states: maxSetSize). */
  readonly maxBuyerKeys?: number;
  readonly maxJoinRows: number;
  readonly padding: "bucket" | "none";
  readonly scale: number;
  /** V, the scaled bound of one value (decimal). */
  readonly valueBound: string;
  /** Value columns in first-use order, and whether each needs sums of squares. */
  readonly columns: readonly string[];
  readonly squares: readonly boolean[];
  /** The encrypted statistic columns, in order. */
  readonly stats: readonly JaStat[];
  /** HE options (maxAbsValue as decimal). */
  readonly he: { readonly maxAbsValue: string; readonly maxRows: number; readonly maxLength: number };
}

/** Local resources: not part of the state. */
export interface JaContext {
  readonly pool: CryptoPool;
  /** An HE context to reuse when its parameters match the job's. */
  readonly he?: HeContext;
  readonly backend?: BackendId;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

// ------------------------------------------------------------------ parameters

export function resolveJaParams(p: JoinAggregateParams): JaResolved {
  if (!p || !isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  const k = p.minGroupSize ?? 1;
  if (!Number.isSafeInteger(k) || k < 1) throw new InvalidArgumentError("minGroupSize must be a positive integer");
  const group = p.group ?? GroupId.X25519;
  if (group !== GroupId.X25519 && group !== GroupId.Ristretto255) throw new InvalidArgumentError("unknown group");
  const chunkElements = p.chunkElements ?? JA_DEFAULT_CHUNK_ELEMENTS;
  if (!Number.isInteger(chunkElements) || chunkElements < 1 || chunkElements > MAX_CHUNK_ELEMENTS) throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
  const maxSetSize = p.maxSetSize ?? JA_DEFAULT_MAX_SET_SIZE;
  if (!Number.isSafeInteger(maxSetSize) || maxSetSize < 1 || maxSetSize > JA_MAX_LENGTH) throw new InvalidArgumentError(`maxSetSize must be an integer in [1, 2^28]`);
  const maxBuyerKeys = p.maxBuyerKeys ?? maxSetSize;
  if (!Number.isSafeInteger(maxBuyerKeys) || maxBuyerKeys < 0) throw new InvalidArgumentError("maxBuyerKeys must be a non-negative integer");
  const maxJoinRows = p.maxJoinRows ?? JA_DEFAULT_MAX_JOIN_ROWS;
  if (!Number.isSafeInteger(maxJoinRows) || maxJoinRows < 1 || maxJoinRows > 2 ** 40) throw new InvalidArgumentError("maxJoinRows must be an integer in [1, 2^40]");
  const padding = p.providerPadding ?? "bucket";
  if (padding !== "bucket" && padding !== "none") throw new InvalidArgumentError('providerPadding must be "bucket" or "none"');
  const scale = p.scale ?? 0;
  if (!Array.isArray(p.aggregates) || p.aggregates.length === 0) throw new InvalidArgumentError("at least one aggregate is needed");
  const aggregates: { fn: string; column: string }[] = [];
  const columns: string[] = [];
  const squares: boolean[] = [];
  for (const a of p.aggregates) {
    if (a?.fn === "count") {
      aggregates.push({ fn: "count", column: "" });
      continue;
    }
    if (!a || !["sum", "avg", "var", "stddev"].includes(a.fn) || typeof a.column !== "string" || a.column.length === 0) {
      throw new InvalidArgumentError("an aggregate must be count, or sum/avg/var/stddev of a column");
    }
    aggregates.push({ fn: a.fn, column: a.column });
    let c = columns.indexOf(a.column);
    if (c < 0) {
      c = columns.length;
      columns.push(a.column);
      squares.push(false);
    }
    if (a.fn === "var" || a.fn === "stddev") squares[c] = true;
  }
  const V = scaledBound(p.maxAbsValue, scale);
  // The provider holds scaled values and per-key totals as signed 64-bit integers.
  if (V > I64_MAX) throw new InvalidArgumentError("maxAbsValue · 10^scale must be below 2^63");
  const stats: JaStat[] = [];
  columns.forEach((column, c) => {
    stats.push({ column, stat: "n" }, { column, stat: "s" });
    if (squares[c]) stats.push({ column, stat: "q" });
  });
  // One context for every statistic: its per-row bound is the largest of 1 (n), V (s) and V² (q).
  const B = squares.some(Boolean) ? V * V : V;
  return {
    protocol: ProtocolName.JoinAggregate,
    version: JA_VERSION,
    job: p.job,
    aggregates,
    grouped: p.grouped === true,
    minGroupSize: k,
    group,
    chunkElements,
    maxSetSize,
    maxBuyerKeys: Math.min(maxBuyerKeys, maxSetSize),
    maxJoinRows,
    padding,
    scale,
    valueBound: V.toString(),
    columns,
    squares,
    stats,
    he: { maxAbsValue: B.toString(), maxRows: maxJoinRows, maxLength: JA_MAX_LENGTH },
  };
}

/** The HE context options every party derives from the job. */
export function jaHeOptions(r: JaResolved): HeContextOptions {
  // N = 8192 whatever maxRows: the masked sums need the noise budget of its larger modulus (engine/he Levels).
  return { maxAbsValue: BigInt(r.he.maxAbsValue), maxRows: r.he.maxRows, scale: 0, maxLength: r.he.maxLength, polyModulusDegree: JA_SLOTS };
}

/** The padded provider set size: n rounded up to 4 significant bits (at most 1/8 more), at least 1,024. */
export function paddedSize(n: number, padding: "bucket" | "none"): number {
  if (padding === "none") return n;
  if (n <= 1024) return 1024;
  const unit = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / unit) * unit;
}

export function jaDst(group: GroupId, job: string): Uint8Array {
  return new TextEncoder().encode(`umbra/join-aggregate/v${JA_VERSION}/${group}/${job}`);
}

function withHe<R>(r: JaResolved, ctx: JaContext, fn: (he: HeContext) => R | Promise<R>): Promise<R> {
  return withHeContext(ctx.he, jaHeOptions(r), fn);
}

function spec(s: { group: GroupId }, ctx: JaContext) {
  return { group: s.group, ...(ctx.backend ? { backend: ctx.backend } : {}) };
}

// ------------------------------------------------------------------ packing helpers

function u32le(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

function readU32(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}

function readU64(b: Uint8Array): bigint[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i < b.length / 8; i++) out.push(dv.getBigUint64(i * 8, true));
  return out;
}

function keyMessage(s: JaResolved, fingerprint: string, publicKey: Uint8Array): AggregateKey {
  return {
    kind: "aggregateKey",
    header: header(s, JaStep.Key, 0, 1),
    polyModulusDegree: 0,
    maxAbsValue: s.he.maxAbsValue,
    scale: 0,
    maxRows: s.he.maxRows,
    maxLength: s.he.maxLength,
    fingerprint,
    publicKey,
  };
}

/** Checks a step-1 key against the options this party derives itself. */
async function checkKey(s: JaResolved, m: ProtocolMessage, he: HeContext, pool: CryptoPool): Promise<{ key: AggregateKey; keyId: string }> {
  expectStep(m.header, JaStep.Key, 0, 1, "aggregateKey", m.kind);
  const k = m as AggregateKey;
  if (k.maxAbsValue !== s.he.maxAbsValue || k.maxRows !== s.he.maxRows || k.maxLength !== s.he.maxLength || k.scale !== 0) {
    throw new ParameterMismatchError("the HE options in the key message differ from the job's");
  }
  if (k.fingerprint !== he.params.fingerprint) throw new ParameterMismatchError("the HE parameter fingerprint differs from this party's");
  // Parsed (size-checked, then loaded by SEAL) on a worker: refuses a malformed key now.
  return { key: k, keyId: await pool.heCheckPublicKey(jaHeOptions(s), k.publicKey) };
}

function hello(s: JaResolved, step: number, setSize: number, extra: { peerSetSize?: number; peerChunkElements?: number; groups?: number } = {}): JoinHello {
  return {
    kind: "joinHello",
    header: header(s, step, 0, 1),
    group: s.group,
    setSize,
    chunkElements: s.chunkElements,
    peerSetSize: extra.peerSetSize ?? 0,
    peerChunkElements: extra.peerChunkElements ?? 0,
    groups: extra.groups ?? 0,
  };
}

function checkHello(s: JaResolved, m: ProtocolMessage, step: number): JoinHello {
  expectStep(m.header, step, 0, 1, "joinHello", m.kind);
  const h = m as JoinHello;
  if (h.group !== s.group) throw new ProtocolError(`the other side uses group ${h.group}, this job uses ${s.group}`);
  if (h.setSize > s.maxSetSize || h.peerSetSize > s.maxSetSize) throw new InvalidMessageError(`an announced set exceeds the limit of ${s.maxSetSize}`);
  if (h.chunkElements !== s.chunkElements) throw new InvalidMessageError(`the job's chunks hold ${s.chunkElements} elements, the message says ${h.chunkElements}`);
  if (h.peerChunkElements !== 0 && h.peerChunkElements !== s.chunkElements) throw new InvalidMessageError(`the job's chunks hold ${s.chunkElements} elements`);
  return h;
}

/** The job's limit on the buyer's distinct keys. */
function buyerKeyLimit(s: JaResolved): number {
  return s.maxBuyerKeys ?? s.maxSetSize;
}

/** Refuses an announced buyer set larger than the job's maxBuyerKeys. */
function checkBuyerKeys(s: JaResolved, announced: number, what: string): void {
  const limit = buyerKeyLimit(s);
  if (announced > limit) throw new KeyLimitExceededError(what, announced, limit);
}

function assertRole(s: { role?: unknown; protocol?: unknown; version?: unknown }, role: JaRole): void {
  if (!s || s.role !== role || s.protocol !== ProtocolName.JoinAggregate || s.version !== JA_VERSION) throw new InvalidStateError(`not a join-aggregate ${role} state`);
}

// ------------------------------------------------------------------ buyer

export interface JaBuyerInput {
  readonly keys: KeyColumn;
  /** Per buyer row, its group label (null: the NULL group). Omit when not grouped. */
  readonly groups?: readonly (string | null)[];
  /** The group column's name, for the error that refuses a key in two groups. */
  readonly groupColumn?: string;
}

export interface JaBuyerState extends JaResolved {
  readonly role: "buyer";
  readonly secret: Uint8Array;
  readonly heSecretKey: Uint8Array;
  readonly fingerprint: string;
  readonly setSize: number;
  /** Group labels by code (null: the NULL group); one entry "" when not grouped. */
  readonly labels: readonly (string | null)[];
  readonly labelNull: readonly boolean[];
  readonly providerHello: boolean;
  readonly peerSetSize: number;
  readonly peerReceived: number;
  readonly result: { readonly codes: Uint32Array; readonly counts: readonly bigint[]; readonly suppressed: number } | null;
  /** Per stat column, the decrypted per-block slot totals received so far (decimal strings by released group). */
  readonly totals: readonly (readonly string[])[];
  readonly valueChunksReceived: number;
}

/**
 * Starts the buyer: HE keys, de-duplicated shuffled keys hashed and blinded,
 * group codes and weights. Returns steps 1–3 for the provider and 1, 10, 11
 * for the exchange.
 */
export async function jaBuyerStart(params: JoinAggregateParams, input: JaBuyerInput, ctx: JaContext): Promise<JaStepResult<JaBuyerState>> {
  const r = resolveJaParams(params);
  const keys = input.keys;
  if (r.grouped && (!input.groups || input.groups.length !== keys.length)) throw new InvalidArgumentError("a grouped job needs one group label per buyer row");
  const group = await createGroup(spec(r, ctx));
  const d = await ctx.pool.distinctKeys(keys);
  if (d.count > r.maxSetSize) throw new BoundExceededError(`the buyer has ${d.count} distinct keys, the job allows ${r.maxSetSize}`);
  checkBuyerKeys(r, d.count, "the buyer's input");
  // Group labels → random codes.
  const labelIndex = new Map<string, number>();
  const labels: (string | null)[] = [];
  const rowLabel = new Int32Array(keys.length);
  let nullLabel = -1;
  for (let i = 0; i < keys.length; i++) {
    if (!r.grouped) break;
    const g = (input.groups as readonly (string | null)[])[i];
    let li: number;
    if (g === null || g === undefined) {
      if (nullLabel < 0) {
        nullLabel = labels.length;
        labels.push(null);
      }
      li = nullLabel;
    } else {
      const known = labelIndex.get(g);
      if (known === undefined) {
        li = labels.length;
        labelIndex.set(g, li);
        labels.push(g);
      } else li = known;
    }
    rowLabel[i] = li;
  }
  if (!r.grouped) labels.push("");
  else {
    // One group per key (see the threat model): the first row of each key, and any later row of it in another group.
    const first = new Int32Array(d.count).fill(-1);
    for (let i = 0; i < keys.length; i++) {
      const di = d.rowToDistinct[i] ?? -1;
      if (di < 0) continue;
      const f = first[di] as number;
      if (f < 0) first[di] = i;
      else if (rowLabel[f] !== rowLabel[i]) throw new OverlappingGroupsError(input.groupColumn ?? "the group column", f + 1, i + 1);
    }
  }
  const G = labels.length;
  if (G > JA_MAX_GROUPS) throw new BoundExceededError(`the buyer has ${G} groups, at most ${JA_MAX_GROUPS} are allowed`);
  const codeOf = shuffledOrder(G); // label index → code
  const byCode: (string | null)[] = new Array(G);
  const nullByCode: boolean[] = new Array(G).fill(false);
  for (let li = 0; li < G; li++) {
    byCode[codeOf[li] as number] = labels[li] as string | null;
    nullByCode[codeOf[li] as number] = labels[li] === null;
  }
  // Positions: the distinct keys shuffled. pos[p] = distinct index at position p.
  const order = await ctx.pool.shuffledOrder(d.count);
  const posOf = new Uint32Array(d.count);
  for (let p = 0; p < d.count; p++) posOf[order[p] as number] = p;
  // Weights per position: (code, rows) pairs, by position then code — COUNT(*) per
  // (position, code) over the rows with a key, on a worker (no per-row objects).
  const positionOf = new Int32Array(keys.length);
  const codeOfRow = new Uint32Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const di = d.rowToDistinct[i] ?? -1;
    positionOf[i] = di < 0 ? -1 : (posOf[di] as number);
    codeOfRow[i] = r.grouped ? (codeOf[rowLabel[i] as number] as number) : (codeOf[0] as number);
  }
  const { offsets, groups: codes, rows: weights } = await ctx.pool.pairCounts(positionOf, codeOfRow, d.count, G);
  const secret = group.randomScalar();
  const blinded = await ctx.pool.hashToGroup(spec(r, ctx), d.distinct, jaDst(r.group, r.job), secret, {
    onProgress: (done, tot) => ctx.onProgress?.("buyer: hash and blind", done, tot),
  });
  const shuffled = await permuteFixedAsync(blinded, ELEMENT, order);
  const { keyBytes, fingerprint } = await withHe(r, ctx, async (he) => ({ keyBytes: await ctx.pool.heGenerateKeys(jaHeOptions(r), { galois: false }), fingerprint: he.params.fingerprint }));
  const state: JaBuyerState = {
    ...r,
    role: "buyer",
    secret,
    heSecretKey: keyBytes.secretKey,
    fingerprint,
    setSize: d.count,
    labels: byCode,
    labelNull: nullByCode,
    providerHello: false,
    peerSetSize: 0,
    peerReceived: 0,
    result: null,
    totals: [],
    valueChunksReceived: 0,
  };
  const key = keyMessage(r, fingerprint, keyBytes.publicKey);
  const toProvider: JaAddressed[] = [key, hello(r, JaStep.BuyerHello, d.count), ...batches(r, JaStep.BuyerBlinded, shuffled, r.chunkElements, ELEMENT)].map((message) => ({ to: "provider", message }));
  const toExchange: JaAddressed[] = [key, hello(r, JaStep.BuyerExchangeHello, d.count, { groups: G }), ...weightChunks(r, offsets, codes, weights)].map((message) => ({ to: "exchange", message }));
  return { state, messages: [...toProvider, ...toExchange] };
}

function weightChunks(s: JaResolved, offsets: Uint32Array, codes: Uint32Array, weights: Uint32Array): JoinWeights[] {
  const n = offsets.length - 1;
  const per = s.chunkElements;
  const chunks = chunkCount(n, per);
  const out: JoinWeights[] = [];
  for (let c = 0; c < chunks; c++) {
    const start = c * per;
    const count = Math.min(per, n - start);
    const lo = offsets[start] as number;
    const hi = offsets[start + count] as number;
    const off = new Uint32Array(count + 1);
    for (let i = 0; i <= count; i++) off[i] = (offsets[start + i] as number) - lo;
    out.push({ kind: "joinWeights", header: header(s, JaStep.BuyerWeights, c, chunks), count, offsets: u32le(off), codes: u32le(codes.subarray(lo, hi)), weights: u32le(weights.subarray(lo, hi)) });
  }
  return out;
}

export function jaBuyerDone(s: JaBuyerState): boolean {
  return s.result !== null && s.valueChunksReceived === resultChunks(s, s.result.codes.length);
}

function resultChunks(s: JaResolved, released: number): number {
  return released === 0 ? 0 : s.stats.length * chunkCount(released, RESULT_BLOCKS_PER_CHUNK);
}

/** The buyer takes one message from the provider (steps 4, 5) or the exchange (13, 14). */
export async function jaBuyerReceive(s: JaBuyerState, m: ProtocolMessage, ctx: JaContext): Promise<JaStepResult<JaBuyerState>> {
  assertRole(s, "buyer");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  const step = m.header.step;
  if (step === JaStep.ProviderHello || step === JaStep.ProviderBlinded) {
    if (!s.providerHello) {
      const h = checkHello(s, m, JaStep.ProviderHello);
      if (h.peerSetSize !== s.setSize) throw new InvalidMessageError("the provider announces a buyer set size other than this buyer's");
      return { state: { ...s, providerHello: true, peerSetSize: h.setSize }, messages: [] };
    }
    if (s.peerReceived >= s.peerSetSize) throw new WrongStepError(`step ${step} is complete`);
    const per = s.chunkElements;
    const raised = await raiseBatch(s, m, ctx, { step: JaStep.ProviderBlinded, reply: JaStep.ProviderDoubled, received: s.peerReceived, total: s.peerSetSize, per, phase: "buyer: raise provider elements" });
    const out: JaAddressed[] = [];
    if (s.peerReceived === 0) out.push({ to: "exchange", message: hello(s, JaStep.ProviderDoubled, s.peerSetSize, { peerSetSize: s.setSize, peerChunkElements: per }) });
    out.push({ to: "exchange", message: raised });
    return { state: { ...s, peerReceived: s.peerReceived + raised.count }, messages: out };
  }
  if (step === JaStep.Result) {
    if (s.result !== null) throw new WrongStepError("the result was already received");
    if (s.peerReceived < s.peerSetSize || !s.providerHello) throw new WrongStepError("a result before the provider's elements were raised");
    expectStep(m.header, JaStep.Result, 0, 1, "joinResult", m.kind);
    const res = m as JoinResult;
    const codes = readU32(res.codes);
    const counts = readU64(res.counts);
    const seen = new Set<number>();
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i] as number;
      if (c >= s.labels.length || seen.has(c)) throw new InvalidMessageError("the result names an unknown or repeated group code");
      seen.add(c);
      const n = counts[i] as bigint;
      if (n < BigInt(s.minGroupSize) || n > BigInt(s.maxJoinRows)) throw new InvalidMessageError("a released group's count is outside [k, maxJoinRows]");
    }
    // Every group of the buyer's is either released or suppressed (a group with no match too).
    if (codes.length + res.suppressed !== s.labels.length) throw new InvalidMessageError("the released and suppressed groups do not add up to the buyer's groups");
    const state: JaBuyerState = { ...s, result: { codes, counts, suppressed: res.suppressed }, totals: s.stats.map(() => new Array<string>(codes.length).fill("")) };
    return { state, messages: [] };
  }
  if (step === JaStep.ResultValues) {
    if (s.result === null) throw new WrongStepError("statistics before the result");
    const released = s.result.codes.length;
    const per = chunkCount(released, RESULT_BLOCKS_PER_CHUNK);
    const total = resultChunks(s, released);
    if (s.valueChunksReceived >= total) throw new WrongStepError(`step ${step} is complete`);
    expectStep(m.header, JaStep.ResultValues, s.valueChunksReceived, total, "joinCiphertext", m.kind);
    const c = m as JoinCiphertext;
    const column = Math.floor(s.valueChunksReceived / per);
    const first = (s.valueChunksReceived % per) * RESULT_BLOCKS_PER_CHUNK;
    const blocks = Math.min(RESULT_BLOCKS_PER_CHUNK, released - first);
    if (c.column !== column || c.firstBlock !== first) throw new InvalidMessageError(`step ${step} chunk ${m.header.chunk} must carry column ${column} from block ${first}`);
    const sums = await withHe(s, ctx, async (he) => {
      const info = he.inspect(c.ciphertext);
      const n = he.params.slotCount;
      if (info.blocks !== blocks || info.length !== blocks * n) throw new InvalidMessageError(`step ${step} chunk ${m.header.chunk} must hold ${blocks} whole blocks`);
      // Each block's slots summed (modulo M) as it is decrypted, on a worker.
      const blockSums = await ctx.pool.heDecryptBlockSums(jaHeOptions(s), c.ciphertext, s.heSecretKey);
      const M = he.params.crtModulus;
      const out: string[] = [];
      for (let b = 0; b < blocks; b++) {
        let t = blockSums[b] as bigint;
        t %= M;
        if (t < 0n) t += M;
        if (t > M / 2n) t -= M;
        out.push(t.toString());
      }
      return out;
    });
    const totals = s.totals.map((col, i) => (i === column ? col.map((x, g) => (g >= first && g < first + blocks ? (sums[g - first] as string) : x)) : col));
    return { state: { ...s, totals, valueChunksReceived: s.valueChunksReceived + 1 }, messages: [] };
  }
  throw new WrongStepError(`the buyer does not take step ${step}`);
}

export interface JaColumnResult {
  /** Non-null values joined. */
  readonly n: bigint;
  /** Exact sum in units of 10^-scale (null when n = 0). */
  readonly sum: bigint | null;
  readonly avg: number | null;
  readonly var: number | null;
  readonly stddev: number | null;
}

export interface JaGroupResult {
  /** The group label (null: the NULL group); "" when not grouped. */
  readonly label: string | null;
  /** COUNT(*): joined rows. */
  readonly count: bigint;
  readonly columns: Readonly<Record<string, JaColumnResult>>;
}

export interface JaResult {
  readonly groups: readonly JaGroupResult[];
  readonly suppressed: number;
  readonly scale: number;
}

/** The buyer's result once {@link jaBuyerDone}: released groups sorted by label (NULL last). */
export function jaBuyerResult(s: JaBuyerState): JaResult {
  assertRole(s, "buyer");
  if (!jaBuyerDone(s) || s.result === null) throw new ProtocolError("the protocol has not finished");
  const res = s.result;
  const f = 10 ** s.scale;
  const groups: JaGroupResult[] = [];
  for (let i = 0; i < res.codes.length; i++) {
    const code = res.codes[i] as number;
    const columns: Record<string, JaColumnResult> = {};
    s.columns.forEach((column) => {
      const get = (stat: string): bigint | null => {
        const idx = s.stats.findIndex((x) => x.column === column && x.stat === stat);
        return idx < 0 ? null : BigInt((s.totals[idx] as readonly string[])[i] as string);
      };
      const n = get("n") as bigint;
      const sum = get("s") as bigint;
      const q = get("q");
      const nn = Number(n);
      const avg = n > 0n ? Number(sum) / nn / f : null;
      let variance: number | null = null;
      if (q !== null && n > 1n) {
        const num = n * q - sum * sum; // n² · var_pop · f², exact
        variance = Number(num) / (nn * (nn - 1)) / (f * f);
        if (variance < 0) variance = 0;
      }
      columns[column] = { n, sum: n > 0n ? sum : null, avg, var: variance, stddev: variance === null ? null : Math.sqrt(variance) };
    });
    groups.push({ label: s.labels[code] as string | null, count: res.counts[i] as bigint, columns });
  }
  groups.sort((a, b) => (a.label === null ? 1 : b.label === null ? -1 : a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  return { groups, suppressed: res.suppressed, scale: s.scale };
}

// ------------------------------------------------------------------ provider

export interface JaProviderInput {
  readonly keys: KeyColumn;
  readonly table: Table;
}

export interface JaProviderState extends JaResolved {
  readonly role: "provider";
  readonly secret: Uint8Array;
  /** Padded set size (positions). */
  readonly setSize: number;
  readonly blinded: Uint8Array;
  /** Per position: rows with that key (0 = padding). */
  readonly counts: Uint32Array;
  /** Per stat column, per position: the statistic (scaled integers), as BigInt64Array. */
  readonly values: readonly BigInt64Array[];
  readonly keyReceived: boolean;
  readonly publicKey: Uint8Array;
  readonly buyerHello: boolean;
  readonly peerSetSize: number;
  readonly received: number;
}

/** A numeric column as scaled integers, with nulls marked (valid[i] = 0). */
function scaledValues(table: Table, column: string, scale: number, V: bigint): { values: BigInt64Array; valid: Uint8Array } {
  const vector = table.getChild(column) as Vector | null;
  if (!vector) throw new MissingColumnError(column, "provider table");
  const rows = vector.length;
  const valid = new Uint8Array(rows).fill(1);
  if (vector.nullCount > 0) {
    for (let i = 0; i < rows; i++) if (!vector.isValid(i)) valid[i] = 0;
  }
  const bigF = 10n ** BigInt(scale);
  const f = Number(bigF);
  const out = new BigInt64Array(rows);
  const raw = vector.nullCount > 0 ? null : valuesFromArrow(vector);
  for (let i = 0; i < rows; i++) {
    if (valid[i] === 0) continue;
    const v = raw ? raw[i] : (vector.get(i) as number | bigint);
    let x: bigint;
    if (typeof v === "bigint") x = v * bigF;
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new ValueOutOfRangeError("value is not a finite number", i);
      const y = v * f;
      x = BigInt(y < 0 ? -Math.round(-y) : Math.round(y));
    } else throw new InvalidArgumentError(`column ${JSON.stringify(column)} is not numeric`);
    if (x > V || -x > V) throw new ValueOutOfRangeError("value outside the declared range", i);
    out[i] = x;
  }
  return { values: out, valid };
}

const I64_MAX = (1n << 63n) - 1n;

/**
 * Starts the provider: pre-aggregates per distinct key, pads, shuffles and
 * blinds. Sends nothing until the buyer's key and hello.
 */
export async function jaProviderStart(params: JoinAggregateParams, input: JaProviderInput, ctx: JaContext): Promise<JaStepResult<JaProviderState>> {
  const r = resolveJaParams(params);
  const keys = input.keys;
  if (keys.length !== input.table.numRows) throw new InvalidArgumentError("the key column and the table differ in rows");
  const group = await createGroup(spec(r, ctx));
  const d = await ctx.pool.distinctKeys(keys);
  const size = paddedSize(d.count, r.padding);
  if (size > r.maxSetSize) throw new BoundExceededError(`the provider has ${d.count} distinct keys, the job allows ${r.maxSetSize}`);
  const V = BigInt(r.valueBound);
  // Per distinct key (padded to `size` with zeros): c, and per stat its total (checked to stay
  // within int64), column by column on a worker (engine/columns int64GroupStats).
  const c = (await ctx.pool.int64GroupStats(d.rowToDistinct, d.count, [], size)).rows;
  const acc: BigInt64Array[] = [];
  for (const [ci, column] of r.columns.entries()) {
    const { values, valid } = scaledValues(input.table, column, r.scale, V);
    const { n, s: sum, q } = (await ctx.pool.int64GroupStats(d.rowToDistinct, d.count, [{ values, valid, squares: r.squares[ci] === true }], size)).columns[0] as { n: BigInt64Array; s: BigInt64Array; q: BigInt64Array | null };
    acc.push(n, sum, ...(q ? [q] : []));
  }
  // Padding: random 32-byte messages, hashed like keys (indistinguishable after blinding), count 0.
  const pad = size - d.count;
  let messages: PackedBytes = d.distinct;
  if (pad > 0) {
    const extra = randomBytes(pad * 32);
    const total = d.distinct.data.length + extra.length;
    const data = new Uint8Array(total);
    data.set(d.distinct.data.subarray(0, d.distinct.offsets[d.count] as number), 0);
    data.set(extra, d.distinct.offsets[d.count] as number);
    const offsets = new Uint32Array(size + 1);
    offsets.set(d.distinct.offsets.subarray(0, d.count + 1));
    const base = d.distinct.offsets[d.count] as number;
    for (let i = 1; i <= pad; i++) offsets[d.count + i] = base + i * 32;
    messages = { data, offsets, length: size } as PackedBytes;
  }
  const secret = group.randomScalar();
  const blinded = await ctx.pool.hashToGroup(spec(r, ctx), messages, jaDst(r.group, r.job), secret, {
    onProgress: (done, tot) => ctx.onProgress?.("provider: hash and blind", done, tot),
  });
  const order = await ctx.pool.shuffledOrder(size); // position p holds distinct/pad index order[p]
  // The per-key columns in position order (padding holds 0s), in slices on this thread.
  const bytesOf = (a: Uint32Array | BigInt64Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const counts = new Uint32Array((await permuteFixedAsync(bytesOf(c), 4, order)).buffer);
  const values: BigInt64Array[] = [];
  for (const a of acc) values.push(new BigInt64Array((await permuteFixedAsync(bytesOf(a), 8, order)).buffer));
  const state: JaProviderState = {
    ...r,
    role: "provider",
    secret,
    setSize: size,
    blinded: await permuteFixedAsync(blinded, ELEMENT, order),
    counts,
    values,
    keyReceived: false,
    publicKey: new Uint8Array(0),
    buyerHello: false,
    peerSetSize: 0,
    received: 0,
  };
  return { state, messages: [] };
}

export function jaProviderDone(s: JaProviderState): boolean {
  return s.buyerHello && s.received === s.peerSetSize;
}

/** The provider takes one message from the buyer (steps 1, 2, 3). */
export async function jaProviderReceive(s: JaProviderState, m: ProtocolMessage, ctx: JaContext): Promise<JaStepResult<JaProviderState>> {
  assertRole(s, "provider");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (!s.keyReceived) {
    const { key } = await withHe(s, ctx, (he) => checkKey(s, m, he, ctx.pool));
    return { state: { ...s, keyReceived: true, publicKey: key.publicKey.slice() }, messages: [] };
  }
  if (!s.buyerHello) {
    const h = checkHello(s, m, JaStep.BuyerHello);
    checkBuyerKeys(s, h.setSize, "the buyer's hello");
    const state: JaProviderState = { ...s, buyerHello: true, peerSetSize: h.setSize };
    const out: JaAddressed[] = [];
    out.push({ to: "buyer", message: hello(s, JaStep.ProviderHello, s.setSize, { peerSetSize: h.setSize, peerChunkElements: h.chunkElements }) });
    for (const b of batches(s, JaStep.ProviderBlinded, s.blinded, s.chunkElements, ELEMENT)) out.push({ to: "buyer", message: b });
    out.push({ to: "exchange", message: hello(s, JaStep.ProviderExchangeHello, s.setSize, { peerSetSize: h.setSize, peerChunkElements: h.chunkElements }) });
    const per = s.chunkElements;
    const chunks = chunkCount(s.setSize, per);
    for (let c = 0; c < chunks; c++) {
      const a = s.counts.subarray(c * per, Math.min(s.setSize, (c + 1) * per));
      out.push({ to: "exchange", message: { kind: "joinCounts", header: header(s, JaStep.ProviderCounts, c, chunks), count: a.length, counts: u32le(a) } });
    }
    const cts = await encryptStats(s, ctx);
    for (const m2 of cts) out.push({ to: "exchange", message: m2 });
    // The blinded set, the counts and the statistics are sent: drop them from the state (it is
    // persisted while the buyer's elements are raised, and needs only the scalar for that).
    return { state: { ...state, values: [], blinded: new Uint8Array(0), counts: new Uint32Array(0) }, messages: out };
  }
  if (s.received >= s.peerSetSize) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  const reply = await raiseBatch(s, m, ctx, { step: JaStep.BuyerBlinded, reply: JaStep.BuyerDoubled, received: s.received, total: s.peerSetSize, per: s.chunkElements, phase: "provider: raise buyer elements" });
  return { state: { ...s, received: s.received + reply.count }, messages: [{ to: "exchange", message: reply }] };
}

/**
 * Checks that m is the next chunk of the other side's blinded elements,
 * raises them to this side's scalar (each strictly decoded, the identity
 * refused: InvalidPointError with its index in the step) and returns them as
 * the same chunk of the reply step, for the exchange.
 */
async function raiseBatch(
  s: JaResolved & { readonly secret: Uint8Array },
  m: ProtocolMessage,
  ctx: JaContext,
  o: { readonly step: number; readonly reply: number; readonly received: number; readonly total: number; readonly per: number; readonly phase: string },
): Promise<ElementBatch> {
  const chunk = o.received / o.per;
  const chunks = chunkCount(o.total, o.per);
  expectStep(m.header, o.step, chunk, chunks, "elementBatch", m.kind);
  const b = m as ElementBatch;
  checkBatch(b, o.total, o.per, o.step, ELEMENT);
  let raised: Uint8Array;
  try {
    raised = await ctx.pool.multiply(spec(s, ctx), s.secret, b.elements);
  } catch (e) {
    pointError(e, chunk, o.per);
  }
  ctx.onProgress?.(o.phase, o.received + b.count, o.total);
  return { kind: "elementBatch", header: header(s, o.reply, chunk, chunks), elementSize: ELEMENT, count: b.count, elements: raised };
}

function valueChunkCount(s: JaResolved, size: number): { perColumn: number; total: number } {
  const blocks = Math.ceil(size / JA_SLOTS);
  const perColumn = chunkCount(blocks, PROVIDER_BLOCKS_PER_CHUNK);
  return { perColumn, total: perColumn * s.stats.length };
}

/**
 * Encrypts every statistic column in the provider's order on the pool's
 * workers, left at the masked-sums level (the exchange's only use of them),
 * and cuts each into chunks of whole blocks.
 */
async function encryptStats(s: JaProviderState, ctx: JaContext): Promise<JoinCiphertext[]> {
  const { perColumn, total } = valueChunkCount(s, s.setSize);
  const out: JoinCiphertext[] = [];
  for (let k = 0; k < s.stats.length; k++) {
    // Residues and encryption on the workers, in chunks of whole blocks: never one column here.
    const chunks = await ctx.pool.heEncryptInt64Parts(jaHeOptions(s), s.publicKey, s.values[k] as BigInt64Array, {
      level: "mask",
      blocksPerPart: PROVIDER_BLOCKS_PER_CHUNK,
      onProgress: (done, all) => ctx.onProgress?.("provider: encrypt statistics", k * s.setSize + done, s.stats.length * all),
    });
    if (chunks.length !== perColumn) throw new ProtocolError("the encrypted statistics came back in an unexpected number of chunks");
    chunks.forEach((ciphertext, c) => {
      out.push({ kind: "joinCiphertext", header: header(s, JaStep.ProviderValues, k * perColumn + c, total), column: k, firstBlock: c * PROVIDER_BLOCKS_PER_CHUNK, ciphertext });
    });
  }
  return out;
}

// ------------------------------------------------------------------ exchange

/**
 * Checks that m is the next chunk of a step that carries `total` items in
 * chunks of `per`, `received` of them in so far; returns the chunk's index
 * and how many items it must hold.
 */
function nextChunk(m: ProtocolMessage, step: number, kind: string, received: number, total: number, per: number): { chunk: number; want: number } {
  if (received >= total) throw new WrongStepError(`step ${step} is complete`);
  const chunk = received / per;
  expectStep(m.header, step, chunk, chunkCount(total, per), kind, m.kind);
  return { chunk, want: Math.min(per, total - received) };
}

/**
 * The next chunk of raised elements of a step of `n` elements (only compared, never multiplied:
 * canonical encodings checked), copied into `into` (grown as chunks arrive); returns the buffer and the count.
 */
function receiveCompared(m: ProtocolMessage, step: number, into: Uint8Array, received: number, n: number, per: number): { elements: Uint8Array; count: number } {
  const { chunk } = nextChunk(m, step, "elementBatch", received, n, per);
  const b = m as ElementBatch;
  checkBatch(b, n, per, step, ELEMENT);
  try {
    checkComparedEncodings(b.elements);
  } catch (e) {
    pointError(e, chunk, per);
  }
  const elements = withRoom(into, received * ELEMENT, b.elements.length, n * ELEMENT);
  elements.set(b.elements, received * ELEMENT);
  return { elements, count: b.count };
}

export interface JaExchangeState extends JaResolved {
  readonly role: "exchange";
  readonly keyReceived: boolean;
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  // Buyer stream.
  readonly buyerHello: boolean;
  readonly buyerSetSize: number;
  readonly groups: number;
  readonly weightsReceived: number;
  /** weightsReceived + 1 offsets in use (grown as the weights arrive). */
  readonly weightOffsets: Uint32Array;
  readonly weightCodes: Uint32Array[];
  readonly weightValues: Uint32Array[];
  readonly providerDoubledHello: boolean;
  readonly providerDoubled: Uint8Array;
  readonly providerDoubledReceived: number;
  // Provider stream.
  readonly providerHello: boolean;
  readonly providerSetSize: number;
  readonly countsReceived: number;
  readonly counts: Uint32Array;
  readonly valueChunks: Uint8Array[];
  readonly buyerDoubled: Uint8Array;
  readonly buyerDoubledReceived: number;
  readonly finished: boolean;
}

export async function jaExchangeStart(params: JoinAggregateParams): Promise<JaStepResult<JaExchangeState>> {
  const r = resolveJaParams(params);
  const state: JaExchangeState = {
    ...r,
    role: "exchange",
    keyReceived: false,
    publicKey: new Uint8Array(0),
    keyId: "",
    buyerHello: false,
    buyerSetSize: 0,
    groups: 0,
    weightsReceived: 0,
    weightOffsets: new Uint32Array(1),
    weightCodes: [],
    weightValues: [],
    providerDoubledHello: false,
    providerDoubled: new Uint8Array(0),
    providerDoubledReceived: 0,
    providerHello: false,
    providerSetSize: 0,
    countsReceived: 0,
    counts: new Uint32Array(0),
    valueChunks: [],
    buyerDoubled: new Uint8Array(0),
    buyerDoubledReceived: 0,
    finished: false,
  };
  return { state, messages: [] };
}

function exchangeInputsComplete(s: JaExchangeState): boolean {
  return (
    s.keyReceived &&
    s.buyerHello &&
    s.weightsReceived === s.buyerSetSize &&
    s.providerDoubledHello &&
    s.providerDoubledReceived === s.providerSetSize &&
    s.providerHello &&
    s.countsReceived === s.providerSetSize &&
    s.valueChunks.length === valueChunkCount(s, s.providerSetSize).total &&
    s.buyerDoubledReceived === s.buyerSetSize
  );
}

export function jaExchangeDone(s: JaExchangeState): boolean {
  return s.finished;
}

/** The exchange takes one message from the buyer (1, 10, 11, 12) or the provider (6, 7, 8, 9). */
export async function jaExchangeReceive(s: JaExchangeState, m: ProtocolMessage, ctx: JaContext): Promise<JaStepResult<JaExchangeState>> {
  assertRole(s, "exchange");
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (s.finished) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  const step = m.header.step;
  let next: JaExchangeState;
  switch (step) {
    case JaStep.Key: {
      if (s.keyReceived) throw new WrongStepError("the key was already received");
      const { key, keyId } = await withHe(s, ctx, async (he) => {
        const checked = await checkKey(s, m, he, ctx.pool);
        // Statistics that arrived before the key (another stream) are checked against it now.
        for (const c of s.valueChunks) if (he.inspect(c).keyId !== checked.keyId) throw new KeyMismatchError("the provider's statistics are not under the buyer's key");
        return checked;
      });
      next = { ...s, keyReceived: true, publicKey: key.publicKey.slice(), keyId };
      break;
    }
    case JaStep.BuyerExchangeHello: {
      if (s.buyerHello) throw new WrongStepError("the buyer's hello was already received");
      const h = checkHello(s, m, step);
      checkBuyerKeys(s, h.setSize, "the buyer's hello");
      if ((h.groups < 1 && h.setSize > 0) || h.groups > JA_MAX_GROUPS || (!s.grouped && h.groups !== 1)) throw new InvalidMessageError("the buyer announces an invalid number of groups");
      if (s.providerHello && h.setSize !== s.buyerSetSize) throw new InvalidMessageError("the buyer's set size differs from the one the provider received");
      // Buffers grow as the chunks arrive: nothing is sized from the announcement.
      next = { ...s, buyerHello: true, buyerSetSize: h.setSize, groups: h.groups };
      break;
    }
    case JaStep.BuyerWeights: {
      if (!s.buyerHello) throw new WrongStepError("weights before the buyer's hello");
      const { chunk, want } = nextChunk(m, step, "joinWeights", s.weightsReceived, s.buyerSetSize, s.chunkElements);
      const w = m as JoinWeights;
      if (w.count !== want) throw new InvalidMessageError(`step ${step} chunk ${chunk} must describe ${want} positions`);
      const off = readU32(w.offsets);
      const codes = readU32(w.codes);
      const weights = readU32(w.weights);
      if (off[0] !== 0 || off[w.count] !== codes.length) throw new InvalidMessageError("weights offsets do not cover the codes");
      for (let i = 0; i < w.count; i++) {
        const n = (off[i + 1] as number) - (off[i] as number);
        if (n < 1) throw new InvalidMessageError("every buyer position must have a group");
        // One group per key (see the threat model): a key in two groups would let A − B isolate one key under k.
        if (n > 1) throw new InvalidMessageError("a buyer position carries weights for more than one group: each key must fall in one group");
      }
      let rows = 0;
      for (let i = 0; i < codes.length; i++) {
        if ((codes[i] as number) >= s.groups) throw new InvalidMessageError("a weight names an unknown group code");
        if ((weights[i] as number) < 1) throw new InvalidMessageError("a weight must be at least 1");
        rows += weights[i] as number;
      }
      if (rows > s.maxJoinRows) throw new InvalidMessageError("the weights exceed maxJoinRows");
      const base = s.weightCodes.reduce((n, a) => n + a.length, 0);
      const offsets = withRoom(s.weightOffsets, s.weightsReceived + 1, w.count, s.buyerSetSize + 1);
      for (let i = 1; i <= w.count; i++) offsets[s.weightsReceived + i] = base + (off[i] as number);
      next = { ...s, weightsReceived: s.weightsReceived + w.count, weightOffsets: offsets, weightCodes: [...s.weightCodes, codes], weightValues: [...s.weightValues, weights] };
      break;
    }
    case JaStep.ProviderDoubled: {
      if (!s.providerDoubledHello) {
        const h = checkHello(s, m, step);
        checkBuyerKeys(s, h.peerSetSize, "the buyer's raised elements");
        if (s.providerHello && h.setSize !== s.providerSetSize) throw new InvalidMessageError("the buyer raised a provider set of another size");
        if (s.buyerHello && h.peerSetSize !== s.buyerSetSize) throw new InvalidMessageError("the buyer's set size differs between its messages");
        next = { ...s, providerDoubledHello: true, ...(s.providerHello ? {} : { providerSetSize: h.setSize }) };
        break;
      }
      const r = receiveCompared(m, step, s.providerDoubled, s.providerDoubledReceived, s.providerSetSize, s.chunkElements);
      next = { ...s, providerDoubled: r.elements, providerDoubledReceived: s.providerDoubledReceived + r.count };
      break;
    }
    case JaStep.ProviderExchangeHello: {
      if (s.providerHello) throw new WrongStepError("the provider's hello was already received");
      const h = checkHello(s, m, step);
      checkBuyerKeys(s, h.peerSetSize, "the buyer set the provider received");
      if (s.buyerHello && h.peerSetSize !== s.buyerSetSize) throw new InvalidMessageError("the provider received a buyer set of another size");
      if (s.providerDoubledHello && h.setSize !== s.providerSetSize) throw new InvalidMessageError("the provider's set size differs from the one the buyer raised");
      next = { ...s, providerHello: true, providerSetSize: h.setSize, buyerSetSize: s.buyerHello ? s.buyerSetSize : h.peerSetSize };
      break;
    }
    case JaStep.ProviderCounts: {
      if (!s.providerHello) throw new WrongStepError("counts before the provider's hello");
      const { chunk, want } = nextChunk(m, step, "joinCounts", s.countsReceived, s.providerSetSize, s.chunkElements);
      const c = m as JoinCounts;
      if (c.count !== want) throw new InvalidMessageError(`step ${step} chunk ${chunk} must hold ${want} counts`);
      const a = readU32(c.counts);
      for (let i = 0; i < a.length; i++) if ((a[i] as number) > s.maxJoinRows) throw new InvalidMessageError("a row count exceeds maxJoinRows");
      const counts = withRoom(s.counts, s.countsReceived, a.length, s.providerSetSize);
      counts.set(a, s.countsReceived);
      next = { ...s, counts, countsReceived: s.countsReceived + c.count };
      break;
    }
    case JaStep.ProviderValues: {
      if (!s.providerHello) throw new WrongStepError("statistics before the provider's hello");
      next = await withHe(s, ctx, (he) => {
        const n = he.params.slotCount;
        const { perColumn, total } = valueChunkCount(s, s.providerSetSize);
        const idx = s.valueChunks.length;
        if (idx >= total) throw new WrongStepError(`step ${step} is complete`);
        expectStep(m.header, step, idx, total, "joinCiphertext", m.kind);
        const c = m as JoinCiphertext;
        const column = Math.floor(idx / perColumn);
        const firstBlock = (idx % perColumn) * PROVIDER_BLOCKS_PER_CHUNK;
        if (c.column !== column || c.firstBlock !== firstBlock) throw new InvalidMessageError(`step ${step} chunk ${idx} must carry column ${column} from block ${firstBlock}`);
        const info = he.inspect(c.ciphertext);
        const length = Math.min(s.providerSetSize - firstBlock * n, PROVIDER_BLOCKS_PER_CHUNK * n);
        if (info.length !== length || info.rows !== 1) throw new InvalidMessageError(`step ${step} chunk ${idx} must hold ${length} slots`);
        // Until the buyer's key is in (it travels on another stream), the key id is checked when it comes.
        if (s.keyReceived && info.keyId !== s.keyId) throw new KeyMismatchError("the statistics are not under the buyer's key");
        return { ...s, valueChunks: [...s.valueChunks, c.ciphertext.slice()] };
      });
      break;
    }
    case JaStep.BuyerDoubled: {
      if (!s.providerHello) throw new WrongStepError("raised buyer elements before the provider's hello");
      const r = receiveCompared(m, step, s.buyerDoubled, s.buyerDoubledReceived, s.buyerSetSize, s.chunkElements);
      next = { ...s, buyerDoubled: r.elements, buyerDoubledReceived: s.buyerDoubledReceived + r.count };
      break;
    }
    default:
      throw new WrongStepError(`the exchange does not take step ${step}`);
  }
  if (!exchangeInputsComplete(next)) return { state: next, messages: [] };
  return exchangeFinish(next, ctx);
}

/** All inputs are in: match, count, suppress, aggregate under encryption, mask, re-randomise. */
async function exchangeFinish(s: JaExchangeState, ctx: JaContext): Promise<JaStepResult<JaExchangeState>> {
  // In slices, with the event loop let run between them (10^6 positions take ~0.5 s here).
  const index = await ElementIndex.buildAsync(s.buyerDoubled, ELEMENT);
  const hit = await index.matchAllAsync(s.providerDoubled); // per provider position: buyer position or −1
  const codes = concatU32(s.weightCodes);
  const weights = concatU32(s.weightValues);
  const G = s.groups;
  const count = new Array<bigint>(G).fill(0n);
  // Distinct matched keys per group: the buyer positions some provider position with rows matches
  // (counted by buyer position, so an element repeated on either side still counts once).
  const keys = new Array<number>(G).fill(0);
  const matched = new Uint8Array(s.buyerSetSize);
  const P = s.providerSetSize;
  await forEachSlice(P, SLICE_ITEMS, (from, to) => {
    for (let j = from; j < to; j++) {
      const i = hit[j] as number;
      if (i < 0 || s.counts[j] === 0) continue;
      const c = BigInt(s.counts[j] as number);
      const first = matched[i] === 0;
      matched[i] = 1;
      for (let o = s.weightOffsets[i] as number; o < (s.weightOffsets[i + 1] as number); o++) {
        const g = codes[o] as number;
        count[g] = (count[g] as bigint) + BigInt(weights[o] as number) * c;
        if (first) keys[g] = (keys[g] as number) + 1;
      }
    }
  });
  // Released: at least k distinct matched keys and COUNT(*) ≥ k. Every other group of the
  // buyer's — no match, or too few — counts as suppressed (see the threat model).
  const k = s.minGroupSize;
  const released: number[] = [];
  for (let g = 0; g < G; g++) if ((keys[g] as number) >= k && (count[g] as bigint) >= BigInt(k)) released.push(g);
  const suppressed = G - released.length;
  for (const g of released) if ((count[g] as bigint) > BigInt(s.maxJoinRows)) throw new BoundExceededError(`a group joins more rows than maxJoinRows ${s.maxJoinRows}: its totals could wrap`);
  const rel = released.length;
  const result: JoinResult = {
    kind: "joinResult",
    header: header(s, JaStep.Result, 0, 1),
    codes: u32le(Uint32Array.from(released)),
    counts: (() => {
      const b = new Uint8Array(rel * 8);
      const dv = new DataView(b.buffer);
      released.forEach((g, i) => dv.setBigUint64(i * 8, count[g] as bigint, true));
      return b;
    })(),
    suppressed,
  };
  const out: JaAddressed[] = [{ to: "buyer", message: result }];
  if (rel > 0) {
    // Weight masks over provider positions, one per released group.
    const slot = new Map(released.map((g, i) => [g, i]));
    const masks = released.map(() => new Uint32Array(P));
    await forEachSlice(P, SLICE_ITEMS, (from, to) => {
      for (let j = from; j < to; j++) {
        const i = hit[j] as number;
        if (i < 0 || s.counts[j] === 0) continue;
        for (let o = s.weightOffsets[i] as number; o < (s.weightOffsets[i + 1] as number); o++) {
          const gi = slot.get(codes[o] as number);
          if (gi !== undefined) (masks[gi] as Uint32Array)[j] = ((masks[gi] as Uint32Array)[j] as number) + (weights[o] as number);
        }
      }
    });
    const rows = Number(released.reduce((m, g) => ((count[g] as bigint) > m ? (count[g] as bigint) : m), 0n));
    await withHe(s, ctx, async (he) => {
      const n = he.params.slotCount;
      const { perColumn } = valueChunkCount(s, P);
      const chunksOut = chunkCount(rel, RESULT_BLOCKS_PER_CHUNK);
      const total = s.stats.length * chunksOut;
      for (let col = 0; col < s.stats.length; col++) {
        // The column's chunks as they arrived (the pool cuts its tasks from them; never joined whole here).
        const column = s.valueChunks.slice(col * perColumn, (col + 1) * perColumn);
        const options = jaHeOptions(s);
        const sums = await ctx.pool.heMaskedBlockSums(options, column, masks, rows);
        const mask = await ctx.pool.heEncryptResidues(options, s.publicKey, zeroSumMasks(he.params.plainModuli, rel, n), { level: "mask" });
        const fresh = await ctx.pool.heReRandomize(options, [sums, mask], s.publicKey, rows); // the mask adds 0 to every block total
        for (let c = 0; c < chunksOut; c++) {
          const from = c * RESULT_BLOCKS_PER_CHUNK;
          const to = Math.min(rel, from + RESULT_BLOCKS_PER_CHUNK);
          out.push({
            to: "buyer",
            message: { kind: "joinCiphertext", header: header(s, JaStep.ResultValues, col * chunksOut + c, total), column: col, firstBlock: from, ciphertext: he.sliceBlocks(fresh, from, to) },
          });
        }
        ctx.onProgress?.("exchange: aggregate under encryption", col + 1, s.stats.length);
      }
    });
  }
  // Release everything the exchange held.
  const state: JaExchangeState = {
    ...s,
    finished: true,
    valueChunks: [],
    buyerDoubled: new Uint8Array(0),
    providerDoubled: new Uint8Array(0),
    weightCodes: [],
    weightValues: [],
    counts: new Uint32Array(0),
    weightOffsets: new Uint32Array(1),
  };
  return { state, messages: out };
}

function concatU32(parts: readonly Uint32Array[]): Uint32Array {
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
