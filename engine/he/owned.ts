/**
 * Ownership of SEAL's WASM objects, shared by the BFV and CKKS contexts:
 * every object has exactly one owner, which deletes it — a Scope for one
 * operation's temporaries, a KeyHandle for a loaded key's objects.
 */
import { InvalidArgumentError } from "../errors.js";
import { DisposedError } from "./errors.js";

export interface Deletable {
  delete(): void;
}

/** Owns the SEAL temporaries of one operation; deletes them all, in reverse order. */
export class Scope {
  readonly #objects: Deletable[] = [];
  own<T extends Deletable>(o: T): T {
    this.#objects.push(o);
    return o;
  }
  dispose(): void {
    for (let i = this.#objects.length - 1; i >= 0; i--) (this.#objects[i] as Deletable).delete();
    this.#objects.length = 0;
  }
}

/** Runs `fn` with a fresh Scope, deleted when `fn` returns or throws. */
export function scoped<R>(fn: (scope: Scope) => R): R {
  const scope = new Scope();
  try {
    return fn(scope);
  } finally {
    scope.dispose();
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Runs a SEAL load, turning whatever SEAL throws into our typed error (SEAL's own message is dropped: it may quote data). */
export function sealLoad(load: () => void, error: () => Error): void {
  try {
    load();
  } catch {
    throw error();
  }
}

/** A loaded key: owns its SEAL objects until disposed; usable only with the context that loaded it. */
export abstract class KeyHandle<Owner extends object> {
  readonly keyId: Uint8Array;
  readonly #owner: Owner;
  readonly #onDispose: (h: KeyHandle<Owner>) => void;
  #disposed = false;
  constructor(owner: Owner, keyId: Uint8Array, onDispose: (h: KeyHandle<Owner>) => void) {
    this.#owner = owner;
    this.keyId = keyId;
    this.#onDispose = onDispose;
  }
  get disposed(): boolean {
    return this.#disposed;
  }
  /** Deletes the SEAL objects this handle owns. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.release();
    this.#onDispose(this);
  }
  protected abstract release(): void;
  /** @internal */
  checkUsable(owner: Owner, what: string): void {
    if (this.#disposed) throw new DisposedError(what);
    if (owner !== this.#owner) throw new InvalidArgumentError(`${what} belongs to another context`);
  }
}
