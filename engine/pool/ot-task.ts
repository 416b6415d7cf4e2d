/**
 * The OT-extension PSI's bulk work as pool tasks (engine/ot, engine/psi
 * cuckoo.ts; docs/ot-psi.md): every stage that is one independent
 * computation per element or per OT row, so a worker can take a range.
 *
 * - `ot-item-digests`: engine/psi itemDigests over a range of keys (their
 *   OPRF input blocks and cuckoo positions);
 * - `ot-receiver-tags`: engine/ot oprfReceiverTagsFrom over a run of OT rows;
 * - `ot-sender-tags`: for a range of the sender's keys, their digests and
 *   oprfSenderTagsForItems against the OT rows q. q is the whole m × w/8
 *   matrix every range reads at random rows: the host passes it over a
 *   SharedArrayBuffer, so it reaches each worker without a copy (a
 *   structured clone of a shared buffer shares it).
 *
 * Results are one buffer (packArrays for two arrays). Errors cross as
 * SerializedError and are rebuilt by the pool.
 */
import { InvalidArgumentError } from "../errors.js";
import { loadBlake2b } from "../ot/blake2.js";
import { CODE_WIDTH } from "../ot/code.js";
import { oprfReceiverTagsFrom, oprfSenderTagsForItems } from "../ot/kkrt.js";
import { CUCKOO_HASHES, itemDigests } from "../psi/cuckoo.js";
import { packArrays } from "./column-task.js";

export const OtTaskOp = {
  ItemDigests: "ot-item-digests",
  ReceiverTags: "ot-receiver-tags",
  SenderTags: "ot-sender-tags",
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
/** oprfReceiverTagsFrom(rows, first): one tag per row. */
export interface OtReceiverTagsTask {
  readonly op: typeof OtTaskOp.ReceiverTags;
  readonly rows: Uint8Array;
  readonly first: number;
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
export type OtTask = OtItemDigestsTask | OtReceiverTagsTask | OtSenderTagsTask;

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
    case OtTaskOp.ReceiverTags:
      return oprfReceiverTagsFrom(hash, task.rows, task.first, CODE_WIDTH);
    case OtTaskOp.SenderTags: {
      const d = itemDigests(hash, { data: task.data, offsets: task.offsets }, task.seed, task.bins);
      return oprfSenderTagsForItems(hash, task.codeKeys, task.rows, task.m, task.secret, d.blocks, d.positions, CUCKOO_HASHES, task.bins, task.stash, CODE_WIDTH);
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown OT task ${String((op as { op: unknown }).op)}`);
    }
  }
}
