/**
 * Parquet in, batch by batch (writing: parquet-write.ts).
 *
 * The file is read through an AsyncBuffer over a file handle, so hyparquet
 * fetches only the footer and then the byte ranges of the column chunks it
 * needs — never the whole file. Each row group (hyparquet's scan range) is
 * decoded one column at a time and cut into Arrow record batches of at most
 * `batchSize` rows; memory is bounded by one row group's decoded columns.
 *
 * Types: strings (UTF8/STRING, ENUM, JSON, UUID) -> Utf8; other byte arrays
 * -> Binary; BOOLEAN -> Bool; INT32 -> Int32 (UINT_32 -> Uint32);
 * INT64 -> Int64 (UINT_64 -> Uint64); FLOAT -> Float32; DOUBLE and DECIMAL ->
 * Float64; DATE -> DateDay; TIMESTAMP and INT96 -> TimestampMillisecond.
 * Nulls are kept. Nested and repeated columns are refused unless projected
 * away with `columns`.
 */
import { type FileHandle } from "node:fs/promises";
import {
  Binary,
  Bool,
  DateDay,
  Field,
  Float32,
  Float64,
  Int32,
  Int64,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint32,
  Uint64,
  Utf8,
  makeData,
  type Data,
  type DataType,
} from "apache-arrow";
import { parquetMetadataAsync, parquetScan, parquetSchema, type AsyncBuffer, type FileMetaData, type SchemaTree } from "hyparquet";
import { MissingColumnError, UmbraError, UnreadableFileError, UnsupportedTypeError } from "../errors.js";
import { ByteSink, Utf8Builder, ValidityBuilder, boolData } from "./buffers.js";
import { closeQuietly, describeFile, fileError, openForRead, readAt } from "./files.js";
import type { BatchSource } from "./source.js";

/** An AsyncBuffer that reads byte ranges from an open file handle. */
export function asyncBufferFromHandle(handle: FileHandle, byteLength: number): AsyncBuffer {
  return {
    byteLength,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = Math.min(end ?? byteLength, byteLength);
      const bytes = await readAt(handle, start, Math.max(0, stop - start));
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer as ArrayBuffer;
      return bytes.slice().buffer as ArrayBuffer;
    },
  };
}

/** How one Parquet column becomes one Arrow column. */
type Target = "utf8" | "binary" | "bool" | "int32" | "uint32" | "int64" | "uint64" | "float32" | "float64" | "date-day" | "timestamp-ms";

function arrowType(target: Target): DataType {
  switch (target) {
    case "utf8":
      return new Utf8();
    case "binary":
      return new Binary();
    case "bool":
      return new Bool();
    case "int32":
      return new Int32();
    case "uint32":
      return new Uint32();
    case "int64":
      return new Int64();
    case "uint64":
      return new Uint64();
    case "float32":
      return new Float32();
    case "float64":
      return new Float64();
    case "date-day":
      return new DateDay();
    case "timestamp-ms":
      return new TimestampMillisecond();
  }
}

/** Chooses the Arrow target of a top-level Parquet column, or refuses it. */
function targetOf(node: SchemaTree, source: string): Target {
  const e = node.element;
  const name = e.name;
  const refuse = (what: string): never => {
    throw new UnsupportedTypeError(`column "${name}" in ${source} has Parquet type ${what}, which is not supported`);
  };
  if (node.children.length > 0) return refuse("group (nested)");
  if (e.repetition_type === "REPEATED") return refuse("repeated");
  const ctype = e.converted_type;
  const ltype = e.logical_type;
  if (ctype === "DECIMAL" || ltype?.type === "DECIMAL") return "float64";
  switch (e.type) {
    case "BOOLEAN":
      return "bool";
    case "INT32":
      if (ctype === "DATE" || ltype?.type === "DATE") return "date-day";
      if (ctype === "UINT_32" || (ltype?.type === "INTEGER" && ltype.bitWidth === 32 && !ltype.isSigned)) return "uint32";
      return "int32";
    case "INT64":
      if (ctype === "TIMESTAMP_MILLIS" || ctype === "TIMESTAMP_MICROS" || ltype?.type === "TIMESTAMP") return "timestamp-ms";
      if (ctype === "UINT_64" || (ltype?.type === "INTEGER" && ltype.bitWidth === 64 && !ltype.isSigned)) return "uint64";
      return "int64";
    case "INT96":
      return "timestamp-ms";
    case "FLOAT":
      return "float32";
    case "DOUBLE":
      return "float64";
    case "BYTE_ARRAY":
      if (ctype === "UTF8" || ctype === "ENUM" || ctype === "JSON" || ltype?.type === "STRING" || ltype?.type === "ENUM" || ltype?.type === "JSON") {
        return "utf8";
      }
      if (ctype === "BSON" || ltype?.type === "BSON" || ltype?.type === "VARIANT") return refuse(String(ctype ?? ltype?.type));
      return "binary";
    case "FIXED_LEN_BYTE_ARRAY":
      if (ltype?.type === "UUID") return "utf8";
      if (ltype?.type === "FLOAT16") return "float32";
      if (ctype === "INTERVAL" || ltype?.type === "INTERVAL") return refuse("INTERVAL");
      return "binary";
    default:
      return refuse(String(e.type));
  }
}

