/**
 * IKNP OT extension with KKRT's code, and the batched OPRF built on it.
 *
 * Sources: Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers
 * Efficiently", CRYPTO 2003, §3 (the protocol; here with the base OTs'
 * roles swapped as usual); Kolesnikov, Kumaresan, Rosulek, Trieu, CCS 2016
 * (KKRT16), §3, Figure 2 (BaRK-OPRF: the repetition code replaced by a
 * pseudorandom code C of width w, code.ts).
 *
 * Receiver R (inputs r_1..r_m, one per OT row), sender S (secret s ∈ {0,1}^w):
 *   base OTs (base-ot.ts): R is the base-OT sender with w key pairs
 *     (k_i^0, k_i^1); S the receiver with choice bits s, getting k_i^{s_i}.
 *   R: t^i = G(k_i^0), u^i = t^i ⊕ G(k_i^1) ⊕ c^i for each column i, where
 *      c^i is column i of the m × w matrix of rows C(r_j); sends u (w × m bits).
 *   S: q^i = G(k_i^{s_i}) ⊕ s_i·u^i = t^i ⊕ s_i·c^i, so each row
 *      q_j = t_j ⊕ (C(r_j) ∧ s).
 *   OPRF: F(j, x) = H(j, q_j ⊕ (C(x) ∧ s)); S computes it for any x;
 *      R's output for row j is H(j, t_j) = F(j, r_j).
 * G is AES-128-CTR (prg.ts). The columns are made and sent column-major and
 * turned into rows with the 32 × 32 block transpose (bits.ts).
 *
 * H, the correlation-robust hash: H(j, y) = BLAKE2b-512(DST ‖ j ‖ y) cut to
 * TAG_BYTES bytes, DST = "umbraOT1", j as 4 bytes little-endian, y the w-bit
 * row. KKRT16's security argument needs H to hide the correlated values
 * q_j ⊕ (C(x) ∧ s) (correlation robustness) and is stated with H a random
 * oracle; BLAKE2b-512 is our random-oracle instantiation (the same modelling
 * as the RFC 9497 OPRF's hashes). The row index j is folded in as a tweak so
 * equal values in different rows hash apart. Tags of TAG_BYTES = 12 (96 bits): with n ≤ 2^24 elements each
 * side and (3 + s)·n sender tags, the chance that any receiver tag equals a
 * sender tag it should not is ≤ n · (3 + s)·n / 2^96 ≤ 2^-43 (cuckoo.ts
 * `falsePositiveLog2`).
 *
 * Every received buffer has its length checked exactly before use. Hot loops
 * work in place on typed arrays with scratch buffers allocated once per call.
 */
import { InvalidArgumentError, InvalidLengthError } from "../errors.js";
import { bytesView, transposeBits, wordsFor, wordsView } from "./bits.js";
import type { Blake2b512 } from "./blake2.js";
import { CODE_INPUT_BYTES, CODE_WIDTH, encodeInto } from "./code.js";
import { OT_KEY_BYTES } from "./base-ot.js";
import { prgInto } from "./prg.js";

/** Bytes of an OPRF output (tag). */
export const TAG_BYTES = 12;
/** Most OT rows in one extension. */
export const MAX_OT_ROWS = 1 << 26;

const DST = new TextEncoder().encode("umbraOT1");
const HEAD = DST.length + 4;
const CHUNK = 4096;

function assertRows(m: number): void {
  if (!Number.isSafeInteger(m) || m < 1 || m > MAX_OT_ROWS) throw new InvalidArgumentError(`OT rows must be an integer in [1, ${MAX_OT_ROWS}], got ${m}`);
}

function assertWidth(width: number): void {
  if (!Number.isSafeInteger(width) || width % 32 !== 0 || width < 128 || width > 512) {
    throw new InvalidArgumentError(`OT width must be a multiple of 32 in [128, 512], got ${width}`);
  }
}

/** Bytes of the receiver's message u for m rows of width w: w columns of 4·⌈m/32⌉ bytes. */
export function extensionMessageBytes(m: number, width = CODE_WIDTH): number {
  return width * 4 * wordsFor(m);
}

