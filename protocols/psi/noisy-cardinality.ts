/**
 * A noisy PSI cardinality (docs/differential-privacy.md): the number of
 * distinct keys both sides hold, released to the buyer with discrete
 * Gaussian noise that no single party knows, at ρ-zCDP.
 *
 * Why not psi-cardinality itself: there the buyer counts the matches itself
 * (it compares the doubly blinded sets), so no other party can put noise
 * into what it learns. This runs join-aggregate's COUNT(*) with dp instead
 * (protocols/join-aggregate/dp.ts), on
 * - the provider's distinct keys: its table cut to the first row of each
 *   distinct non-null key, so every key joins at most one provider row;
 * - the buyer's rows with at most one row per key (dp.maxRowsPerKey = 1,
 *   enforced by the exchange);
 * so COUNT(*) is the number of distinct shared keys, and one key added to
 * or removed from either side changes it by at most 1 — the sensitivity
 * join-aggregate's accounting assumes for its count. The provider and the
 * exchange each add a share of noise under the buyer's encryption; the
 * buyer decrypts only the noisy count.
 *
 * What each party learns is join-aggregate's: the buyer the noisy count; the
 * provider the buyer's set size; the exchange the exact intersection size
 * (it matches the pseudonyms), which ECDH psi-cardinality does not show it.
 *
 * A noisy count below 1 is not released by join-aggregate (k = 1, applied
 * to the noisy count: post-processing); it is reported as 0, `clamped`, and
 * its interval [0, w] still holds the exact count with ≥ 95% probability
 * (the exact count ≤ noisy + w ≤ w).
 */
import { randomUUID } from "node:crypto";
import { keysFromTable, takeRows } from "../../engine/columns/index.js";
import { noisyValueInterval, type UniformSource } from "../../engine/dp/index.js";
import { parseRationalString } from "../federated-aggregate/dp.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import type { CryptoPool } from "../../engine/pool/index.js";
import { distinctKeys } from "../../engine/psi/index.js";
import { JA_DP_PARTIES, type JaDpSummary } from "../join-aggregate/dp.js";
import { runJoinAggregate } from "../join-aggregate/run.js";
import { checkOptions, SIDE_KEY_OPTIONS, SIDE_RENAMED, type OptionShape } from "../options.js";
import type { TransportStats } from "../transport.js";
import type { PsiSide } from "./run.js";

export interface RunNoisyCardinalityOptions {
  readonly buyer: PsiSide;
  readonly provider: PsiSide;
  /** ρ-zCDP of the release ("num/den", a decimal, or a number). */
  readonly dp: { readonly rho: string | number };
  readonly pool?: CryptoPool;
  readonly job?: string;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** FOR TESTS ONLY: the provider's and the exchange's noise sources. Seeded noise protects nothing. */
  readonly testNoiseSources?: { readonly provider?: UniformSource; readonly exchange?: UniformSource };
}

const SIDE: OptionShape = { names: SIDE_KEY_OPTIONS, required: ["table", "keys"], renamed: SIDE_RENAMED };
export const RUN_NOISY_CARDINALITY_OPTIONS: OptionShape = {
  names: ["buyer", "provider", "dp", "pool", "job", "onProgress", "testNoiseSources"],
  required: ["buyer", "provider", "dp"],
  nested: { buyer: SIDE, provider: SIDE, dp: { names: ["rho"], required: ["rho"] }, testNoiseSources: { names: ["provider", "exchange"], required: [] } },
};

export interface NoisyCardinalityResult {
  /** The noisy count of distinct shared keys (0 when the noisy value was below 1: `clamped`). */
  readonly count: bigint;
  readonly clamped: boolean;
  /** Holds the exact count with probability ≥ `level`. */
  readonly interval: { readonly low: bigint; readonly high: bigint; readonly halfWidth: bigint; readonly level: number };
  /** The mechanism and its accounting (join-aggregate's summary: ρ, ε at δ = 1e-6, σ). */
  readonly dp: JaDpSummary;
  readonly job: string;
  readonly stats: TransportStats;
}

/** The first row of each distinct non-null key of `side`: the provider's table with one row per key. */
function distinctRows(side: PsiSide): PsiSide {
  const keys = keysFromTable(side.table, side.keys, { ...side.normalise, source: "provider table" });
  const d = distinctKeys(keys);
  const first = new Int32Array(d.count).fill(-1);
  d.rowToDistinct.forEach((k, row) => {
    if (k >= 0 && (first[k] as number) < 0) first[k] = row;
  });
  return { ...side, table: takeRows(side.table, Uint32Array.from(first).sort()) };
}

/**
 * The number of distinct keys the buyer's and the provider's tables share,
 * with distributed discrete Gaussian noise at ρ-zCDP (sensitivity 1).
 *
 * @throws InvalidArgumentError for a ρ that is not positive, or key lists of different lengths.
 */
export async function runNoisyCardinality(options: RunNoisyCardinalityOptions): Promise<NoisyCardinalityResult> {
  checkOptions("runNoisyCardinality", options, RUN_NOISY_CARDINALITY_OPTIONS);
  if (options.buyer.keys.length === 0 || options.buyer.keys.length !== options.provider.keys.length) {
    throw new InvalidArgumentError("both sides need the same number of key columns (at least one)");
  }
  const job = options.job ?? `local-${randomUUID()}`;
  const r = await runJoinAggregate({
    buyer: { table: options.buyer.table, keys: options.buyer.keys, ...(options.buyer.normalise ? { normalise: options.buyer.normalise } : {}) },
    provider: distinctRows(options.provider),
    aggregates: [{ fn: "count" }],
    minGroupSize: 1,
    dp: { rho: String(options.dp.rho), maxRowsPerKey: 1 },
    job,
    ...(options.pool ? { pool: options.pool } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.testNoiseSources ? { testNoiseSources: options.testNoiseSources } : {}),
  });
  const dp = r.result.dp as JaDpSummary;
  const group = r.result.groups[0];
  if (group?.noise !== undefined) {
    const n = group.noise.count;
    return { count: group.count, clamped: false, interval: { low: n.low, high: n.high, halfWidth: n.halfWidth, level: n.level }, dp, job, stats: r.stats };
  }
  // Not released: the noisy count was below 1. Report 0 with [0, w].
  const count = dp.statistics.find((s) => s.name === "count") ?? dp.statistics[0];
  const sigma2 = parseRationalString(count?.sigma2PerParty ?? "1/1", "σ²");
  const iv = noisyValueInterval(0n, { kind: "distributed-discrete-gaussian", parties: JA_DP_PARTIES, sigma2 });
  return { count: 0n, clamped: true, interval: { low: 0n, high: iv.high, halfWidth: iv.halfWidth, level: iv.level }, dp, job, stats: r.stats };
}
