/**
 * Join keys from Arrow columns, as packed bytes ready for hashing to the group.
 *
 * `keysFromBatch` turns one or more key columns of a record batch into a
 * {@link KeyColumn}: n byte strings back to back (a PackedBytes) plus one
 * validity byte per row. The canonical bytes of a key are:
 *
 * - one column: the normalised UTF-8 text (see normalise.ts). Integer
 *   columns are written as canonical base-10 text ("-123", no leading
 *   zeros, no "+"), so integer 123 in one file and string "123" in another
 *   give the same key;
 * - several columns (a composite key): for each component, its length as a
 *   4-byte little-endian unsigned integer, then its bytes. The length prefix
 *   makes the encoding unambiguous: ("ab", "c") and ("a", "bc") differ.
 *
 * A row is *null* (valid = 0, zero-length entry, never matches) when the
 * value is null, when it normalises to the empty string, or — for a
 * composite key — when any component is.
 *
 * This is the hot path of every PSI (10^6 rows and more): no per-row
 * objects; bytes are written straight into one growing buffer; ASCII values
 * are normalised on bytes without decoding; integers are formatted digit by
 * digit without strings (64-bit ones without BigInts when they fit in 53
 * bits); dictionary columns normalise each dictionary entry once. The
 * result owns its buffers (never views of Arrow memory), so they can be
 * transferred to a worker without detaching the table.
 */
import { DataType, makeVector, type Data, type RecordBatch, type Schema, type Table } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError, UnsupportedTypeError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import { ByteSink, LITTLE_ENDIAN, MAX_PACKED_BYTES, appendUtf8 } from "./buffers.js";
import { yieldToEventLoop } from "../slices.js";
import {
  applyNormalisation,
  isIdentityNormalisation,
  resolveKeyNormalisation,
  type KeyNormalisation,
  type KeyOptions,
} from "./normalise.js";

/** n keys as packed bytes, with one validity byte per row. Assignable to PackedBytes. */
export interface KeyColumn extends PackedBytes {
  /** All keys back to back; null rows contribute no bytes. */
  readonly data: Uint8Array;
  /** n + 1 offsets into `data`, starting at 0. */
  readonly offsets: Uint32Array;
  /** One byte per row: 1 = the row has a key, 0 = null (never matches). */
  readonly valid: Uint8Array;
  /** Number of rows n. */
  readonly length: number;
}

const decoder = new TextDecoder();

// ------------------------------------------------------------ type checks

/** True when a type can serve as a key column. */
export function isKeyType(t: DataType): boolean {
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t) || DataType.isUtf8View(t) || DataType.isInt(t)) return true;
  if (DataType.isDictionary(t)) return isKeyType(t.dictionary);
  return false;
}

/**
 * Finds each key column in a schema and checks its type.
 * @returns the column indices, in the order given.
 * @throws InvalidArgumentError when no column is given.
 * @throws MissingColumnError naming the first absent column and `source`.
 * @throws UnsupportedTypeError naming the column and its type.
 */
export function resolveKeyColumns(schema: Schema, columns: readonly string[], source: string): number[] {
  if (columns.length === 0) throw new InvalidArgumentError("at least one key column is required");
  return columns.map((name) => {
    const i = schema.fields.findIndex((f) => f.name === name);
    const field = schema.fields[i];
    if (field === undefined) throw new MissingColumnError(name, source, schema.fields.map((f) => f.name));
    if (!isKeyType(field.type)) {
      throw new UnsupportedTypeError(`key column "${name}" in ${source} has type ${String(field.type)}; keys must be strings or integers`);
    }
    return i;
  });
}

// -------------------------------------------------------------- helpers

/** The validity bitmap of an Arrow Data when it has nulls (bit i of the column is bit `data.offset + i`), else undefined. */
function bitmapOf(data: Data): Uint8Array | undefined {
  return data.nullCount > 0 && data.nullBitmap !== undefined && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
}

function isAsciiWhitespace(b: number): boolean {
  return b === 32 || (b >= 9 && b <= 13);
}

