/**
 * The pool's OT-extension PSI work (ot-task.ts): ranges of keys or OT rows
 * on the workers, at most two per worker in flight, the results put back in
 * order. Below `inlineBelow` elements it all runs on this thread, with the
 * same functions and the same bytes. CryptoPool's methods of the same names
 * call these; their contracts are documented there.
 */
import { InvalidLengthError, PoolClosedError } from "../errors.js";
import { loadBlake2b } from "../ot/blake2.js";
import { CODE_WIDTH, encodeInto } from "../ot/code.js";
import { columnsOf, extensionMessageBytes, extensionReceive, extensionSend, OT_RANGE_ALIGN, oprfReceiverTagsFrom, oprfSenderTagsForItems, placeColumns, TAG_BYTES } from "../ot/kkrt.js";
import type { PackedBytes } from "../packed.js";
import { CUCKOO_HASHES, ITEM_BYTES, itemDigests as itemDigestsHere, type CuckooParams, type ItemDigests } from "../psi/cuckoo.js";
import { inLanes, ranges, sliceMessages, u32 } from "./chunks.js";
import { unpackArrays } from "./column-task.js";
import { OtTaskOp } from "./ot-task.js";
import type { PoolWorkers, RunOptions } from "./types.js";

/** Elements or rows per task: large enough that a task's fixed cost is small, small enough to report progress. */
const RANGE = 65_536;

function cut(n: number, w: PoolWorkers): [number, number][] {
  return ranges(n, Math.max(w.threads, Math.ceil(n / RANGE)));
}

/** The work of CryptoPool.otItemDigests. */
export async function itemDigests(w: PoolWorkers, keys: PackedBytes, seed: Uint8Array, bins: number, options?: RunOptions): Promise<ItemDigests> {
  if (w.closed) throw new PoolClosedError();
  const n = Math.max(0, keys.offsets.length - 1);
  if (n < w.inlineBelow) return itemDigestsHere(await loadBlake2b(), keys, seed, bins);
  const blocks = new Uint8Array(n * ITEM_BYTES);
  const positions = new Uint32Array(n * CUCKOO_HASHES);
  const parts = cut(n, w);
  let done = 0;
  await inLanes(parts.length, 2 * w.threads, async (i) => {
    const [start, end] = parts[i] as [number, number];
    const [b, p] = unpackArrays(await w.runColumn({ op: OtTaskOp.ItemDigests, ...sliceMessages(keys, { start, end }), seed, bins })) as [Uint8Array, Uint8Array];
    blocks.set(b, start * ITEM_BYTES);
    positions.set(u32(p), start * CUCKOO_HASHES);
    done += end - start;
    options?.onProgress?.(done, n);
  });
  return { blocks, positions };
}

export interface SenderTagsInput {
  /** The sender's distinct keys. */
  readonly keys: PackedBytes;
  /** The job's hashing seed and the receiver's cuckoo parameters. */
  readonly seed: Uint8Array;
  readonly params: CuckooParams;
  readonly codeKeys: Uint8Array;
  /** q: params.rows rows of w/8 bytes. Shared with the workers when over a SharedArrayBuffer, else copied there once per task. */
  readonly rows: Uint8Array;
  readonly secret: Uint8Array;
}

/** The work of CryptoPool.otSenderTags. */
export async function senderTags(w: PoolWorkers, input: SenderTagsInput, options?: RunOptions): Promise<Uint8Array> {
  if (w.closed) throw new PoolClosedError();
  const { keys, seed, params, codeKeys, rows, secret } = input;
  const n = Math.max(0, keys.offsets.length - 1);
  const per = CUCKOO_HASHES + params.stash;
  if (n < w.inlineBelow) {
    const hash = await loadBlake2b();
    const d = itemDigestsHere(hash, keys, seed, params.bins);
    return oprfSenderTagsForItems(hash, codeKeys, rows, params.rows, secret, d.blocks, d.positions, CUCKOO_HASHES, params.bins, params.stash, CODE_WIDTH);
  }
  const shared = rows.buffer instanceof SharedArrayBuffer ? rows : toShared(rows);
  const out = new Uint8Array(n * per * TAG_BYTES);
  const parts = cut(n, w);
  let done = 0;
  await inLanes(parts.length, 2 * w.threads, async (i) => {
    const [start, end] = parts[i] as [number, number];
    const task = { op: OtTaskOp.SenderTags, ...sliceMessages(keys, { start, end }), seed, bins: params.bins, stash: params.stash, codeKeys, rows: shared, m: params.rows, secret } as const;
    out.set(await w.runColumn(task), start * per * TAG_BYTES);
    done += end - start;
    options?.onProgress?.(done, n);
  });
  return out;
}

