/**
 * federated-aggregate: COUNT / SUM / AVG / VAR / STDDEV and histograms across
 * N ≥ 2 providers, per public category, computed under the buyer's BFV key
 * (engine/he) with pairwise masks that cancel in the sum.
 *
 * ## Roles and job parameters
 *
 * buyer = the HE key holder; providers 0 … N−1; the exchange = the
 * aggregator that relays. Everything that shapes the computation comes from
 * the job, known to every party, never from a message: the job id, the
 * aggregates, the group-by column and its declared categories (the cells;
 * a row whose category is not declared, or null, goes to no cell), the
 * histogram column and its bin edges, N, the minimum number of providers,
 * the minimum count per cell k, and the value range (maxAbsValue, scale,
 * maxRowsPerProvider) from which the HE context is derived.
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
 * ## Threat model and leakage (semi-honest parties; inputs validated as if malicious)
 *
 * - Buyer learns: the exact totals of every slot — per declared category,
 *   count, sums, sums of squares and histogram counts summed over all N
 *   providers — and from them AVG/VAR/STDDEV. It learns no provider's own
 *   vector: it only ever receives the re-randomised sum (tests check this on
 *   the transport). Cells whose total count is below k are **suppressed by
 *   the buyer's runner after decryption** ({@link faBuyerResult}): the output
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
 * masks; Fan–Vercauteren (BFV) as implemented by Microsoft SEAL.
 */
import { createCipheriv } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Table } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError } from "../engine/errors.js";
import {
  BoundExceededError,
  createHeContext,
  HE_MAX_ROWS_4096,
  HeContext,
  KeyMismatchError,
  ParameterMismatchError,
  scaledBound,
  ValueOutOfRangeError,
  valuesFromArrow,
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
  /** k: cells whose total count is below k are suppressed (≥ 1). */
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
  /** The HE context options (maxAbsValue as decimal). */
  readonly he: { readonly polyModulusDegree: 4096; readonly maxAbsValue: string; readonly scale: 0; readonly maxRows: number; readonly maxLength: number };
}

/** Local resources: not part of the state. */
export interface FaContext {
  /** An HE context to reuse when its parameters match the job's (else one is created per call and disposed). */
  readonly he?: HeContext;
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
  const V = scaledBound(p.maxAbsValue, scale); // also checks scale
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
  const R = BigInt(p.maxRowsPerProvider);
  let perSlot = 1n;
  if (columns.length > 0 && V > perSlot) perSlot = V;
  if (squares.some((s) => s) && V * V > perSlot) perSlot = V * V;
  return {
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
    valueBound: V.toString(),
    maxRowsPerProvider: p.maxRowsPerProvider,
    columns,
    squares,
    columnOffsets,
    histOffset: off,
    bins,
    stride,
    cells,
    length,
    he: { polyModulusDegree: 4096, maxAbsValue: (R * perSlot).toString(), scale: 0, maxRows: n, maxLength: length },
  };
}

export function faHeOptions(s: FaResolved): HeContextOptions {
  return { maxAbsValue: BigInt(s.he.maxAbsValue), maxRows: s.he.maxRows, scale: 0, maxLength: s.he.maxLength, polyModulusDegree: s.he.polyModulusDegree };
}

