/**
 * Cuckoo hashing for the OT-extension PSI: the receiver places each of its
 * elements in one of 3 candidate bins; the sender, by simple hashing,
 * evaluates each of its elements in all 3 candidate bins. (The code keeps a
 * stash — rows every sender element is also evaluated in — but the table
 * below needs none.)
 *
 * Parameters: 3 hash functions, no stash, ⌈e·n⌉ bins with the expansion e
 * from the experimentally fitted failure law of Pinkas, Schneider, Weinert,
 * Wieder ("Efficient Circuit-based PSI via Cuckoo Hashing", EUROCRYPT 2018,
 * §5): for 3 functions and no stash, the statistical security λ (failure
 * ≤ 2^-λ) is linear in e, λ = a·e + b, with a → 123.5 and b → −130 − log2 n
 * as n grows (the small-n terms follow a normal CDF). That fit is the one
 * the cryptoTools library's CuckooIndex::selectParams uses, which libPSI's
 * KKRT PSI runs with. Solving for λ = 40 and rounding e up to 0.01:
 *
 *   log2 n  12    13    14    15    16    17    18    19    20    21    22    23    24
 *   e       1.48  1.49  1.50  1.50  1.51  1.52  1.53  1.54  1.54  1.55  1.56  1.57  1.58
 *
 * A size between two points takes the e of the point at or above it (e grows
 * with n). Sizes below 2^12 are placed in the table for 2^12 elements (a
 * subset of a placeable set is placeable), so every table has at least
 * ⌈1.48 · 4096⌉ = 6,063 bins. Above 2^24 there is no point, so the size is
 * refused (`UnsupportedSizeError`) rather than run at an unknown risk.
 * Against a stash (KKRT16 used 1.2·n bins and a stash of 2–12 from earlier
 * experiments), no stash costs ~28% more OT rows but halves the sender's
 * work and the tags it sends: each of its elements is evaluated in 3 rows
 * instead of 3 + s. test/ot-cuckoo.test.ts checks the insertion below
 * against the fitted law where failures are frequent enough to count.
 *
 * Hash functions: every element e (a byte string) is digested once,
 * D = BLAKE2b-512(seed ‖ e) with the 16-byte seed both parties share; D[0..15)
 * is the element's 120-bit identity (its OPRF input, the 16th byte naming the
 * hash function that placed it, so that bins do not collide across
 * functions), and D[16 + 6h .. 22 + 6h) read as a 48-bit integer modulo the
 * bin count is its bin under function h (bias ≤ bins / 2^48 ≤ 2^-22).
 * Insertion is the random walk (evict a random other candidate's occupant, at
 * most MAX_KICKS moves, then the stash), its choices drawn from a generator
 * seeded by the same seed, so a run replays.
 */
import { HashingFailedError, InvalidArgumentError, InvalidLengthError, UnsupportedSizeError } from "../errors.js";
import type { PackedBytes } from "../packed.js";
import type { Blake2b512 } from "../ot/blake2.js";

export const CUCKOO_HASHES = 3;
/** Expansion e (bins per element) for failure ≤ 2^-40 at the table's set sizes, no stash (see the header). */
export const CUCKOO_TABLE: readonly { readonly n: number; readonly expansion: number; readonly stash: number }[] = [
  [12, 1.48],
  [13, 1.49],
  [14, 1.5],
  [15, 1.5],
  [16, 1.51],
  [17, 1.52],
  [18, 1.53],
  [19, 1.54],
  [20, 1.54],
  [21, 1.55],
  [22, 1.56],
  [23, 1.57],
  [24, 1.58],
].map(([log2n, expansion]) => ({ n: 2 ** (log2n as number), expansion: expansion as number, stash: 0 }));
export const CUCKOO_MAX_ITEMS = 2 ** 24;
/** Class byte of a stashed element's OPRF input (bins use 0, 1, 2). */
export const STASH_CLASS = CUCKOO_HASHES;
/** Most evictions before an element goes to the stash. */
export const MAX_KICKS = 1000;
/** Bytes of an element's OPRF input block. */
export const ITEM_BYTES = 16;

export interface CuckooParams {
  /** Receiver elements the table is for. */
  readonly n: number;
  readonly bins: number;
  readonly stash: number;
  /** OT rows: bins + stash. */
  readonly rows: number;
}