/** Copies src[s, e) to the sink's end (a loop for short runs, `set` for long ones). */
function copyInto(sink: ByteSink, src: Uint8Array, s: number, e: number): void {
  const len = e - s;
  const buf = sink.reserve(len);
  let p = sink.len;
  if (len > 32) buf.set(src.subarray(s, e), p);
  else for (let k = s; k < e; k++) buf[p++] = src[k] ?? 0;
  sink.len += len;
}

/**
 * Appends the normalised form of the UTF-8 bytes src[s, e) to the sink.
 * ASCII input is handled on bytes (NFC is the identity on ASCII, and trim /
 * lower-case / digit filtering reduce to byte tests); anything else is
 * decoded and goes through applyNormalisation, exactly as normaliseKey would.
 */
function appendNormalised(sink: ByteSink, src: Uint8Array, s: number, e: number, n: KeyNormalisation, identity: boolean): void {
  if (identity) {
    copyInto(sink, src, s, e);
    return;
  }
  let ascii = true;
  for (let k = s; k < e; k++) {
    if ((src[k] ?? 0) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (!ascii) {
    appendUtf8(sink, applyNormalisation(decoder.decode(src.subarray(s, e)), n));
    return;
  }
  if (n.trim) {
    while (s < e && isAsciiWhitespace(src[s] ?? 0)) s++;
    while (e > s && isAsciiWhitespace(src[e - 1] ?? 0)) e--;
  }
  if (n.digitsOnly) {
    const buf = sink.reserve(e - s);
    let p = sink.len;
    for (let k = s; k < e; k++) {
      const b = src[k] ?? 0;
      if (b >= 48 && b <= 57) buf[p++] = b;
    }
    sink.len = p;
  } else if (n.caseFold) {
    const buf = sink.reserve(e - s);
    let p = sink.len;
    for (let k = s; k < e; k++) {
      const b = src[k] ?? 0;
      buf[p++] = b >= 65 && b <= 90 ? b + 32 : b;
    }
    sink.len = p;
  } else {
    copyInto(sink, src, s, e);
  }
}

const scratch = new Uint8Array(24);

/**
 * Appends a non-negative safe integer in base 10. Digits are produced with
 * int32 arithmetic (V8 turns `(x / 10) | 0` into a multiply), splitting off
 * the low nine digits of values of 2^31 and above.
 */
function appendDigits(sink: ByteSink, v: number): void {
  let q = 0;
  let x: number;
  if (v >= 2147483648) {
    const high = Math.floor(v / 1e9);
    let low = v - high * 1e9;
    for (let k = 0; k < 9; k++) {
      const t = (low / 10) | 0;
      scratch[q++] = 48 + low - t * 10;
      low = t;
    }
    // v < 2^53, so high < 9.1e6: the rest fits int32 and is non-zero (v >= 2^31 > 1e9).
    x = high | 0;
    do {
      const t = (x / 10) | 0;
      scratch[q++] = 48 + x - t * 10;
      x = t;
    } while (x > 0);
  } else {
    x = v | 0;
    do {
      const t = (x / 10) | 0;
      scratch[q++] = 48 + x - t * 10;
      x = t;
    } while (x > 0);
  }
  const buf = sink.len + q <= sink.buf.length ? sink.buf : sink.reserve(q);
  let p = sink.len;
  while (q > 0) buf[p++] = scratch[--q] ?? 48;
  sink.len = p;
}

/** Appends a safe integer as canonical base-10 text (the sign dropped when digitsOnly). */
function appendInteger(sink: ByteSink, v: number, digitsOnly: boolean): void {
  if (v < 0) {
    if (!digitsOnly) {
      sink.reserve(1)[sink.len++] = 45;
    }
    appendDigits(sink, -v);
  } else appendDigits(sink, v);
}

/** Appends a bigint as canonical base-10 text. */
function appendBigInteger(sink: ByteSink, v: bigint, digitsOnly: boolean): void {
  let s = v.toString();
  if (digitsOnly && s.charCodeAt(0) === 45) s = s.slice(1);
  appendUtf8(sink, s);
}

// ------------------------------------------------------ one key component

/** One column's keys: the same shape as a KeyColumn, without the length. */
interface Component {
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly valid: Uint8Array;
}

/** Keys of a Utf8 (Int32 offsets) or LargeUtf8 (BigInt64 offsets) column. */
function stringComponent(data: Data, n: KeyNormalisation): Component {
  const rows = data.length;
  const values = data.values as Uint8Array;
  const offs = data.valueOffsets as Int32Array | BigInt64Array;
  const large = offs instanceof BigInt64Array;
  const bitmap = bitmapOf(data);
  const bitOffset = data.offset;
  const identity = isIdentityNormalisation(n);
  const at = (i: number): number => (large ? Number((offs as BigInt64Array)[i] ?? 0n) : ((offs as Int32Array)[i] ?? 0));
  const first = at(0);
  const last = at(rows);

  // Fast path: nothing to normalise and Int32 offsets — copy the value buffer
  // once and rebase the offsets, provided null rows occupy no bytes.
  if (identity && !large) {
    const o = offs as Int32Array;
    let nullsEmpty = true;
    const valid = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) {
      const len = (o[i + 1] ?? 0) - (o[i] ?? 0);
      const j = bitOffset + i;
      const isValid = bitmap === undefined || ((bitmap[j >> 3] ?? 0) & (1 << (j & 7))) !== 0;
      if (!isValid && len !== 0) {
        nullsEmpty = false;
        break;
      }
      valid[i] = isValid && len > 0 ? 1 : 0;
    }
    if (nullsEmpty) {
      const out = new Uint32Array(rows + 1);
      for (let i = 0; i <= rows; i++) out[i] = (o[i] ?? 0) - first;
      return { data: values.slice(first, last), offsets: out, valid };
    }
  }

  const sink = new ByteSink(last - first + 16);
  const offsets = new Uint32Array(rows + 1);
  const valid = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const j = bitOffset + i;
    if (bitmap === undefined || ((bitmap[j >> 3] ?? 0) & (1 << (j & 7))) !== 0) {
      const before = sink.len;
      appendNormalised(sink, values, at(i), at(i + 1), n, identity);
      if (sink.len > before) valid[i] = 1;
    }
    offsets[i + 1] = sink.len;
  }
  return { data: sink.finish(), offsets, valid };
}

