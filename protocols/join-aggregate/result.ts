/**
 * join-aggregate's result: what the buyer takes away once it has decrypted
 * every released group — per group its label, COUNT(*) and, per value
 * column, n, the exact sum, AVG, VAR_SAMP and STDDEV_SAMP (./aggregates.ts).
 *
 * With dp (dp.ts) every total is noisy: COUNT(*), each column's n, sum and
 * sum of squares; AVG and VAR/STDDEV come from the noisy sums (AVG null
 * when the noisy n < 1, VAR when it is < 2, a negative variance shown as 0).
 * Each released total carries its noise variance (2σ²) and a 95% interval
 * (engine/dp noisyValueInterval: the sub-Gaussian bound of the two shares'
 * sum), each AVG an interval from its sum's and n's (≥ 90%, union bound).
 * A group whose noisy count is below k is suppressed here — post-processing.
 */
import { noisyValueInterval } from "../../engine/dp/index.js";
import { avgFromSums, sampleVarianceFromSums } from "../aggregate.js";
import { ProtocolError } from "../errors.js";
import { columnResult, type JaColumnResult } from "./aggregates.js";
import { jaDpLaw, jaDpSummary, type JaDpResolved, type JaDpSummary } from "./dp.js";
import type { JaResolved } from "./params.js";

export type { JaColumnResult } from "./aggregates.js";

export interface JaGroupResult {
  /** The group label (null: the NULL group); "" when not grouped. */
  readonly label: string | null;
  /** COUNT(*): joined rows. */
  readonly count: bigint;
  readonly columns: Readonly<Record<string, JaColumnResult>>;
  /** With dp: each released total's noise and 95% interval (the values above are then the noisy ones). */
  readonly noise?: JaNoiseGroup;
}

/** A noisy released total: its noise's variance and the interval that holds the exact total with ≥ 95% probability. */
export interface JaNoisyValue {
  /** 2σ², "num/den": the sum of the provider's and the exchange's shares. */
  readonly variance: string;
  readonly halfWidth: bigint;
  readonly low: bigint;
  readonly high: bigint;
  readonly level: number;
}

/** An AVG's interval from its sum's and n's intervals (≥ 90%, union bound), in the value's units; null when n's interval reaches below 1. */
export interface JaAvgInterval {
  readonly low: number;
  readonly high: number;
  readonly level: number;
}

export interface JaNoiseGroup {
  readonly count: JaNoisyValue;
  readonly columns: Readonly<Record<string, { readonly n: JaNoisyValue; readonly sum: JaNoisyValue; readonly sumsq: JaNoisyValue | null; readonly avg: JaAvgInterval | null }>>;
}

export interface JaResult {
  readonly groups: readonly JaGroupResult[];
  readonly suppressed: number;
  readonly scale: number;
  /** With dp: the mechanism, its accounting and the contribution bounds; every group has `noise`. */
  readonly dp?: JaDpSummary;
}

/** What of the buyer's state the result reads. */
export interface JaDecrypted extends JaResolved {
  readonly labels: readonly (string | null)[];
  readonly result: { readonly codes: Uint32Array; readonly counts: readonly bigint[]; readonly suppressed: number } | null;
  /** Per stat column, the decrypted totals (decimal strings by released group). */
  readonly totals: readonly (readonly string[])[];
}

/**
 * The buyer's result once it is done: released groups sorted by label (NULL last).
 * @throws ProtocolError when the protocol has not finished.
 */
export function buyerResult(s: JaDecrypted, done: boolean): JaResult {
  if (!done || s.result === null) throw new ProtocolError("the protocol has not finished");
  if (s.dp) return noisyResult(s, s.dp);
  const res = s.result;
  const groups: JaGroupResult[] = [];
  for (let i = 0; i < res.codes.length; i++) {
    const code = res.codes[i] as number;
    const columns: Record<string, JaColumnResult> = {};
    s.columns.forEach((column) => {
      const get = (stat: string): bigint | null => {
        const idx = s.stats.findIndex((x) => x.column === column && x.stat === stat);
        return idx < 0 ? null : BigInt((s.totals[idx] as readonly string[])[i] as string);
      };
      columns[column] = columnResult(get("n") as bigint, get("s") as bigint, get("q"), s.scale);
    });
    groups.push({ label: s.labels[code] as string | null, count: res.counts[i] as bigint, columns });
  }
  groups.sort((a, b) => (a.label === null ? 1 : b.label === null ? -1 : a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  return { groups, suppressed: res.suppressed, scale: s.scale };
}

function noisy(dp: JaDpResolved, k: number, value: bigint): JaNoisyValue {
  const iv = noisyValueInterval(value, jaDpLaw(dp, k));
  const st = jaDpSummary(dp, "0").statistics[k];
  return { variance: st?.variance ?? "", halfWidth: iv.halfWidth, low: iv.low, high: iv.high, level: iv.level };
}

/** [sum]/[n] by interval arithmetic, in the value's units; null unless n's interval is ≥ 1 throughout. */
function avgInterval(sum: JaNoisyValue, n: JaNoisyValue, scale: number): JaAvgInterval | null {
  if (n.low < 1n) return null;
  const f = 10 ** scale;
  const ends = [Number(sum.low) / Number(n.low), Number(sum.low) / Number(n.high), Number(sum.high) / Number(n.low), Number(sum.high) / Number(n.high)].map((x) => x / f);
  return { low: Math.min(...ends), high: Math.max(...ends), level: 0.9 };
}

/** A dp job's result: every group decrypted noisy, those whose noisy count is below k suppressed here (post-processing). */
function noisyResult(s: JaDecrypted, dp: JaDpResolved): JaResult {
  const res = s.result as NonNullable<JaDecrypted["result"]>;
  const groups: JaGroupResult[] = [];
  let suppressed = 0;
  const at = (column: string, stat: string): number => s.stats.findIndex((x) => x.column === column && x.stat === stat);
  const total = (k: number, i: number): bigint => BigInt((s.totals[k] as readonly string[])[i] as string);
  for (let i = 0; i < res.codes.length; i++) {
    const kc = at("", "c");
    const count = total(kc, i);
    if (count < BigInt(s.minGroupSize)) {
      suppressed++;
      continue;
    }
    const columns: Record<string, JaColumnResult> = {};
    const noiseColumns: Record<string, JaNoiseGroup["columns"][string]> = {};
    for (const column of s.columns) {
      const [kn, ks, kq] = [at(column, "n"), at(column, "s"), at(column, "q")];
      const n = total(kn, i);
      const sum = total(ks, i);
      const q = kq < 0 ? null : total(kq, i);
      const v = q === null ? null : sampleVarianceFromSums(n, sum, q, s.scale);
      const variance = v === null ? null : Math.max(0, v);
      columns[column] = { n, sum, avg: avgFromSums(n, sum, s.scale), var: variance, stddev: variance === null ? null : Math.sqrt(variance) };
      const nn = noisy(dp, kn, n);
      const ns = noisy(dp, ks, sum);
      noiseColumns[column] = { n: nn, sum: ns, sumsq: q === null ? null : noisy(dp, kq, q), avg: avgInterval(ns, nn, s.scale) };
    }
    groups.push({ label: s.labels[res.codes[i] as number] as string | null, count, columns, noise: { count: noisy(dp, kc, count), columns: noiseColumns } });
  }
  groups.sort((a, b) => (a.label === null ? 1 : b.label === null ? -1 : a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  return { groups, suppressed: suppressed + res.suppressed, scale: s.scale, dp: jaDpSummary(dp, s.valueBound) };
}
