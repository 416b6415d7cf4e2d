/**
 * What the examples share: a seeded PRNG (so every run generates the same
 * synthetic data), the plaintext answer computed by a plain JS join and
 * group-by (the oracle the secure result is printed beside), the comparison
 * of the two, and a Markdown table printer. No dependency beyond Arrow.
 */
import type { Table } from "apache-arrow";

/** A deterministic PRNG in [0, 1) (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A roughly normal draw (sum of 4 uniforms), mean 0, sd 1. */
export function gaussian(rnd: () => number): number {
  return (rnd() + rnd() + rnd() + rnd() - 2) * Math.sqrt(3);
}

/** One group of a join-aggregate: COUNT(*), SUM, AVG, VAR_SAMP, STDDEV_SAMP, and its distinct matched keys. */
export interface GroupAggregate {
  readonly count: number;
  /** COUNT(DISTINCT key): the keys of the group that matched (k counts these, and rows). */
  readonly keys: number;
  readonly sum: number;
  readonly avg: number;
  /** null for a single row, as SQL's VAR_SAMP. */
  readonly var: number | null;
  readonly stddev: number | null;
}

/**
 * The plaintext answer: `SELECT g, COUNT(*), COUNT(DISTINCT key), SUM(v),
 * AVG(v), VAR_SAMP(v), STDDEV_SAMP(v) FROM buyer JOIN provider USING (key)
 * GROUP BY g` (no HAVING: every group with a match, so the caller can show
 * which fall under k), by a hash
 * join in plain JS. Values are fixed-point integers (`value · 10^scale`), so
 * the sums and the variance numerators are exact (BigInt).
 * A null key never matches; `groups` absent means one group, labelled null.
 */
export function plainJoinAggregate(
  buyer: { readonly keys: readonly (string | null)[]; readonly groups?: readonly (string | null)[] },
  provider: { readonly keys: readonly (string | null)[]; readonly values: readonly number[] },
  scale: number,
): Map<string | null, GroupAggregate> {
  const byKey = new Map<string, number[]>();
  provider.keys.forEach((k, i) => {
    if (k === null) return;
    const rows = byKey.get(k);
    if (rows) rows.push(i);
    else byKey.set(k, [i]);
  });
  const acc = new Map<string | null, { n: bigint; s: bigint; s2: bigint; keys: Set<string> }>();
  buyer.keys.forEach((k, i) => {
    const rows = k === null ? undefined : byKey.get(k);
    if (rows === undefined) return;
    const g = buyer.groups ? (buyer.groups[i] ?? null) : null;
    let a = acc.get(g);
    if (!a) acc.set(g, (a = { n: 0n, s: 0n, s2: 0n, keys: new Set() }));
    a.keys.add(k as string);
    for (const r of rows) {
      const x = BigInt(provider.values[r] as number);
      a.n += 1n;
      a.s += x;
      a.s2 += x * x;
    }
  });
  const f = 10 ** scale;
  const out = new Map<string | null, GroupAggregate>();
  for (const [g, { n, s, s2, keys }] of acc) {
    const count = Number(n);
    // VAR_SAMP = (n Σx² − (Σx)²) / (n (n − 1)), exact up to the last division.
    const v = n > 1n ? Number(n * s2 - s * s) / Number(n * (n - 1n)) / (f * f) : null;
    out.set(g, { count, keys: keys.size, sum: Number(s) / f, avg: Number(s) / Number(n) / f, var: v, stddev: v === null ? null : Math.sqrt(v) });
  }
  return out;
}

/** The secure result's rows, by group label (null: the NULL group, or the single row without grouping). */
export function secureGroups(table: Table, groupBy: string | undefined, column: string): Map<string | null, Partial<GroupAggregate>> {
  const out = new Map<string | null, Partial<GroupAggregate>>();
  const num = (name: string, i: number): number | null => {
    const v: unknown = table.getChild(name)?.get(i);
    return v === null || v === undefined ? null : Number(v);
  };
  for (let i = 0; i < table.numRows; i++) {
    const label: unknown = groupBy === undefined ? null : table.getChild(groupBy)?.get(i);
    const row: { -readonly [K in keyof GroupAggregate]?: GroupAggregate[K] } = {};
    const count = num("count", i);
    if (count !== null) row.count = count;
    const sum = num(`sum_${column}`, i);
    if (sum !== null) row.sum = sum;
    const avg = num(`avg_${column}`, i);
    if (avg !== null) row.avg = avg;
    if (table.getChild(`var_${column}`)) row.var = num(`var_${column}`, i);
    if (table.getChild(`stddev_${column}`)) row.stddev = num(`stddev_${column}`, i);
    out.set(label === null || label === undefined ? null : String(label), row);
  }
  return out;
}

/** |a − b| within a relative 1e-9 (and both null, or both present). */
function near(a: number | null | undefined, b: number | null): boolean {
  if (a === undefined) return true; // not asked for
  if (a === null || b === null) return a === b;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
}

export interface Comparison {
  readonly match: boolean;
  /** Groups the plaintext keeps (at least k distinct matched keys and k rows). */
  readonly kept: number;
  /** The buyer's other groups: under k, or without a match. */
  readonly belowK: number;
}

/**
 * Does the secure result equal the plaintext answer under `HAVING
 * COUNT(DISTINCT key) >= k AND COUNT(*) >= k`? The same groups, every asked
 * aggregate within 1e-9 (sums to the last fixed-point digit), and every other
 * group of the buyer's (`buyerGroups` in all) reported as suppressed.
 */
export function compare(secure: Map<string | null, Partial<GroupAggregate>>, suppressedGroups: number, plain: Map<string | null, GroupAggregate>, k: number, scale: number, buyerGroups: number): Comparison {
  const kept = [...plain].filter(([, g]) => g.keys >= k && g.count >= k);
  const belowK = buyerGroups - kept.length;
  let match = secure.size === kept.length && suppressedGroups === belowK;
  for (const [label, p] of kept) {
    const s = secure.get(label);
    if (!s) {
      match = false;
      continue;
    }
    const f = 10 ** scale;
    const sumOk = s.sum === undefined || Math.round(s.sum * f) === Math.round(p.sum * f);
    match &&= (s.count === undefined || s.count === p.count) && sumOk && near(s.avg, p.avg) && near(s.var, p.var) && near(s.stddev, p.stddev);
  }
  return { match, kept: kept.length, belowK };
}

/** Labels in the result's order: sorted, the null group last. */
export function sortLabels(labels: Iterable<string | null>): (string | null)[] {
  return [...labels].sort((a, b) => (a === null ? 1 : b === null ? -1 : a < b ? -1 : a > b ? 1 : 0));
}

/** A Markdown table. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => "| " + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ") + " |";
  return [line(header), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

const nf = new Intl.NumberFormat("en-US");
/** 1234567 → "1,234,567". */
export const count = (n: number): string => nf.format(n);
/** A number with `digits` decimals, thousands separated. */
export const fixed = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined ? "—" : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
/** Bytes → "1.23 MB". */
export const megabytes = (b: number): string => `${(b / 1e6).toFixed(2)} MB`;