/** Keys of an integer column (any width, signed or not), as base-10 text. */
function integerComponent(data: Data, n: KeyNormalisation): Component {
  const rows = data.length;
  const values = data.values as ArrayLike<number | bigint> & ArrayBufferView;
  const bitmap = bitmapOf(data);
  const bitOffset = data.offset;
  const sink = new ByteSink(rows * 8 + 16);
  const offsets = new Uint32Array(rows + 1);
  const valid = new Uint8Array(rows);
  const digitsOnly = n.digitsOnly;
  const wide = values instanceof BigInt64Array || values instanceof BigUint64Array;
  const signed = !(values instanceof BigUint64Array);
  // 64-bit values are read as two 32-bit words so that those within ±2^53
  // are formatted as doubles, without allocating a BigInt per row.
  const words = wide && LITTLE_ENDIAN ? new Uint32Array(values.buffer, values.byteOffset, rows * 2) : undefined;
  for (let i = 0; i < rows; i++) {
    const j = bitOffset + i;
    if (bitmap === undefined || ((bitmap[j >> 3] ?? 0) & (1 << (j & 7))) !== 0) {
      if (!wide) {
        appendInteger(sink, (values as ArrayLike<number>)[i] ?? 0, digitsOnly);
      } else if (words !== undefined) {
        const lo = words[2 * i] ?? 0;
        const hiWord = words[2 * i + 1] ?? 0;
        const hi = signed ? hiWord | 0 : hiWord;
        if (hi >= -0x200000 && hi < 0x200000) appendInteger(sink, hi * 4294967296 + lo, digitsOnly);
        else appendBigInteger(sink, (values as ArrayLike<bigint>)[i] ?? 0n, digitsOnly);
      } else {
        appendBigInteger(sink, (values as ArrayLike<bigint>)[i] ?? 0n, digitsOnly);
      }
      valid[i] = 1;
    }
    offsets[i + 1] = sink.len;
  }
  return { data: sink.finish(), offsets, valid };
}

