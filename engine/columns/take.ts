/**
 * Row selection on Arrow tables (column concatenation is in concat.ts).
 *
 * `takeRows` builds a new table whose row i is row `rows[i]` of the input —
 * how a PSI result (matched row indices) becomes the output table, and, with
 * -1 entries, how a left join pads unmatched rows with nulls.
 *
 * Fixed-width types (integers, floats, dates, timestamps, times, durations,
 * intervals, decimals, fixed-size binary, dictionary indices), booleans and
 * variable-width strings/binaries are copied straight between buffers, with
 * no per-row objects; lists, maps and structs recurse into their children;
 * unions take their type ids and children; any other type (string/binary
 * views) goes through the vector accessors and an Arrow builder, which is slower
 * but handles every type the same way.
 *
 * This file stays whole (about 560 lines): it is one dispatch over Arrow's
 * types (takeData) whose nested cases — lists, maps, structs, unions,
 * dictionaries — call back into it for their children, so cutting it would
 * only trade its length for an import cycle.
 */
import {
  Data,
  DataType,
  Dictionary,
  Field,
  RecordBatch,
  Struct,
  Table,
  makeBuilder,
  makeData,
  makeVector,
  Vector,
} from "apache-arrow";
import { InvalidArgumentError } from "../errors.js";

/** True when typed arrays on this platform are little-endian (Arrow's byte order). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Where each selected row lives: `chunk[i]` is its batch (-1 for a null row), `local[i]` its row in that batch. */
interface Selection {
  readonly length: number;
  readonly chunk: Int32Array;
  readonly local: Int32Array;
}

type AnyTypedArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

type TypedArrayCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => AnyTypedArray;

// ------------------------------------------------------------- takeRows

/**
 * A new table with the same schema whose row i is row `rows[i]` of `table`
 * (rows counted across all record batches; entries may repeat). In an
 * Int32Array, -1 stands for a row of nulls (left joins). The result is one
 * record batch and owns its buffers (dictionaries are shared).
 * @throws InvalidArgumentError when an entry is out of range (or negative other than -1).
 */
export function takeRows(table: Table, rows: Uint32Array | Int32Array): Table {
  // Empty batches hold no selectable row (and may carry no buffers at all): leave them out.
  const columns = table.data.filter((d) => d.length > 0);
  const sel = locate(columns, table.numRows, rows);
  const schema = table.schema;
  const children = schema.fields.map((field, c) => {
    const chunks = columns.map((batch) => batch.children[c] as Data);
    return takeData(field.type, chunks, sel);
  });
  const batch = new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: sel.length, nullCount: 0, children }));
  return new Table(schema, [batch]);
}

/** Maps global row numbers to (batch, local row); validates them. */
function locate(batches: readonly Data[], total: number, rows: Uint32Array | Int32Array): Selection {
  const m = rows.length;
  const starts = new Float64Array(batches.length + 1);
  for (let b = 0; b < batches.length; b++) starts[b + 1] = (starts[b] ?? 0) + (batches[b] as Data).length;
  const chunk = new Int32Array(m);
  const local = new Int32Array(m);
  const single = batches.length === 1;
  const last = batches.length - 1;
  for (let i = 0; i < m; i++) {
    const r = rows[i] ?? 0;
    if (r < 0) {
      if (r !== -1) throw new InvalidArgumentError(`rows[${i}] = ${r}: the only negative row allowed is -1 (a row of nulls)`);
      chunk[i] = -1;
      continue;
    }
    if (r >= total) throw new InvalidArgumentError(`rows[${i}] = ${r} is out of range for a table of ${total} rows`);
    if (single) {
      local[i] = r;
      continue;
    }
    // The last batch whose start is ≤ r (skips empty batches, whose start equals the next one's).
    let lo = 0;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= r) lo = mid;
      else hi = mid - 1;
    }
    chunk[i] = lo;
    local[i] = r - (starts[lo] ?? 0);
  }
  return { length: m, chunk, local };
}

/** One column of the selection, as a single Data of type `type`. */
function takeData(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  if (chunks.length === 0 || DataType.isNull(type)) return allNulls(type, sel.length);
  if (DataType.isDictionary(type)) return takeDictionary(type, chunks, sel);
  if (DataType.isBool(type)) return takeBool(type, chunks, sel);
  if (DataType.isUtf8(type) || DataType.isBinary(type) || DataType.isLargeUtf8(type) || DataType.isLargeBinary(type)) {
    return takeVariable(type, chunks, sel);
  }
  if (isFixedWidth(type)) return takeFixed(type, chunks, sel);
  if (DataType.isList(type) || DataType.isLargeList(type) || DataType.isMap(type)) return takeList(type, chunks, sel);
  if (DataType.isStruct(type)) return takeStruct(type, chunks, sel);
  if (DataType.isFixedSizeList(type)) return takeFixedSizeList(type, chunks, sel);
  if (DataType.isUnion(type)) return takeUnion(type, chunks, sel);
  return takeGeneric(type, chunks, sel);
}

