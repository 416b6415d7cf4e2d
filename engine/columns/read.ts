/**
 * Reading any supported file as Arrow record batches, streamed batch by batch.
 *
 * The format is chosen by extension: `.arrow`, `.feather`, `.ipc` (Arrow IPC
 * file or stream, told apart by the "ARROW1" magic), `.arrows` (IPC stream),
 * `.csv`, `.parquet`. Memory stays flat as files grow: IPC holds one stored
 * batch at a time, CSV one batch of `batchSize` rows, Parquet one row group.
 */
import { Table } from "apache-arrow";
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
   * Utf8. A field that is not a number is a MalformedCsvError naming the line
   * and the column (never the value); an empty field is null.
   */
  readonly columnTypes?: Readonly<Record<string, CsvColumnType>>;
  /** Read only these columns, in this order (all columns by default). */
  readonly columns?: readonly string[];
  /** CSV only (other formats ignore it): the field delimiter, one character (default ","). */
  readonly delimiter?: string;
}

function checkOptions(options: ReadOptions): number {
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
 */
export async function readTable(path: string, options: ReadOptions = {}): Promise<Table> {
  const source = await openBatches(path, options);
  const batches: RecordBatch[] = [];
  for await (const batch of source.batches) batches.push(batch);
  return new Table(source.schema, batches);
}
