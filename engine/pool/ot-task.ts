/**
 * The OT-extension PSI's bulk work as pool tasks (engine/ot, engine/psi
 * cuckoo.ts; docs/ot-psi.md): every stage that is one independent
 * computation per element or per OT row, so a worker can take a range.
 *
 * - `ot-item-digests`: engine/psi itemDigests over a range of keys (their
 *   OPRF input blocks and cuckoo positions);
 * - `ot-sender-tags`: for a range of the sender's keys, their digests and
 *   oprfSenderTagsForItems against the OT rows q. q is the whole m × w/8
 *   matrix every range reads at random rows: the host passes it over a
 *   SharedArrayBuffer, so it reaches each worker without a copy (a
 *   structured clone of a shared buffer shares it);
 * - `ot-extension-receive`: the receiver's extension for a range of OT rows
 *   (their codewords, extensionReceiveRange, then their tags): u's part for
 *   those rows and the tags — the rows t never leave the worker;
 * - `ot-extension-send`: the sender's extension for a range of rows
 *   (extensionSendRange), written straight into q's shared buffer.
 *
 * Results are one buffer (packArrays for two arrays). Errors cross as
 * SerializedError and are rebuilt by the pool.
 */
import { InvalidArgumentError } from "../errors.js";
import { loadBlake2b } from "../ot/blake2.js";
import { CODE_WIDTH, encodeInto } from "../ot/code.js";
import { extensionReceiveRange, extensionSendRange, oprfReceiverTagsFrom, oprfSenderTagsForItems } from "../ot/kkrt.js";
import { CUCKOO_HASHES, itemDigests } from "../psi/cuckoo.js";
import { packArrays } from "./column-task.js";

export const OtTaskOp = {
  ItemDigests: "ot-item-digests",
  SenderTags: "ot-sender-tags",
  ExtensionReceive: "ot-extension-receive",
  ExtensionSend: "ot-extension-send",
} as const;
export type OtTaskOp = (typeof OtTaskOp)[keyof typeof OtTaskOp];

/** itemDigests of the packed keys (data, offsets rebased to 0) under the 16-byte seed, into `bins` bins: blocks, positions. */
export interface OtItemDigestsTask {
  readonly op: typeof OtTaskOp.ItemDigests;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly seed: Uint8Array;
  readonly bins: number;
}
/** The sender's tags of a range of its keys: (3 + stash) per key, in simpleHashQueries' order. */
export interface OtSenderTagsTask {
  readonly op: typeof OtTaskOp.SenderTags;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly seed: Uint8Array;
  readonly bins: number;
  readonly stash: number;
  readonly codeKeys: Uint8Array;
  /** q, m rows of w/8 bytes (over a SharedArrayBuffer from the host). */
  readonly rows: Uint8Array;
  readonly m: number;
  readonly secret: Uint8Array;
}
/** The receiver's extension of rows [first, first + count): their 16-byte code inputs in, u's part and their tags out. */
export interface OtExtensionReceiveTask {
  readonly op: typeof OtTaskOp.ExtensionReceive;
  readonly keys0: Uint8Array;
  readonly keys1: Uint8Array;
  readonly codeKeys: Uint8Array;
  readonly inputs: Uint8Array;
  readonly first: number;
  readonly count: number;
}
/** The sender's extension of rows [first, first + count) from u's part for them, into q (shared, all m rows). */
export interface OtExtensionSendTask {
  readonly op: typeof OtTaskOp.ExtensionSend;
  readonly keys: Uint8Array;
  readonly secret: Uint8Array;
  readonly part: Uint8Array;
  readonly first: number;
  readonly count: number;
  readonly rows: Uint8Array;
}
export type OtTask = OtItemDigestsTask | OtSenderTagsTask | OtExtensionReceiveTask | OtExtensionSendTask;

const OT_OPS: ReadonlySet<string> = new Set(Object.values(OtTaskOp));

export function isOtTask(task: { readonly op: string }): task is OtTask {
  return OT_OPS.has(task.op);
}

export async function executeOtTask(task: OtTask): Promise<Uint8Array> {
  const hash = await loadBlake2b();
  switch (task.op) {
    case OtTaskOp.ItemDigests: {
      const d = itemDigests(hash, { data: task.data, offsets: task.offsets }, task.seed, task.bins);
      return packArrays([d.blocks, d.positions]);
    }
    case OtTaskOp.SenderTags: {
      const d = itemDigests(hash, { data: task.data, offsets: task.offsets }, task.seed, task.bins);
      return oprfSenderTagsForItems(hash, task.codeKeys, task.rows, task.m, task.secret, d.blocks, d.positions, CUCKOO_HASHES, task.bins, task.stash, CODE_WIDTH);
    }
    case OtTaskOp.ExtensionReceive: {
      const codewords = new Uint8Array(task.count * (CODE_WIDTH >>> 3));
      encodeInto(task.codeKeys, task.inputs, codewords, CODE_WIDTH);
      const ext = extensionReceiveRange(task.keys0, task.keys1, codewords, task.first, task.count, CODE_WIDTH);
      return packArrays([ext.message, oprfReceiverTagsFrom(hash, ext.rows, task.first, CODE_WIDTH)]);
    }
    case OtTaskOp.ExtensionSend: {
      const rb = CODE_WIDTH >>> 3;
      extensionSendRange(task.keys, task.secret, task.part, task.first, task.count, CODE_WIDTH, task.rows.subarray(task.first * rb, (task.first + task.count) * rb));
      return new Uint8Array(0);
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown OT task ${String((op as { op: unknown }).op)}`);
    }
  }
}
