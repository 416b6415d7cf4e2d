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

/** Every live handle, by the context that loaded it (so the context's dispose deletes them too). */
const live = new WeakMap<object, Set<KeyHandle<object, Deletable>>>();
let objectsOf: <T extends Deletable>(h: KeyHandle<object, T>) => readonly T[];

/**
 * A loaded key: owns its SEAL objects (one per CRT prime, or one) until
 * disposed; usable only with the context that loaded it. Subclasses only
 * name the kind of key; the objects stay private to engine/he (read with
 * {@link sealObjects}, which the package index does not export).
 */
export abstract class KeyHandle<Owner extends object, T extends Deletable = Deletable> {
  readonly keyId: Uint8Array;
  readonly #owner: Owner;
  readonly #objects: readonly T[];
  #disposed = false;
  static {
    objectsOf = (h) => h.#objects;
  }
  constructor(owner: Owner, keyId: Uint8Array, objects: readonly T[]) {
    this.#owner = owner;
    this.keyId = keyId;
    this.#objects = objects;
    let set = live.get(owner);
    if (!set) {
      set = new Set();
      live.set(owner, set);
    }
    set.add(this as KeyHandle<object, Deletable>);
  }
  get disposed(): boolean {
    return this.#disposed;
  }
  /** Deletes the SEAL objects this handle owns. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const o of this.#objects) o.delete();
    live.get(this.#owner)?.delete(this as KeyHandle<object, Deletable>);
  }
  /** @internal */
  checkUsable(owner: Owner, what: string): void {
    if (this.#disposed) throw new DisposedError(what);
    if (owner !== this.#owner) throw new InvalidArgumentError(`${what} belongs to another context`);
  }
}

/** The SEAL objects of a key handle (engine/he only). */
export function sealObjects<T extends Deletable>(h: KeyHandle<object, T>): readonly T[] {
  return objectsOf(h);
}

/** Disposes every handle `owner` loaded and has not disposed yet (the owner's own dispose calls it). */
export function disposeHandles(owner: object): void {
  const set = live.get(owner);
  if (set) for (const h of [...set]) h.dispose();
  live.delete(owner);
}

/**
 * Runs `fn` with a usable handle: the given one (checked: not disposed,
 * loaded by `owner`), or one loaded from bytes for this call only.
 */
export function withKey<Owner extends object, H extends KeyHandle<Owner, Deletable>, R>(owner: Owner, key: H | Uint8Array, load: (b: Uint8Array) => H, what: string, fn: (h: H) => R): R {
  if (key instanceof Uint8Array) {
    const h = load(key);
    try {
      return fn(h);
    } finally {
      h.dispose();
    }
  }
  if (!(key instanceof KeyHandle)) throw new InvalidArgumentError(`${what} must be bytes or a handle loaded by this context`);
  key.checkUsable(owner, what);
  return fn(key);
}