const decoder = new TextDecoder();

function floorDiv(v: bigint, d: bigint): bigint {
  const q = v / d;
  return v < 0n && q * d !== v ? q - 1n : q;
}

/** Parsers that keep hyparquet's output close to Arrow's storage (day counts, epoch milliseconds, text). */
const PARSERS = {
  dateFromDays: (days: number): number => days,
  timestampFromMilliseconds: (ms: bigint): number => Number(ms),
  timestampFromMicroseconds: (us: bigint): number => Number(floorDiv(us, 1000n)),
  timestampFromNanoseconds: (ns: bigint): number => Number(floorDiv(ns, 1_000_000n)),
  jsonFromBytes: (bytes: Uint8Array): string => decoder.decode(bytes),
  uuidFromBytes: (bytes: Uint8Array): string => {
    const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  },
  geometryFromBytes: (bytes: Uint8Array): Uint8Array => bytes,
  geographyFromBytes: (bytes: Uint8Array): Uint8Array => bytes,
};

type Values = ArrayLike<unknown>;

/** Fixed-width numeric column from decoded values (typed array or array with nulls). */
function numericData<T extends DataType>(
  type: T,
  make: (n: number) => { [i: number]: number | bigint; length: number },
  values: Values,
  start: number,
  end: number,
  convert: (v: unknown) => number | bigint,
): Data<T> {
  const length = end - start;
  const out = make(length);
  const validity = new ValidityBuilder(length);
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (v === null || v === undefined) validity.set(i, false);
    else {
      out[i] = convert(v);
      validity.set(i, true);
    }
  }
  return makeData({ type, length, nullCount: validity.nullCount, nullBitmap: validity.finish(length), data: out } as never) as Data<T>;
}

const toNumber = (v: unknown): number => (typeof v === "number" ? v : Number(v));
const toBigInt = (v: unknown): bigint => (typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v))));

function binaryData(values: Values, start: number, end: number): Data<Binary> {
  const length = end - start;
  const sink = new ByteSink(length * 8);
  const offsets = new Int32Array(length + 1);
  const validity = new ValidityBuilder(length);
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (v instanceof Uint8Array) {
      sink.push(v);
      validity.set(i, true);
    } else if (typeof v === "string") {
      sink.push(Buffer.from(v, "utf8"));
      validity.set(i, true);
    } else validity.set(i, false);
    offsets[i + 1] = sink.len;
  }
  return makeData({ type: new Binary(), length, nullCount: validity.nullCount, nullBitmap: validity.finish(length), valueOffsets: offsets, data: sink.finish() });
}

function utf8Data(values: Values, start: number, end: number): Data<Utf8> {
  const b = new Utf8Builder(end - start);
  for (let i = start; i < end; i++) {
    const v = values[i];
    if (v === null || v === undefined) b.append(null);
    else if (typeof v === "string") b.append(v);
    else if (v instanceof Uint8Array) b.append(decoder.decode(v));
    else b.append(String(v));
  }
  return b.finish();
}