export interface ExtensionReceiverResult {
  /** u, to send to the sender: `extensionMessageBytes(m, width)` bytes. */
  readonly message: Uint8Array;
  /** The m rows t_j, width/8 bytes each. */
  readonly rows: Uint8Array;
}

/** A range of OT rows must start at a multiple of this many rows (one 128-bit PRG block per column). */
export const OT_RANGE_ALIGN = 128;

function assertRange(first: number, count: number): void {
  if (!Number.isSafeInteger(first) || first < 0 || first % OT_RANGE_ALIGN !== 0) throw new InvalidArgumentError(`an OT row range must start at a multiple of ${OT_RANGE_ALIGN}, got ${first}`);
  assertRows(count);
  if (first + count > MAX_OT_ROWS) throw new InvalidArgumentError(`OT rows ${first}..${first + count} pass ${MAX_OT_ROWS}`);
}

/**
 * The receiver's extension: base-OT key pairs (w × 16 bytes each) and its
 * m codewords C(r_j) (m rows of w/8 bytes, code.ts `encodeInto`).
 */
export function extensionReceive(keys0: Uint8Array, keys1: Uint8Array, codewords: Uint8Array, m: number, width = CODE_WIDTH): ExtensionReceiverResult {
  assertRows(m);
  return extensionReceiveRange(keys0, keys1, codewords, 0, m, width);
}

/**
 * The receiver's extension for the `count` rows from row `first` (a multiple
 * of OT_RANGE_ALIGN): `codewords` holds those rows' codewords. Returns u's
 * part for those rows — w columns of ⌈count/32⌉ words, column-major, what
 * {@link placeColumns} puts into the whole u — and the rows t_j. Over the
 * whole range (first 0, count m) this is extensionReceive, bit for bit.
 */
export function extensionReceiveRange(keys0: Uint8Array, keys1: Uint8Array, codewords: Uint8Array, first: number, count: number, width = CODE_WIDTH): ExtensionReceiverResult {
  assertRange(first, count);
  assertWidth(width);
  const kb = width * OT_KEY_BYTES;
  if (keys0.length !== kb) throw new InvalidLengthError("base OT keys (0)", String(kb), keys0.length);
  if (keys1.length !== kb) throw new InvalidLengthError("base OT keys (1)", String(kb), keys1.length);
  if (codewords.length !== count * (width >>> 3)) throw new InvalidLengthError("codewords", String(count * (width >>> 3)), codewords.length);
  const mw = wordsFor(count);
  const offset = first >>> 3;
  // Columns of the code matrix; then u = t ⊕ G(k^1) ⊕ c, column by column, in the same buffer.
  const u = transposeBits(wordsView(codewords), count, width);
  const t = new Uint32Array(width * mw);
  const g1 = new Uint32Array(mw);
  const g1Bytes = bytesView(g1);
  for (let i = 0; i < width; i++) {
    prgInto(keys0.subarray(i * 16, i * 16 + 16), bytesView(t.subarray(i * mw, (i + 1) * mw)), offset);
    prgInto(keys1.subarray(i * 16, i * 16 + 16), g1Bytes, offset);
    const o = i * mw;
    for (let k = 0; k < mw; k++) u[o + k] = (u[o + k] as number) ^ (t[o + k] as number) ^ (g1[k] as number);
  }
  const rows = transposeBits(t, width, count);
  return { message: bytesView(u), rows: bytesView(rows) };
}

/**
 * The sender's extension: its chosen base-OT keys k_i^{s_i} (w × 16 bytes),
 * s (w/8 bytes, bit i = s_i, least significant first) and the receiver's
 * message u. Returns the m rows q_j (width/8 bytes each), written into
 * `into` when given (m · w/8 bytes, 4-byte aligned: e.g. over a
 * SharedArrayBuffer the pool's workers read).
 */
export function extensionSend(keys: Uint8Array, s: Uint8Array, message: Uint8Array, m: number, width = CODE_WIDTH, into?: Uint8Array): Uint8Array {
  assertRows(m);
  return extensionSendRange(keys, s, message, 0, m, width, into);
}

