/**
 * Parquet out (hyparquet-writer): a table's columns as Parquet columns,
 * Snappy-compressed, one row group per 65,536 rows (hyparquet-writer's
 * default), nulls kept.
 *
 * Types: Utf8 -> STRING; Bool -> BOOLEAN; Int8/16/32 and Uint8/16 -> INT32;
 * Int64 (and Uint32) -> INT64; Float16/32/64 -> DOUBLE; dates and timestamps
 * -> TIMESTAMP (milliseconds); Binary -> BYTE_ARRAY. Other types (nested,
 * decimals, dictionaries of other than strings) are refused. The file is built
 * in memory and then written: it suits result tables (the engine's outputs),
 * not tables larger than memory.
 */
import { DataType, Table, type Field, type RecordBatch, type Vector } from "apache-arrow";
import { parquetWriteBuffer, type BasicType, type ColumnSource } from "hyparquet-writer";
import { UnwritableFileError, UnsupportedTypeError } from "../errors.js";
import { closeAfterWrite, closeQuietly, describeFile, openForWrite } from "./files.js";
import { iterateBatches } from "./ipc.js";
import type { BatchInput } from "./source.js";

/** The Parquet type a column is written as, and how one value is converted; undefined for a type not written. */
function plan(field: Field): { type: BasicType; value: (x: unknown) => unknown } | undefined {
  const t = field.type;
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t) || (DataType.isDictionary(t) && (DataType.isUtf8(t.dictionary) || DataType.isLargeUtf8(t.dictionary)))) {
    return { type: "STRING", value: (x) => String(x) };
  }
  if (DataType.isBool(t)) return { type: "BOOLEAN", value: (x) => Boolean(x) };
  if (DataType.isInt(t)) {
    if (t.bitWidth === 64 || (t.bitWidth === 32 && !t.isSigned)) return { type: "INT64", value: (x) => BigInt(x as bigint | number) };
    return { type: "INT32", value: (x) => Number(x) };
  }
  if (DataType.isFloat(t)) return { type: "DOUBLE", value: (x) => Number(x) };
  if (DataType.isDate(t) || DataType.isTimestamp(t)) return { type: "TIMESTAMP", value: (x) => (x instanceof Date ? x : new Date(Number(x))) };
  if (DataType.isBinary(t)) return { type: "BYTE_ARRAY", value: (x) => x };
  return undefined;
}

/** One column's values (nulls as null) in the form hyparquet-writer takes. */
function columnValues(vectors: readonly Vector[], convert: (x: unknown) => unknown): unknown[] {
  const out: unknown[] = [];
  for (const v of vectors) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v.get(i);
      out.push(x === null || x === undefined ? null : convert(x));
    }
  }
  return out;
}

/**
 * Writes a table (or a sequence of record batches) as a Parquet file, mode
 * 0600 like every output of the engine.
 *
 * @throws UnsupportedTypeError for a column type Parquet output does not support.
 * @throws UnreadableFileError when the file cannot be written.
 */
export async function writeParquet(path: string, input: Table | BatchInput): Promise<void> {
  const batches: RecordBatch[] = [];
  for await (const b of iterateBatches(input)) batches.push(b);
  const schema = input instanceof Table ? input.schema : batches[0]?.schema;
  if (schema === undefined) throw new UnsupportedTypeError("nothing to write: no record batches and no schema");
  const columnData: ColumnSource[] = schema.fields.map((field, c) => {
    const p = plan(field);
    if (p === undefined) throw new UnsupportedTypeError(`column "${field.name}" has type ${String(field.type)}, which Parquet output does not support`);
    const vectors = batches.map((b) => b.getChildAt(c) as Vector);
    return { name: field.name, type: p.type, nullable: true, data: columnValues(vectors, p.value) as ColumnSource["data"] };
  });
  const bytes = parquetWriteBuffer({ columnData });
  const handle = await openForWrite(path);
  try {
    await handle.writeFile(new Uint8Array(bytes));
  } catch (err) {
    await closeQuietly(handle);
    throw new UnwritableFileError(`cannot write ${describeFile(path)}`, { cause: err });
  }
  await closeAfterWrite(handle, path);
}
