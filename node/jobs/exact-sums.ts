/**
 * Exact sums in result tables: the runners' tables carry sums as Float64,
 * exact only to 2^53; at scale 0 the protocols know every sum exactly
 * (bigint), and a buyer's file should say so.
 */
import { Int64, Table, vectorFromArray, type Vector } from "apache-arrow";
import type { AggregateSpec } from "../../protocols/index.js";

const LO = -(2n ** 63n);
const HI = 2n ** 63n - 1n;

/**
 * The table with each `sum_<c>` column replaced by the exact sums
 * `sumsOf(c)` (one per row, null where there is none) as Int64 when every one
 * fits in 64 bits; columns that do not fit, and every other column, as they are.
 */
export function withExactSums(table: Table, aggregates: readonly AggregateSpec[], sumsOf: (column: string) => readonly (bigint | null)[]): Table {
  const replace = new Map<string, string>();
  for (const a of aggregates) if (a.fn === "sum") replace.set(`sum_${a.column}`, a.column);
  if (replace.size === 0) return table;
  const cols: Record<string, Vector> = {};
  for (const field of table.schema.fields) {
    const column = replace.get(field.name);
    if (column !== undefined) {
      const sums = sumsOf(column);
      if (sums.every((s) => s === null || (s >= LO && s <= HI))) {
        cols[field.name] = vectorFromArray([...sums], new Int64());
        continue;
      }
    }
    cols[field.name] = table.getChild(field.name) as Vector;
  }
  return new Table(cols);
}