/**
 * The sender's extension for the `count` rows from row `first` (a multiple
 * of OT_RANGE_ALIGN): `message` is u's part for those rows ({@link
 * columnsOf}). Returns those rows q_j, written into `into` when given
 * (count · w/8 bytes, 4-byte aligned). Over the whole range this is
 * extensionSend, bit for bit.
 */
export function extensionSendRange(keys: Uint8Array, s: Uint8Array, message: Uint8Array, first: number, count: number, width = CODE_WIDTH, into?: Uint8Array): Uint8Array {
  assertRange(first, count);
  assertWidth(width);
  if (keys.length !== width * OT_KEY_BYTES) throw new InvalidLengthError("base OT keys", String(width * OT_KEY_BYTES), keys.length);
  if (s.length !== width >>> 3) throw new InvalidLengthError("OT extension secret s", String(width >>> 3), s.length);
  const expected = extensionMessageBytes(count, width);
  if (!(message instanceof Uint8Array) || message.length !== expected) throw new InvalidLengthError("OT extension message", String(expected), message instanceof Uint8Array ? message.length : 0);
  const mw = wordsFor(count);
  const offset = first >>> 3;
  const u = wordsView(message);
  const q = new Uint32Array(width * mw);
  for (let i = 0; i < width; i++) {
    const col = q.subarray(i * mw, (i + 1) * mw);
    prgInto(keys.subarray(i * 16, i * 16 + 16), bytesView(col), offset);
    if ((((s[i >>> 3] as number) >>> (i & 7)) & 1) === 1) {
      const o = i * mw;
      for (let k = 0; k < mw; k++) col[k] = (col[k] as number) ^ (u[o + k] as number);
    }
  }
  if (into !== undefined && (into.length !== count * (width >>> 3) || into.byteOffset % 4 !== 0)) throw new InvalidLengthError("OT rows buffer", String(count * (width >>> 3)), into.length);
  return bytesView(transposeBits(q, width, count, into === undefined ? undefined : wordsView(into)));
}

/** u's part for rows [first, first + count) (first a multiple of 32): w columns of ⌈count/32⌉ words, a copy. */
export function columnsOf(message: Uint8Array, m: number, first: number, count: number, width = CODE_WIDTH): Uint8Array {
  const mw = wordsFor(m);
  if (message.length !== width * 4 * mw) throw new InvalidLengthError("OT extension message", String(width * 4 * mw), message.length);
  if (first % 32 !== 0 || first + count > m) throw new InvalidArgumentError(`rows ${first}..${first + count} are not a range of ${m} starting at a multiple of 32`);
  const u = wordsView(message);
  const cw = wordsFor(count);
  const out = new Uint32Array(width * cw);
  const w0 = first >>> 5;
  for (let i = 0; i < width; i++) out.set(u.subarray(i * mw + w0, i * mw + w0 + cw), i * cw);
  return bytesView(out);
}

/** Puts u's part for rows [first, first + count) (as {@link columnsOf} cuts it) into the whole u of m rows. */
export function placeColumns(message: Uint8Array, m: number, part: Uint8Array, first: number, count: number, width = CODE_WIDTH): void {
  const mw = wordsFor(m);
  const cw = wordsFor(count);
  if (message.length !== width * 4 * mw || part.length !== width * 4 * cw) throw new InvalidLengthError("OT extension message part", String(width * 4 * cw), part.length);
  if (first % 32 !== 0 || first + count > m) throw new InvalidArgumentError(`rows ${first}..${first + count} are not a range of ${m} starting at a multiple of 32`);
  const u = wordsView(message);
  const p = wordsView(part);
  const w0 = first >>> 5;
  for (let i = 0; i < width; i++) u.set(p.subarray(i * cw, (i + 1) * cw), i * mw + w0);
}