function isFixedWidth(t: DataType): boolean {
  return (
    DataType.isInt(t) ||
    DataType.isFloat(t) ||
    DataType.isDate(t) ||
    DataType.isTimestamp(t) ||
    DataType.isTime(t) ||
    DataType.isDuration(t) ||
    DataType.isInterval(t) ||
    DataType.isDecimal(t) ||
    DataType.isFixedSizeBinary(t)
  );
}

/** The validity bitmap of the selection (Arrow layout), with its null count; an empty bitmap when no row is null. */
function takeValidity(chunks: readonly Data[], sel: Selection): { bitmap: Uint8Array; nullCount: number } {
  const m = sel.length;
  const { chunk, local } = sel;
  const bitmaps: (Uint8Array | undefined)[] = chunks.map((d) =>
    d.nullCount > 0 && d.nullBitmap !== undefined && d.nullBitmap.length > 0 ? d.nullBitmap : undefined,
  );
  const bitOffsets = chunks.map((d) => d.offset);
  const bits = new Uint8Array((m + 7) >> 3);
  let nullCount = 0;
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    let ok = c >= 0;
    if (ok) {
      const bm = bitmaps[c];
      if (bm !== undefined) {
        const j = (bitOffsets[c] ?? 0) + (local[i] ?? 0);
        ok = ((bm[j >> 3] ?? 0) & (1 << (j & 7))) !== 0;
      }
    }
    if (ok) bits[i >> 3] = (bits[i >> 3] ?? 0) | (1 << (i & 7));
    else nullCount++;
  }
  return { bitmap: nullCount === 0 ? new Uint8Array(0) : bits, nullCount };
}

/** Builds a Data straight from its buffers (offsets, values, validity). */
function dataOf(
  type: DataType,
  length: number,
  nullCount: number,
  bitmap: Uint8Array,
  values: AnyTypedArray | undefined,
  valueOffsets?: Int32Array | BigInt64Array,
  dictionary?: Vector,
): Data {
  return new Data(type, 0, length, nullCount, [valueOffsets, values, bitmap], [], dictionary);
}

export function allNulls(type: DataType, m: number): Data {
  if (DataType.isNull(type)) return new Data(type, 0, m, m, {});
  const builder = makeBuilder({ type, nullValues: [null, undefined] });
  for (let i = 0; i < m; i++) builder.append(null);
  return builder.finish().flush();
}

/** Fixed-width values: rows of `stride` elements of the chunk's typed array, copied as 32-bit words when possible. */
function takeFixed(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const first = chunks[0] as Data;
  const sample = first.values as AnyTypedArray;
  const Ctor = sample.constructor as TypedArrayCtor;
  const stride = first.stride;
  const bpe = sample.BYTES_PER_ELEMENT;
  const rowBytes = stride * bpe;
  const out = new ArrayBuffer(m * rowBytes + ((8 - ((m * rowBytes) % 8)) % 8));
  const values = new Ctor(out, 0, m * stride);
  const srcs = chunks.map((d) => d.values as AnyTypedArray);

  if (rowBytes % 4 === 0 && srcs.every((s) => s.byteOffset % 4 === 0)) {
    const w = rowBytes / 4;
    const dst = new Uint32Array(out, 0, m * w);
    const words = srcs.map((s) => new Uint32Array(s.buffer, s.byteOffset, Math.floor(s.byteLength / 4)));
    for (let i = 0; i < m; i++) {
      const c = chunk[i] ?? 0;
      if (c < 0) continue;
      const src = words[c] as Uint32Array;
      const s = (local[i] ?? 0) * w;
      const d = i * w;
      if (w === 1) dst[d] = src[s] ?? 0;
      else if (w === 2) {
        dst[d] = src[s] ?? 0;
        dst[d + 1] = src[s + 1] ?? 0;
      } else for (let k = 0; k < w; k++) dst[d + k] = src[s + k] ?? 0;
    }
  } else {
    // Rows of 1, 2 or an odd number of bytes, or an unaligned source: copy bytes.
    const dst = new Uint8Array(out, 0, m * rowBytes);
    const bytes = srcs.map((s) => new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
    for (let i = 0; i < m; i++) {
      const c = chunk[i] ?? 0;
      if (c < 0) continue;
      const src = bytes[c] as Uint8Array;
      const s = (local[i] ?? 0) * rowBytes;
      const d = i * rowBytes;
      for (let k = 0; k < rowBytes; k++) dst[d + k] = src[s + k] ?? 0;
    }
  }
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return dataOf(type, m, nullCount, bitmap, values);
}

/** Booleans: one bit per row, at bit `offset + row` of the chunk's values. */
function takeBool(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const srcs = chunks.map((d) => d.values as Uint8Array);
  const offs = chunks.map((d) => d.offset);
  const bits = new Uint8Array((m + 7) >> 3);
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    if (c < 0) continue;
    const src = srcs[c] as Uint8Array;
    const j = (offs[c] ?? 0) + (local[i] ?? 0);
    if (((src[j >> 3] ?? 0) & (1 << (j & 7))) !== 0) bits[i >> 3] = (bits[i >> 3] ?? 0) | (1 << (i & 7));
  }
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return dataOf(type, m, nullCount, bitmap, bits);
}