/** Keys of a Utf8View (or any other string layout) column, through the vector accessor. */
function genericStringComponent(data: Data, n: KeyNormalisation): Component {
  const rows = data.length;
  const vector = makeVector(data);
  const sink = new ByteSink(rows * 8 + 16);
  const offsets = new Uint32Array(rows + 1);
  const valid = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const v: unknown = vector.get(i);
    if (typeof v === "string") {
      const before = sink.len;
      appendUtf8(sink, applyNormalisation(v, n));
      if (sink.len > before) valid[i] = 1;
    }
    offsets[i + 1] = sink.len;
  }
  return { data: sink.finish(), offsets, valid };
}

/** Keys of a dictionary-encoded column: each dictionary entry normalised once, then looked up per row. */
function dictionaryComponent(data: Data, n: KeyNormalisation): Component {
  const rows = data.length;
  const dictionary = data.dictionary;
  if (dictionary === undefined) throw new InvalidArgumentError("dictionary column without a dictionary");
  const dict = concatComponents(dictionary.data.map((d) => componentOf(d, n)));
  const indices = data.values as ArrayLike<number | bigint>;
  const bigIndices = indices instanceof BigInt64Array || indices instanceof BigUint64Array;
  const bitmap = bitmapOf(data);
  const bitOffset = data.offset;
  const sink = new ByteSink(rows * 8 + 16);
  const offsets = new Uint32Array(rows + 1);
  const valid = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const j = bitOffset + i;
    if (bitmap === undefined || ((bitmap[j >> 3] ?? 0) & (1 << (j & 7))) !== 0) {
      const raw = indices[i] ?? 0;
      const k = bigIndices ? Number(raw) : (raw as number);
      if (dict.valid[k] === 1) {
        copyInto(sink, dict.data, dict.offsets[k] ?? 0, dict.offsets[k + 1] ?? 0);
        valid[i] = 1;
      }
    }
    offsets[i + 1] = sink.len;
  }
  return { data: sink.finish(), offsets, valid };
}

function componentOf(data: Data, n: KeyNormalisation): Component {
  const t = data.type;
  if (data.length === 0 && isKeyType(t)) return { data: new Uint8Array(0), offsets: new Uint32Array(1), valid: new Uint8Array(0) };
  if (DataType.isUtf8(t) || DataType.isLargeUtf8(t)) return stringComponent(data, n);
  if (DataType.isInt(t)) return integerComponent(data, n);
  if (DataType.isDictionary(t)) return dictionaryComponent(data, n);
  if (DataType.isUtf8View(t)) return genericStringComponent(data, n);
  throw new UnsupportedTypeError(`key column has type ${String(t)}; keys must be strings or integers`);
}

function concatComponents(parts: readonly Component[]): Component {
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only !== undefined) return only;
  let bytes = 0;
  let rows = 0;
  for (const p of parts) {
    bytes += p.data.length;
    rows += p.valid.length;
  }
  const data = new Uint8Array(bytes);
  const offsets = new Uint32Array(rows + 1);
  const valid = new Uint8Array(rows);
  let b = 0;
  let r = 0;
  for (const p of parts) {
    data.set(p.data, b);
    const m = p.valid.length;
    const base = p.offsets[0] ?? 0;
    for (let i = 1; i <= m; i++) offsets[r + i] = b + (p.offsets[i] ?? 0) - base;
    valid.set(p.valid, r);
    b += p.data.length;
    r += m;
  }
  return { data, offsets, valid };
}

/**
 * Interleaves components as (u32 LE length, bytes) per component; a row with
 * any null component is null. Two passes: validity and exact size, then the
 * bytes into one buffer of that size.
 */
