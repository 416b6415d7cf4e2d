/**
 * Column concatenation on Arrow tables: `concatTablesHorizontally` puts two
 * tables of the same row count side by side without copying column data.
 */
import { Data, DataType, Dictionary, Field, RecordBatch, Schema, Struct, Table, makeData } from "apache-arrow";
import { InvalidArgumentError } from "../errors.js";
import { allNulls } from "./take.js";

/**
 * The columns of `left` then those of `right`, side by side, as one table
 * (column data is shared, not copied; batches are re-cut where the two
 * tables' batch boundaries differ). Schema metadata is merged, `left`
 * winning on a key present in both. Dictionary ids of `right` that clash
 * with one of `left` are renumbered so the result can be written as IPC.
 * @throws InvalidArgumentError when the row counts differ or a column name appears in both tables.
 */
export function concatTablesHorizontally(left: Table, right: Table): Table {
  if (left.numRows !== right.numRows) {
    throw new InvalidArgumentError(`cannot put a table of ${right.numRows} rows beside one of ${left.numRows} rows`);
  }
  const names = new Set(left.schema.fields.map((f) => f.name));
  for (const f of right.schema.fields) {
    if (names.has(f.name)) throw new InvalidArgumentError(`column "${f.name}" is in both tables`);
  }

  // Renumber clashing dictionary ids on the right.
  const leftIds = new Set<number>();
  for (const f of left.schema.fields) if (DataType.isDictionary(f.type)) leftIds.add(f.type.id);
  let nextId = Math.max(-1, ...leftIds, ...right.schema.fields.map((f) => (DataType.isDictionary(f.type) ? f.type.id : -1))) + 1;
  const rightTypes = right.schema.fields.map((f) => {
    const t = f.type;
    if (!DataType.isDictionary(t) || !leftIds.has(t.id)) return t;
    return new Dictionary(t.dictionary, t.indices, nextId++, t.isOrdered);
  });
  const rightFields = right.schema.fields.map((f, c) => (rightTypes[c] === f.type ? f : new Field(f.name, rightTypes[c] as DataType, f.nullable, f.metadata)));

  const fields = [...left.schema.fields, ...rightFields];
  const metadata = new Map([...right.schema.metadata, ...left.schema.metadata]);
  const schema = new Schema(fields, metadata);

  // Cut both tables at the union of their batch boundaries.
  const cuts = boundaries(left, right);
  const batches: RecordBatch[] = [];
  for (let k = 0; k + 1 < cuts.length; k++) {
    const from = cuts[k] ?? 0;
    const to = cuts[k + 1] ?? 0;
    const l = sliceColumns(left, from, to);
    const r = sliceColumns(right, from, to).map((d, c) => (rightTypes[c] === d.type ? d : d.clone(rightTypes[c] as DataType)));
    batches.push(new RecordBatch(schema, makeData({ type: new Struct(fields), length: to - from, nullCount: 0, children: [...l, ...r] })));
  }
  if (batches.length === 0) {
    const empty = fields.map((f) => allNulls(f.type, 0));
    batches.push(new RecordBatch(schema, makeData({ type: new Struct(fields), length: 0, nullCount: 0, children: empty })));
  }
  return new Table(schema, batches);
}

/** Sorted, distinct row numbers where a batch of either table starts or ends (0 and numRows included). */
function boundaries(a: Table, b: Table): number[] {
  const set = new Set<number>([0, a.numRows]);
  for (const t of [a, b]) {
    let s = 0;
    for (const d of t.data) {
      s += d.length;
      set.add(s);
    }
  }
  return [...set].sort((x, y) => x - y);
}

/** The columns of rows [from, to) of a table, as Data slices (zero-copy) of the one batch that holds them. */
function sliceColumns(t: Table, from: number, to: number): Data[] {
  let s = 0;
  for (const d of t.data) {
    if (from >= s && to <= s + d.length && (d.length > 0 || to === from)) {
      return d.children.map((child) => child.slice(from - s, to - from));
    }
    s += d.length;
  }
  if (from === to) return t.schema.fields.map((f) => allNulls(f.type, 0));
  throw new InvalidArgumentError(`rows ${from} to ${to} span batches`);
}
