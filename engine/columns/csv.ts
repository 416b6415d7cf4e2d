/**
 * CSV in and out, batch by batch.
 *
 * Reading streams the file through csv-parse: the first record is the
 * header (required; at most MAX_CSV_COLUMNS columns), and every `batchSize` records become one Arrow record
 * batch whose columns are built straight into flat buffers. Columns are Utf8
 * unless `columnTypes` asks for "int64" or "float64"; an empty field is null.
 * Errors name the line and column, never a field's value — csv-parse's own
 * messages quote values, so they are replaced, and not attached as causes.
 * Line numbers are physical lines (1 = the header; blank lines and line
 * breaks inside quoted fields count) of the line where the bad record ends.
 * Blank lines are skipped, except in a one-column file, where a blank line
 * is a null row (as `writeCsv` writes it).
 *
 * Writing emits a header and the rows of each batch in chunks of a few
 * thousand rows, quoting per RFC 4180 (fields containing a comma, a quote,
 * CR or LF are quoted, quotes doubled; records end with CRLF), nulls as
 * empty fields and empty strings as `""`.
 */
import { type FileHandle } from "node:fs/promises";
import { CsvError, parse } from "csv-parse";
import { DataType, RecordBatch, Schema, Field, Struct, Table, makeData, Utf8, Int64, Float64, type Data, type Vector } from "apache-arrow";
import {
  CsvProblem,
  InvalidArgumentError,
  MalformedCsvError,
  MissingColumnError,
  UmbraError,
  UnwritableFileError,
  UnsupportedTypeError,
} from "../errors.js";
import { Float64Builder, Int64Builder, Utf8Builder } from "./buffers.js";
import { closeAfterWrite, closeQuietly, describeFile, fileError, openForRead, openForWrite } from "./files.js";
import { iterateBatches } from "./ipc.js";
import type { BatchInput, BatchSource } from "./source.js";

/** How a CSV column is parsed. */
export const CsvColumnType = {
  String: "string",
  Int64: "int64",
  Float64: "float64",
} as const;
export type CsvColumnType = (typeof CsvColumnType)[keyof typeof CsvColumnType];

/** Options of the CSV reader (a subset of ReadOptions, resolved). */
export interface CsvReadOptions {
  readonly batchSize: number;
  readonly columnTypes?: Readonly<Record<string, CsvColumnType>> | undefined;
  readonly columns?: readonly string[] | undefined;
  /** The field delimiter: one character, not a quote or a line break (default ","). */
  readonly delimiter?: string | undefined;
}

/** The delimiter when none is given. */
export const DEFAULT_CSV_DELIMITER = ",";
/** Delimiters a header is checked for when a column is missing (a hint, never a guess the reader acts on). */
const OTHER_DELIMITERS = [";", "\t", "|", ","] as const;

/**
 * The delimiter: one character other than a quote, CR or LF.
 * @throws InvalidArgumentError for anything else.
 */
export function checkCsvDelimiter(delimiter: string | undefined): string {
  const d = delimiter ?? DEFAULT_CSV_DELIMITER;
  if ([...d].length !== 1 || d === '"' || d === "\r" || d === "\n") {
    throw new InvalidArgumentError('the CSV delimiter must be one character other than a quote or a line break (e.g. ";" or a tab)');
  }
  return d;
}

/**
 * The delimiter a header seems to use when it was read with another: a
 * header read as one column whose name holds `;`, a tab, `|` or `,`.
 */
export function suspectedDelimiter(header: readonly string[], used: string): string | undefined {
  if (header.length !== 1) return undefined;
  const name = header[0] ?? "";
  return OTHER_DELIMITERS.find((d) => d !== used && name.includes(d));
}

/** How a message shows a delimiter: a tab as "tab", anything else quoted. */
export function describeDelimiter(d: string): string {
  return d === "\t" ? "tab" : JSON.stringify(d);
}

/** The MissingColumnError of a CSV file: the columns found, and the delimiter its header seems to use. */
function missingCsvColumn(path: string, column: string, header: readonly string[], used: string): MissingColumnError {
  const other = suspectedDelimiter(header, used);
  return new MissingColumnError(
    column,
    describeFile(path),
    header,
    other === undefined ? undefined : { hint: `the header looks separated by ${describeDelimiter(other)}, not ${describeDelimiter(used)}`, delimiter: other },
  );
}

