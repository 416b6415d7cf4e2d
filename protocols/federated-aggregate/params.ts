/**
 * federated-aggregate's job parameters (see index.ts for the protocol): what
 * every party derives from the job — the vector's layout (cells × count,
 * sums, sums of squares, histogram bins), the value bounds, and the HE
 * scheme with its context options (BFV for exact arithmetic, CKKS for
 * approximate) — picked here once, so each role is written once against
 * engine/he's HeScheme — and, when the job declares `dp`, its noise plan
 * (dp.ts; exact mode only), whose bound on a provider's noise widens the HE
 * slot bound.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import {
  CKKS_DEFAULT_PRECISION_BITS,
  CKKS_MASK_BITS,
  HE_MAX_ROWS_4096,
  HeSchemeName,
  scaledBound,
  withHeScheme,
  type CkksContextOptions,
  type HeContextOptions,
  type HeScheme,
  type HeSchemeOptions,
} from "../../engine/he/index.js";
import { resolveAggregates, type AggregateSpec } from "../aggregate.js";
import { isJobId, ProtocolId } from "../codec.js";
import { ProtocolError } from "../errors.js";
import type { UniformSource } from "../../engine/dp/index.js";
import { faDpPlan, type FaDpParams, type FaDpResolved } from "./dp.js";

export const FA_VERSION = 1;

export const FaStep = { Key: 1, Masked: 2, Sum: 3 } as const;
export type FaStep = (typeof FaStep)[keyof typeof FaStep];

/** The most providers one job may have. */
export const FA_MAX_PROVIDERS = 256;
/** The most slots (cells × per-cell values) a job's vector may have: one ciphertext block. */
export const FA_MAX_SLOTS = 4096;

/** What every party of one job agrees on (from the job, not from messages). */
export interface FederatedAggregateParams {
  readonly job: string;
  /** N, the number of providers (≥ 2). */
  readonly providers: number;
  /** The job is refused below this many providers (≥ 2, ≤ N). */
  readonly minProviders: number;
  /** k (≥ 1): each provider contributes 0 or ≥ k rows to any cell, bin and range outside the edges (rows of a smaller range in none of its cell's slots); totals below k are suppressed. */
  readonly minGroupSize: number;
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
  /** Differential privacy (dp.ts): each provider adds its share of discrete Gaussian noise, ρ-zCDP in all. Exact mode only. */
  readonly dp?: FaDpParams;
}

/** The resolved, plain-data form every state carries. */
export interface FaResolved {
  readonly protocol: ProtocolId;
  readonly version: number;
  readonly job: string;
  readonly providers: number;
  readonly minProviders: number;
  readonly minGroupSize: number;
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
  /** The job's DP plan (dp.ts), when it declares dp; absent otherwise. */
  readonly dp?: FaDpResolved;
}

/** Local resources: not part of the state. */
export interface FaContext {
  /** An HE scheme to reuse when it was built for the job's parameters (else one is created per call and disposed). */
  readonly he?: HeScheme;
  /** Where a provider draws its DP noise: node:crypto's CSPRNG unless given. A seeded source is for tests only (its noise protects nothing). */
  readonly noise?: UniformSource;
}

/** A provider that did not contribute: the job fails and nothing is released. */
export class MissingProviderError extends ProtocolError {
  readonly missing: readonly number[];
  constructor(missing: readonly number[]) {
    super(`provider(s) ${missing.join(", ")} did not contribute: the job fails and nothing is released`, "UMBRA_MISSING_PROVIDER");
    this.missing = missing;
  }
}

export function resolveFaParams(p: FederatedAggregateParams): FaResolved {
  if (!isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  const n = p.providers;
  if (!Number.isInteger(n) || n < 2 || n > FA_MAX_PROVIDERS) throw new InvalidArgumentError(`providers must be an integer in [2, ${FA_MAX_PROVIDERS}]`);
  if (!Number.isInteger(p.minProviders) || p.minProviders < 2) throw new InvalidArgumentError("minProviders must be an integer ≥ 2");
  if (n < p.minProviders) throw new ProtocolError(`the job needs at least ${p.minProviders} providers, it has ${n}`);
  if (!Number.isSafeInteger(p.minGroupSize) || p.minGroupSize < 1) throw new InvalidArgumentError("minGroupSize must be a positive integer");
  if (!Number.isSafeInteger(p.maxRowsPerProvider) || p.maxRowsPerProvider < 1) throw new InvalidArgumentError("maxRowsPerProvider must be a positive integer");
  const scale = p.scale ?? 0;
  const { aggregates, columns, squares } = resolveAggregates(p.aggregates);
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
    protocol: ProtocolId.FederatedAggregate,
    version: FA_VERSION,
    job: p.job,
    providers: n,
    minProviders: p.minProviders,
    minGroupSize: p.minGroupSize,
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
  if (p.dp !== undefined && approximate) throw new InvalidArgumentError("differential privacy needs exact arithmetic: a job with dp cannot be approximate");
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
  const dp = p.dp !== undefined ? faDpPlan(p.dp, common, V) : undefined;
  // With dp a provider's slot is its local total plus its noise share (|noise| ≤ the plan's bound).
  const slotBound = R * perSlot + (dp ? BigInt(dp.noiseBound) : 0n);
  return {
    ...common,
    valueBound: V.toString(),
    he: { polyModulusDegree: 4096, maxAbsValue: slotBound.toString(), scale: 0, maxRows: n, maxLength: length },
    approximate: false,
    precisionBits: 0,
    slotBounds: [],
    ...(dp ? { dp } : {}),
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
export const FA_MASK_BITS = CKKS_MASK_BITS;
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

/** Exact mode: the BFV context options the job derives. */
export function faHeOptions(s: FaResolved): HeContextOptions {
  return { maxAbsValue: BigInt(s.he.maxAbsValue), maxRows: s.he.maxRows, scale: 0, maxLength: s.he.maxLength, polyModulusDegree: s.he.polyModulusDegree };
}

/** Approximate mode: the CKKS context options the job derives (refused in exact mode). */
export function faCkksOptions(s: FaResolved): CkksContextOptions {
  if (s.approximate !== true) throw new InvalidArgumentError("the job does not declare approximate arithmetic");
  return { maxAbsValue: Number(s.he.maxAbsValue), maxRows: s.he.maxRows, maxLength: s.he.maxLength, precisionBits: s.precisionBits };
}

/** The job's HE scheme and its options, picked once: BFV (exact), or CKKS with masks of FA_MASK_BITS (approximate). */
export function faSchemeOptions(s: FaResolved): HeSchemeOptions {
  return s.approximate === true ? { scheme: HeSchemeName.Ckks, options: faCkksOptions(s), maskBits: FA_MASK_BITS } : { scheme: HeSchemeName.Bfv, options: faHeOptions(s) };
}

/** Runs fn with the job's HE scheme: ctx.he when it was built for the job's parameters, else a fresh one disposed afterwards. */
export function withFaScheme<R>(s: FaResolved, ctx: FaContext, fn: (he: HeScheme) => R | Promise<R>): Promise<R> {
  return withHeScheme(ctx.he, faSchemeOptions(s), fn);
}