/** A reusable hashing scratch: DST ‖ j ‖ row, and the 64-byte digest. */
function scratch(width: number): { input: Uint8Array; words: Uint32Array; digest: Uint8Array } {
  const input = new Uint8Array(HEAD + (width >>> 3));
  input.set(DST, 0);
  return { input, words: new Uint32Array(input.buffer), digest: new Uint8Array(64) };
}

/** The sender's checked OT rows q (m of width/8 bytes) and its secret s, as words. */
function senderRows(rows: Uint8Array, m: number, s: Uint8Array, width: number): { rb: number; rw: number; q: Uint32Array; s32: Uint32Array } {
  assertRows(m);
  assertWidth(width);
  const rb = width >>> 3;
  if (rows.length !== m * rb) throw new InvalidLengthError("OT rows", String(m * rb), rows.length);
  if (s.length !== rb) throw new InvalidLengthError("OT extension secret s", String(rb), s.length);
  return { rb, rw: width >>> 5, q: wordsView(rows), s32: wordsView(s) };
}

/** The receiver's OPRF outputs: tag j = H(j, t_j) for each of the m rows. */
export function oprfReceiverTags(hash: Blake2b512, rows: Uint8Array, m: number, width = CODE_WIDTH): Uint8Array {
  assertRows(m);
  return oprfReceiverTagsFrom(hash, rows, 0, width);
}

/**
 * The receiver's OPRF outputs for a run of consecutive rows: `rows` holds
 * rows first, first + 1, …; tag k = H(first + k, t_{first + k}). What a pool
 * worker computes for its share of oprfReceiverTags (the same bytes).
 */
export function oprfReceiverTagsFrom(hash: Blake2b512, rows: Uint8Array, first: number, width = CODE_WIDTH): Uint8Array {
  assertWidth(width);
  const rb = width >>> 3;
  if (rows.length % rb !== 0) throw new InvalidLengthError("OT rows", `a multiple of ${rb}`, rows.length);
  const count = rows.length / rb;
  if (!Number.isSafeInteger(first) || first < 0 || first + count > MAX_OT_ROWS) throw new InvalidArgumentError(`OT rows ${first}..${first + count} are outside [0, ${MAX_OT_ROWS}]`);
  const { input, words, digest } = scratch(width);
  const out = new Uint8Array(count * TAG_BYTES);
  const head = HEAD >>> 2;
  for (let k = 0; k < count; k++) {
    words[head - 1] = first + k;
    input.set(rows.subarray(k * rb, (k + 1) * rb), HEAD);
    hash(digest, input);
    out.set(digest.subarray(0, TAG_BYTES), k * TAG_BYTES);
  }
  return out;
}

/**
 * The sender's OPRF evaluations: for each query k, F(rowOf[k], x_k) =
 * H(j, q_j ⊕ (C(x_k) ∧ s)), x_k the 16-byte input k. Returns one tag per
 * query (queries × TAG_BYTES bytes), in query order.
 */
export function oprfSenderEvaluate(
  hash: Blake2b512,
  codeKeys: Uint8Array,
  rows: Uint8Array,
  m: number,
  s: Uint8Array,
  rowOf: Uint32Array,
  inputs: Uint8Array,
  width = CODE_WIDTH,
): Uint8Array {
  const { rb, rw, q, s32 } = senderRows(rows, m, s, width);
  const n = rowOf.length;
  if (inputs.length !== n * CODE_INPUT_BYTES) throw new InvalidLengthError("OPRF inputs", String(n * CODE_INPUT_BYTES), inputs.length);
  const { input, words, digest } = scratch(width);
  const head = HEAD >>> 2;
  const codes = new Uint8Array(Math.min(n, CHUNK) * rb);
  const codes32 = new Uint32Array(codes.buffer);
  const out = new Uint8Array(n * TAG_BYTES);
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    encodeInto(codeKeys, inputs.subarray(start * 16, (start + count) * 16), codes.subarray(0, count * rb), width);
    for (let c = 0; c < count; c++) {
      const k = start + c;
      const j = rowOf[k] as number;
      if (j >= m) throw new InvalidArgumentError(`OPRF query ${k} names row ${j} of ${m}`);
      words[head - 1] = j;
      const qo = j * rw;
      const co = c * rw;
      for (let w = 0; w < rw; w++) words[head + w] = (q[qo + w] as number) ^ ((codes32[co + w] as number) & (s32[w] as number));
      hash(digest, input);
      out.set(digest.subarray(0, TAG_BYTES), k * TAG_BYTES);
    }
  }
  return out;
}

