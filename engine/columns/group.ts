/**
 * Per-key aggregation over columns: every row carries the index of its key
 * (0 … keys − 1, or −1 for a row to leave out, e.g. a null key), as
 * engine/psi `distinctKeys` gives it. Typed arrays in and out, no per-row
 * objects; run on the pool's workers (engine/pool) for the columns of a job.
 *
 * - {@link pairCounts}: GROUP BY key, group — COUNT(*), as compressed rows
 *   (per key its groups in ascending order, with their row counts).
 * - {@link int64GroupStats}: GROUP BY key — COUNT(*), and per value column
 *   COUNT(v), SUM(v) and optionally SUM(v²) in signed 64-bit integers; a
 *   total leaving the range is refused, never wrapped.
 */
import { InvalidArgumentError } from "../errors.js";
import { BoundExceededError } from "../he/errors.js";

/** Per key k, its (group, rows) pairs at [offsets[k], offsets[k + 1]) of groups and rows, groups ascending. */
export interface PairCounts {
  readonly offsets: Uint32Array;
  readonly groups: Uint32Array;
  readonly rows: Uint32Array;
}

/** Groups per key above which pairCounts counts through an array over every group instead of sorting the key's rows. */
const SMALL_BUCKET = 32;

/**
 * COUNT(*) per (key, group): `keyOf[i]` is row i's key (−1: left out),
 * `groupOf[i]` its group (0 … groups − 1; rows left out carry any value).
 * @throws InvalidArgumentError when the columns differ in length, or a key or group is out of range.
 */
export function pairCounts(keyOf: Int32Array, groupOf: Uint32Array, keys: number, groups: number): PairCounts {
  const n = keyOf.length;
  if (groupOf.length !== n) throw new InvalidArgumentError(`key and group columns differ in length (${n}, ${groupOf.length})`);
  if (!Number.isSafeInteger(keys) || keys < 0 || !Number.isSafeInteger(groups) || groups < 0) throw new InvalidArgumentError("keys and groups must be non-negative integers");
  // Rows bucketed by key (a counting sort), each bucket in row order.
  const start = new Uint32Array(keys + 1);
  for (let i = 0; i < n; i++) {
    const k = keyOf[i] as number;
    if (k < 0) continue;
    if (k >= keys) throw new InvalidArgumentError(`row ${i}: key index out of range`);
    if ((groupOf[i] as number) >= groups) throw new InvalidArgumentError(`row ${i}: group out of range`);
    start[k + 1] = (start[k + 1] as number) + 1;
  }
  for (let k = 0; k < keys; k++) start[k + 1] = (start[k + 1] as number) + (start[k] as number);
  const taken = start[keys] as number;
  const bucket = new Uint32Array(taken);
  const fill = start.slice(0, keys);
  for (let i = 0; i < n; i++) {
    const k = keyOf[i] as number;
    if (k < 0) continue;
    bucket[fill[k] as number] = groupOf[i] as number;
    fill[k] = (fill[k] as number) + 1;
  }
  // Per key, its groups ascending with their counts: sort a small bucket, count a large one.
  const offsets = new Uint32Array(keys + 1);
  const outGroups = new Uint32Array(taken);
  const outRows = new Uint32Array(taken);
  const tally = new Uint32Array(groups);
  let total = 0;
  for (let k = 0; k < keys; k++) {
    const s = start[k] as number;
    const e = start[k + 1] as number;
    if (e - s <= SMALL_BUCKET) {
      const b = bucket.subarray(s, e);
      b.sort();
      for (let i = 0; i < b.length; ) {
        const g = b[i] as number;
        let j = i + 1;
        while (j < b.length && b[j] === g) j++;
        outGroups[total] = g;
        outRows[total] = j - i;
        total++;
        i = j;
      }
    } else {
      for (let i = s; i < e; i++) tally[bucket[i] as number] = (tally[bucket[i] as number] as number) + 1;
      for (let g = 0; g < groups; g++) {
        const c = tally[g] as number;
        if (c === 0) continue;
        outGroups[total] = g;
        outRows[total] = c;
        total++;
        tally[g] = 0;
      }
    }
    offsets[k + 1] = total;
  }
  return { offsets, groups: outGroups.slice(0, total), rows: outRows.slice(0, total) };
}

/** One value column of {@link int64GroupStats}: per row its value (ignored where valid[i] is 0), and whether sums of squares are wanted. */
export interface Int64Column {
  readonly values: BigInt64Array;
  readonly valid: Uint8Array;
  readonly squares: boolean;
}

/** Per key (entries at or beyond the key count are 0): COUNT(*), and per column COUNT(v), SUM(v) and SUM(v²) (null when not asked for). */
export interface Int64GroupStats {
  readonly rows: Uint32Array;
  readonly columns: readonly { readonly n: BigInt64Array; readonly s: BigInt64Array; readonly q: BigInt64Array | null }[];
}

const I64_MAX = (1n << 63n) - 1n;

/**
 * GROUP BY key over `keyOf` (row i's key, −1: left out): COUNT(*) and, for
 * each column, COUNT(v), SUM(v) and SUM(v²) of its valid values, each total
 * kept within ±(2^63 − 1). The result's arrays hold `length` entries (at
 * least `keys`; the rest 0).
 * @throws BoundExceededError when a sum or a sum of squares leaves the 64-bit range.
 * @throws InvalidArgumentError when a column differs in length from keyOf, or a key is out of range.
 */
export function int64GroupStats(keyOf: Int32Array, keys: number, columns: readonly Int64Column[], length: number = keys): Int64GroupStats {
  const n = keyOf.length;
  if (!Number.isSafeInteger(keys) || keys < 0 || !Number.isSafeInteger(length) || length < keys) throw new InvalidArgumentError("length must be an integer of at least the key count");
  const rows = new Uint32Array(length);
  for (let i = 0; i < n; i++) {
    const k = keyOf[i] as number;
    if (k < 0) continue;
    if (k >= keys) throw new InvalidArgumentError(`row ${i}: key index out of range`);
    rows[k] = (rows[k] as number) + 1;
  }
  const out = columns.map((c) => {
    if (c.values.length !== n || c.valid.length !== n) throw new InvalidArgumentError("a value column differs in length from the key column");
    const nAcc = new BigInt64Array(length);
    const sAcc = new BigInt64Array(length);
    const qAcc = c.squares ? new BigInt64Array(length) : null;
    for (let i = 0; i < n; i++) {
      const k = keyOf[i] as number;
      if (k < 0 || c.valid[i] === 0) continue;
      const x = c.values[i] as bigint;
      nAcc[k] = (nAcc[k] as bigint) + 1n;
      const s2 = (sAcc[k] as bigint) + x;
      if (s2 > I64_MAX || s2 < -I64_MAX) throw new BoundExceededError("the sum of one key's values leaves the 64-bit range: declare a smaller maxAbsValue or scale");
      sAcc[k] = s2;
      if (qAcc) {
        const q2 = (qAcc[k] as bigint) + x * x;
        if (q2 > I64_MAX) throw new BoundExceededError("the sum of squares of one key's values leaves the 64-bit range: declare a smaller maxAbsValue or scale");
        qAcc[k] = q2;
      }
    }
    return { n: nAcc, s: sAcc, q: qAcc };
  });
  return { rows, columns: out };
}
