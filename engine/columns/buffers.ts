/**
 * Growable byte buffers and the Arrow column builders that the readers use.
 *
 * The readers build Arrow `Data` straight from flat typed arrays (values,
 * offsets, validity bitmap) rather than through per-row objects: a CSV or
 * Parquet batch of 65,536 rows is a handful of buffer writes per cell.
 * Internal to engine/columns.
 */
import {
  Bool,
  Float64,
  Int64,
  Utf8,
  makeData,
  type Data,
} from "apache-arrow";
import { InvalidArgumentError } from "../errors.js";

/** True when typed arrays on this platform are little-endian (Arrow's byte order). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Largest byte length a Uint32 offset can address. */
export const MAX_PACKED_BYTES = 0xffff_ffff;

/** A Uint8Array that doubles its capacity as bytes are appended. */
export class ByteSink {
  buf: Uint8Array;
  len = 0;

  constructor(initialCapacity = 1024) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  /** Makes room for `extra` more bytes and returns the (possibly new) buffer. */
  reserve(extra: number): Uint8Array {
    const need = this.len + extra;
    if (need > this.buf.length) {
      if (need > MAX_PACKED_BYTES) throw new InvalidArgumentError(`packed keys exceed ${MAX_PACKED_BYTES} bytes`);
      let cap = this.buf.length * 2;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(Math.min(cap, MAX_PACKED_BYTES));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    return this.buf;
  }

  /** Appends bytes. */
  push(bytes: Uint8Array): void {
    this.reserve(bytes.length).set(bytes, this.len);
    this.len += bytes.length;
  }

  /** The bytes written so far, as an exactly sized buffer this sink no longer touches. */
  finish(): Uint8Array {
    const out = this.len === this.buf.length ? this.buf : this.buf.slice(0, this.len);
    this.buf = new Uint8Array(16);
    this.len = 0;
    return out;
  }
}

const encoder = new TextEncoder();

/**
 * Appends the UTF-8 encoding of `s` to `sink`; returns the number of bytes
 * written. ASCII is copied by a plain loop (the common case for keys), the
 * rest goes through `TextEncoder.encodeInto`.
 */
export function appendUtf8(sink: ByteSink, s: string): number {
  const n = s.length;
  const buf = sink.reserve(n * 3);
  const start = sink.len;
  let p = start;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      const { written } = encoder.encodeInto(s.slice(i), buf.subarray(p));
      p += written;
      break;
    }
    buf[p++] = c;
  }
  sink.len = p;
  return p - start;
}

/** A growable validity bitmap (Arrow layout: bit i of byte i >> 3, 1 = valid). */
export class ValidityBuilder {
  bits: Uint8Array;
  nullCount = 0;

  constructor(capacity: number) {
    this.bits = new Uint8Array(Math.max(1, (capacity + 7) >> 3));
  }

  set(i: number, valid: boolean): void {
    const byte = i >> 3;
    if (byte >= this.bits.length) {
      const next = new Uint8Array(Math.max(byte + 1, this.bits.length * 2));
      next.set(this.bits);
      this.bits = next;
    }
    if (valid) this.bits[byte] = (this.bits[byte] ?? 0) | (1 << (i & 7));
    else this.nullCount++;
  }

  /** The bitmap for `length` rows, or an empty array when no row is null (Arrow's convention). */
  finish(length: number): Uint8Array {
    if (this.nullCount === 0) return new Uint8Array(0);
    return this.bits.slice(0, (length + 7) >> 3);
  }
}

/** Builds one Utf8 column. */
export class Utf8Builder {
  readonly kind = "string" as const;
  private sink: ByteSink;
  private offsets: Int32Array;
  private validity: ValidityBuilder;
  length = 0;

  constructor(capacity: number) {
    this.sink = new ByteSink(capacity * 8);
    this.offsets = new Int32Array(capacity + 1);
    this.validity = new ValidityBuilder(capacity);
  }

  /** Bytes held so far (readers flush a batch early before Int32 offsets could overflow). */
  get byteLength(): number {
    return this.sink.len;
  }

  private grow(): void {
    if (this.length + 1 >= this.offsets.length) {
      const next = new Int32Array(this.offsets.length * 2);
      next.set(this.offsets);
      this.offsets = next;
    }
  }

