/**
 * The aggregate plumbing the aggregate protocols share (federated-aggregate,
 * join-aggregate): the aggregate list a job asks for and its resolution into
 * value columns (with whether each needs sums of squares), fixed-point value
 * scaling (round(v · 10^scale), half away from zero, as engine/he encodes,
 * bounded by the job's maxAbsValue), and AVG / VAR_SAMP / STDDEV from the
 * totals count, Σx and Σx² — exact from integer totals, or with error bounds
 * by interval arithmetic from approximate ones.
 */
import { DataType, Float64, Int64, vectorFromArray, type Table, type Vector } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError, UnsupportedTypeError } from "../engine/errors.js";
import { fixedPointToString, ValueOutOfRangeError, valuesFromArrow } from "../engine/he/index.js";

/**
 * k when none is given, in the runners as on the command line (`umbra
 * aggregate`, `umbra join-aggregate`): a group or cell is released only with
 * at least this many rows (and, for join-aggregate, distinct matched keys).
 * A library default is never less private than the CLI's.
 */
export const DEFAULT_MIN_GROUP_SIZE = 10;

/** The bound on |value| of every aggregated column when none is given (as on the command line): 2^40. */
export const DEFAULT_MAX_ABS_VALUE = 2n ** 40n;

/**
 * Refuses an aggregated column that is not numeric (an Arrow Int or Float
 * column), naming the column and the fix — typically a CSV read as text:
 * `readTable(path, { inferTypes: true })` or `columnTypes`.
 */
export function checkNumericColumns(table: Table, columns: readonly string[], where: string): void {
  for (const column of columns) {
    const field = table.schema.fields.find((f) => f.name === column);
    if (field === undefined) throw new MissingColumnError(column, where);
    if (DataType.isInt(field.type) || DataType.isFloat(field.type)) continue;
    const text = DataType.isUtf8(field.type) || DataType.isLargeUtf8(field.type) || DataType.isUtf8View(field.type) || DataType.isDictionary(field.type);
    throw new UnsupportedTypeError(
      `${where}: column "${column}" is ${text ? "text" : String(field.type)}, not numbers, and cannot be aggregated` +
        (text
          ? `: read a CSV with readTable(path, { inferTypes: true }) or readTable(path, { columnTypes: { ${JSON.stringify(column)}: "float64" } }) ("int64" for whole numbers)`
          : ": give it as an integer or floating-point column"),
    );
  }
}

/** The aggregate functions a job may ask for. */
export const AggregateFn = { Count: "count", Sum: "sum", Avg: "avg", Var: "var", Stddev: "stddev" } as const;
export type AggregateFn = (typeof AggregateFn)[keyof typeof AggregateFn];

/** One aggregate of a job: COUNT, or SUM / AVG / VAR / STDDEV of a column. */
export type AggregateSpec = { readonly fn: "count" } | { readonly fn: "sum" | "avg" | "var" | "stddev"; readonly column: string };

/** A job's aggregate list, resolved (plain data). */
export interface ResolvedAggregates {
  /** Each aggregate as asked (column "" for count). */
  readonly aggregates: readonly { readonly fn: string; readonly column: string }[];
  /** Distinct value columns, in first-use order. */
  readonly columns: readonly string[];
  /** squares[c]: column c needs Σx² (VAR or STDDEV asks for it). */
  readonly squares: readonly boolean[];
}

/** Checks a job's aggregate list and resolves it; InvalidArgumentError for an empty list, an unknown function or a missing column. */
export function resolveAggregates(specs: readonly AggregateSpec[]): ResolvedAggregates {
  if (!Array.isArray(specs) || specs.length === 0) throw new InvalidArgumentError("at least one aggregate is needed");
  const aggregates: { fn: string; column: string }[] = [];
  const columns: string[] = [];
  const squares: boolean[] = [];
  for (const a of specs as readonly unknown[]) {
    const fn = typeof a === "object" && a !== null ? (a as { fn?: unknown }).fn : undefined;
    if (fn === AggregateFn.Count) {
      aggregates.push({ fn: "count", column: "" });
      continue;
    }
    if (typeof fn !== "string" || !["sum", "avg", "var", "stddev"].includes(fn)) throw new InvalidArgumentError(`unknown aggregate ${String(fn)}`);
    const column = (a as { column?: unknown }).column;
    if (typeof column !== "string" || column.length === 0) throw new InvalidArgumentError(`${fn} needs a column`);
    aggregates.push({ fn, column });
    let c = columns.indexOf(column);
    if (c < 0) {
      c = columns.length;
      columns.push(column);
      squares.push(false);
    }
    if (fn === AggregateFn.Var || fn === AggregateFn.Stddev) squares[c] = true;
  }
  return { aggregates, columns, squares };
}