/** Converts decoded values [start, end) to Arrow Data of the target type. */
function columnData(target: Target, values: Values, start: number, end: number): Data {
  switch (target) {
    case "utf8":
      return utf8Data(values, start, end);
    case "binary":
      return binaryData(values, start, end);
    case "bool":
      return boolData(values, start, end);
    case "int32":
      return numericData(new Int32(), (n) => new Int32Array(n), values, start, end, toNumber);
    case "uint32":
      return numericData(new Uint32(), (n) => new Uint32Array(n), values, start, end, toNumber);
    case "date-day":
      return numericData(new DateDay(), (n) => new Int32Array(n), values, start, end, toNumber);
    case "float32":
      return numericData(new Float32(), (n) => new Float32Array(n), values, start, end, toNumber);
    case "float64":
      return numericData(new Float64(), (n) => new Float64Array(n), values, start, end, toNumber);
    case "int64":
      return numericData(new Int64(), (n) => new BigInt64Array(n), values, start, end, toBigInt);
    case "uint64":
      return numericData(new Uint64(), (n) => new BigUint64Array(n), values, start, end, toBigInt);
    case "timestamp-ms":
      return numericData(new TimestampMillisecond(), (n) => new BigInt64Array(n), values, start, end, toBigInt);
  }
}

function corrupt(path: string, err: unknown): UmbraError {
  if (err instanceof UmbraError) return err;
  return new UnreadableFileError(`${describeFile(path)} is not a valid Parquet file`, { cause: err });
}

/**
 * Opens a Parquet file: reads its footer and returns the Arrow schema and a
 * generator of record batches of at most `batchSize` rows, row group by row group.
 *
 * @throws UnreadableFileError when the file cannot be opened or is not valid Parquet.
 * @throws UnsupportedTypeError for a nested or unsupported column (project it away with `columns`).
 * @throws MissingColumnError when `columns` names an absent column.
 */
export async function openParquetSource(path: string, options: { batchSize: number; columns?: readonly string[] | undefined }): Promise<BatchSource> {
  const handle = await openForRead(path);
  let file: AsyncBuffer;
  let metadata: FileMetaData;
  let nodes: SchemaTree[];
  let targets: Target[];
  let schema: Schema;
  try {
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch (err) {
      throw fileError(path, "read", err);
    }
    if (size < 12) throw new UnreadableFileError(`${describeFile(path)} is not a valid Parquet file (too short)`);
    file = asyncBufferFromHandle(handle, size);
    const head = await readAt(handle, 0, 4);
    if (decoder.decode(head) !== "PAR1") throw new UnreadableFileError(`${describeFile(path)} is not a valid Parquet file (no PAR1 magic)`);
    metadata = await parquetMetadataAsync(file);
    const children = parquetSchema(metadata).children;
    const source = describeFile(path);
    if (options.columns !== undefined) {
      nodes = options.columns.map((name) => {
        const node = children.find((c) => c.element.name === name);
        if (node === undefined) throw new MissingColumnError(name, source, children.map((c) => c.element.name));
        return node;
      });
    } else nodes = children;
    targets = nodes.map((n) => targetOf(n, source));
    schema = new Schema(nodes.map((n, i) => new Field(n.element.name, arrowType(targets[i] ?? "binary"), n.element.repetition_type !== "REQUIRED")));
  } catch (err) {
    await closeQuietly(handle);
    throw corrupt(path, err);
  }

  const names = nodes.map((n) => n.element.name);
  const { batchSize } = options;
  async function* batches(): AsyncGenerator<RecordBatch> {
    try {
      let scan: Awaited<ReturnType<typeof parquetScan>>;
      try {
        scan = await parquetScan({ file, metadata, columns: names, utf8: false, parsers: PARSERS });
      } catch (err) {
        throw corrupt(path, err);
      }
      for (const range of scan.ranges) {
        const columns: Values[] = [];
        try {
          for (const column of names) {
            columns.push(await scan.readColumn({ column, rowStart: range.rowStart, rowEnd: range.rowEnd }));
          }
        } catch (err) {
          throw corrupt(path, err);
        }
        const rows = range.rowEnd - range.rowStart;
        for (let s = 0; s < rows; s += batchSize) {
          const e = Math.min(rows, s + batchSize);
          const children = columns.map((values, i) => {
            if (values.length < rows) throw new UnreadableFileError(`${describeFile(path)}: column "${names[i] ?? ""}" is shorter than its row group`);
            return columnData(targets[i] ?? "binary", values, s, e);
          });
          const data = makeData({ type: new Struct(schema.fields), length: e - s, nullCount: 0, children });
          yield new RecordBatch(schema, data);
        }
      }
    } finally {
      await closeQuietly(handle);
    }
  }
  return { schema, batches: batches() };
}
