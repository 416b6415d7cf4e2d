/**
 * join-aggregate's job parameters: what all three roles agree on from the
 * job (never from a message), resolved once into plain data every state
 * carries, and the HE options, the hash-to-group DST and the provider's
 * padding that every party derives from it. The flow and the threat model:
 * ./index.ts.
 */
import { assertState } from "../state.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import { GroupId, type BackendId } from "../../engine/group/index.js";
import { withHeContext, type HeContext, type HeContextOptions } from "../../engine/he/index.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { isJobId, MAX_CHUNK_ELEMENTS, ProtocolId } from "../codec.js";
import type { AggregateSpec } from "../aggregate.js";
import { DEFAULT_MIN_GROUP_SIZE, resolveAggregates } from "../aggregate.js";
import { statLayout, valueBound, type JaStat } from "./aggregates.js";
import { JA_NOISE_SLOTS, jaDpPlan, jaNoiseRows, type JaDpParams, type JaDpResolved } from "./dp.js";
import type { UniformSource } from "../../engine/dp/index.js";

export const JA_VERSION = 1;

/** The steps of the flow (./index.ts), each sent by one role to one role. */
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

/** Bytes of one group element on the wire. */
export const ELEMENT = 32;
export const JA_DEFAULT_CHUNK_ELEMENTS = 16_384;
export const JA_DEFAULT_MAX_SET_SIZE = 100_000_000;
export const JA_DEFAULT_MAX_JOIN_ROWS = 2 ** 32;
/** Most pseudonymous groups a job may have: as many as the provider sends noise shares for in a dp job (dp.ts; the type ties the two). */
export const JA_MAX_GROUPS: typeof JA_NOISE_SLOTS = 1024;
/** Ciphertext blocks per JoinCiphertext chunk (a block is one SEAL ciphertext per CRT prime). */
export const PROVIDER_BLOCKS_PER_CHUNK = 2;
export const RESULT_BLOCKS_PER_CHUNK = 8;
/** join-aggregate's BFV degree, whatever the job's bounds (see jaHeOptions), and so its slots per block. */
export const JA_SLOTS = 8192;
/** The longest encrypted column the HE context accepts (frames are size-checked against it). */
const JA_MAX_LENGTH = 2 ** 28;

/** What all three roles of one job agree on (from the job, not from messages). */
export interface JoinAggregateParams {
  readonly job: string;
  readonly aggregates: readonly AggregateSpec[];
  /** True when the buyer groups by one of its columns. */
  readonly grouped: boolean;
  /** k: a group is released only with at least k distinct matched keys and k joined rows (default 10, DEFAULT_MIN_GROUP_SIZE: the CLI's). */
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
  /**
   * Differential privacy (dp.ts): the provider and the exchange each add a
   * share of discrete Gaussian noise to every released statistic under
   * encryption, ρ-zCDP in all; the buyer's rows per key are capped at
   * maxRowsPerKey (default 1), values clipped to ±maxAbsValue, every group
   * released and k applied by the buyer to the noisy count.
   */
  readonly dp?: JaDpParams;
}

/** The resolved, plain-data form every state carries. */
export interface JaResolved {
  readonly protocol: ProtocolId;
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
  /** The statistic columns the buyer decrypts, in order (the provider encrypts messages.ts providerColumns of them). */
  readonly stats: readonly JaStat[];
  /** HE options (maxAbsValue as decimal). */
  readonly he: { readonly maxAbsValue: string; readonly maxRows: number; readonly maxLength: number };
  /** The job's DP plan (dp.ts), when it declares dp; absent otherwise. */
  readonly dp?: JaDpResolved;
}

/** Local resources: not part of the state. */
export interface JaContext {
  readonly pool: CryptoPool;
  /** An HE context to reuse when its parameters match the job's. */
  readonly he?: HeContext;
  readonly backend?: BackendId;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Where the provider or the exchange draws its DP noise share: node:crypto's CSPRNG unless given. A seeded source is for tests only (its noise protects nothing). */
  readonly noise?: UniformSource;
}

export function resolveJaParams(p: JoinAggregateParams): JaResolved {
  if (!p || !isJobId(p.job)) throw new InvalidArgumentError("job id must be 1..128 of [A-Za-z0-9._:-]");
  const k = p.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
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
  const { aggregates, columns, squares } = resolveAggregates(p.aggregates);
  const V = valueBound(p.maxAbsValue, scale);
  const stats = statLayout(columns, squares, p.dp !== undefined);
  const dp = p.dp !== undefined ? jaDpPlan(p.dp, stats, V) : undefined;
  // One context for every statistic: its per-row bound is the largest of 1 (c, n), V (s) and V² (q). With dp its row
  // bound also holds the two noise shares, each as ⌈B / that bound⌉ rows, so a noisy total never wraps (dp.ts jaNoiseRows).
  const rowBound = squares.some(Boolean) ? V * V : V;
  const maxRows = dp ? maxJoinRows + 2 * jaNoiseRows(dp, rowBound) : maxJoinRows;
  if (maxRows > 2 ** 40) throw new InvalidArgumentError(`with dp, maxJoinRows plus the noise shares' ${maxRows - maxJoinRows} rows (of ±${rowBound}) must be at most 2^40: lower maxJoinRows or raise rho`);
  return {
    protocol: ProtocolId.JoinAggregate,
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
    he: { maxAbsValue: rowBound.toString(), maxRows, maxLength: JA_MAX_LENGTH },
    ...(dp ? { dp } : {}),
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

/** The per-job hash-to-group domain separation tag (RFC 9380 §3.1), the same for both sides. */
export function jaDst(group: GroupId, job: string): Uint8Array {
  return new TextEncoder().encode(`umbra/join-aggregate/v${JA_VERSION}/${group}/${job}`);
}

/** Runs fn with the context's HE context when it fits the job's options, else with a fresh one. */
export function withHe<R>(r: JaResolved, ctx: JaContext, fn: (he: HeContext) => R | Promise<R>): Promise<R> {
  return withHeContext(ctx.he, jaHeOptions(r), fn);
}

/** The group (and backend) a role hashes and raises in. */
export function groupSpec(s: { group: GroupId }, ctx: JaContext): { group: GroupId; backend?: BackendId } {
  return { group: s.group, ...(ctx.backend ? { backend: ctx.backend } : {}) };
}

/** Refuses a state that is not this role's of this protocol and version (e.g. corrupted persistence). */
export function checkState(s: { readonly role?: unknown; readonly protocol?: unknown; readonly version?: unknown }, role: "buyer" | "provider" | "exchange"): void {
  assertState(s, { protocols: [ProtocolId.JoinAggregate], role, version: JA_VERSION });
}