// ------------------------------------------------------------------ value scaling

/** round(x · f), half away from zero — the rule engine/he's encoder applies to floats (f = 10^scale). */
export function fixedPoint(x: number, f: number): bigint {
  const y = x * f;
  return BigInt(y < 0 ? -Math.round(-y) : Math.round(y));
}

/** Where a value is, for a message: `column "amt" of the provider table, data row 7` (never the value). */
function valuePlace(column: string, where: string, row: number): string {
  return `column ${JSON.stringify(column)} of the ${where}, data row ${row + 1}`;
}

/** A value of a column beyond its bound: the column, the row, the bound and what to change (never the value). */
function outOfRange(column: string, where: string, row: number, bound: bigint, scale: number): ValueOutOfRangeError {
  return new ValueOutOfRangeError(
    `${valuePlace(column, where, row)}: a value is outside maxAbsValue ${fixedPointToString(bound, scale)} (--max-abs-value): every |value| must be at most the bound; raise it or fix the row`,
  );
}

/** A non-finite value (NaN, ±Infinity) in a column: where it is and the fix. */
function notFinite(column: string, where: string, row: number): ValueOutOfRangeError {
  return new ValueOutOfRangeError(`${valuePlace(column, where, row)}: a value is not a finite number (NaN or infinity); fix or filter the row`);
}

/** engine/he's valuesFromArrow, its refusals naming the column. */
function columnValues(vector: Vector, column: string, where: string): ReturnType<typeof valuesFromArrow> {
  if (vector.nullCount > 0) {
    throw new InvalidArgumentError(`column ${JSON.stringify(column)} of the ${where} has ${vector.nullCount} empty (null) values: fill or filter them, or leave the column out`);
  }
  return valuesFromArrow(vector);
}

/**
 * A column's values as scaled integers round(v · 10^scale), half away from
 * zero (as engine/he encodes); each |scaled| ≤ bound when a bound is given
 * (ValueOutOfRangeError naming the column, the row — `rowOf[i]` when the
 * table holds some rows of another — and the bound otherwise). Nulls are
 * refused, naming the column.
 */
export function scaledColumn(table: Table, column: string, scale: number, bound: bigint | null, where = "provider table", rowOf: Uint32Array | null = null): bigint[] {
  const vector = table.getChild(column);
  if (!vector) throw new MissingColumnError(column, where);
  const values = columnValues(vector, column, where);
  const bigF = 10n ** BigInt(scale);
  const f = Number(bigF);
  const out = new Array<bigint>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number | bigint;
    let s: bigint;
    if (typeof v === "bigint") s = v * bigF;
    else if (values instanceof Int32Array) s = BigInt(v) * bigF;
    else {
      if (!Number.isFinite(v)) throw notFinite(column, where, rowOf ? (rowOf[i] as number) : i);
      s = fixedPoint(v, f);
    }
    if (bound !== null && (s > bound || -s > bound)) throw outOfRange(column, where, rowOf ? (rowOf[i] as number) : i, bound, scale);
    out[i] = s;
  }
  return out;
}

/**
 * A numeric column as scaled integers round(v · 10^scale) (half away from
 * zero), with nulls kept and marked (valid[i] = 0, value 0) rather than
 * refused; each |scaled| ≤ bound (ValueOutOfRangeError with the row
 * otherwise). For protocols where a null is a row without a value
 * (join-aggregate's per-column counts).
 */
