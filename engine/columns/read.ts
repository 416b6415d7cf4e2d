/**
 * Reading any supported file as Arrow record batches, streamed batch by batch.
 *
 * The format is chosen by extension: `.arrow`, `.feather`, `.ipc` (Arrow IPC
 * file or stream, told apart by the "ARROW1" magic), `.arrows` (IPC stream),
 * `.csv`, `.parquet`. Memory stays flat as files grow: IPC holds one stored
 * batch at a time, CSV one batch of `batchSize` rows, Parquet one row group.
 */
import { DataType, Float64, Int64, Table, vectorFromArray, type Vector } from "apache-arrow";
import type { RecordBatch } from "apache-arrow";
import { InvalidArgumentError } from "../errors.js";
import { openCsvSource, type CsvColumnType } from "./csv.js";
import { FileFormat, formatFromPath } from "./files.js";
import { openIpcSource } from "./ipc.js";
import { openParquetSource } from "./parquet.js";
import type { BatchSource } from "./source.js";

/** Default number of rows per batch for CSV and Parquet. */
export const DEFAULT_BATCH_SIZE = 65_536;

/** Options of the readers. */
export interface ReadOptions {
  /**
   * Rows per batch for CSV and Parquet (default 65,536). Arrow IPC batches
   * are yielded as stored. A CSV batch is cut earlier if a string column
   * reaches 512 MiB.
   */
  readonly batchSize?: number;
  /**
   * CSV only: parse the named columns as "int64" or "float64" instead of
   * Utf8 (the default: every CSV column is text unless named here or
   * readTable's `inferTypes` is set). A field that is not a number is a
   * MalformedCsvError naming the line and the column (never the value); an
   * empty field is null.
   */
  readonly columnTypes?: Readonly<Record<string, CsvColumnType>>;
  /** Read only these columns, in this order (all columns by default). */
  readonly columns?: readonly string[];
  /** CSV only (other formats ignore it): the field delimiter, one character (default ","). */
  readonly delimiter?: string;
}

/** Options of {@link readTable}: those of the readers, and type inference. */
export interface ReadTableOptions extends ReadOptions {
  /**
   * CSV only (other formats carry their types): give each column not named
   * in `columnTypes` the narrowest type that holds every one of its
   * non-empty fields — Int64 when each is a canonical integer ("0", "-12";
   * not "007", "+5" or " 5", so an inferred key column gives the same join
   * keys and writes back the same text), else Float64 when each is a
   * decimal number ("2.50", "-1e3", ".5"), else Utf8 as read; a field with
   * a leading zero ("007", a code or a phone number) keeps its column text. A column with
   * no non-empty field stays Utf8. The file is read once, streamed; the
   * inference runs over the whole table, so a value late in the file never
   * fails it. Default false: CSV columns are text (Utf8), byte for byte,
   * except those named in `columnTypes`.
   */
  readonly inferTypes?: boolean;
}

const READ_OPTIONS = ["batchSize", "columnTypes", "columns", "delimiter"] as const;
const READ_TABLE_OPTIONS = [...READ_OPTIONS, "inferTypes"] as const;

function checkOptions(options: ReadOptions, names: readonly string[] = READ_OPTIONS): number {
  if (typeof options !== "object" || options === null) throw new InvalidArgumentError("read options must be an object");
  for (const key of Object.keys(options)) {
    if (!names.includes(key)) throw new InvalidArgumentError(`unknown read option "${key}"; valid options: ${names.join(", ")}`);
  }
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError("batchSize must be a positive integer");
  }
  if (options.columns !== undefined && !Array.isArray(options.columns)) {
    throw new InvalidArgumentError("columns must be an array of column names");
  }
  return batchSize;
}

/**
 * Opens a file and returns its schema (known before any batch is read) and a
 * generator of its record batches. Abandoning the generator early
 * (`return()`, or `break` in a for-await loop) closes the file.
 *
 * @throws UnsupportedFormatError for an unknown extension.
 * @throws UnreadableFileError when the file cannot be opened (naming its base name and the OS code,
 *   e.g. ENOENT) or is not a valid file of its format.
 * @throws MalformedCsvError for a CSV that cannot be parsed (with the line number).
 * @throws MissingColumnError when `columns` or `columnTypes` names an absent column.
 */
