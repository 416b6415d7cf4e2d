/**
 * The messages between the pool host and its workers: flat buffers only, and
 * results as `{ ok, value } | { ok: false, error }` because structured clone
 * loses error classes.
 */
import type { SerializedError } from "../errors.js";
import type { BackendId, GroupId } from "../group/types.js";
import type { HeTask } from "../he/task.js";
import type { ColumnTask } from "./column-task.js";
import type { OtTask } from "./ot-task.js";

export const TaskOp = {
  Hash: "hash",
  Multiply: "multiply",
  MultiplyEach: "multiply-each",
  OprfEvaluate: "oprf-evaluate",
  OprfBlind: "oprf-blind",
  OprfFinalize: "oprf-finalize",
} as const;
export type TaskOp = (typeof TaskOp)[keyof typeof TaskOp];

interface Base {
  readonly group: GroupId;
  readonly backend: BackendId;
}
/** scalar? · H(msg_i) for each packed message. */
export interface HashTask extends Base {
  readonly op: typeof TaskOp.Hash;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly dst: Uint8Array;
  readonly scalar?: Uint8Array;
}
/** scalar · P_i for n received points. */
export interface MultiplyTask extends Base {
  readonly op: typeof TaskOp.Multiply;
  readonly scalar: Uint8Array;
  readonly points: Uint8Array;
}
/** s_i · P_i, one scalar per point. */
export interface MultiplyEachTask extends Base {
  readonly op: typeof TaskOp.MultiplyEach;
  readonly scalars: Uint8Array;
  readonly points: Uint8Array;
}
/** RFC 9497 Evaluate(sk, input_i): n × 64 output bytes. */
export interface OprfEvaluateTask extends Base {
  readonly op: typeof TaskOp.OprfEvaluate;
  readonly secretKey: Uint8Array;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
}
/** RFC 9497 Blind(input_i, blind_i): n × 32 blinded elements. */
export interface OprfBlindTask extends Base {
  readonly op: typeof TaskOp.OprfBlind;
  readonly blinds: Uint8Array;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
}
/** RFC 9497 Finalize(input_i, blind_i, evaluated_i): n × 64 output bytes. */
export interface OprfFinalizeTask extends Base {
  readonly op: typeof TaskOp.OprfFinalize;
  readonly blinds: Uint8Array;
  readonly evaluated: Uint8Array;
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
}
export type GroupTask = HashTask | MultiplyTask | MultiplyEachTask | OprfEvaluateTask | OprfBlindTask | OprfFinalizeTask;

/** Everything a worker runs: group/OPRF work, HE work (engine/he/task.ts), column work (column-task.ts) or OT-PSI work (ot-task.ts). */
export type PoolTask = GroupTask | HeTask | ColumnTask | OtTask;

export type TaskResult = { readonly ok: true; readonly value: Uint8Array } | { readonly ok: false; readonly error: SerializedError };
