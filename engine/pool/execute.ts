/**
 * Runs one pool task on the current thread. Shared by the worker entry
 * (`group.task.ts`) and the host's inline path for small batches, so both give
 * the same bytes and the same errors.
 */
import { InvalidArgumentError, InvalidLengthError, InvalidPointError } from "../errors.js";
import { createGroup } from "../group/index.js";
import { invertScalarNumber, scalarFromBytes, scalarToBytes } from "../group/scalar.js";
import type { AdditiveGroup, Group } from "../group/types.js";
import { createOprfSuite, OprfMode, type OprfSuite } from "../oprf/oprf.js";
import { fixedCount, type PackedBytes } from "../packed.js";
import { executeHeTask, isHeTask } from "../he/task.js";
import { TaskOp, type GroupTask, type PoolTask } from "./tasks.js";
import { executeColumnTask, isColumnTask } from "./column-task.js";
import { executeOtTask, isOtTask } from "./ot-task.js";

const suites = new WeakMap<Group, OprfSuite>();

function oprfSuiteFor(group: Group): OprfSuite {
  let s = suites.get(group);
  if (!s) {
    if (group.id !== "ristretto255") throw new InvalidArgumentError("the OPRF runs on ristretto255 only");
    s = createOprfSuite(group as AdditiveGroup, OprfMode.OPRF) as unknown as OprfSuite;
    suites.set(group, s);
  }
  return s;
}

function packed(t: { data: Uint8Array; offsets: Uint32Array }): PackedBytes {
  return { data: t.data, offsets: t.offsets };
}

export async function executeTask(task: PoolTask): Promise<Uint8Array> {
  if (isHeTask(task)) return executeHeTask(task);
  if (isColumnTask(task)) return executeColumnTask(task);
  if (isOtTask(task)) return executeOtTask(task);
  return executeGroupTask(task);
}

async function executeGroupTask(task: GroupTask): Promise<Uint8Array> {
  const group = await createGroup({ group: task.group, backend: task.backend });
  switch (task.op) {
    case TaskOp.Hash:
      return group.hashToGroupBatch(packed(task), task.dst, task.scalar);
    case TaskOp.Multiply:
      return group.multiplyBatch(task.scalar, task.points);
    case TaskOp.MultiplyEach: {
      const n = fixedCount(task.points, 32, "element batch");
      if (task.scalars.length !== n * 32) throw new InvalidLengthError("scalar batch", `${n * 32}`, task.scalars.length);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const p = decodeAt(group, task.points, i);
        out.set(group.encode(group.multiply(task.scalars.subarray(i * 32, i * 32 + 32), p)), i * 32);
      }
      return out;
    }
    case TaskOp.OprfEvaluate: {
      const suite = oprfSuiteFor(group);
      const n = task.offsets.length - 1;
      scalarFromBytes(task.secretKey);
      // H(x_i)·sk for the batch, then Finalize's hash per row.
      const points = group.hashToGroupBatch(packed(task), suite.hashToGroupDst, task.secretKey);
      const out = new Uint8Array(n * 64);
      for (let i = 0; i < n; i++) {
        const input = task.data.subarray(task.offsets[i] ?? 0, task.offsets[i + 1] ?? 0);
        out.set(suite.finalizeFromUnblinded(input, points.subarray(i * 32, i * 32 + 32)), i * 64);
      }
      return out;
    }
    case TaskOp.OprfBlind: {
      const suite = oprfSuiteFor(group);
      const n = task.offsets.length - 1;
      if (task.blinds.length !== n * 32) throw new InvalidLengthError("blind batch", `${n * 32}`, task.blinds.length);
      const hashed = group.hashToGroupBatch(packed(task), suite.hashToGroupDst);
      const out = new Uint8Array(n * 32);
      for (let i = 0; i < n; i++) {
        const h = group.decode(hashed.subarray(i * 32, i * 32 + 32));
        out.set(group.encode(group.multiply(task.blinds.subarray(i * 32, i * 32 + 32), h)), i * 32);
      }
      return out;
    }
    case TaskOp.OprfFinalize: {
      const suite = oprfSuiteFor(group);
      const n = task.offsets.length - 1;
      if (task.blinds.length !== n * 32) throw new InvalidLengthError("blind batch", `${n * 32}`, task.blinds.length);
      if (task.evaluated.length !== n * 32) throw new InvalidLengthError("evaluated batch", `${n * 32}`, task.evaluated.length);
      const out = new Uint8Array(n * 64);
      for (let i = 0; i < n; i++) {
        const z = decodeAt(group, task.evaluated, i);
        const inv = scalarToBytes(invertScalarNumber(scalarFromBytes(task.blinds.subarray(i * 32, i * 32 + 32))));
        const unblinded = group.encode(group.multiply(inv, z));
        const input = task.data.subarray(task.offsets[i] ?? 0, task.offsets[i + 1] ?? 0);
        out.set(suite.finalizeFromUnblinded(input, unblinded), i * 64);
      }
      return out;
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown task ${String((op as { op: unknown }).op)}`);
    }
  }
}

function decodeAt(group: Group, points: Uint8Array, i: number): unknown {
  try {
    return group.decode(points.subarray(i * 32, i * 32 + 32));
  } catch (e) {
    if (e instanceof InvalidPointError) throw new InvalidPointError(e.message, i);
    throw e;
  }
}