/** Utf8 / Binary (Int32 offsets) and LargeUtf8 / LargeBinary (BigInt64 offsets). */
function takeVariable(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const large = DataType.isLargeUtf8(type) || DataType.isLargeBinary(type);
  const srcValues = chunks.map((d) => d.values as Uint8Array);
  // Int32 offsets are read in place; BigInt64 ones converted once per batch, so the row loops see numbers only.
  const srcOffsets = chunks.map((d): Int32Array | Float64Array => {
    const o = d.valueOffsets as Int32Array | BigInt64Array | undefined;
    if (o === undefined) return new Int32Array(d.length + 1); // an empty batch may carry no offsets
    if (o instanceof Int32Array) return o;
    const f = new Float64Array(o.length);
    for (let i = 0; i < o.length; i++) f[i] = Number(o[i] ?? 0n);
    return f;
  });

  // Pass 1: each selected row's source start and the output offsets (as doubles, so that overflow is detected before any narrowing).
  const starts = new Float64Array(m);
  const ends = new Float64Array(m + 1);
  let total = 0;
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    if (c >= 0) {
      const o = srcOffsets[c] as Int32Array | Float64Array;
      const r = local[i] ?? 0;
      const s = o[r] ?? 0;
      starts[i] = s;
      total += (o[r + 1] ?? 0) - s;
    }
    ends[i + 1] = total;
  }
  if (!large && total > 0x7fff_ffff) {
    throw new InvalidArgumentError(`the selected rows of a ${String(type)} column hold ${total} bytes, over the 2 GiB its Int32 offsets allow`);
  }

  // Pass 2: bytes.
  const data = new Uint8Array(total);
  for (let i = 0; i < m; i++) {
    const p = ends[i] ?? 0;
    const len = (ends[i + 1] ?? 0) - p;
    if (len === 0) continue;
    const src = srcValues[chunk[i] ?? 0] as Uint8Array;
    const s = starts[i] ?? 0;
    if (len > 32) data.set(src.subarray(s, s + len), p);
    else for (let k = 0; k < len; k++) data[p + k] = src[s + k] ?? 0;
  }

  let valueOffsets: Int32Array | BigInt64Array;
  if (!large) {
    const o = new Int32Array(m + 1);
    for (let i = 1; i <= m; i++) o[i] = ends[i] ?? 0;
    valueOffsets = o;
  } else {
    const big = new BigInt64Array(m + 1);
    if (LITTLE_ENDIAN) {
      // Write each offset as two 32-bit words, without a BigInt per row.
      const words = new Uint32Array(big.buffer);
      for (let i = 0; i <= m; i++) {
        const v = ends[i] ?? 0;
        const hi = Math.floor(v / 4294967296);
        words[2 * i] = v - hi * 4294967296;
        words[2 * i + 1] = hi;
      }
    } else {
      for (let i = 0; i <= m; i++) big[i] = BigInt(ends[i] ?? 0);
    }
    valueOffsets = big;
  }
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return dataOf(type, m, nullCount, bitmap, data, valueOffsets);
}

/**
 * Dictionary-encoded columns: the indices are copied. When the batches
 * share one dictionary it is kept; otherwise their dictionaries are
 * concatenated into one and each batch's indices shifted by its
 * dictionary's start (or, when the index type cannot hold the result, the
 * generic path rebuilds the column).
 */
