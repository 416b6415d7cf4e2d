/**
 * The pool's column work (engine/columns, engine/psi): distinct keys, a
 * shuffled order, pair counts and int64 group statistics on a worker, or on
 * this thread below `inlineBelow`. CryptoPool's methods of the same names
 * call these; their contracts are documented there.
 */
import { PoolClosedError } from "../errors.js";
import type { KeyColumn } from "../columns/keys.js";
import { int64GroupStats as int64GroupStatsHere, pairCounts as pairCountsHere, type Int64Column, type Int64GroupStats, type PairCounts } from "../columns/group.js";
import { distinctKeys as distinctKeysHere, shuffledOrder as shuffledOrderHere, type DistinctKeys } from "../psi/distinct.js";
import { i32, i64, u32, whole } from "./chunks.js";
import { ColumnTaskOp, unpackArrays } from "./column-task.js";
import type { PoolWorkers } from "./types.js";

/** The work of CryptoPool.distinctKeys (its contract is documented there). */
export async function distinctKeys(w: PoolWorkers, keys: KeyColumn): Promise<DistinctKeys> {
  if (w.closed) throw new PoolClosedError();
  if (keys.length < w.inlineBelow) return distinctKeysHere(keys);
  const [data, offsets, rowToDistinct] = unpackArrays(
    await w.runColumn({ op: ColumnTaskOp.DistinctKeys, data: whole(keys.data), offsets: whole(keys.offsets), valid: whole(keys.valid), length: keys.length }),
  ) as [Uint8Array, Uint8Array, Uint8Array];
  const distinct = { data, offsets: u32(offsets) };
  return { distinct, rowToDistinct: i32(rowToDistinct), count: distinct.offsets.length - 1 };
}

/** The work of CryptoPool.shuffledOrder (its contract is documented there). */
export async function shuffledOrder(w: PoolWorkers, n: number): Promise<Uint32Array> {
  if (w.closed) throw new PoolClosedError();
  if (n < w.inlineBelow) return shuffledOrderHere(n);
  return u32(await w.runColumn({ op: ColumnTaskOp.ShuffledOrder, n }));
}

/** The work of CryptoPool.pairCounts (its contract is documented there). */
export async function pairCounts(w: PoolWorkers, keyOf: Int32Array, groupOf: Uint32Array, keys: number, groups: number): Promise<PairCounts> {
  if (w.closed) throw new PoolClosedError();
  if (keyOf.length < w.inlineBelow) return pairCountsHere(keyOf, groupOf, keys, groups);
  const [offsets, g, rows] = unpackArrays(await w.runColumn({ op: ColumnTaskOp.PairCounts, keyOf: whole(keyOf), groupOf: whole(groupOf), keys, groups })) as [Uint8Array, Uint8Array, Uint8Array];
  return { offsets: u32(offsets), groups: u32(g), rows: u32(rows) };
}

/** The work of CryptoPool.int64GroupStats (its contract is documented there). */
export async function int64GroupStats(w: PoolWorkers, keyOf: Int32Array, keys: number, columns: readonly Int64Column[], length: number = keys): Promise<Int64GroupStats> {
  if (w.closed) throw new PoolClosedError();
  if (keyOf.length < w.inlineBelow) return int64GroupStatsHere(keyOf, keys, columns, length);
  const task = { op: ColumnTaskOp.Int64GroupStats, keyOf: whole(keyOf), keys, length, columns: columns.map((c) => ({ values: whole(c.values), valid: whole(c.valid), squares: c.squares })) } as const;
  const [rows, ...stats] = unpackArrays(await w.runColumn(task));
  let at = 0;
  const out = columns.map((c) => {
    const n = i64(stats[at++] as Uint8Array);
    const sum = i64(stats[at++] as Uint8Array);
    const q = c.squares ? i64(stats[at++] as Uint8Array) : null;
    return { n, s: sum, q };
  });
  return { rows: u32(rows as Uint8Array), columns: out };
}
