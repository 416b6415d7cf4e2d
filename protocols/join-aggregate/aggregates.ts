/**
 * What join-aggregate adds to the aggregate plumbing it shares with
 * federated-aggregate (protocols/aggregate.ts: the aggregate list, value
 * scaling, AVG/VAR from exact sums): the layout of its encrypted statistic
 * columns (n, s and, for VAR/STDDEV, q per value column), the value bound in
 * scaled units, and one column's result over a released group.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { scaledBound } from "../../engine/he/index.js";
import { avgFromSums, sampleVarianceFromSums } from "../aggregate.js";

/** One statistic column of the layout: per value column n (non-null values), s (sum) and q (sum of squares); with dp first c (COUNT(*), column "", which the provider does not encrypt: dp.ts). */
export interface JaStat {
  readonly column: string;
  readonly stat: "c" | "n" | "s" | "q";
}

const I64_MAX = (1n << 63n) - 1n;

/**
 * The statistic columns the buyer decrypts, in order: with dp first c
 * (COUNT(*), released noisy like the rest: the exchange puts the count into
 * its mask, the provider sends only its noise, dp.ts), then n and s per
 * value column, and q where VAR/STDDEV needs it.
 */
export function statLayout(columns: readonly string[], squares: readonly boolean[], count = false): JaStat[] {
  const stats: JaStat[] = count ? [{ column: "", stat: "c" }] : [];
  columns.forEach((column, c) => {
    stats.push({ column, stat: "n" }, { column, stat: "s" });
    if (squares[c]) stats.push({ column, stat: "q" });
  });
  return stats;
}

/**
 * V, the bound of one value in units of 10^-scale.
 * @throws InvalidArgumentError when V ≥ 2^63 (the provider holds scaled values and per-key totals as signed 64-bit integers).
 */
export function valueBound(maxAbsValue: number | bigint, scale: number): bigint {
  const V = scaledBound(maxAbsValue, scale);
  if (V > I64_MAX) throw new InvalidArgumentError("maxAbsValue · 10^scale must be below 2^63");
  return V;
}

/** One value column's aggregates over a released group. */
export interface JaColumnResult {
  /** Non-null values joined. */
  readonly n: bigint;
  /** Exact sum in units of 10^-scale (null when n = 0). */
  readonly sum: bigint | null;
  readonly avg: number | null;
  readonly var: number | null;
  readonly stddev: number | null;
}

/**
 * AVG, VAR_SAMP and STDDEV_SAMP from the exact totals n (non-null values),
 * s (sum) and q (sum of squares, null when not computed), all in units of
 * 10^-scale (q in 10^-2·scale), with SQL's NULLs: SUM and AVG of no values,
 * VAR of fewer than two. VAR = (n·q − s²) / (n·(n − 1)), the numerator exact.
 */
export function columnResult(n: bigint, sum: bigint, q: bigint | null, scale: number): JaColumnResult {
  const variance = q === null ? null : sampleVarianceFromSums(n, sum, q, scale);
  return { n, sum: n > 0n ? sum : null, avg: avgFromSums(n, sum, scale), var: variance, stddev: variance === null ? null : Math.sqrt(variance) };
}
