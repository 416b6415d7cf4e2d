/**
 * join-aggregate's result: what the buyer takes away once it has decrypted
 * every released group — per group its label, COUNT(*) and, per value
 * column, n, the exact sum, AVG, VAR_SAMP and STDDEV_SAMP (./aggregates.ts).
 */
import { ProtocolError } from "../errors.js";
import { columnResult, type JaColumnResult } from "./aggregates.js";
import type { JaResolved } from "./params.js";

export type { JaColumnResult } from "./aggregates.js";

export interface JaGroupResult {
  /** The group label (null: the NULL group); "" when not grouped. */
  readonly label: string | null;
  /** COUNT(*): joined rows. */
  readonly count: bigint;
  readonly columns: Readonly<Record<string, JaColumnResult>>;
}

export interface JaResult {
  readonly groups: readonly JaGroupResult[];
  readonly suppressed: number;
  readonly scale: number;
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