function takeDictionary(type: Dictionary, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk } = sel;
  const dicts = chunks.map((d) => d.dictionary);
  const firstDict = dicts[0];
  if (firstDict === undefined || dicts.some((d) => d === undefined)) return takeGeneric(type, chunks, sel);
  const used = new Uint8Array(chunks.length);
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    if (c >= 0) used[c] = 1;
  }
  const distinct: Vector[] = [];
  const distinctBase: number[] = [];
  const base = new Float64Array(chunks.length);
  let dictLength = 0;
  for (let c = 0; c < chunks.length; c++) {
    if (used[c] === 0) continue;
    const d = dicts[c] as Vector;
    const at = distinct.indexOf(d);
    if (at >= 0) {
      base[c] = distinctBase[at] ?? 0;
    } else {
      distinct.push(d);
      distinctBase.push(dictLength);
      base[c] = dictLength;
      dictLength += d.length;
    }
  }

  const indices = takeFixed(type.indices, chunks, sel);
  if (distinct.length <= 1) {
    return dataOf(type, m, indices.nullCount, indices.nullBitmap ?? new Uint8Array(0), indices.values as AnyTypedArray, undefined, distinct[0] ?? firstDict);
  }
  const maxIndex = type.indices.isSigned ? 2 ** (type.indices.bitWidth - 1) - 1 : 2 ** type.indices.bitWidth - 1;
  if (dictLength - 1 > maxIndex) return takeGeneric(type, chunks, sel);

  // One dictionary: the distinct dictionaries back to back, flattened into one Data.
  const parts = distinct.flatMap((d) => d.data);
  const partStarts = new Float64Array(parts.length + 1);
  for (let k = 0; k < parts.length; k++) partStarts[k + 1] = (partStarts[k] ?? 0) + (parts[k] as Data).length;
  const all = new Int32Array(dictLength);
  const allLocal = new Int32Array(dictLength);
  for (let k = 0, r = 0; k < parts.length; k++) {
    const len = (parts[k] as Data).length;
    for (let j = 0; j < len; j++, r++) {
      all[r] = k;
      allLocal[r] = j;
    }
  }
  const dictionary = makeVector(takeData(type.dictionary, parts, { length: dictLength, chunk: all, local: allLocal }));

  const values = indices.values as AnyTypedArray;
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    for (let i = 0; i < m; i++) {
      const c = chunk[i] ?? 0;
      if (c >= 0 && (base[c] ?? 0) > 0) values[i] = (values[i] ?? 0n) + BigInt(base[c] ?? 0);
    }
  } else {
    for (let i = 0; i < m; i++) {
      const c = chunk[i] ?? 0;
      if (c >= 0) values[i] = (values[i] ?? 0) + (base[c] ?? 0);
    }
  }
  return dataOf(type, m, indices.nullCount, indices.nullBitmap ?? new Uint8Array(0), values, undefined, dictionary);
}

/**
 * List, LargeList and Map (a list of key/value structs): new offsets, and
 * the child column taken at the selected rows' child ranges.
 */
function takeList(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const large = DataType.isLargeList(type);
  const srcOffsets = chunks.map((d) => d.valueOffsets as Int32Array | BigInt64Array);
  const start = (c: number, r: number): number => {
    const o = srcOffsets[c] as Int32Array | BigInt64Array;
    return large ? Number((o as BigInt64Array)[r] ?? 0n) : ((o as Int32Array)[r] ?? 0);
  };
  const ends = new Float64Array(m + 1);
  let total = 0;
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    if (c >= 0) {
      const r = local[i] ?? 0;
      total += start(c, r + 1) - start(c, r);
    }
    ends[i + 1] = total;
  }
  if (total > 0x7fff_ffff) throw new InvalidArgumentError(`the selected rows of a ${String(type)} column hold ${total} items, over what one column can take`);
  const childChunk = new Int32Array(total);
  const childLocal = new Int32Array(total);
  let q = 0;
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    if (c < 0) continue;
    const r = local[i] ?? 0;
    const e = start(c, r + 1);
    for (let k = start(c, r); k < e; k++, q++) {
      childChunk[q] = c;
      childLocal[q] = k;
    }
  }
  const child = takeData(
    (type.children[0] as Field).type,
    chunks.map((d) => d.children[0] as Data),
    { length: total, chunk: childChunk, local: childLocal },
  );
  const valueOffsets = large ? BigInt64Array.from(ends, (v) => BigInt(v)) : Int32Array.from(ends);
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return new Data(type, 0, m, nullCount, [valueOffsets, undefined, bitmap], [child]);
}

