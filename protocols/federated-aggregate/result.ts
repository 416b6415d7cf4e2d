/**
 * federated-aggregate, the buyer's result (see index.ts, Threat model): per
 * cell, the aggregates from the decrypted totals, cells and bins below k
 * suppressed — exact (BFV), or in approximate mode (CKKS) every value with a
 * bound on its error and a count released only when surely ≥ k. With dp
 * (dp.ts) every total is noisy: each released value carries its noise law
 * (the variance nσ² of the sum of the providers' shares) and a 95% interval
 * (engine/dp noisyValueInterval), each AVG an interval from its sum's and
 * count's (≥ 90% by the union bound); VAR/STDDEV come from the noisy sums
 * (a negative variance is shown as 0) without an interval. Suppression
 * below k reads the noisy count: post-processing, free of privacy cost.
 */
import { approxAvg, approxVar, avgFromSums, sampleVarianceFromSums, type ApproxValue } from "../aggregate.js";
import { epsilonFromRho, noisyValueInterval, rational, rationalToNumber } from "../../engine/dp/index.js";
import { InvalidStateError, ProtocolError } from "../errors.js";
import { faDpLaw, parseRationalString, rationalString, type FaDpResolved } from "./dp.js";
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
  /** With dp: each released value's noise and 95% interval (null where suppressed). */
  readonly noise?: FaNoiseCell;
}

/** A noisy released total: the law of its noise and the interval that holds the exact total with ≥ 95% probability. */
export interface FaNoisyValue {
  /** Variance bound of the noise, n·σ² ("num/den"): the sum of n shares N_Z(0, σ²). */
  readonly variance: string;
  readonly halfWidth: bigint;
  readonly low: bigint;
  readonly high: bigint;
  readonly level: number;
}

/** An AVG's interval from its sum's and count's 95% intervals: holds with ≥ 90% probability (union bound); null when the count's interval reaches 0. */
export interface FaAvgInterval {
  readonly low: number;
  readonly high: number;
  readonly level: number;
}

export interface FaNoiseCell {
  readonly count: FaNoisyValue | null;
  readonly columns: Readonly<Record<string, { readonly sum: FaNoisyValue | null; readonly avg: FaAvgInterval | null }>>;
  readonly histogram: readonly (FaNoisyValue | null)[];
}

/** The job's differential privacy, as the buyer's result states it. */
export interface FaDpSummary {
  /** ρ of the job (zCDP), "num/den", and ε at δ = 10^−6 (CKS20 Corollary 13). */
  readonly rho: string;
  readonly epsilonAtDelta1e6: number;
  readonly mechanism: "distributed-discrete-gaussian";
  readonly providers: number;
  /** Per statistic of a cell: its sensitivity (fixed point), share of ρ, per-provider σ² and the total variance n·σ². */
  readonly statistics: readonly { readonly name: string; readonly sensitivity: string; readonly rho: string; readonly sigma2PerProvider: string; readonly variance: string }[];
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
  /** With dp: the mechanism and its accounting; every cell has `noise`. */
  readonly dp?: FaDpSummary;
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
    const cell: FaCell = { category: s.groupColumn ? (s.categories[c] as string) : null, suppressed, count: suppressed ? null : n, columns, histogram };
    cells.push(s.dp ? noisyCell(s, s.dp, cell, base, t) : cell);
  }
  return { scale: s.scale, cells, ...(s.dp ? { dp: dpSummary(s, s.dp) } : {}) };
}

function noisy(s: FaBuyerTotals, dp: FaDpResolved, offset: number, value: bigint): FaNoisyValue {
  const law = faDpLaw(dp, s.providers, offset);
  const iv = noisyValueInterval(value, law);
  const s2 = law.kind === "distributed-discrete-gaussian" ? law.sigma2 : { num: 0n, den: 1n };
  return { variance: rationalString(rational(s2.num * BigInt(s.providers), s2.den, "variance")), halfWidth: iv.halfWidth, low: iv.low, high: iv.high, level: iv.level };
}

/** A cell of a DP job: the noise of each released value; a negative variance from noisy sums shown as 0. */
function noisyCell(s: FaBuyerTotals, dp: FaDpResolved, cell: FaCell, base: number, t: readonly bigint[]): FaCell {
  const released = !cell.suppressed;
  const count = released ? noisy(s, dp, 0, cell.count as bigint) : null;
  const columns: Record<string, FaColumnResult> = {};
  const noiseColumns: Record<string, { sum: FaNoisyValue | null; avg: FaAvgInterval | null }> = {};
  s.columns.forEach((name, i) => {
    const r = cell.columns[name] as FaColumnResult;
    const v = r.var === null ? null : Math.max(0, r.var);
    columns[name] = { ...r, var: v, stddev: v === null ? null : Math.sqrt(v) };
    if (!released || count === null) return void (noiseColumns[name] = { sum: null, avg: null });
    const o = s.columnOffsets[i] as number;
    const sum = noisy(s, dp, o, t[base + o] as bigint);
    noiseColumns[name] = { sum, avg: avgInterval(sum, count, s.scale) };
  });
  const histogram = cell.histogram.map((h, b) => (h === null ? null : noisy(s, dp, s.histOffset + b, h)));
  return { ...cell, columns, noise: { count, columns: noiseColumns, histogram } };
}

/** [sum]/[count] by interval arithmetic, in the value's units; null unless the count's interval is ≥ 1 throughout. */
function avgInterval(sum: FaNoisyValue, count: FaNoisyValue, scale: number): FaAvgInterval | null {
  if (count.low < 1n) return null;
  const f = 10 ** scale;
  const ends = [Number(sum.low) / Number(count.low), Number(sum.low) / Number(count.high), Number(sum.high) / Number(count.low), Number(sum.high) / Number(count.high)].map((x) => x / f);
  return { low: Math.min(...ends), high: Math.max(...ends), level: 0.9 };
}

function dpSummary(s: FaBuyerTotals, dp: FaDpResolved): FaDpSummary {
  const n = BigInt(s.providers);
  return {
    rho: dp.rho,
    epsilonAtDelta1e6: epsilonFromRho(rationalToNumber(parseRationalString(dp.rho, "rho")), 1e-6),
    mechanism: "distributed-discrete-gaussian",
    providers: s.providers,
    statistics: dp.statistics.map((st) => {
      const s2 = parseRationalString(st.sigma2, "σ²");
      return { name: st.name, sensitivity: st.sensitivity, rho: st.rho, sigma2PerProvider: st.sigma2, variance: rationalString(rational(s2.num * n, s2.den, "variance")) };
    }),
  };
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
