/**
 * The pool's OT-extension PSI work (ot-task.ts): ranges of keys or OT rows
 * on the workers, at most two per worker in flight, the results put back in
 * order. Below `inlineBelow` elements it all runs on this thread, with the
 * same functions and the same bytes. CryptoPool's methods of the same names
 * call these; their contracts are documented there.
 */
import { InvalidLengthError, PoolClosedError } from "../errors.js";
import { loadBlake2b } from "../ot/blake2.js";
import { CODE_WIDTH } from "../ot/code.js";
import { oprfReceiverTagsFrom, oprfSenderTagsForItems, TAG_BYTES } from "../ot/kkrt.js";
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

/** The work of CryptoPool.otReceiverTags. */
export async function receiverTags(w: PoolWorkers, rows: Uint8Array, m: number, options?: RunOptions): Promise<Uint8Array> {
  if (w.closed) throw new PoolClosedError();
  const rb = CODE_WIDTH >>> 3;
  if (rows.length !== m * rb) throw new InvalidLengthError("OT rows", String(m * rb), rows.length);
  if (m < w.inlineBelow) return oprfReceiverTagsFrom(await loadBlake2b(), rows, 0, CODE_WIDTH);
  const out = new Uint8Array(m * TAG_BYTES);
  const parts = cut(m, w);
  let done = 0;
  await inLanes(parts.length, 2 * w.threads, async (i) => {
    const [start, end] = parts[i] as [number, number];
    out.set(await w.runColumn({ op: OtTaskOp.ReceiverTags, rows: rows.slice(start * rb, end * rb), first: start }), start * TAG_BYTES);
    done += end - start;
    options?.onProgress?.(done, m);
  });
  return out;
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