/** The bins (and stash, 0) for n receiver elements; `UnsupportedSizeError` above 2^24. */
export function cuckooParams(n: number): CuckooParams {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`set size must be a non-negative integer, got ${n}`);
  if (n > CUCKOO_MAX_ITEMS) throw new UnsupportedSizeError(`OT-PSI supports at most ${CUCKOO_MAX_ITEMS} distinct keys on the receiving side (the cuckoo-hashing table's largest size), got ${n}`);
  const first = CUCKOO_TABLE[0] as { n: number };
  const sized = Math.max(n, first.n);
  const point = CUCKOO_TABLE.find((p) => p.n >= sized) as { expansion: number; stash: number };
  // e·n in hundredths, exactly: ⌈e·100 · n / 100⌉.
  const bins = Math.ceil((Math.round(point.expansion * 100) * sized) / 100);
  return { n, bins, stash: point.stash, rows: bins + point.stash };
}

/** log2 of the union bound on a false match: n receiver tags against (3 + s)·nSender sender tags of `tagBits` bits. */
export function falsePositiveLog2(params: CuckooParams, nSender: number, tagBits: number): number {
  return Math.log2(Math.max(1, params.n)) + Math.log2(Math.max(1, (CUCKOO_HASHES + params.stash) * nSender)) - tagBits;
}

export interface ItemDigests {
  /** n × 16 bytes: each element's OPRF input block, class byte (15) zero. */
  readonly blocks: Uint8Array;
  /** n × 3 bin indices. */
  readonly positions: Uint32Array;
}

/** Digests every element of `keys` (seed-keyed BLAKE2b-512) into its input block and its 3 bins among `bins`. */
export function itemDigests(hash: Blake2b512, keys: PackedBytes, seed: Uint8Array, bins: number): ItemDigests {
  if (seed.length !== 16) throw new InvalidLengthError("hashing seed", "16", seed.length);
  if (!Number.isSafeInteger(bins) || bins < 1 || bins > 2 ** 32) throw new InvalidArgumentError(`bin count must be in [1, 2^32], got ${bins}`);
  const n = Math.max(0, keys.offsets.length - 1);
  const { data, offsets } = keys;
  let longest = 0;
  for (let i = 0; i < n; i++) longest = Math.max(longest, (offsets[i + 1] ?? 0) - (offsets[i] ?? 0));
  const input = new Uint8Array(16 + longest);
  input.set(seed, 0);
  const digest = new Uint8Array(64);
  const blocks = new Uint8Array(n * ITEM_BYTES);
  const positions = new Uint32Array(n * CUCKOO_HASHES);
  for (let i = 0; i < n; i++) {
    const s = offsets[i] ?? 0;
    const e = offsets[i + 1] ?? 0;
    input.set(data.subarray(s, e), 16);
    hash(digest, input.subarray(0, 16 + e - s));
    blocks.set(digest.subarray(0, 15), i * ITEM_BYTES);
    for (let h = 0; h < CUCKOO_HASHES; h++) {
      const o = 16 + 6 * h;
      const lo = ((digest[o] as number) | ((digest[o + 1] as number) << 8) | ((digest[o + 2] as number) << 16) | ((digest[o + 3] as number) << 24)) >>> 0;
      const hi = (digest[o + 4] as number) | ((digest[o + 5] as number) << 8);
      positions[i * CUCKOO_HASHES + h] = (hi * 4294967296 + lo) % bins;
    }
  }
  return { blocks, positions };
}

export interface CuckooTable {
  readonly params: CuckooParams;
  /** Per bin: the element placed there, or -1. */
  readonly bins: Int32Array;
  /** Per bin: the hash function (0, 1, 2) that placed its element. */
  readonly binHash: Uint8Array;
  /** Per stash slot: the element stashed there, or -1. */
  readonly stash: Int32Array;
}

