/**
 * Distinct keys, random permutations and permuted copies of packed buffers.
 *
 * The PSI operators blind each *distinct* key once (a key column of 10^6
 * rows may hold far fewer distinct values), send the blinded values in a
 * random order (so that position reveals nothing about the row a value came
 * from), and map results back to rows through `rowToDistinct`.
 *
 * Hot path at 10^6 rows and more: one open-addressing hash table over an
 * Int32Array, hashes computed on the key bytes, no per-row objects or
 * strings.
 */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { fixedCount, type PackedBytes } from "../packed.js";
import { forEachSlice, SLICE_ITEMS } from "../slices.js";
import type { KeyColumn } from "../columns/keys.js";

/** The distinct non-null keys of a key column and, per row, which of them it holds. */
export interface DistinctKeys {
  /** Each distinct non-null key once, in first-seen order; offsets start at 0. */
  readonly distinct: PackedBytes;
  /** Per input row: the index of its key in `distinct`, or -1 for a null row. */
  readonly rowToDistinct: Int32Array;
  /** Number of distinct keys (entries in `distinct`). */
  readonly count: number;
}

/** Smallest power of two ≥ max(16, 2n): load factor at most 1/2. */
export function tableCapacity(n: number): number {
  let cap = 16;
  while (cap < 2 * n) cap *= 2;
  if (cap > 0x4000_0000) throw new InvalidArgumentError(`too many entries for one hash table (${n})`);
  return cap;
}

/**
 * A 32-bit hash of data[s, e): Murmur3-style, four bytes at a time, with the
 * length folded in and a final avalanche (so the low bits index the table).
 */
