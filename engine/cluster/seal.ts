/**
 * Chunks and results travel through Redis sealed with AES-256-GCM under the
 * cluster key, which the coordinator and its workers share (a secret file on
 * each machine) and Redis never holds. A scalar or a party's raw keys are
 * therefore never readable in Redis, and a chunk or a result changed there —
 * or moved to another chunk's place — fails authentication: the additional
 * data binds each sealed buffer to its call, its chunk index and its
 * direction.
 *
 * Layout: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { ClusterError, ClusterErrorCode } from "./errors.js";

export const CLUSTER_KEY_BYTES = 32;
const NONCE = 12;
const TAG = 16;

/** Which way a sealed buffer goes: a chunk to a worker, or its result back. */
export type Direction = "in" | "out";

function aad(run: string, index: number, direction: Direction): Buffer {
  return Buffer.from(`umbra-cluster-v1|${run}|${index}|${direction}`, "utf8");
}

function checkKey(key: Uint8Array): void {
  if (key.length !== CLUSTER_KEY_BYTES) throw new InvalidArgumentError(`the cluster key must be ${CLUSTER_KEY_BYTES} bytes`);
}

/** Seals `plain` for chunk `index` of call `run`, going `direction`. */
export function seal(key: Uint8Array, run: string, index: number, direction: Direction, plain: Uint8Array): Buffer {
  checkKey(key);
  const nonce = randomBytes(NONCE);
  const c = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG });
  c.setAAD(aad(run, index, direction));
  const body = Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
  return body;
}

/** Opens what {@link seal} sealed for the same call, index and direction; anything else is ClusterError Tampered. */
export function open(key: Uint8Array, run: string, index: number, direction: Direction, sealed: Uint8Array): Uint8Array {
  checkKey(key);
  if (sealed.length < NONCE + TAG) throw new ClusterError(ClusterErrorCode.Tampered, `chunk ${index}: a sealed ${direction === "in" ? "input" : "result"} is too short`);
  const d = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, NONCE), { authTagLength: TAG });
  d.setAAD(aad(run, index, direction));
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    const plain = Buffer.concat([d.update(sealed.subarray(NONCE, sealed.length - TAG)), d.final()]);
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  } catch {
    throw new ClusterError(ClusterErrorCode.Tampered, `chunk ${index}: the ${direction === "in" ? "input" : "result"} failed authentication (a different cluster key, or changed in Redis)`);
  }
}
