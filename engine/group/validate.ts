/** Argument checks shared by every backend. */
import { InvalidArgumentError, InvalidLengthError, InvalidPointError } from "../errors.js";
import { assertPacked, fixedCount, type PackedBytes } from "../packed.js";
import { ELEMENT_BYTES } from "./types.js";

export function assertElementBytes(bytes: Uint8Array, index?: number): void {
  if (!(bytes instanceof Uint8Array)) throw new InvalidPointError("element is not a byte array", index);
  if (bytes.length !== ELEMENT_BYTES) {
    throw new InvalidPointError(`element must be ${ELEMENT_BYTES} bytes, got ${bytes.length}`, index);
  }
}

export function isZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i] ?? 0;
  return acc === 0;
}

export function assertDst(dst: Uint8Array): void {
  if (!(dst instanceof Uint8Array) || dst.length === 0) {
    throw new InvalidArgumentError("domain separation tag must be a non-empty byte array");
  }
}

/** Validates a batch of elements and returns the count. */
export function elementCount(points: Uint8Array): number {
  if (!(points instanceof Uint8Array)) throw new InvalidLengthError("element batch", "n × 32", 0);
  return fixedCount(points, ELEMENT_BYTES, "element batch");
}

export function assertMessages(messages: PackedBytes): number {
  if (!messages || !(messages.data instanceof Uint8Array) || !(messages.offsets instanceof Uint32Array)) {
    throw new InvalidArgumentError("messages must be PackedBytes { data: Uint8Array, offsets: Uint32Array }");
  }
  assertPacked(messages, "messages");
  return messages.offsets.length - 1;
}