function compositeOf(parts: readonly Component[], rows: number): Component {
  const k = parts.length;
  const valid = new Uint8Array(rows).fill(1);
  for (let c = 0; c < k; c++) {
    const v = (parts[c] as Component).valid;
    for (let i = 0; i < rows; i++) valid[i] = (valid[i] ?? 0) & (v[i] ?? 0);
  }
  let total = 0;
  for (let c = 0; c < k; c++) {
    const o = (parts[c] as Component).offsets;
    for (let i = 0; i < rows; i++) if (valid[i] === 1) total += 4 + (o[i + 1] ?? 0) - (o[i] ?? 0);
  }
  if (total > MAX_PACKED_BYTES) throw new InvalidArgumentError(`packed keys exceed ${MAX_PACKED_BYTES} bytes`);
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(rows + 1);
  let p = 0;
  for (let i = 0; i < rows; i++) {
    if (valid[i] === 1) {
      for (let c = 0; c < k; c++) {
        const part = parts[c] as Component;
        const s = part.offsets[i] ?? 0;
        const e = part.offsets[i + 1] ?? 0;
        const len = e - s;
        data[p] = len & 0xff;
        data[p + 1] = (len >>> 8) & 0xff;
        data[p + 2] = (len >>> 16) & 0xff;
        data[p + 3] = (len >>> 24) & 0xff;
        p += 4;
        const src = part.data;
        if (len > 32) {
          data.set(src.subarray(s, e), p);
          p += len;
        } else for (let j = s; j < e; j++) data[p++] = src[j] ?? 0;
      }
    }
    offsets[i + 1] = p;
  }
  return { data, offsets, valid };
}

// ------------------------------------------------------------- public API

/**
 * The join keys of a record batch.
 *
 * @param batch the rows.
 * @param columns one key column, or several for a composite key (length-prefixed, see the module comment).
 * @param options normalisation (default: trim, NFC), per-column overrides, and `source` for error messages.
 * @returns n packed keys with their validity; rows that are null, or empty after normalisation, are invalid.
 * @throws MissingColumnError when a key column is absent.
 * @throws UnsupportedTypeError when a key column is neither strings nor integers.
 * @throws InvalidArgumentError for an empty column list or a bad option.
 */
export function keysFromBatch(batch: RecordBatch, columns: readonly string[], options: KeyOptions = {}): KeyColumn {
  const source = options.source ?? "record batch";
  const indices = resolveKeyColumns(batch.schema, columns, source);
  const rows = batch.numRows;
  const parts = indices.map((idx, c) => {
    const child = batch.data.children[idx];
    if (child === undefined) throw new MissingColumnError(columns[c] ?? "", source);
    return componentOf(child, resolveKeyNormalisation(options, columns[c]));
  });
  const single = parts.length === 1 ? parts[0] : undefined;
  const out = single ?? compositeOf(parts, rows);
  return { data: out.data, offsets: out.offsets, valid: out.valid, length: rows };
}

/**
 * Concatenates key columns (e.g. the keys of successive batches) into one.
 * @param parts key columns in order.
 */
export function concatKeyColumns(parts: readonly KeyColumn[]): KeyColumn {
  if (parts.length === 0) return { data: new Uint8Array(0), offsets: new Uint32Array(1), valid: new Uint8Array(0), length: 0 };
  const c = concatComponents(parts);
  return { data: c.data, offsets: c.offsets, valid: c.valid, length: c.valid.length };
}

/**
 * The join keys of a whole table: {@link keysFromBatch} on each batch, concatenated.
 * The key columns are checked against the table's schema even when it has no rows.
 */
export function keysFromTable(table: Table, columns: readonly string[], options: KeyOptions = {}): KeyColumn {
  const withSource: KeyOptions = { ...options, source: options.source ?? "table" };
  resolveKeyColumns(table.schema, columns, withSource.source ?? "table");
  return concatKeyColumns(table.batches.map((b) => keysFromBatch(b, columns, withSource)));
}

/**
 * {@link keysFromTable} with the event loop let run between batches (the
 * same keys): for a node's main thread, where 10^6 rows take ~0.1 s.
 */
export async function keysFromTableAsync(table: Table, columns: readonly string[], options: KeyOptions = {}): Promise<KeyColumn> {
  const withSource: KeyOptions = { ...options, source: options.source ?? "table" };
  resolveKeyColumns(table.schema, columns, withSource.source ?? "table");
  const parts: KeyColumn[] = [];
  for (const b of table.batches) {
    if (parts.length > 0) await yieldToEventLoop();
    parts.push(keysFromBatch(b, columns, withSource));
  }
  return concatKeyColumns(parts);
}