/** Runs fn with an HE context for the job: ctx.he when its parameters match, else a fresh one disposed afterwards. */
async function withHe<R>(s: FaResolved, ctx: FaContext, fn: (he: HeContext) => R | Promise<R>): Promise<R> {
  if (ctx.he && !ctx.he.disposed) {
    const o = ctx.he.params;
    if (o.maxAbsScaled === BigInt(s.he.maxAbsValue) && o.maxRows === s.he.maxRows && o.scale === 0 && o.maxLength === s.he.maxLength && o.polyModulusDegree === s.he.polyModulusDegree) {
      return fn(ctx.he);
    }
  }
  const he = await createHeContext(faHeOptions(s));
  try {
    return await fn(he);
  } finally {
    he.dispose();
  }
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

/**
 * One provider's plaintext vector (decimal strings of exact integers): per
 * cell, count, then per value column sum (and sumsq), then histogram counts.
 * Nulls in aggregated columns are refused (engine/he valuesFromArrow); a null
 * or undeclared group-by value puts the row in no cell.
 */
export function faLocalVector(s: FaResolved, table: Table): string[] {
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
  const V = BigInt(s.valueBound);
  const cols = s.columns.map((c) => scaledColumn(table, c, s.scale, V));
  const acc = new Array<bigint>(s.length).fill(0n);
  let hist: bigint[] | null = null;
  let edges: bigint[] = [];
  if (s.bins > 0) {
    hist = scaledColumn(table, s.histColumn, s.scale, null);
    const bigF = 10n ** BigInt(s.scale);
    edges = s.edges.map((e) => scaleNumber(e, Number(bigF)));
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
    if (hist) {
      const bin = binOf(hist[r] as bigint, edges);
      if (bin >= 0) {
        const o = base + s.histOffset + bin;
        acc[o] = (acc[o] as bigint) + 1n;
      }
    }
  }
  return acc.map((x) => x.toString());
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

function checkCiphertext(he: HeContext, s: FaResolved, ct: Uint8Array, keyId: string, rows: number): void {
  const info = he.validate(ct);
  if (info.keyId !== keyId) throw new KeyMismatchError("the ciphertext is not under the buyer's key set");
  if (info.length !== s.length) throw new InvalidMessageError(`the ciphertext holds ${info.length} slots, the job's vector ${s.length}`);
  if (info.rows !== rows) throw new InvalidMessageError(`the ciphertext's row bound is ${info.rows}, expected ${rows}`);
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
  /** The decrypted totals (decimal), once done. */
  readonly totals: readonly string[];
}

/** Starts the buyer: a fresh key set for the job; returns step 1 for the exchange. */
export async function faBuyerStart(params: FederatedAggregateParams, ctx: FaContext = {}): Promise<FaStepResult<FaBuyerState>> {
  const p = resolveFaParams(params);
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
  /** Exact sum in units of 10^-scale. */
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
}

export interface FaResult {
  readonly scale: number;
  readonly cells: readonly FaCell[];
}

function ratio(num: bigint, den: bigint): number {
  // Both stay below 2^170 here: Number() of each is within 1 ulp.
  return Number(num) / Number(den);
}

/** The buyer's output: per cell, the aggregates; cells with count < k suppressed (see the leakage section). */
export function faBuyerResult(s: FaBuyerState): FaResult {
  assertRole(s, "buyer");
  if (!s.done) throw new ProtocolError("the protocol has not finished");
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

/** The provider takes step 1 (the buyer's key, relayed) and returns its masked ciphertext (step 2). */
export async function faProviderReceive(s: FaProviderState, m: ProtocolMessage, ctx: FaContext = {}): Promise<FaStepResult<FaProviderState>> {
  assertRole(s, "provider");
  if (s.done) {
    checkBinding(s, m.header);
    throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  }
  const k = checkKeyMessage(s, m);
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
  if (s.keyId === "") {
    const k = checkKeyMessage(s, m);
    return withHe(s, ctx, (he) => {
      const keyId = checkPublicKey(he, k);
      const messages: Addressed[] = [];
      for (let i = 0; i < s.providers; i++) messages.push({ to: providerRole(i), message: k });
      return { state: { ...s, publicKey: Uint8Array.from(k.publicKey), keyId }, messages };
    });
  }
  checkBinding(s, m.header);
  if (m.kind === "refusal") throw new RefusedError(m.code, m.reason);
  if (s.done) throw new WrongStepError(`the protocol is complete; step ${m.header.step} was not expected`);
  expectStep(m.header, FaStep.Masked, 0, 1, "aggregateCiphertext", m.kind);
  const c = m as AggregateCiphertext;
  if (c.party >= s.providers) throw new InvalidMessageError(`provider index ${c.party} out of range`);
  if (s.received[c.party] === 1) throw new WrongStepError(`provider ${c.party}'s vector was already received`);
  if (c.contributors !== 1) throw new InvalidMessageError("a provider's vector has exactly one contributor");
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