export async function openBatches(path: string, options: ReadOptions = {}): Promise<BatchSource> {
  const batchSize = checkOptions(options);
  const format = formatFromPath(path);
  if (options.columnTypes !== undefined && format !== FileFormat.Csv) {
    throw new InvalidArgumentError("columnTypes applies to CSV files only");
  }
  switch (format) {
    case FileFormat.ArrowIpc:
    case FileFormat.ArrowStream:
      return openIpcSource(path, options.columns);
    case FileFormat.Csv:
      return openCsvSource(path, { batchSize, columnTypes: options.columnTypes, columns: options.columns, delimiter: options.delimiter });
    case FileFormat.Parquet:
      return openParquetSource(path, { batchSize, columns: options.columns });
  }
}

/**
 * Streams the record batches of an Arrow IPC, CSV or Parquet file (format by
 * extension). Errors of {@link openBatches} surface on the first `next()`.
 *
 * @example
 *   for await (const batch of readBatches("buyers.csv", { batchSize: 100_000 })) {
 *     const keys = keysFromBatch(batch, ["email"], { caseFold: true });
 *   }
 */
export async function* readBatches(path: string, options: ReadOptions = {}): AsyncGenerator<RecordBatch> {
  const source = await openBatches(path, options);
  yield* source.batches;
}

/**
 * Reads a whole file into an Arrow Table (a convenience over
 * {@link openBatches}; the table keeps the file's schema even with no rows).
 *
 * CSV columns are text (Utf8) unless `columnTypes` names them or
 * `inferTypes: true` asks for Int64 / Float64 where every field is a number
 * (see {@link ReadTableOptions.inferTypes}); Arrow IPC and Parquet keep
 * their stored types. Aggregating a column needs it numeric.
 *
 * @example
 *   const spend = await readTable("spend.csv", { inferTypes: true });            // monthly_spend: Float64
 *   const same = await readTable("spend.csv", { columnTypes: { monthly_spend: "float64" } });
 * @throws InvalidArgumentError for an unknown option (naming it and the valid ones).
 */
export async function readTable(path: string, options: ReadTableOptions = {}): Promise<Table> {
  checkOptions(options, READ_TABLE_OPTIONS);
  const { inferTypes, ...read } = options;
  const source = await openBatches(path, read);
  const batches: RecordBatch[] = [];
  for await (const batch of source.batches) batches.push(batch);
  const table = new Table(source.schema, batches);
  return inferTypes === true && formatFromPath(path) === FileFormat.Csv ? withInferredTypes(table, Object.keys(options.columnTypes ?? {})) : table;
}

const CANONICAL_INT = /^-?(?:0|[1-9]\d*)$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const LEADING_ZERO = /^[+-]?0\d/;
const INT64_MAX = 2n ** 63n - 1n;

function isInt64Text(s: string): boolean {
  if (!CANONICAL_INT.test(s)) return false;
  if (s.length <= 18) return true;
  const v = BigInt(s);
  return v <= INT64_MAX && v >= -INT64_MAX - 1n;
}

/** The type every non-null value of a text column fits (see ReadTableOptions.inferTypes), or null to keep it text. */
function inferredType(v: Vector): "int64" | "float64" | null {
  let int = true;
  let any = false;
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v.get(i);
    if (typeof x !== "string") continue;
    any = true;
    if (int && isInt64Text(x)) continue;
    int = false;
    // A leading zero ("007", "0123.5": codes, phone numbers) keeps the column text.
    if (!DECIMAL.test(x) || LEADING_ZERO.test(x)) return null;
  }
  return !any ? null : int ? "int64" : "float64";
}

/** The table with each inferable Utf8 column (not among `declared`) converted. */
function withInferredTypes(table: Table, declared: readonly string[]): Table {
  if (table.numRows === 0) return table;
  let changed = false;
  const columns: Record<string, Vector> = {};
  for (const field of table.schema.fields) {
    const v = table.getChild(field.name) as Vector;
    const type = DataType.isUtf8(field.type) && !declared.includes(field.name) ? inferredType(v) : null;
    if (type === null) {
      columns[field.name] = v;
      continue;
    }
    changed = true;
    const values = Array.from({ length: v.length }, (_, i) => {
      const x: unknown = v.get(i);
      return typeof x !== "string" ? null : type === "int64" ? BigInt(x) : Number(x);
    });
    columns[field.name] = type === "int64" ? vectorFromArray(values as (bigint | null)[], new Int64()) : vectorFromArray(values as (number | null)[], new Float64());
  }
  return changed ? new Table(columns) : table;
}
