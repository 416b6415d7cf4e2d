/**
 * The runners' results as plain data: every result has `toJSON()`, so
 * `JSON.stringify(result)` never throws (a bigint would), and the aggregate
 * runners give their table as `rows` too.
 *
 * Numbers: a count, a size or an integer cell is a `number` when it is a
 * safe integer (|x| ≤ 2^53 − 1), which every count of a job is (joined rows
 * are at most 2^40). Only a value that can exceed 2^53 stays a `bigint`:
 * the exact totals in `result` (`JaResult`, `FaResult`: sums up to ±2^62)
 * and an Int64 cell beyond 2^53 in `rows`. In JSON such a bigint is its
 * decimal string. In JSON a result's table is an array of row objects
 * (under `table`, or only under `rows` when the result has both).
 */
import { DataType, type Table } from "apache-arrow";

/** One cell of a result row. */
export type Cell = string | number | boolean | bigint | null;
/** One row of a result table, by column name. */
export type Row = Readonly<Record<string, Cell>>;

/** A bigint as a number when it is a safe integer, else as it is. */
export function safeNumber(x: bigint): number | bigint {
  return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
}

function cellOf(x: unknown, type: DataType): Cell {
  if (x === null || x === undefined) return null;
  if (typeof x === "bigint") return safeNumber(x);
  if (typeof x === "string" || typeof x === "number" || typeof x === "boolean") return x;
  if (x instanceof Date) return x.toISOString();
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64");
  if (DataType.isTimestamp(type) || DataType.isDate(type)) return new Date(Number(x)).toISOString();
  return JSON.stringify(toJsonValue(x));
}

/** A table's rows as plain objects (integers as numbers where safe; binary as base64, dates as ISO 8601). */
export function tableRows(table: Table): Row[] {
  const fields = table.schema.fields;
  const vectors = fields.map((_, i) => table.getChildAt(i));
  const rows: Row[] = new Array<Row>(table.numRows);
  for (let r = 0; r < table.numRows; r++) {
    const row: Record<string, Cell> = {};
    fields.forEach((f, i) => (row[f.name] = cellOf(vectors[i]?.get(r), f.type)));
    rows[r] = row;
  }
  return rows;
}

/** Any value as JSON-safe data: bigint as a number (or its decimal string beyond 2^53), a table as its rows, typed arrays as arrays. */
export function toJsonValue(v: unknown): unknown {
  if (typeof v === "bigint") {
    const n = safeNumber(v);
    return typeof n === "bigint" ? n.toString() : n;
  }
  if (typeof v !== "object" || v === null) return typeof v === "function" ? undefined : v;
  if (ArrayBuffer.isView(v)) return v instanceof DataView ? undefined : Array.from(v as unknown as ArrayLike<number | bigint>, toJsonValue);
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (isTable(v)) return tableRows(v).map((row) => toJsonValue(row));
  if (v instanceof Date) return v.toISOString();
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const j = toJsonValue(x);
    if (j !== undefined) out[k] = j;
  }
  return out;
}

function isTable(v: object): v is Table {
  return "schema" in v && "numRows" in v && typeof (v as { getChildAt?: unknown }).getChildAt === "function";
}

/** A result that JSON.stringify turns into plain data (see the module comment). */
export interface JsonResult {
  /** The result as JSON-safe data: a table as its rows, bigints as numbers (or decimal strings beyond 2^53). */
  toJSON(): Record<string, unknown>;
}

/**
 * The result with a non-enumerable toJSON (spreading or comparing it sees
 * only the data). Its table is in the JSON as an array of rows, under
 * `table`, or only under `rows` when the result has both.
 */
export function withToJson<T extends object>(result: T): T & JsonResult {
  const json = (): Record<string, unknown> => {
    const data = { ...result } as Record<string, unknown>;
    if ("rows" in data) delete data["table"];
    return toJsonValue(data) as Record<string, unknown>;
  };
  Object.defineProperty(result, "toJSON", { value: json, enumerable: false });
  return result as T & JsonResult;
}
