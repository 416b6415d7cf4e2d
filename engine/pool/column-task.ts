/**
 * Column work as pool tasks: what a worker runs for the host over whole
 * columns (typed arrays in, typed arrays out), so that a node's main thread
 * never spends a long synchronous stretch on them.
 *
 * - `distinct-keys`: engine/psi distinctKeys over a key column;
 * - `shuffled-order`: engine/psi shuffledOrder(n) (the randomness drawn on
 *   the worker, from node:crypto);
 * - `pair-counts`: engine/columns pairCounts (COUNT(*) per key and group);
 * - `int64-group-stats`: engine/columns int64GroupStats (COUNT(*), and
 *   COUNT / SUM / SUM of squares per key of int64 columns).
 *
 * A task's result is one buffer (see engine/pool/tasks.ts): several arrays
 * are packed by {@link packArrays} (8-byte aligned, so the host reads them
 * as typed-array views without a copy) and read back by {@link unpackArrays}.
 * Errors cross as SerializedError and are rebuilt by the pool.
 */
import { InvalidArgumentError } from "../errors.js";
import { int64GroupStats, pairCounts } from "../columns/group.js";
import { distinctKeys, shuffledOrder } from "../psi/distinct.js";

export const ColumnTaskOp = {
  DistinctKeys: "distinct-keys",
  ShuffledOrder: "shuffled-order",
  PairCounts: "pair-counts",
  Int64GroupStats: "int64-group-stats",
} as const;
export type ColumnTaskOp = (typeof ColumnTaskOp)[keyof typeof ColumnTaskOp];

/** distinctKeys over a key column (data, offsets, valid as KeyColumn): distinct data, distinct offsets, rowToDistinct. */
export interface DistinctKeysTask {
  readonly op: typeof ColumnTaskOp.DistinctKeys;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly valid: Uint8Array;
  readonly length: number;
}
/** shuffledOrder(n): the permutation. */
export interface ShuffledOrderTask {
  readonly op: typeof ColumnTaskOp.ShuffledOrder;
  readonly n: number;
}
/** pairCounts: offsets, groups, rows. */
export interface PairCountsTask {
  readonly op: typeof ColumnTaskOp.PairCounts;
  readonly keyOf: Int32Array;
  readonly groupOf: Uint32Array;
  readonly keys: number;
  readonly groups: number;
}
/** int64GroupStats: rows, then per column n, s and (when squares) q. */
export interface Int64GroupStatsTask {
  readonly op: typeof ColumnTaskOp.Int64GroupStats;
  readonly keyOf: Int32Array;
  readonly keys: number;
  readonly length: number;
  readonly columns: readonly { readonly values: BigInt64Array; readonly valid: Uint8Array; readonly squares: boolean }[];
}
export type ColumnTask = DistinctKeysTask | ShuffledOrderTask | PairCountsTask | Int64GroupStatsTask;

const COLUMN_OPS: ReadonlySet<string> = new Set(Object.values(ColumnTaskOp));

export function isColumnTask(task: { readonly op: string }): task is ColumnTask {
  return COLUMN_OPS.has(task.op);
}

type Arr = Uint8Array | Uint32Array | Int32Array | BigInt64Array;

/** Typed arrays as one buffer: [u32 count][u32 byte length]…, each array at an 8-byte aligned offset. */
export function packArrays(arrays: readonly Arr[]): Uint8Array {
  const align = (x: number): number => (x + 7) & ~7;
  let size = align(4 + 4 * arrays.length);
  for (const a of arrays) size = align(size + a.byteLength);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, arrays.length, true);
  let off = align(4 + 4 * arrays.length);
  arrays.forEach((a, i) => {
    dv.setUint32(4 + 4 * i, a.byteLength, true);
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off = align(off + a.byteLength);
  });
  return out;
}

/** The byte views of {@link packArrays}' arrays (no copy when `bytes` starts 8-byte aligned, as a transferred result does). */
export function unpackArrays(bytes: Uint8Array): Uint8Array[] {
  const b = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const align = (x: number): number => (x + 7) & ~7;
  const count = b.length >= 4 ? dv.getUint32(0, true) : 0;
  let off = align(4 + 4 * count);
  if (b.length < off) throw new InvalidArgumentError("packed arrays: truncated");
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const len = dv.getUint32(4 + 4 * i, true);
    if (off + len > b.length) throw new InvalidArgumentError("packed arrays: truncated");
    out.push(b.subarray(off, off + len));
    off = align(off + len);
  }
  return out;
}

export function executeColumnTask(task: ColumnTask): Uint8Array {
  switch (task.op) {
    case ColumnTaskOp.DistinctKeys: {
      const d = distinctKeys({ data: task.data, offsets: task.offsets, valid: task.valid, length: task.length });
      return packArrays([d.distinct.data, d.distinct.offsets, d.rowToDistinct]);
    }
    case ColumnTaskOp.ShuffledOrder: {
      const o = shuffledOrder(task.n);
      return new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
    }
    case ColumnTaskOp.PairCounts: {
      const p = pairCounts(task.keyOf, task.groupOf, task.keys, task.groups);
      return packArrays([p.offsets, p.groups, p.rows]);
    }
    case ColumnTaskOp.Int64GroupStats: {
      const s = int64GroupStats(task.keyOf, task.keys, task.columns, task.length);
      return packArrays([s.rows, ...s.columns.flatMap((c) => (c.q ? [c.n, c.s, c.q] : [c.n, c.s]))]);
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown column task ${String((op as { op: unknown }).op)}`);
    }
  }
}
