/**
 * federated-aggregate, the buyer's result (see index.ts, Threat model): per
 * cell, the aggregates from the decrypted totals, cells and bins below k
 * suppressed — exact (BFV), or in approximate mode (CKKS) every value with a
 * bound on its error and a count released only when surely ≥ k.
 */
import { approxAvg, approxVar, avgFromSums, sampleVarianceFromSums, type ApproxValue } from "../aggregate.js";
import { InvalidStateError, ProtocolError } from "../errors.js";
import { assertRole, type FaCommon } from "./messages.js";

/** What the buyer's state holds once done (buyer.ts FaBuyerState). */
export interface FaBuyerTotals extends FaCommon {
  readonly done: boolean;
  /** Decimal totals: exact integers, or in approximate mode doubles in the slots' own units. */
  readonly totals: readonly string[];
  /** Approximate mode: per slot, the bound on |total − exact total|. */
  readonly bounds?: readonly string[];
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
export type FaApprox = ApproxValue;

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

/** The buyer's output: per cell, the aggregates; cells with count < k suppressed (see the leakage section). */
export function faBuyerResult(s: FaBuyerTotals): FaResult {
  assertRole(s, "buyer");
  if (!s.done) throw new ProtocolError("the protocol has not finished");
  if (s.approximate === true) return approximateResult(s);
  const t = s.totals.map((x) => BigInt(x));
  const k = BigInt(s.minGroupSize);
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
      const avg = avgFromSums(n, sum, s.scale);
      const v = s.squares[i] ? sampleVarianceFromSums(n, sum, t[o + 1] as bigint, s.scale) : null;
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

/** faBuyerResult in approximate mode (see Approximate mode and FaCell.approx). */
function approximateResult(s: FaBuyerTotals): FaResult {
  const t = s.totals.map(Number);
  const e = (s.bounds ?? []).map(Number);
  if (t.length !== s.length || e.length !== s.length) throw new InvalidStateError("the buyer's approximate totals do not match the job's vector");
  const k = s.minGroupSize;
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
