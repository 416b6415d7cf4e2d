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

const FIELD_P_TOP = 0x7f;

/**
 * Structural check of n received 32-byte encodings that enter no
 * computation and are only compared for equality with elements computed
 * locally: each must be a canonical field-element encoding (bit 255 clear,
 * value < 2^255 − 19) and not all zeros (the identity of both groups).
 * Elements that are multiplied get the full strict decode instead.
 * Throws InvalidPointError with the failing index.
 */
export function checkComparedEncodings(points: Uint8Array): void {
  const n = elementCount(points);
  for (let i = 0; i < n; i++) {
    const o = i * 32;
    const top = points[o + 31] ?? 0;
    if (top > FIELD_P_TOP) throw new InvalidPointError("not a canonical encoding", i);
    if (top === FIELD_P_TOP) {
      // value ≥ p iff bytes 1..30 are 0xff and byte 0 ≥ 0xed
      let allFF = true;
      for (let j = 1; j < 31 && allFF; j++) allFF = points[o + j] === 0xff;
      if (allFF && (points[o] ?? 0) >= 0xed) throw new InvalidPointError("not a canonical encoding", i);
    }
    let any = 0;
    for (let j = 0; j < 32; j++) any |= points[o + j] ?? 0;
    if (any === 0) throw new InvalidPointError("identity element refused", i);
  }
}