/** A batch is cut early when a string column holds this many bytes (Utf8 offsets are Int32). */
const MAX_BATCH_STRING_BYTES = 512 * 1024 * 1024;

/**
 * Cells a batch's builders reserve up front, all columns together: each
 * column starts with room for batchSize / columns rows at most and grows as
 * rows come, so a wide header (thousands of columns, few rows) does not
 * reserve columns × batchSize cells before the first row is read.
 */
const PREALLOCATED_CELLS = 1 << 20;

/** The most columns a CSV header may name (a dataset descriptor holds at most as many): a wider file is refused before a row is read. */
export const MAX_CSV_COLUMNS = 10_000;

type ColumnBuilder = Utf8Builder | Int64Builder | Float64Builder;

type ParsedRecord = string[];

/**
 * Blank lines are kept by the parser and skipped by the reader (unless the
 * file has one column), and the field count is checked by the reader, so
 * that record indices mean the same in the reader and in lineOfRecord.
 */
const PARSE_OPTIONS = { bom: true, skip_empty_lines: false, relax_column_count: true } as const;

function parseOptions(delimiter: string) {
  return { ...PARSE_OPTIONS, delimiter };
}

function isBlank(record: readonly string[]): boolean {
  return record.length === 1 && record[0] === "";
}

/**
 * The line on which record `index` (0 = the header) ends. Asking csv-parse
 * for `info` on every record costs more than the parse itself, so the
 * reader counts records and, only on an error path, re-parses the file up
 * to the offending record to recover its line number.
 */
async function lineOfRecord(path: string, index: number, delimiter: string): Promise<number | undefined> {
  return lineWhere(path, delimiter, (_record, n) => n === index);
}

/**
 * The physical line of data row `row` of a CSV file (0 = the first row after
 * the header, blank lines skipped as the reader skips them), for messages
 * about a value found in a table read from it; undefined when the file has
 * fewer rows or cannot be read.
 */
export async function csvLineOfRow(path: string, row: number, options: { delimiter?: string } = {}): Promise<number | undefined> {
  const delimiter = checkCsvDelimiter(options.delimiter);
  let header = -1; // record index of the header, once seen
  let fields = 0;
  let rows = 0;
  return lineWhere(path, delimiter, (record, n) => {
    if (header < 0) {
      if (isBlank(record)) return false;
      header = n;
      fields = record.length;
      return false;
    }
    if (fields > 1 && isBlank(record)) return false;
    return rows++ === row;
  });
}

/** The line on which the first record for which `stop(record, index)` holds ends. */
async function lineWhere(path: string, delimiter: string, stop: (record: string[], index: number) => boolean): Promise<number | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await openForRead(path);
    const stream = handle.createReadStream({ autoClose: false });
    const parser = parse({ ...parseOptions(delimiter), info: true });
    stream.on("error", (err) => parser.destroy(err));
    stream.pipe(parser);
    let n = 0;
    let line: number | undefined;
    try {
      for await (const r of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
        if (stop(r.record, n++)) {
          line = r.info.lines;
          break;
        }
      }
    } finally {
      stream.unpipe(parser);
      stream.destroy();
      parser.destroy();
    }
    return line;
  } catch {
    return undefined;
  } finally {
    if (handle !== undefined) await closeQuietly(handle);
  }
}

/** Maps a csv-parse or stream error to a typed error without quoting input. */
function csvError(path: string, err: unknown, fieldCount: number | undefined): UmbraError {
  if (err instanceof UmbraError) return err;
  if (err instanceof CsvError) {
    const line = typeof err.lines === "number" ? err.lines : undefined;
    let message: string;
    switch (err.code) {
      case "CSV_QUOTE_NOT_CLOSED":
        message = "unterminated quoted field";
        break;
      case "CSV_RECORD_INCONSISTENT_FIELDS_LENGTH":
      case "CSV_RECORD_INCONSISTENT_COLUMNS": {
        const record: unknown = (err as unknown as { record?: unknown }).record;
        const got = Array.isArray(record) ? record.length : undefined;
        message = fieldCount !== undefined && got !== undefined
          ? `expected ${fieldCount} fields, found ${got}`
          : "wrong number of fields";
        break;
      }
      case "CSV_INVALID_CLOSING_QUOTE":
      case "CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE":
        message = "unexpected character after a closing quote";
        break;
      case "INVALID_OPENING_QUOTE":
        message = "quote inside an unquoted field";
        break;
      case "CSV_MAX_RECORD_SIZE":
        message = "record too large";
        break;
      default:
        message = `cannot parse record (${err.code})`;
    }
    // No cause: csv-parse errors carry the offending record and field values.
    return new MalformedCsvError(`${describeFile(path)}: ${message}`, line);
  }
  if (typeof err === "object" && err !== null && "code" in err) return fileError(path, "read", err);
  return new MalformedCsvError(`${describeFile(path)}: cannot parse`);
}

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const SPECIAL_FLOAT_RE = /^[+-]?(?:inf|infinity|nan)$/i;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function trimIfPadded(s: string): string {
  const n = s.length;
  return n > 0 && (s.charCodeAt(0) <= 32 || s.charCodeAt(n - 1) <= 32) ? s.trim() : s;
}