  append(s: string | null | undefined): void {
    this.grow();
    const i = this.length;
    if (s === null || s === undefined) {
      this.validity.set(i, false);
    } else {
      appendUtf8(this.sink, s);
      if (this.sink.len > 0x7fff_ffff) throw new InvalidArgumentError("a string column exceeds 2 GiB in one batch");
      this.validity.set(i, true);
    }
    this.offsets[i + 1] = this.sink.len;
    this.length = i + 1;
  }

  finish(): Data<Utf8> {
    const length = this.length;
    const nullCount = this.validity.nullCount;
    const data = makeData({
      type: new Utf8(),
      length,
      nullCount,
      nullBitmap: this.validity.finish(length),
      valueOffsets: this.offsets.slice(0, length + 1),
      data: this.sink.finish(),
    });
    return data;
  }
}

/** Builds one Int64 column (values as BigInt64Array). */
export class Int64Builder {
  readonly kind = "int64" as const;
  private values: BigInt64Array;
  private words: Uint32Array;
  private validity: ValidityBuilder;
  length = 0;

  constructor(capacity: number) {
    this.values = new BigInt64Array(Math.max(1, capacity));
    this.words = new Uint32Array(this.values.buffer);
    this.validity = new ValidityBuilder(capacity);
  }

  private grow(): void {
    if (this.length >= this.values.length) {
      const next = new BigInt64Array(this.values.length * 2);
      next.set(this.values);
      this.values = next;
      this.words = new Uint32Array(next.buffer);
    }
  }

  appendNull(): void {
    this.grow();
    this.validity.set(this.length, false);
    this.length++;
  }

  /** Appends a safe integer without allocating a BigInt (little-endian word writes). */
  appendSafeInteger(n: number): void {
    this.grow();
    const i = this.length;
    if (LITTLE_ENDIAN) {
      const hi = Math.floor(n / 4294967296);
      this.words[2 * i] = n - hi * 4294967296;
      this.words[2 * i + 1] = hi >>> 0;
    } else {
      this.values[i] = BigInt(n);
    }
    this.validity.set(i, true);
    this.length = i + 1;
  }

  appendBigInt(v: bigint): void {
    this.grow();
    this.values[this.length] = v;
    this.validity.set(this.length, true);
    this.length++;
  }

  finish(): Data<Int64> {
    const length = this.length;
    return makeData({
      type: new Int64(),
      length,
      nullCount: this.validity.nullCount,
      nullBitmap: this.validity.finish(length),
      data: this.values.slice(0, length),
    });
  }
}

/** Builds one Float64 column. */
export class Float64Builder {
  readonly kind = "float64" as const;
  private values: Float64Array;
  private validity: ValidityBuilder;
  length = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(Math.max(1, capacity));
    this.validity = new ValidityBuilder(capacity);
  }

  append(v: number | null): void {
    if (this.length >= this.values.length) {
      const next = new Float64Array(this.values.length * 2);
      next.set(this.values);
      this.values = next;
    }
    if (v === null) this.validity.set(this.length, false);
    else {
      this.values[this.length] = v;
      this.validity.set(this.length, true);
    }
    this.length++;
  }

  finish(): Data<Float64> {
    const length = this.length;
    return makeData({
      type: new Float64(),
      length,
      nullCount: this.validity.nullCount,
      nullBitmap: this.validity.finish(length),
      data: this.values.slice(0, length),
    });
  }
}

/** Builds a Bool column from values that are booleans or null/undefined. */
export function boolData(values: ArrayLike<unknown>, start: number, end: number): Data<Bool> {
  const length = end - start;
  const bits = new Uint8Array((length + 7) >> 3);
  const validity = new ValidityBuilder(length);
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (v === null || v === undefined) validity.set(i, false);
    else {
      validity.set(i, true);
      if (v) bits[i >> 3] = (bits[i >> 3] ?? 0) | (1 << (i & 7));
    }
  }
  return makeData({
    type: new Bool(),
    length,
    nullCount: validity.nullCount,
    nullBitmap: validity.finish(length),
    data: bits,
  });
}
