/**
 * Protocol states are plain data (strings, numbers, booleans, typed arrays,
 * arrays of strings), so a node can persist one after every step and resume
 * from it after a restart. These two functions give the bytes to store: the
 * V8 structured-clone format (typed arrays kept as such) behind a small
 * versioned header. Loading checks the header and the state's protocol,
 * version and role; the protocol functions check the rest when used.
 */
import { deserialize, serialize } from "node:v8";
import { InvalidStateError } from "./errors.js";

const MAGIC = new Uint8Array([0x55, 0x4d, 0x53, 0x31]); // "UMS1"

export interface PersistableState {
  readonly protocol: string;
  readonly version: number;
  readonly role: string;
}

export function stateToBytes(state: PersistableState): Uint8Array {
  const body = serialize(state);
  const out = new Uint8Array(MAGIC.length + body.length);
  out.set(MAGIC, 0);
  out.set(body, MAGIC.length);
  return out;
}

/** Restores a state; `expect` names the protocol(s) and (when it knows it) the role the caller is about to resume. */
export function stateFromBytes<S extends PersistableState>(bytes: Uint8Array, expect: { protocols: readonly string[]; role?: string }): S {
  if (bytes.length < MAGIC.length || MAGIC.some((b, i) => bytes[i] !== b)) throw new InvalidStateError("not a persisted protocol state");
  let value: unknown;
  try {
    value = deserialize(bytes.subarray(MAGIC.length));
  } catch {
    throw new InvalidStateError("persisted protocol state is corrupt");
  }
  const s = value as Partial<PersistableState> | null;
  if (!s || typeof s !== "object" || typeof s.protocol !== "string" || !expect.protocols.includes(s.protocol) || typeof s.role !== "string" || (expect.role !== undefined && s.role !== expect.role) || typeof s.version !== "number") {
    throw new InvalidStateError(`persisted state is not a ${expect.protocols.join("/")} ${expect.role ?? "role"} state`);
  }
  return value as S;
}

/**
 * Refuses a state that is not a `role` state of one of `protocols` at
 * `version` (a caller's mix-up, or a corrupted persisted state): every role
 * checks the state it is handed before it reads it.
 */
export function assertState(s: { readonly role?: unknown; readonly protocol?: unknown; readonly version?: unknown } | null | undefined, expect: { readonly protocols: readonly string[]; readonly role: string; readonly version: number }): void {
  if (!s || s.role !== expect.role || typeof s.protocol !== "string" || !expect.protocols.includes(s.protocol) || s.version !== expect.version) {
    throw new InvalidStateError(`not a ${expect.protocols.join("/")} ${expect.role} state`);
  }
}