export function hashBytes(data: Uint8Array, s: number, e: number): number {
  let h = 0x9747b28c ^ (e - s);
  let p = s;
  const end4 = s + ((e - s) & ~3);
  while (p < end4) {
    let k = (data[p] ?? 0) | ((data[p + 1] ?? 0) << 8) | ((data[p + 2] ?? 0) << 16) | ((data[p + 3] ?? 0) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    p += 4;
  }
  if (p < e) {
    let k = 0;
    let shift = 0;
    while (p < e) {
      k |= (data[p++] ?? 0) << shift;
      shift += 8;
    }
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** True when a[as, as + len) and b[bs, bs + len) hold the same bytes. */
function sameBytes(a: Uint8Array, as: number, b: Uint8Array, bs: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (a[as + k] !== b[bs + k]) return false;
  return true;
}

/**
 * The distinct non-null keys of a column, in first-seen order, and for each
 * row the index of its key (-1 for a null row, `valid[i] === 0`; a valid
 * row with an empty key is the empty key, distinct from null).
 */
export function distinctKeys(keys: KeyColumn): DistinctKeys {
  const n = keys.length;
  const { data, offsets, valid } = keys;
  if (offsets.length < n + 1 || valid.length < n) {
    throw new InvalidArgumentError(`key column of ${n} rows has ${offsets.length} offsets and ${valid.length} validity bytes`);
  }
  const cap = tableCapacity(n);
  const mask = cap - 1;
  // Slot s: table[2s] = distinct index + 1 (0 = empty), table[2s + 1] = its hash.
  // Interleaved so that a probe touches one cache line.
  const table = new Int32Array(2 * cap);
  const rowToDistinct = new Int32Array(n);
  // Distinct index d → its bytes data[spans[2d], spans[2d + 1]), interleaved so a comparison misses cache once.
  const spans = new Uint32Array(2 * n);
  let count = 0;
  let bytes = 0;

  for (let i = 0; i < n; i++) {
    if (valid[i] === 0) {
      rowToDistinct[i] = -1;
      continue;
    }
    const s = offsets[i] ?? 0;
    const e = offsets[i + 1] ?? 0;
    const len = e - s;
    const h = hashBytes(data, s, e);
    let slot = h & mask;
    for (;;) {
      const entry = table[2 * slot] ?? 0;
      if (entry === 0) {
        table[2 * slot] = count + 1;
        table[2 * slot + 1] = h;
        spans[2 * count] = s;
        spans[2 * count + 1] = e;
        rowToDistinct[i] = count;
        count++;
        bytes += len;
        break;
      }
      if (table[2 * slot + 1] === h) {
        const rs = spans[2 * entry - 2] ?? 0;
        if ((spans[2 * entry - 1] ?? 0) - rs === len && sameBytes(data, rs, data, s, len)) {
          rowToDistinct[i] = entry - 1;
          break;
        }
      }
      slot = (slot + 1) & mask;
    }
  }

  const out = new Uint8Array(bytes);
  const outOffsets = new Uint32Array(count + 1);
  let p = 0;
  for (let d = 0; d < count; d++) {
    const s = spans[2 * d] ?? 0;
    const e = spans[2 * d + 1] ?? 0;
    if (e - s > 32) out.set(data.subarray(s, e), p);
    else for (let k = s; k < e; k++) out[p + k - s] = data[k] ?? 0;
    p += e - s;
    outOffsets[d + 1] = p;
  }
  return { distinct: { data: out, offsets: outOffsets }, rowToDistinct, count };
}

/** Bytes of randomness drawn per call to the source when shuffling. */
const RANDOM_CHUNK = 64 * 1024;

/**
 * A uniformly random permutation of 0 .. n-1 (Fisher–Yates, Durstenfeld's
 * in-place form). Each swap index j ∈ [0, i] comes from a 32-bit random
 * word by rejection sampling (words ≥ the largest multiple of i + 1 below
 * 2^32 are redrawn), so there is no modulo bias. Randomness is drawn in bulk
 * from `random` (default: node:crypto randomBytes).
 */
export function shuffledOrder(n: number, random: (bytes: number) => Uint8Array = randomBytes): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) throw new InvalidArgumentError(`permutation size must be an integer in [0, 2^32 - 1], got ${n}`);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let buf: Uint8Array = new Uint8Array(0);
  let pos = 0;
  for (let i = n - 1; i > 0; i--) {
    const range = i + 1;
    const limit = 4294967296 - (4294967296 % range); // accept words < limit
    let j: number;
    for (;;) {
      if (pos + 4 > buf.length) {
        const want = Math.min(RANDOM_CHUNK, 4 * i + 64);
        buf = random(want);
        if (buf.length < 4) throw new InvalidArgumentError("the random source returned fewer than 4 bytes");
        pos = 0;
      }
      const u = ((buf[pos] ?? 0) | ((buf[pos + 1] ?? 0) << 8) | ((buf[pos + 2] ?? 0) << 16) | ((buf[pos + 3] ?? 0) << 24)) >>> 0;
      pos += 4;
      if (u < limit) {
        j = u % range;
        break;
      }
    }
    const t = order[i] ?? 0;
    order[i] = order[j] ?? 0;
    order[j] = t;
  }
  return order;
}

/**
 * Packed strings in a new order: string i of the result is string
 * `order[i]` of `p` (order may repeat or omit entries). The result owns its
 * buffers and its offsets start at 0.
 * @throws InvalidArgumentError when an entry of `order` is out of range.
 */
export function permutePacked(p: PackedBytes, order: Uint32Array): PackedBytes {
  const { data, offsets } = p;
  const count = Math.max(0, offsets.length - 1);
  const m = order.length;
  const outOffsets = new Uint32Array(m + 1);
  let total = 0;
  for (let i = 0; i < m; i++) {
    const r = order[i] ?? 0;
    if (r >= count) throw new InvalidArgumentError(`order[${i}] = ${r} is out of range for ${count} strings`);
    total += (offsets[r + 1] ?? 0) - (offsets[r] ?? 0);
    outOffsets[i + 1] = total;
  }
  if (total > 0xffff_ffff) throw new InvalidArgumentError(`permuted strings exceed ${0xffff_ffff} bytes`);
  const out = new Uint8Array(total);
  let q = 0;
  for (let i = 0; i < m; i++) {
    const r = order[i] ?? 0;
    const s = offsets[r] ?? 0;
    const e = offsets[r + 1] ?? 0;
    if (e - s > 32) out.set(data.subarray(s, e), q);
    else for (let k = s; k < e; k++) out[q + k - s] = data[k] ?? 0;
    q += e - s;
  }
  return { data: out, offsets: outOffsets };
}

/**
 * Fixed-size elements in a new order: element i of the result is element
 * `order[i]` of `buf` (elements of `size` bytes back to back).
 * @throws InvalidLengthError when buf.length is not a multiple of size.
 * @throws InvalidArgumentError when size is not a positive integer or an entry of `order` is out of range.
 */
export function permuteFixed(buf: Uint8Array, size: number, order: Uint32Array): Uint8Array {
  const p = permutation(buf, size, order);
  p.check(0, order.length);
  p.copy(0, order.length);
  return p.out;
}

/**
 * {@link permuteFixed} in slices of {@link SLICE_ITEMS} elements with the
 * event loop let run between them (the same bytes; for columns of 10^6
 * elements and more on a node's main thread).
 */
export async function permuteFixedAsync(buf: Uint8Array, size: number, order: Uint32Array): Promise<Uint8Array> {
  const p = permutation(buf, size, order);
  await forEachSlice(order.length, SLICE_ITEMS, (from, to) => p.check(from, to));
  await forEachSlice(order.length, SLICE_ITEMS, (from, to) => p.copy(from, to));
  return p.out;
}

/** permuteFixed's checks and copy over a range of the result's elements. */
function permutation(buf: Uint8Array, size: number, order: Uint32Array): { readonly out: Uint8Array; check(from: number, to: number): void; copy(from: number, to: number): void } {
  if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError(`element size must be a positive integer, got ${size}`);
  const count = fixedCount(buf, size, "permuted elements");
  const m = order.length;
  const out = new Uint8Array(m * size);
  // Word copies when both views are aligned (out is a fresh buffer).
  const w = size % 4 === 0 && buf.byteOffset % 4 === 0 ? size / 4 : 0;
  const src = w > 0 ? new Uint32Array(buf.buffer, buf.byteOffset, count * w) : undefined;
  const dst = w > 0 ? new Uint32Array(out.buffer, 0, m * w) : undefined;
  return {
    out,
    check(from, to) {
      for (let i = from; i < to; i++) {
        const r = order[i] ?? 0;
        if (r >= count) throw new InvalidArgumentError(`order[${i}] = ${r} is out of range for ${count} elements`);
      }
    },
    copy(from, to) {
      if (src !== undefined && dst !== undefined) {
        for (let i = from; i < to; i++) {
          const s = (order[i] ?? 0) * w;
          const d = i * w;
          for (let k = 0; k < w; k++) dst[d + k] = src[s + k] ?? 0;
        }
      } else {
        for (let i = from; i < to; i++) {
          const s = (order[i] ?? 0) * size;
          const d = i * size;
          for (let k = 0; k < size; k++) out[d + k] = buf[s + k] ?? 0;
        }
      }
    },
  };
}