/** xorshift32 from the seed's first word (never 0). */
function walkRandom(seed: Uint8Array): () => number {
  let x = ((seed[0] ?? 0) | ((seed[1] ?? 0) << 8) | ((seed[2] ?? 0) << 16) | ((seed[3] ?? 0) << 24)) >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/**
 * Places n elements (their 3 positions each, from `itemDigests`) into
 * `params.bins` bins and a stash of `params.stash`; `HashingFailedError`
 * when even the stash is full (probability ≤ 2^-40 for distinct elements).
 */
export function cuckooInsert(positions: Uint32Array, params: CuckooParams, seed: Uint8Array): CuckooTable {
  const n = positions.length / CUCKOO_HASHES;
  if (!Number.isInteger(n) || n !== params.n) throw new InvalidArgumentError(`positions hold ${positions.length / CUCKOO_HASHES} elements, the table is for ${params.n}`);
  const bins = new Int32Array(params.bins).fill(-1);
  const binHash = new Uint8Array(params.bins);
  const stash = new Int32Array(params.stash).fill(-1);
  let stashed = 0;
  const rand = walkRandom(seed);
  for (let e = 0; e < n; e++) {
    let cur = e;
    let from = -1;
    let placed = false;
    for (let kick = 0; kick <= MAX_KICKS && !placed; kick++) {
      const p = cur * CUCKOO_HASHES;
      for (let h = 0; h < CUCKOO_HASHES; h++) {
        const b = positions[p + h] as number;
        if (bins[b] === -1) {
          bins[b] = cur;
          binHash[b] = h;
          placed = true;
          break;
        }
      }
      if (placed || kick === MAX_KICKS) break;
      // Evict from a random candidate other than the bin cur was just evicted from.
      let h = rand() % CUCKOO_HASHES;
      if ((positions[p + h] as number) === from) h = (h + 1 + (rand() & 1)) % CUCKOO_HASHES;
      const b = positions[p + h] as number;
      const evicted = bins[b] as number;
      bins[b] = cur;
      binHash[b] = h;
      cur = evicted;
      from = b;
    }
    if (!placed) {
      if (stashed === params.stash) throw new HashingFailedError(`cuckoo hashing of ${n} elements into ${params.bins} bins overflowed its stash of ${params.stash}`);
      stash[stashed++] = cur;
    }
  }
  return { params, bins, binHash, stash };
}

/**
 * The sender's simple hashing: for each element and each hash function h,
 * a query (row = its bin under h, input = its block with class byte h), then
 * for each stash row t, a query (row = bins + t, class STASH_CLASS) per
 * element. Returns the rows and the 16-byte inputs, (3 + stash)·n queries.
 */
export function simpleHashQueries(digests: ItemDigests, params: CuckooParams): { rowOf: Uint32Array; inputs: Uint8Array } {
  const n = digests.blocks.length / ITEM_BYTES;
  const per = CUCKOO_HASHES + params.stash;
  const rowOf = new Uint32Array(n * per);
  const inputs = new Uint8Array(n * per * ITEM_BYTES);
  let q = 0;
  for (let i = 0; i < n; i++) {
    const block = digests.blocks.subarray(i * ITEM_BYTES, (i + 1) * ITEM_BYTES);
    for (let h = 0; h < CUCKOO_HASHES; h++, q++) {
      rowOf[q] = digests.positions[i * CUCKOO_HASHES + h] as number;
      inputs.set(block, q * ITEM_BYTES);
      inputs[q * ITEM_BYTES + 15] = h;
    }
    for (let t = 0; t < params.stash; t++, q++) {
      rowOf[q] = params.bins + t;
      inputs.set(block, q * ITEM_BYTES);
      inputs[q * ITEM_BYTES + 15] = STASH_CLASS;
    }
  }
  return { rowOf, inputs };
}

/**
 * The receiver's OPRF input per OT row: a placed element's block with the
 * class byte of the function that placed it (or STASH_CLASS in the stash);
 * an empty row gets `filler` (16 random bytes per row, from the caller), so
 * which rows are empty shows nowhere.
 */
export function cuckooRowInputs(table: CuckooTable, digests: ItemDigests, filler: Uint8Array): Uint8Array {
  const { bins, stash } = table.params;
  const rows = bins + stash;
  if (filler.length !== rows * ITEM_BYTES) throw new InvalidLengthError("filler", String(rows * ITEM_BYTES), filler.length);
  const out = Uint8Array.from(filler);
  for (let b = 0; b < bins; b++) {
    const e = table.bins[b] as number;
    if (e < 0) continue;
    out.set(digests.blocks.subarray(e * ITEM_BYTES, (e + 1) * ITEM_BYTES), b * ITEM_BYTES);
    out[b * ITEM_BYTES + 15] = table.binHash[b] as number;
  }
  for (let t = 0; t < stash; t++) {
    const e = table.stash[t] as number;
    if (e < 0) continue;
    const o = (bins + t) * ITEM_BYTES;
    out.set(digests.blocks.subarray(e * ITEM_BYTES, (e + 1) * ITEM_BYTES), o);
    out[o + 15] = STASH_CLASS;
  }
  return out;
}
