/**
 * What the local commands check in their inputs before the protocol runs, so
 * that a data problem is reported where it is and with what to do: the file,
 * the column, the line (CSV) or data row (Arrow, Parquet), and the flag that
 * changes it — never the value itself. Also the notes on what a run leaves
 * out (nulls, rows outside --categories, values rounded to --scale) and the
 * warnings on inputs that cannot match (no rows, a blank key column).
 */
import { basename } from "node:path";
import type { Table, Vector } from "apache-arrow";
import { csvLineOfRow, FileFormat, formatFromPath, readTable, type ReadOptions } from "../../engine/columns/index.js";
import { CsvProblem, MalformedCsvError, MissingColumnError } from "../../engine/errors.js";
import { HE_MAX_SCALE, scaledBound, ValueOutOfRangeError } from "../../engine/he/index.js";
import { fixedPoint } from "../../protocols/aggregate.js";
import type { KeyNormalise } from "../job-request.js";
import { KEY_SHAPE_SAMPLE_ROWS, keyShapeOf, shapeWarning } from "../key-shape.js";
import { count, withDelimiterHint } from "./args.js";
import type { Report } from "./report.js";

/** An input file as messages name it: its role ("buyer", "provider 2") and path; the CSV delimiter it is read with. */
export interface InputFile {
  readonly role: string;
  readonly path: string;
  readonly delimiter?: string | undefined;
}

/** `buyer file "b.csv"`. */
export function describeInput(f: InputFile): string {
  return `${f.role} file "${basename(f.path)}"`;
}

/** Where row `row` (0-based, of the data) is: "line N" of a CSV file, "data row N" (from 1) of another. */
export async function rowPlace(f: InputFile, row: number): Promise<string> {
  if (formatFromPath(f.path) === FileFormat.Csv) {
    const line = await csvLineOfRow(f.path, row, f.delimiter !== undefined ? { delimiter: f.delimiter } : {});
    if (line !== undefined) return `line ${line}`;
  }
  return `data row ${row + 1}`;
}

/**
 * A read error in the CLI's words: a missing column with the delimiter the
 * header seems to use (--delimiter), an integer column with decimals with
 * --scale; other errors as they are.
 */
export function explainReadError(err: unknown, f?: InputFile): unknown {
  if (err instanceof MissingColumnError && f !== undefined && err.source === `file "${basename(f.path)}"`) {
    return withDelimiterHint(new MissingColumnError(err.column, describeInput(f), err.found, err.delimiter !== undefined ? { delimiter: err.delimiter } : undefined), f.delimiter);
  }
  if (err instanceof MalformedCsvError && err.problem === CsvProblem.Decimals) {
    const text = err.message.replace(/^malformed CSV(?: at line \d+)?: /, "");
    return new MalformedCsvError(`${text}: give --scale N (the number of decimal digits to keep)`, err.line, { column: err.column ?? "", problem: CsvProblem.Decimals });
  }
  return withDelimiterHint(err, f?.delimiter);
}

/** readTable with the input's delimiter and its errors explained ({@link explainReadError}). */
export async function readInput(f: InputFile, options: ReadOptions = {}): Promise<Table> {
  try {
    return await readTable(f.path, { ...options, ...(f.delimiter !== undefined ? { delimiter: f.delimiter } : {}) });
  } catch (err) {
    throw explainReadError(err, f);
  }
}

/** How the aggregated values are bounded and scaled (the aggregate commands' --max-abs-value and --scale). */
export interface ValueRule {
  /** --max-abs-value as given (for messages), or undefined for the default. */
  readonly boundText: string | undefined;
  /** The bound's value (bigint: exact; number: a fraction). */
  readonly bound: bigint | number;
  readonly scale: number;
  /** CKKS: values as doubles, compared to the bound as they are (the scale unused). */
  readonly approximate: boolean;
}

/** What one aggregated column holds, as the notes report it. */
export interface ColumnScan {
  readonly nulls: number;
  /** Values with more decimal digits than --scale keeps (rounded half away from zero). */
  readonly rounded: number;
  /** The most decimal digits among the rounded values (up to HE_MAX_SCALE). */
  readonly digits: number;
}

/** The number of decimal digits of x, up to `max` (a double's decimal text is what the user wrote, to ~15 digits). */
function decimalDigits(x: number, max: number): number {
  for (let d = 0; d < max; d++) {
    const y = x * 10 ** d;
    if (Math.abs(y - Math.round(y)) <= 1e-9 * Math.max(1, Math.abs(y))) return d;
  }
  return max;
}

/**
 * Checks every value of an aggregated column against the bound, as the
 * protocols do (scaled to 10^-scale and rounded half away from zero), and
 * counts its nulls and the values --scale rounds.
 * @throws ValueOutOfRangeError naming the file, column, line or row, the bound and --max-abs-value.
 */
