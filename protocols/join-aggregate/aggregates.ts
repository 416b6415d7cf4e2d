/**
 * join-aggregate's aggregate plumbing: the aggregate list resolved into the
 * value columns and the statistic columns they need, the provider's values
 * as scaled integers, and AVG / VAR_SAMP / STDDEV_SAMP from the exact sums.
 *
 * federated-aggregate has its own versions of these; they are to become one
 * shared module (protocols/aggregate.ts), and this file is what
 * join-aggregate switches over when it does. Nothing here is specific to the
 * join except the statistic layout (n, s and, for VAR/STDDEV, q per column).
 */
import type { Table, Vector } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError } from "../../engine/errors.js";
import { scaledBound, ValueOutOfRangeError, valuesFromArrow } from "../../engine/he/index.js";
import type { AggregateSpec } from "../federated-aggregate.js";

/** One encrypted statistic column of the layout: per value column n (non-null values), s (sum) and q (sum of squares). */
export interface JaStat {
  readonly column: string;
  readonly stat: "n" | "s" | "q";
}

/** A resolved aggregate list: each aggregate, the value columns in first-use order and whether each needs sums of squares. */
export interface ResolvedAggregates {
  readonly aggregates: { readonly fn: string; readonly column: string }[];
  readonly columns: string[];
  readonly squares: boolean[];
}

const I64_MAX = (1n << 63n) - 1n;

/**
 * Resolves the aggregate list: count, or sum/avg/var/stddev of a column.
 * @throws InvalidArgumentError on an empty list or an unknown aggregate.
 */
export function resolveAggregates(list: readonly AggregateSpec[]): ResolvedAggregates {
  if (!Array.isArray(list) || list.length === 0) throw new InvalidArgumentError("at least one aggregate is needed");
  const aggregates: { fn: string; column: string }[] = [];
  const columns: string[] = [];
  const squares: boolean[] = [];
  for (const a of list) {
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
  return { aggregates, columns, squares };
}

/** The encrypted statistic columns, in order: n and s per value column, and q where VAR/STDDEV needs it. */
export function statLayout(columns: readonly string[], squares: readonly boolean[]): JaStat[] {
  const stats: JaStat[] = [];
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

/**
 * A numeric column as scaled integers (round half away from zero), with
 * nulls marked (valid[i] = 0).
 * @throws MissingColumnError, InvalidArgumentError (not numeric), ValueOutOfRangeError (not finite, or |value| > V, with its row).
 */
export function scaledValues(table: Table, column: string, scale: number, V: bigint): { values: BigInt64Array; valid: Uint8Array } {
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
  const f = 10 ** scale;
  const nn = Number(n);
  const avg = n > 0n ? Number(sum) / nn / f : null;
  let variance: number | null = null;
  if (q !== null && n > 1n) {
    const num = n * q - sum * sum; // n² · var_pop · f², exact
    variance = Number(num) / (nn * (nn - 1)) / (f * f);
    if (variance < 0) variance = 0;
  }
  return { n, sum: n > 0n ? sum : null, avg, var: variance, stddev: variance === null ? null : Math.sqrt(variance) };
}