/** Appends a field to an int64 builder; false when it is not an integer in range. */
function appendInt64(b: Int64Builder, field: string): boolean {
  const s = trimIfPadded(field);
  if (s.length === 0) {
    b.appendNull();
    return true;
  }
  if (!INT_RE.test(s)) return false;
  const digits = s.charCodeAt(0) === 43 || s.charCodeAt(0) === 45 ? s.length - 1 : s.length;
  if (digits <= 15) {
    b.appendSafeInteger(Number(s));
    return true;
  }
  const v = BigInt(s);
  if (v < INT64_MIN || v > INT64_MAX) return false;
  b.appendBigInt(v);
  return true;
}

/** Appends a field to a float64 builder; false when it is not a number. */
function appendFloat64(b: Float64Builder, field: string): boolean {
  const s = trimIfPadded(field);
  if (s.length === 0) {
    b.append(null);
    return true;
  }
  if (FLOAT_RE.test(s)) {
    b.append(Number(s));
    return true;
  }
  if (SPECIAL_FLOAT_RE.test(s)) {
    const lower = s.toLowerCase();
    b.append(lower.includes("nan") ? Number.NaN : lower.startsWith("-") ? -Infinity : Infinity);
    return true;
  }
  return false;
}

/**
 * Opens a CSV file: reads its header, and returns the schema and a generator
 * of record batches of at most `batchSize` rows.
 *
 * @throws UnreadableFileError when the file cannot be opened or read.
 * @throws MalformedCsvError (with the line number) for a missing header, a duplicate column name,
 *   an unterminated quote, a record with the wrong number of fields, or a field of an int64/float64
 *   column that is not a number.
 * @throws MissingColumnError when `columnTypes` or `columns` names a column the header lacks.
 */
