/**
 * Shared shapes of the column layer: a source of record batches with its
 * schema known up front, the inputs the writers accept, and column
 * projection. Internal to engine/columns except for the exported types.
 */
import { RecordBatch, Schema, Struct, makeData, type Table } from "apache-arrow";
import { MissingColumnError } from "../errors.js";

/** A schema known before the first batch, and the batches themselves. */
export interface BatchSource {
  readonly schema: Schema;
  /** Yields each batch once; closing it early (`return()`) releases the file. */
  readonly batches: AsyncGenerator<RecordBatch>;
}

/** What the writers accept: a table, one batch, or batches from any (async) iterable. */
export type BatchInput = Table | RecordBatch | Iterable<RecordBatch> | AsyncIterable<RecordBatch>;

/**
 * The schema restricted to `columns`, in that order; `schema` itself when no
 * projection is asked for.
 * @throws MissingColumnError naming the first absent column.
 */
export function projectSchema(schema: Schema, columns: readonly string[] | undefined, source: string): Schema {
  if (columns === undefined) return schema;
  const fields = columns.map((name) => {
    const field = schema.fields.find((f) => f.name === name);
    if (field === undefined) throw new MissingColumnError(name, source, schema.fields.map((f) => f.name));
    return field;
  });
  return new Schema(fields, schema.metadata);
}

/** The batch's columns named by `projected` (a projection of the batch's schema). */
export function projectBatch(batch: RecordBatch, projected: Schema): RecordBatch {
  const children = projected.fields.map((f) => {
    const i = batch.schema.fields.findIndex((g) => g.name === f.name);
    const child = batch.data.children[i];
    if (child === undefined) throw new MissingColumnError(f.name, "record batch");
    return child;
  });
  const data = makeData({ type: new Struct(projected.fields), length: batch.numRows, nullCount: 0, children });
  return new RecordBatch(projected, data);
}
