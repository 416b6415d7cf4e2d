/**
 * An exact-match index over fixed-size, random-looking elements: blinded
 * group elements (32 bytes), OPRF outputs (64 bytes), tags (any size ≥ 4).
 *
 * The PSI intersection step builds an index over one party's elements and
 * probes it with the other's. Because the elements are uniformly
 * distributed, the hash is just their first eight bytes mixed with a random
 * per-index key (the key keeps a peer that chooses its elements from
 * steering them into one probe chain; elements equal on all eight bytes are
 * still compared in full). Open addressing with linear probing over one
 * interleaved Int32Array (element index + 1, hash): a probe touches one
 * cache line and compares the full element only on a 32-bit hash match.
 *
 * Elements whose size is a multiple of 4 are read and compared as 32-bit
 * words (probes at an unaligned byteOffset are copied once to an aligned
 * buffer); other sizes byte by byte.
 */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { fixedCount } from "../packed.js";
import { forEachSlice, SLICE_ITEMS } from "../slices.js";
import { tableCapacity } from "./distinct.js";

/** True when typed arrays on this platform are little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Mixes the first two little-endian words of an element (the second 0 for elements under 8 bytes) with the index key. */
function mix(w0: number, w1: number, k0: number, k1: number): number {
  let h = Math.imul(w0 ^ k0, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h ^ w1 ^ k1, 0xc2b2ae35);
  h ^= h >>> 13;
  h = Math.imul(h, 0x27d4eb2f);
  h ^= h >>> 16;
  return h | 0;
}

function wordAt(b: Uint8Array, p: number): number {
  return (b[p] ?? 0) | ((b[p + 1] ?? 0) << 8) | ((b[p + 2] ?? 0) << 16) | ((b[p + 3] ?? 0) << 24);
}

/** An index over n elements of `size` bytes; finds an element equal to a probe in expected O(1). */
export class ElementIndex {
  /** The indexed elements (an owned copy, aligned). */
  private readonly elements: Uint8Array;
  /** The same bytes as 32-bit words, when size is a multiple of 4 on a little-endian platform. */
  private readonly words: Uint32Array | undefined;
  private readonly size: number;
  private readonly n: number;
  private readonly mask: number;
  /** Slot s: table[2s] = element index + 1 (0 = empty), table[2s + 1] = its hash. */
  private readonly table: Int32Array;
  private readonly k0: number;
  private readonly k1: number;

  private constructor(elements: Uint8Array, size: number) {
    this.elements = elements;
    this.size = size;
    this.n = elements.length / size;
    this.words = size % 4 === 0 && LITTLE_ENDIAN ? new Uint32Array(elements.buffer, elements.byteOffset, elements.length / 4) : undefined;
    const cap = tableCapacity(this.n);
    this.mask = cap - 1;
    this.table = new Int32Array(2 * cap);
    const key = randomBytes(8);
    this.k0 = wordAt(key, 0);
    this.k1 = wordAt(key, 4);
  }

  /**
   * Indexes `elements`: n elements of `size` bytes back to back (copied, so
   * the caller may reuse or transfer its buffer). With duplicates, lookups
   * return the first.
   * @throws InvalidArgumentError when size is not an integer ≥ 4.
   * @throws InvalidLengthError when elements.length is not a multiple of size.
   */
  static build(elements: Uint8Array, size: number): ElementIndex {
    checkSize(size);
    fixedCount(elements, size, "indexed elements");
    const index = new ElementIndex(Uint8Array.prototype.slice.call(elements), size); // a copy (Buffer#slice would be a view)
    index.insertRange(0, index.n);
    return index;
  }

  /**
   * {@link build} with the elements inserted in slices of
   * {@link SLICE_ITEMS} and the event loop let run between them (the same
   * index; for 10^6 elements and more on a node's main thread).
   */
  static async buildAsync(elements: Uint8Array, size: number): Promise<ElementIndex> {
    checkSize(size);
    fixedCount(elements, size, "indexed elements");
    const index = new ElementIndex(Uint8Array.prototype.slice.call(elements), size);
    await forEachSlice(index.n, SLICE_ITEMS, (from, to) => index.insertRange(from, to));
    return index;
  }

  /** Number of indexed elements (duplicates included). */
  get count(): number {
    return this.n;
  }

  /** Size of each element in bytes. */
  get elementSize(): number {
    return this.size;
  }

  /** Inserts elements [from, to), in order (so duplicates keep the first). */
  private insertRange(from: number, to: number): void {
    const { size, mask, table, elements, words, k0, k1 } = this;
    if (words !== undefined) {
      const w = size / 4;
      for (let i = from; i < to; i++) {
        const base = i * w;
        const h = mix(words[base] ?? 0, w > 1 ? (words[base + 1] ?? 0) : 0, k0, k1);
        let slot = h & mask;
        for (;;) {
          const entry = table[2 * slot] ?? 0;
          if (entry === 0) {
            table[2 * slot] = i + 1;
            table[2 * slot + 1] = h;
            break;
          }
          // A duplicate of an earlier element: lookups return the earlier one, so skip it.
          if (table[2 * slot + 1] === h && sameWords(words, (entry - 1) * w, words, base, w)) break;
          slot = (slot + 1) & mask;
        }
      }
    } else {
      for (let i = from; i < to; i++) {
        const base = i * size;
        const h = mix(wordAt(elements, base), size >= 8 ? wordAt(elements, base + 4) : 0, k0, k1);
        let slot = h & mask;
        for (;;) {
          const entry = table[2 * slot] ?? 0;
          if (entry === 0) {
            table[2 * slot] = i + 1;
            table[2 * slot + 1] = h;
            break;
          }
          if (table[2 * slot + 1] === h && sameBytes(elements, (entry - 1) * size, elements, base, size)) break;
          slot = (slot + 1) & mask;
        }
      }
    }
  }