export async function openCsvSource(path: string, options: CsvReadOptions): Promise<BatchSource> {
  const { batchSize } = options;
  const delimiter = checkCsvDelimiter(options.delimiter);
  const handle = await openForRead(path);
  const stream = handle.createReadStream({ autoClose: true });
  const parser = parse(parseOptions(delimiter));
  stream.on("error", (err) => parser.destroy(err));
  stream.pipe(parser);
  const records = parser[Symbol.asyncIterator]() as AsyncIterator<ParsedRecord>;
  const release = async (): Promise<void> => {
    stream.unpipe(parser);
    stream.destroy();
    parser.destroy();
    await closeQuietly(handle);
  };

  let header: string[];
  let selected: number[];
  let kinds: CsvColumnType[];
  let schema: Schema;
  let recordIndexStart = 0;
  try {
    let first = await records.next();
    let headerIndex = 0;
    while (first.done !== true && isBlank(first.value)) {
      first = await records.next();
      headerIndex++;
    }
    if (first.done === true) throw new MalformedCsvError(`${describeFile(path)}: missing header row`, 1);
    header = first.value;
    if (header.length > MAX_CSV_COLUMNS) {
      const line = await lineOfRecord(path, headerIndex, delimiter);
      throw new MalformedCsvError(`${describeFile(path)}: the header names ${header.length} columns, more than ${MAX_CSV_COLUMNS}`, line);
    }
    const seen = new Map<string, number>();
    for (let i = 0; i < header.length; i++) {
      const name = header[i] ?? "";
      const prev = seen.get(name);
      if (prev !== undefined) {
        const line = await lineOfRecord(path, headerIndex, delimiter);
        throw new MalformedCsvError(`${describeFile(path)}: duplicate column name in header (columns ${prev + 1} and ${i + 1})`, line);
      }
      seen.set(name, i);
    }
    const types = options.columnTypes ?? {};
    for (const [name, type] of Object.entries(types)) {
      if (!seen.has(name)) throw missingCsvColumn(path, name, header, delimiter);
      if (type !== "string" && type !== "int64" && type !== "float64") {
        throw new InvalidArgumentError(`columnTypes["${name}"]: unknown type (expected "string", "int64" or "float64")`);
      }
    }
    if (options.columns !== undefined) {
      selected = options.columns.map((name) => {
        const i = seen.get(name);
        if (i === undefined) throw missingCsvColumn(path, name, header, delimiter);
        return i;
      });
    } else {
      selected = header.map((_, i) => i);
    }
    kinds = selected.map((i) => types[header[i] ?? ""] ?? "string");
    recordIndexStart = headerIndex;
    schema = new Schema(
      selected.map((i, j) => {
        const kind = kinds[j];
        const type = kind === "int64" ? new Int64() : kind === "float64" ? new Float64() : new Utf8();
        return new Field(header[i] ?? "", type, true);
      }),
    );
  } catch (err) {
    await release();
    throw csvError(path, err, undefined);
  }

  const fieldCount = header.length;
  const names = header;
  async function* batches(): AsyncGenerator<RecordBatch> {
    const capacity = Math.max(1, Math.min(batchSize, Math.floor(PREALLOCATED_CELLS / Math.max(1, kinds.length))));
    const makeBuilders = (): ColumnBuilder[] =>
      kinds.map((k) => (k === "int64" ? new Int64Builder(capacity) : k === "float64" ? new Float64Builder(capacity) : new Utf8Builder(capacity)));
    let builders = makeBuilders();
    let rows = 0;
    let recordIndex = recordIndexStart; // index of the header record
    try {
      for (;;) {
        let next: IteratorResult<ParsedRecord>;
        try {
          next = await records.next();
        } catch (err) {
          throw csvError(path, err, fieldCount);
        }
        if (next.done === true) break;
        const record = next.value;
        recordIndex++;
        if (fieldCount > 1 && isBlank(record)) continue;
        if (record.length !== fieldCount) {
          const line = await lineOfRecord(path, recordIndex, delimiter);
          throw new MalformedCsvError(`${describeFile(path)}: expected ${fieldCount} fields, found ${record.length}`, line);
        }
        let cut = false;
        for (let j = 0; j < builders.length; j++) {
          const b = builders[j];
          const field = record[selected[j] ?? 0] ?? "";
          if (b === undefined) continue;
          if (b.kind === "string") {
            b.append(field.length === 0 ? null : field);
            if (b.byteLength > MAX_BATCH_STRING_BYTES) cut = true;
          } else if (b.kind === "int64" ? !appendInt64(b, field) : !appendFloat64(b, field)) {
            const column = names[selected[j] ?? 0] ?? "";
            const line = await lineOfRecord(path, recordIndex, delimiter);
            const decimals = b.kind === "int64" && field.includes(".") && FLOAT_RE.test(trimIfPadded(field));
            throw new MalformedCsvError(
              `${describeFile(path)}: column "${column}" is not a valid ${b.kind}${decimals ? " (it has decimals)" : ""}`,
              line,
              decimals ? { column, problem: CsvProblem.Decimals } : { column },
            );
          }
        }
        rows++;
        if (rows === batchSize || cut) {
          yield finishBatch(schema, builders, rows);
          builders = makeBuilders();
          rows = 0;
        }
      }
      if (rows > 0) yield finishBatch(schema, builders, rows);
    } finally {
      await release();
    }
  }
  return { schema, batches: batches() };
}

function finishBatch(schema: Schema, builders: readonly ColumnBuilder[], rows: number): RecordBatch {
  const children: Data[] = builders.map((b) => b.finish());
  const data = makeData({ type: new Struct(schema.fields), length: rows, nullCount: 0, children });
  return new RecordBatch(schema, data);
}

// ---------------------------------------------------------------- writing

/** Rows formatted per string chunk handed to the file. */
const ROWS_PER_CHUNK = 4096;