export function scaledValues(table: Table, column: string, scale: number, bound: bigint, where = "provider table"): { values: BigInt64Array; valid: Uint8Array } {
  const vector = table.getChild(column);
  if (!vector) throw new MissingColumnError(column, where);
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
    const v: unknown = raw ? raw[i] : vector.get(i);
    let x: bigint;
    if (typeof v === "bigint") x = v * bigF;
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) throw notFinite(column, where, i);
      x = fixedPoint(v, f);
    } else throw new InvalidArgumentError(`column ${JSON.stringify(column)} of the ${where} is not numeric`);
    if (x > bound || -x > bound) throw outOfRange(column, where, i, bound, scale);
    out[i] = x;
  }
  return { values: out, valid };
}

// ------------------------------------------------------------------ AVG / VAR / STDDEV from exact totals

function ratio(num: bigint, den: bigint): number {
  // Both stay below 2^170 for the protocols' bounds: Number() of each is within 1 ulp.
  return Number(num) / Number(den);
}

/** AVG = Σx / n in the values' units, from the exact count and sum in units of 10^-scale (null for n = 0). */
export function avgFromSums(n: bigint, sum: bigint, scale: number): number | null {
  return n > 0n ? ratio(sum, n * 10n ** BigInt(scale)) : null;
}

/** VAR_SAMP = (n·Σx² − (Σx)²) / (n·(n − 1)), from exact totals (Σx in units of 10^-scale, Σx² of 10^-2·scale); null for n < 2. */
export function sampleVarianceFromSums(n: bigint, sum: bigint, sumsq: bigint, scale: number): number | null {
  if (n < 2n) return null;
  const f = 10n ** BigInt(scale);
  return ratio(n * sumsq - sum * sum, n * (n - 1n) * f * f);
}

// ------------------------------------------------------------------ the same from approximate totals

/** An approximate value: |value − the exact result| ≤ bound. */
export interface ApproxValue {
  readonly value: number;
  readonly bound: number;
}

/** Relative slack for the rounding of the few double operations behind a derived value and its interval. */
const DERIVED_SLACK = 2 ** -48;

/** AVG = S / n with a bound by interval arithmetic (S / n is monotone in each on n > 0: the extremes are at the corners); null for n ≤ 0. */
export function approxAvg(n: ApproxValue, sum: ApproxValue): ApproxValue | null {
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
 * interval is clamped there; the result too); null for n ≤ 1.
 */
export function approxVar(n: ApproxValue, sum: ApproxValue, sq: ApproxValue): { var: ApproxValue; stddev: ApproxValue } | null {
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

/** A released value's interval under differential privacy: an exact total's (bigint, in units of 10^-scale) or an AVG's (number, in the value's units). */
export type DpInterval = { readonly low: bigint; readonly high: bigint } | { readonly low: number; readonly high: number } | null;

/**
 * With differential privacy, the 95% (an AVG's ≥ 90%) interval of each
 * released value as two columns after its own: `NAME_low95` and
 * `NAME_high95` (null where the value is not released or has no interval).
 * A count's are Int64; a sum's and an AVG's Float64 in the value's units
 * (a total's bounds divided by 10^scale).
 */
export function putIntervalColumns(cols: Record<string, Vector>, name: string, intervals: readonly DpInterval[], kind: "count" | "total" | "avg", scale: number): void {
  const f = 10 ** scale;
  if (kind === "count") {
    cols[`${name}_low95`] = vectorFromArray(intervals.map((i) => (i === null ? null : BigInt(i.low))), new Int64());
    cols[`${name}_high95`] = vectorFromArray(intervals.map((i) => (i === null ? null : BigInt(i.high))), new Int64());
    return;
  }
  const num = (x: bigint | number): number => (typeof x === "bigint" ? Number(x) / f : x);
  cols[`${name}_low95`] = vectorFromArray(intervals.map((i) => (i === null ? null : num(i.low))), new Float64());
  cols[`${name}_high95`] = vectorFromArray(intervals.map((i) => (i === null ? null : num(i.high))), new Float64());
}