/** A copy of `bytes` over a SharedArrayBuffer. */
function toShared(bytes: Uint8Array): Uint8Array {
  const out = sharedBytes(bytes.length);
  out.set(bytes);
  return out;
}

/** `length` zero bytes over a SharedArrayBuffer (4-byte aligned): e.g. for extensionSend's q, which otSenderTags then shares with its workers. */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer((length + 3) & ~3), 0, length);
}

/** Row ranges of an extension: starts at multiples of OT_RANGE_ALIGN, at least one per worker, at most RANGE rows. */
function rowRanges(m: number, w: PoolWorkers): [number, number][] {
  const per = Math.max(OT_RANGE_ALIGN, Math.min(RANGE, Math.ceil(m / w.threads / OT_RANGE_ALIGN) * OT_RANGE_ALIGN));
  const out: [number, number][] = [];
  for (let first = 0; first < m; first += per) out.push([first, Math.min(m, first + per)]);
  return out;
}

export interface ExtensionReceiveInput {
  /** The base-OT key pairs (w × 16 bytes each), the code's keys, and one 16-byte code input per OT row. */
  readonly keys0: Uint8Array;
  readonly keys1: Uint8Array;
  readonly codeKeys: Uint8Array;
  readonly inputs: Uint8Array;
  readonly m: number;
}

/** The work of CryptoPool.otExtensionReceive. */
export async function extensionReceiveTags(w: PoolWorkers, input: ExtensionReceiveInput, options?: RunOptions): Promise<{ message: Uint8Array; tags: Uint8Array }> {
  if (w.closed) throw new PoolClosedError();
  const { keys0, keys1, codeKeys, inputs, m } = input;
  if (inputs.length !== m * ITEM_BYTES) throw new InvalidLengthError("code inputs", String(m * ITEM_BYTES), inputs.length);
  if (m < w.inlineBelow) {
    const codewords = new Uint8Array(m * (CODE_WIDTH >>> 3));
    encodeInto(codeKeys, inputs, codewords, CODE_WIDTH);
    const ext = extensionReceive(keys0, keys1, codewords, m, CODE_WIDTH);
    return { message: ext.message, tags: oprfReceiverTagsFrom(await loadBlake2b(), ext.rows, 0, CODE_WIDTH) };
  }
  const message = new Uint8Array(extensionMessageBytes(m, CODE_WIDTH));
  const tags = new Uint8Array(m * TAG_BYTES);
  const parts = rowRanges(m, w);
  let done = 0;
  await inLanes(parts.length, 2 * w.threads, async (i) => {
    const [first, end] = parts[i] as [number, number];
    const count = end - first;
    const task = { op: OtTaskOp.ExtensionReceive, keys0, keys1, codeKeys, inputs: inputs.slice(first * ITEM_BYTES, end * ITEM_BYTES), first, count } as const;
    const [part, t] = unpackArrays(await w.runColumn(task)) as [Uint8Array, Uint8Array];
    placeColumns(message, m, part, first, count, CODE_WIDTH);
    tags.set(t, first * TAG_BYTES);
    done += count;
    options?.onProgress?.(done, m);
  });
  return { message, tags };
}

export interface ExtensionSendInput {
  /** The chosen base-OT keys k_i^{s_i} (w × 16 bytes), s (w/8 bytes) and the receiver's u for m rows. */
  readonly keys: Uint8Array;
  readonly secret: Uint8Array;
  readonly message: Uint8Array;
  readonly m: number;
}

/** The work of CryptoPool.otExtensionSend. */
export async function extensionSendRows(w: PoolWorkers, input: ExtensionSendInput, options?: RunOptions): Promise<Uint8Array> {
  if (w.closed) throw new PoolClosedError();
  const { keys, secret, message, m } = input;
  const rows = sharedBytes(m * (CODE_WIDTH >>> 3));
  if (m < w.inlineBelow) return extensionSend(keys, secret, message, m, CODE_WIDTH, rows);
  if (message.length !== extensionMessageBytes(m, CODE_WIDTH)) throw new InvalidLengthError("OT extension message", String(extensionMessageBytes(m, CODE_WIDTH)), message.length);
  const parts = rowRanges(m, w);
  let done = 0;
  await inLanes(parts.length, 2 * w.threads, async (i) => {
    const [first, end] = parts[i] as [number, number];
    const count = end - first;
    await w.runColumn({ op: OtTaskOp.ExtensionSend, keys, secret, part: columnsOf(message, m, first, count, CODE_WIDTH), first, count, rows });
    done += count;
    options?.onProgress?.(done, m);
  });
  return rows;
}