/** Struct: each child taken at the same rows (children of a sliced struct carry their own offsets). */
function takeStruct(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const children = type.children.map((f: Field, k: number) =>
    takeData(
      f.type,
      chunks.map((d) => d.children[k] as Data),
      sel,
    ),
  );
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return new Data(type, 0, sel.length, nullCount, [undefined, undefined, bitmap], children);
}

/** FixedSizeList: the child taken at rows (child offset + row) × listSize + k. */
function takeFixedSizeList(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const size = (type as DataType & { listSize: number }).listSize;
  const childChunk = new Int32Array(m * size);
  const childLocal = new Int32Array(m * size);
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    for (let k = 0; k < size; k++) {
      childChunk[i * size + k] = c;
      childLocal[i * size + k] = (local[i] ?? 0) * size + k;
    }
  }
  const child = takeData(
    (type.children[0] as Field).type,
    chunks.map((d) => d.children[0] as Data),
    { length: m * size, chunk: childChunk, local: childLocal },
  );
  const { bitmap, nullCount } = takeValidity(chunks, sel);
  return new Data(type, 0, m, nullCount, [undefined, undefined, bitmap], [child]);
}

/** The parts of a union type the take reads. */
interface UnionLike {
  readonly typeIds: ArrayLike<number>;
  readonly typeIdToChildIndex: { readonly [typeId: number]: number };
}

/**
 * Sparse and dense unions (which have no validity bitmap: a null is a null
 * in the selected child). Sparse: type ids copied, every child taken at the
 * same rows. Dense: type ids copied, each child taken at the child rows its
 * selected entries point to, with new value offsets. A -1 row becomes a null
 * of the first child.
 */
function takeUnion(type: DataType & UnionLike, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const dense = DataType.isDenseUnion(type);
  const srcIds = chunks.map((d) => d.typeIds as Int8Array);
  const typeIds = new Int8Array(m);
  const nullId = type.typeIds[0] ?? 0;
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    typeIds[i] = c < 0 ? nullId : ((srcIds[c] as Int8Array)[local[i] ?? 0] ?? 0);
  }
  const childOf = (t: number): number => type.typeIdToChildIndex[t] ?? 0;
  if (!dense) {
    const children = type.children.map((f: Field, k: number) => takeData(f.type, chunks.map((d) => d.children[k] as Data), sel));
    return new Data(type, 0, m, 0, [undefined, undefined, undefined, typeIds], children);
  }
  const k = type.children.length;
  const counts = new Int32Array(k);
  for (let i = 0; i < m; i++) {
    const ci = childOf(typeIds[i] ?? 0);
    counts[ci] = (counts[ci] ?? 0) + 1;
  }
  const childSel = Array.from(counts, (n) => ({ length: n, chunk: new Int32Array(n), local: new Int32Array(n) }));
  const fill = new Int32Array(k);
  const valueOffsets = new Int32Array(m);
  const srcOffsets = chunks.map((d) => d.valueOffsets as Int32Array);
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    const ci = childOf(typeIds[i] ?? 0);
    const cs = childSel[ci] as Selection;
    const at = fill[ci] ?? 0;
    fill[ci] = at + 1;
    valueOffsets[i] = at;
    cs.chunk[at] = c;
    if (c >= 0) cs.local[at] = (srcOffsets[c] as Int32Array)[local[i] ?? 0] ?? 0;
  }
  const children = type.children.map((f: Field, j: number) =>
    takeData(
      f.type,
      chunks.map((d) => d.children[j] as Data),
      childSel[j] as Selection,
    ),
  );
  return new Data(type, 0, m, 0, [valueOffsets, undefined, undefined, typeIds], children);
}

/** A value as an Arrow builder accepts it: nested vectors become arrays. */
function builderValue(v: unknown): unknown {
  if (v instanceof Vector) return Array.from({ length: v.length }, (_, i) => builderValue(v.get(i)));
  return v;
}

/** Any other type: each value read through the vector accessor, then appended to an Arrow builder of the same type. */
function takeGeneric(type: DataType, chunks: readonly Data[], sel: Selection): Data {
  const m = sel.length;
  const { chunk, local } = sel;
  const vectors = chunks.map((d) => makeVector(d));
  const builder = makeBuilder({ type, nullValues: [null, undefined] });
  for (let i = 0; i < m; i++) {
    const c = chunk[i] ?? 0;
    builder.append(c < 0 ? null : builderValue((vectors[c] as Vector).get(local[i] ?? 0)));
  }
  return builder.finish().flush();
}