/**
 * The sender's OPRF evaluations for simple hashing (KKRT16 §5), element by
 * element: for element i (its 16-byte block, class byte ignored) and each of
 * its `positions` rows p_{i,h} (h = 0 … hashes − 1), F(p_{i,h}, block_i with
 * class byte h); then for each of the `stash` rows from `stashRow`,
 * F(stashRow + t, block_i with class byte `hashes`). (hashes + stash) tags per
 * element, in that order — the order of engine/psi simpleHashQueries, and the
 * same bytes as oprfSenderEvaluate on those queries. The stash rows share one
 * codeword per element, so an element costs hashes + 1 codewords.
 */
export function oprfSenderTagsForItems(
  hash: Blake2b512,
  codeKeys: Uint8Array,
  rows: Uint8Array,
  m: number,
  s: Uint8Array,
  blocks: Uint8Array,
  positions: Uint32Array,
  hashes: number,
  stashRow: number,
  stash: number,
  width = CODE_WIDTH,
): Uint8Array {
  const { rb, rw, q, s32 } = senderRows(rows, m, s, width);
  if (blocks.length % CODE_INPUT_BYTES !== 0) throw new InvalidLengthError("element blocks", "a multiple of 16", blocks.length);
  const n = blocks.length / CODE_INPUT_BYTES;
  if (!Number.isInteger(hashes) || hashes < 1 || hashes > 8 || positions.length !== n * hashes) throw new InvalidLengthError("element positions", String(n * hashes), positions.length);
  if (!Number.isInteger(stash) || stash < 0 || stashRow < 0 || stashRow + stash > m) throw new InvalidArgumentError(`stash rows ${stashRow}..${stashRow + stash} are outside the ${m} OT rows`);
  const { input, words, digest } = scratch(width);
  const head = HEAD >>> 2;
  const classes = hashes + (stash > 0 ? 1 : 0);
  const per = hashes + stash;
  const chunk = Math.min(n, CHUNK);
  const codeInputs = new Uint8Array(chunk * classes * CODE_INPUT_BYTES);
  const codes = new Uint8Array(chunk * classes * rb);
  const codes32 = new Uint32Array(codes.buffer);
  const out = new Uint8Array(n * per * TAG_BYTES);
  const tag = (j: number, co: number, at: number): void => {
    if (j >= m) throw new InvalidArgumentError(`an element's position ${j} is outside the ${m} OT rows`);
    words[head - 1] = j;
    const qo = j * rw;
    for (let w = 0; w < rw; w++) words[head + w] = (q[qo + w] as number) ^ ((codes32[co + w] as number) & (s32[w] as number));
    hash(digest, input);
    out.set(digest.subarray(0, TAG_BYTES), at * TAG_BYTES);
  };
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    for (let c = 0; c < count; c++) {
      const block = blocks.subarray((start + c) * CODE_INPUT_BYTES, (start + c + 1) * CODE_INPUT_BYTES);
      for (let h = 0; h < classes; h++) {
        const o = (c * classes + h) * CODE_INPUT_BYTES;
        codeInputs.set(block, o);
        codeInputs[o + CODE_INPUT_BYTES - 1] = h;
      }
    }
    encodeInto(codeKeys, codeInputs.subarray(0, count * classes * CODE_INPUT_BYTES), codes.subarray(0, count * classes * rb), width);
    for (let c = 0; c < count; c++) {
      const i = start + c;
      let at = i * per;
      for (let h = 0; h < hashes; h++) tag(positions[i * hashes + h] as number, (c * classes + h) * rw, at++);
      for (let t = 0; t < stash; t++) tag(stashRow + t, (c * classes + hashes) * rw, at++);
    }
  }
  return out;
}