  /**
   * The index of the (first) indexed element equal to the `size` bytes of
   * `elements` starting at byte `offset`, or -1 when there is none.
   * @throws InvalidArgumentError when offset is not an integer or fewer than `size` bytes follow it.
   */
  find(elements: Uint8Array, offset: number): number {
    const size = this.size;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > elements.length) {
      throw new InvalidArgumentError(`offset ${offset} leaves fewer than ${size} bytes in a buffer of ${elements.length}`);
    }
    const { mask, table, k0, k1 } = this;
    const own = this.elements;
    const h = mix(wordAt(elements, offset), size >= 8 ? wordAt(elements, offset + 4) : 0, k0, k1);
    let slot = h & mask;
    for (;;) {
      const entry = table[2 * slot] ?? 0;
      if (entry === 0) return -1;
      if (table[2 * slot + 1] === h && sameBytes(own, (entry - 1) * size, elements, offset, size)) return entry - 1;
      slot = (slot + 1) & mask;
    }
  }

  /**
   * For each element of `probe` (elements of the same size back to back),
   * the index of an equal indexed element (the first, with duplicates) or -1.
   * @throws InvalidLengthError when probe.length is not a multiple of the element size.
   */
  matchAll(probe: Uint8Array): Int32Array {
    const m = fixedCount(probe, this.size, "probe elements");
    const out = new Int32Array(m);
    this.probeAll(probe, m, out);
    return out;
  }

  /** {@link matchAll} in slices of {@link SLICE_ITEMS} probes with the event loop let run between them (the same result). */
  async matchAllAsync(probe: Uint8Array): Promise<Int32Array> {
    const m = fixedCount(probe, this.size, "probe elements");
    const out = new Int32Array(m);
    const aligned = this.words !== undefined && probe.byteOffset % 4 !== 0 ? Uint8Array.prototype.slice.call(probe) : probe;
    await forEachSlice(m, SLICE_ITEMS, (from, to) => this.probeAll(aligned, m, out, from, to));
    return out;
  }

  /**
   * The number of `probe` elements that equal some indexed element (a probe
   * element repeated k times counts k times).
   * @throws InvalidLengthError when probe.length is not a multiple of the element size.
   */
  countMatches(probe: Uint8Array): number {
    const m = fixedCount(probe, this.size, "probe elements");
    return this.probeAll(probe, m, undefined);
  }

  /** Looks probe elements [from, to) of m up; writes indices to `out` when given; returns the number found. */
  private probeAll(probe: Uint8Array, m: number, out: Int32Array | undefined, from = 0, to = m): number {
    const { size, mask, table, k0, k1, words, elements } = this;
    let found = 0;
    if (words !== undefined) {
      const w = size / 4;
      const aligned = probe.byteOffset % 4 === 0 ? probe : Uint8Array.prototype.slice.call(probe); // a copy, aligned (Buffer#slice is a view)
      const pw = new Uint32Array(aligned.buffer, aligned.byteOffset, m * w);
      for (let i = from; i < to; i++) {
        const base = i * w;
        const h = mix(pw[base] ?? 0, w > 1 ? (pw[base + 1] ?? 0) : 0, k0, k1);
        let slot = h & mask;
        let hit = -1;
        for (;;) {
          const entry = table[2 * slot] ?? 0;
          if (entry === 0) break;
          if (table[2 * slot + 1] === h && sameWords(words, (entry - 1) * w, pw, base, w)) {
            hit = entry - 1;
            break;
          }
          slot = (slot + 1) & mask;
        }
        if (out !== undefined) out[i] = hit;
        if (hit >= 0) found++;
      }
    } else {
      for (let i = from; i < to; i++) {
        const base = i * size;
        const h = mix(wordAt(probe, base), size >= 8 ? wordAt(probe, base + 4) : 0, k0, k1);
        let slot = h & mask;
        let hit = -1;
        for (;;) {
          const entry = table[2 * slot] ?? 0;
          if (entry === 0) break;
          if (table[2 * slot + 1] === h && sameBytes(elements, (entry - 1) * size, probe, base, size)) {
            hit = entry - 1;
            break;
          }
          slot = (slot + 1) & mask;
        }
        if (out !== undefined) out[i] = hit;
        if (hit >= 0) found++;
      }
    }
    return found;
  }
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 4) throw new InvalidArgumentError(`element size must be an integer of at least 4 bytes, got ${size}`);
}

function sameWords(a: Uint32Array, as: number, b: Uint32Array, bs: number, w: number): boolean {
  for (let k = 0; k < w; k++) if (a[as + k] !== b[bs + k]) return false;
  return true;
}

function sameBytes(a: Uint8Array, as: number, b: Uint8Array, bs: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (a[as + k] !== b[bs + k]) return false;
  return true;
}
