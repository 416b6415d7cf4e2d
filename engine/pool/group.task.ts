/**
 * The piscina worker entry: one exported function, flat buffers in and out
 * (the result buffer is transferred, not copied), typed errors returned as
 * data (`{ ok: false, error }`) because structured clone loses their class.
 */
import { Piscina } from "piscina";
import { serializeError } from "../errors.js";
import { executeTask } from "./execute.js";
import type { PoolTask, TaskResult } from "./tasks.js";

export default async function run(task: PoolTask): Promise<TaskResult> {
  try {
    let value = await executeTask(task);
    // Transfer only a buffer the result owns whole.
    if (value.byteOffset !== 0 || value.byteLength !== value.buffer.byteLength) value = value.slice();
    const result: TaskResult = { ok: true, value };
    // A transferable wrapper: piscina sends `result` and moves `value.buffer`.
    return Piscina.move({ [Piscina.transferableSymbol]: [value.buffer], [Piscina.valueSymbol]: result } as never) as unknown as TaskResult;
  } catch (err) {
    return { ok: false, error: serializeError(err) };
  }
}