export async function scanValueColumn(table: Table, column: string, f: InputFile, rule: ValueRule): Promise<ColumnScan> {
  const vector = table.getChild(column) as Vector | null;
  if (vector === null) return { nulls: 0, rounded: 0, digits: 0 };
  const where = `column "${column}" of ${describeInput(f)}`;
  const boundText = rule.boundText ?? "2^40 (the default)";
  const fix = rule.boundText === undefined ? "give --max-abs-value X above every |value|, or fix the row" : "raise --max-abs-value or fix the row";
  const f10 = 10n ** BigInt(rule.scale);
  const V = rule.approximate ? 0n : scaledBound(rule.bound, rule.scale);
  const Vd = Number(rule.bound);
  let nulls = 0;
  let rounded = 0;
  let digits = 0;
  // A column without nulls as one typed array (Float64Array, BigInt64Array, ...): no per-row get().
  const dense = vector.nullCount === 0 ? (vector.toArray() as ArrayLike<unknown>) : null;
  for (let i = 0; i < vector.length; i++) {
    const v: unknown = dense !== null ? dense[i] : vector.get(i);
    if (v === null || v === undefined) {
      nulls++;
      continue;
    }
    let outside: boolean;
    if (typeof v === "bigint") outside = rule.approximate ? !(Math.abs(Number(v)) <= Vd) : v * f10 > V || -v * f10 > V;
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new ValueOutOfRangeError(`${where}, ${await rowPlace(f, i)}: a value is not a finite number (NaN or infinity); fix or filter the row`);
      if (rule.approximate) outside = !(Math.abs(v) <= Vd);
      else {
        const s = fixedPoint(v, Number(f10));
        outside = s > V || -s > V;
        if (!outside && !Number.isInteger(v * Number(f10))) {
          const d = decimalDigits(v, HE_MAX_SCALE + 1);
          if (d > rule.scale) {
            rounded++;
            if (d > digits) digits = d;
          }
        }
      }
    } else continue; // not numeric: the protocol names the column's type
    if (outside) {
      throw new ValueOutOfRangeError(`${where}, ${await rowPlace(f, i)}: a value is outside --max-abs-value ${boundText} (every |value| must be at most the bound); ${fix}`);
    }
  }
  return { nulls, rounded, digits };
}

/** The notes of a scanned column: its nulls (`skipped` says what is skipped) and the values --scale rounds. */
export function noteScan(report: Report, column: string, f: InputFile, scan: ColumnScan, skipped: string): void {
  if (scan.nulls > 0) report.note(`${count(scan.nulls)} row(s) of ${describeInput(f)} have no value in column "${column}": ${skipped}`);
  if (scan.rounded > 0) {
    const more = Math.min(scan.digits, HE_MAX_SCALE);
    report.warning(
      `${count(scan.rounded)} value(s) of column "${column}" of ${describeInput(f)} have more decimal digits than --scale keeps; each was rounded half away from zero` +
        (more > 0 ? `: give --scale ${more} to keep them` : ""),
    );
  }
}

/**
 * Rows whose group-by value is null or not one of the declared categories
 * (they are in no cell).
 */
export function rowsOutsideCategories(table: Table, column: string, categories: readonly string[]): number {
  const vector = table.getChild(column) as Vector | null;
  if (vector === null) return 0;
  const declared = new Set(categories);
  let n = 0;
  // A column without nulls as one typed array (Float64Array, BigInt64Array, ...): no per-row get().
  const dense = vector.nullCount === 0 ? (vector.toArray() as ArrayLike<unknown>) : null;
  for (let i = 0; i < vector.length; i++) {
    const v: unknown = dense !== null ? dense[i] : vector.get(i);
    if (v === null || v === undefined || !declared.has(typeof v === "string" ? v : String(v))) n++;
  }
  return n;
}

/**
 * Warns when an input cannot match anything: no data rows (a header only),
 * or a key column blank (null or only spaces) in every row.
 */
export function warnUnmatchable(report: Report, table: Table, keys: readonly string[], f: InputFile): void {
  if (table.numRows === 0) {
    report.warning(`${describeInput(f)} has no data rows (a header only): nothing can match`);
    return;
  }
  for (const key of keys) {
    const vector = table.getChild(key) as Vector | null;
    if (vector === null) continue;
    let blank = true;
    for (let i = 0; i < vector.length && blank; i++) {
      const v: unknown = vector.get(i);
      if (v !== null && v !== undefined && String(v).trim() !== "") blank = false;
    }
    if (blank) report.warning(`key column "${key}" of ${describeInput(f)} is blank in every row: no row can match`);
  }
}

/** The first KEY_SHAPE_SAMPLE_ROWS values of a column (the sample a key shape is read from). */
function sample(vector: Vector): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < vector.length && i < KEY_SHAPE_SAMPLE_ROWS; i++) out.push(vector.get(i));
  return out;
}

/**
 * Warns when a key column's values clearly have another shape in the buyer's
 * file than in the provider's under the run's normalisation (formatted phones
 * against plain digits: nothing would match), with the flag that fixes it —
 * as job submit warns on a node job. Shapes are classes, never values.
 */
export function warnKeyShapes(report: Report, buyer: Table, provider: Table, keys: { buyer: readonly string[]; provider: readonly string[] }, normalise: KeyNormalise): void {
  keys.buyer.forEach((b, i) => {
    const p = keys.provider[i] ?? b;
    const bv = buyer.getChild(b) as Vector | null;
    const pv = provider.getChild(p) as Vector | null;
    if (bv === null || pv === null) return;
    const mine = keyShapeOf(sample(bv), normalise);
    const theirs = keyShapeOf(sample(pv), normalise);
    if (mine === undefined || theirs === undefined) return;
    const w = shapeWarning(p, theirs, mine, normalise);
    if (w === undefined) return;
    report.warning(`${w.replace("and yours", b === p ? "and the buyer's" : `and the buyer's ${b} keys`)} (nothing may match without it)`);
  });
}