const NEEDS_QUOTE = /[",\r\n]/;

/** RFC 4180 field: quoted when it holds a comma, a quote, CR or LF (or is empty, to tell it from null). */
export function csvField(s: string): string {
  if (s.length === 0) return '""';
  return NEEDS_QUOTE.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

type CellFormatter = (vector: Vector, row: number) => string;

function formatterFor(field: Field): CellFormatter {
  const t = field.type;
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t) || DataType.isUtf8View(t) || DataType.isDictionary(t)) {
    if (DataType.isDictionary(t) && !(DataType.isUtf8(t.dictionary) || DataType.isLargeUtf8(t.dictionary) || DataType.isInt(t.dictionary))) {
      throw new UnsupportedTypeError(`column "${field.name}" has type ${String(t)}, which CSV output does not support`);
    }
    return (v, i) => {
      const x: unknown = v.get(i);
      return x === null || x === undefined ? "" : csvField(String(x));
    };
  }
  if (DataType.isInt(t) || DataType.isFloat(t) || DataType.isDecimal(t) || DataType.isBool(t)) {
    return (v, i) => {
      const x: unknown = v.get(i);
      return x === null || x === undefined ? "" : String(x);
    };
  }
  if (DataType.isTimestamp(t) || DataType.isDate(t)) {
    return (v, i) => {
      const x: unknown = v.get(i);
      if (x === null || x === undefined) return "";
      const ms = x instanceof Date ? x.getTime() : Number(x);
      return Number.isFinite(ms) ? new Date(ms).toISOString() : "";
    };
  }
  if (DataType.isBinary(t) || DataType.isLargeBinary(t) || DataType.isFixedSizeBinary(t)) {
    return (v, i) => {
      const x: unknown = v.get(i);
      return x instanceof Uint8Array ? Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64") : "";
    };
  }
  throw new UnsupportedTypeError(`column "${field.name}" has type ${String(t)}, which CSV output does not support`);
}

async function writeString(handle: FileHandle, path: string, s: string): Promise<void> {
  try {
    const buf = Buffer.from(s, "utf8");
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await handle.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
  } catch (err) {
    throw new UnwritableFileError(`cannot write ${describeFile(path)}`, { cause: err });
  }
}

/**
 * A table or a sequence of record batches as CSV text, in chunks: a header
 * row, then each batch's rows a chunk at a time, so no whole-file string is
 * ever built. Strings, integers, floats, decimals and booleans are written
 * as text, dates and timestamps as ISO 8601, binary as base64; nested types
 * are refused. {@link writeCsv} writes it to a file; a server streams it.
 *
 * @throws UnsupportedTypeError for a column type CSV cannot hold.
 * @throws InvalidArgumentError when batches disagree on their columns, or nothing is given.
 */
export async function* csvChunks(input: BatchInput): AsyncGenerator<string> {
  let schema: Schema | null = null;
  let formatters: CellFormatter[] = [];
  const start = (s: Schema): string => {
    schema = s;
    formatters = s.fields.map(formatterFor);
    return s.fields.map((f) => csvField(f.name)).join(",") + "\r\n";
  };
  if (input instanceof Table) yield start(input.schema);
  for await (const batch of iterateBatches(input)) {
    if (schema === null) yield start(batch.schema);
    const names = (schema as Schema | null)?.fields.map((f) => f.name) ?? [];
    const fields = batch.schema.fields;
    if (fields.length !== names.length || fields.some((f, i) => f.name !== names[i])) {
      throw new InvalidArgumentError("record batches to write do not all have the same columns");
    }
    const vectors = fields.map((_, i) => batch.getChildAt(i));
    const n = batch.numRows;
    for (let r0 = 0; r0 < n; r0 += ROWS_PER_CHUNK) {
      const r1 = Math.min(n, r0 + ROWS_PER_CHUNK);
      let chunk = "";
      for (let r = r0; r < r1; r++) {
        for (let c = 0; c < vectors.length; c++) {
          const v = vectors[c];
          const f = formatters[c];
          if (c > 0) chunk += ",";
          if (v !== null && v !== undefined && f !== undefined) chunk += f(v, r);
        }
        chunk += "\r\n";
      }
      yield chunk;
    }
  }
  if (schema === null) throw new InvalidArgumentError("nothing to write: no record batches and no schema");
}

/**
 * Writes a table or a sequence of record batches as CSV ({@link csvChunks}).
 *
 * @throws UnsupportedTypeError for a column type CSV cannot hold.
 * @throws UnwritableFileError when the file cannot be opened or written.
 * @throws InvalidArgumentError when batches disagree on their columns, or nothing is given.
 */
export async function writeCsv(path: string, input: BatchInput): Promise<void> {
  const handle = await openForWrite(path);
  try {
    for await (const chunk of csvChunks(input)) await writeString(handle, path, chunk);
  } catch (err) {
    await closeQuietly(handle);
    throw err;
  }
  await closeAfterWrite(handle, path);
}
