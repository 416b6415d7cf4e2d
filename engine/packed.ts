/**
 * Flat byte layouts shared by the group, the pool and the column layer.
 *
 * `PackedBytes` holds n variable-length byte strings the way an Arrow Binary
 * column does: one contiguous `data` buffer and n + 1 `offsets`, string i
 * being `data.subarray(offsets[i], offsets[i + 1])`. Fixed-size elements
 * (points, scalars) travel as one buffer of n × 32 bytes.
 */
import { InvalidArgumentError, InvalidLengthError } from "./errors.js";

export interface PackedBytes {
  /** All strings back to back. */
  readonly data: Uint8Array;
  /** n + 1 monotone offsets into `data`; `offsets[0]` is 0 or the first string's start. */
  readonly offsets: Uint32Array;
}

/** Number of strings in a packed buffer. */
export function packedCount(p: PackedBytes): number {
  return Math.max(0, p.offsets.length - 1);
}

/** String i of a packed buffer (a view, not a copy). */
export function packedAt(p: PackedBytes, i: number): Uint8Array {
  const start = p.offsets[i];
  const end = p.offsets[i + 1];
  if (start === undefined || end === undefined) throw new InvalidArgumentError(`index ${i} out of range`);
  return p.data.subarray(start, end);
}

/** Checks that offsets are monotone and inside `data`; throws InvalidArgumentError otherwise. */
export function assertPacked(p: PackedBytes, what = "packed bytes"): void {
  const { data, offsets } = p;
  if (offsets.length === 0) throw new InvalidArgumentError(`${what}: offsets must hold n + 1 entries`);
  let prev = offsets[0] ?? 0;
  for (let i = 1; i < offsets.length; i++) {
    const o = offsets[i] ?? 0;
    if (o < prev) throw new InvalidArgumentError(`${what}: offsets decrease at ${i}`);
    prev = o;
  }
  if (prev > data.length) throw new InvalidArgumentError(`${what}: offsets run past the data`);
}

/** Packs a list of byte strings (convenient for tests and small inputs; hot paths build PackedBytes directly). */
export function packBytes(items: readonly Uint8Array[]): PackedBytes {
  let total = 0;
  for (const it of items) total += it.length;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(items.length + 1);
  let o = 0;
  items.forEach((it, i) => {
    data.set(it, o);
    o += it.length;
    offsets[i + 1] = o;
  });
  return { data, offsets };
}

const utf8 = new TextEncoder();

/** Packs strings as UTF-8. */
export function packStrings(items: readonly string[]): PackedBytes {
  return packBytes(items.map((s) => utf8.encode(s)));
}

/** Checks that a flat buffer holds a whole number of `size`-byte elements; returns the count. */
export function fixedCount(buf: Uint8Array, size: number, what: string): number {
  if (buf.length % size !== 0) throw new InvalidLengthError(what, `a multiple of ${size}`, buf.length);
  return buf.length / size;
}
