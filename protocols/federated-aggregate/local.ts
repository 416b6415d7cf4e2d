/**
 * federated-aggregate, a provider's local computation (see index.ts, The
 * vector and k per provider per cell): its table aggregated into the job's
 * vector, per cell count, sums (and sums of squares) and histogram counts,
 * with k applied to this provider alone — exact integers (exact mode) or
 * exactly rounded sums of doubles (approximate mode) — and that vector as
 * the job's HE scheme's plaintext slots.
 *
 * References: Shewchuk, "Adaptive Precision Floating-Point Arithmetic and
 * Fast Robust Geometric Predicates" (1997) — exactly rounded sums; Dekker
 * (1971) and Veltkamp — exact products.
 */
import type { Table } from "apache-arrow";
import { takeRows } from "../../engine/columns/index.js";
import { InvalidArgumentError, MissingColumnError } from "../../engine/errors.js";
import { BoundExceededError, ValueOutOfRangeError, valuesFromArrow } from "../../engine/he/index.js";
import { fixedPoint, scaledColumn } from "../aggregate.js";
import type { FaResolved } from "./params.js";

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
  const k = s.minGroupSize;
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
    if (m < s.minGroupSize) cellOf[r] = -1;
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
 * A row with a null in an aggregated column (or the histogram's) is left
 * out of every slot — its cell's count included, since AVG divides its sum
 * by that count ({@link withoutNullValues}); a null or undeclared group-by
 * value puts the row in no cell. In a job with dp, values beyond ±maxAbsValue
 * are clipped to it (dp.ts: the sensitivity the noise is calibrated to);
 * the noise itself is added by the provider's role (provider.ts).
 */
export function faLocalVector(s: FaResolved, input: Table): string[] {
  const { table, rowOf } = withoutNullValues(s, input);
  if (s.approximate === true) return localVectorApproximate(s, table, rowOf);
  const rows = table.numRows;
  const cellOf = cellsOf(s, table);
  const V = BigInt(s.valueBound);
  // With dp, values are clipped to ±V rather than refused: a refusal would be an observable that depends on one row.
  const cols = s.dp ? s.columns.map((c) => scaledColumn(table, c, s.scale, null, "provider table", rowOf).map((x) => (x > V ? V : x < -V ? -V : x))) : s.columns.map((c) => scaledColumn(table, c, s.scale, V, "provider table", rowOf));
  const acc = new Array<bigint>(s.length).fill(0n);
  let ranges: Int32Array | null = null;
  if (s.bins > 0) {
    const hist = scaledColumn(table, s.histColumn, s.scale, null);
    const bigF = 10n ** BigInt(s.scale);
    const edges = s.edges.map((e) => fixedPoint(e, Number(bigF)));
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

/**
 * The rows with a value in every aggregated column and in the histogram's
 * column (the table itself when no such column holds a null): a row without
 * one is skipped, as SQL's aggregates skip nulls — for the whole row, since
 * a cell has one count, the divisor of every AVG and VAR in it. `rowOf`
 * gives each kept row's row in `table` (null: all kept), so that a refusal
 * names the caller's row.
 */
export function withoutNullValues(s: Pick<FaResolved, "columns" | "histColumn" | "bins">, table: Table): { table: Table; rowOf: Uint32Array | null } {
  const names = [...s.columns, ...(s.bins > 0 ? [s.histColumn] : [])];
  const vectors = names.map((c) => {
    const v = table.getChild(c);
    if (!v) throw new MissingColumnError(c, "provider table");
    return v;
  });
  if (vectors.every((v) => v.nullCount === 0)) return { table, rowOf: null };
  const keep: number[] = [];
  for (let r = 0; r < table.numRows; r++) if (vectors.every((v) => v.isValid(r))) keep.push(r);
  const rowOf = Uint32Array.from(keep);
  return { table: takeRows(table, rowOf), rowOf };
}

/**
 * A column's values as doubles (64-bit integers rounded to the nearest), each
 * finite with |x| ≤ bound when a bound is given (ValueOutOfRangeError naming
 * the column, the row — `rowOf[i]` when given — and the bound otherwise).
 */
function doubleColumn(table: Table, column: string, bound: number | null, rowOf: Uint32Array | null = null): Float64Array {
  const vector = table.getChild(column);
  if (!vector) throw new MissingColumnError(column, "provider table");
  if (vector.nullCount > 0) throw new InvalidArgumentError(`column ${JSON.stringify(column)} of the provider table has ${vector.nullCount} empty (null) values: fill or filter them`);
  const values = valuesFromArrow(vector);
  const out = values instanceof Float64Array ? values : Float64Array.from(values as ArrayLike<number | bigint>, (v) => Number(v));
  const place = (i: number) => `column ${JSON.stringify(column)} of the provider table, data row ${(rowOf ? (rowOf[i] as number) : i) + 1}`;
  for (let i = 0; i < out.length; i++) {
    const x = out[i] as number;
    if (!Number.isFinite(x)) throw new ValueOutOfRangeError(`${place(i)}: a value is not a finite number (NaN or infinity); fix or filter the row`);
    if (bound !== null && !(Math.abs(x) <= bound)) {
      throw new ValueOutOfRangeError(`${place(i)}: a value is outside maxAbsValue ${bound} (--max-abs-value): every |value| must be at most the bound; raise it or fix the row`);
    }
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
function localVectorApproximate(s: FaResolved, table: Table, rowOf: Uint32Array | null): string[] {
  const rows = table.numRows;
  const cellOf = cellsOf(s, table);
  const V = Number(s.valueBound);
  const cols = s.columns.map((c) => doubleColumn(table, c, V, rowOf));
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

/**
 * The provider's vector (decimal strings, from faLocalVector) as the job's
 * scheme's plaintext slots: exact integers for BFV; for CKKS each slot
 * divided by its bound B (see Approximate mode), |x/B| ≤ 1.
 */
export function faPlaintext(s: FaResolved, values: readonly string[]): bigint[] | number[] {
  if (s.approximate !== true) return values.map((v) => BigInt(v));
  return values.map((v, i) => Number(v) / (s.slotBounds[i % s.stride] as number));
}
