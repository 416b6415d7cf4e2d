/**
 * HE work as pool tasks: what a worker runs for the host (flat typed arrays
 * and bytes in, bytes out), with each thread's own SEAL module, contexts and
 * loaded public keys cached.
 *
 * The host side is the pool's (`engine/pool`): it cuts a column into chunks
 * of whole blocks (a multiple of `params.slotCount` values), sends one
 * `HeEncryptTask` per chunk with `values` transferred, and joins the chunk
 * ciphertexts in order with `HeContext.concat`. Errors cross as
 * `SerializedError` and are rebuilt with `heErrorFromSerialized`. A
 * ValueOutOfRangeError's index is then relative to its chunk.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { createHeContext, type CiphertextBytes, type HeContext, type HePublicKey } from "./context.js";
import type { ColumnValues } from "./encode.js";
import type { HeContextOptions } from "./params.js";

export const HeTaskOp = {
  Encrypt: "he-encrypt",
  Add: "he-add",
} as const;
export type HeTaskOp = (typeof HeTaskOp)[keyof typeof HeTaskOp];

/** Encrypt one chunk of a column under a public key. */
export interface HeEncryptTask {
  readonly op: typeof HeTaskOp.Encrypt;
  readonly options: HeContextOptions;
  readonly publicKey: Uint8Array;
  readonly values: ColumnValues;
}
/** Slot-wise sum of several ciphertexts of the same length (a tree of adds, on one thread). */
export interface HeAddTask {
  readonly op: typeof HeTaskOp.Add;
  readonly options: HeContextOptions;
  readonly ciphertexts: readonly Uint8Array[];
}
export type HeTask = HeEncryptTask | HeAddTask;

const MAX_CONTEXTS = 4;
const MAX_KEYS = 4;
const contexts = new Map<string, Promise<HeContext>>();
const publicKeys = new Map<string, HePublicKey>();

function optionsKey(o: HeContextOptions): string {
  return JSON.stringify([String(o.maxAbsValue), typeof o.maxAbsValue, o.maxRows, o.scale ?? 0, o.maxLength ?? null, o.polyModulusDegree ?? null]);
}

/** This thread's context for `options` (created once; the oldest is disposed past MAX_CONTEXTS). */
async function contextFor(options: HeContextOptions): Promise<HeContext> {
  const key = optionsKey(options);
  let p = contexts.get(key);
  if (!p) {
    p = createHeContext(options);
    contexts.set(key, p);
    p.catch(() => contexts.delete(key));
    if (contexts.size > MAX_CONTEXTS) {
      const [oldKey, old] = contexts.entries().next().value as [string, Promise<HeContext>];
      contexts.delete(oldKey);
      void old.then((c) => c.dispose(), () => undefined);
    }
  }
  return p;
}

/** A loaded public key, cached by the hash of its bytes and its context (handles die with their context). */
function publicKeyFor(ctx: HeContext, bytes: Uint8Array): HePublicKey {
  const key = `${ctx.params.fingerprint}:${createHash("sha256").update(bytes).digest("hex")}`;
  const cached = publicKeys.get(key);
  if (cached && !cached.disposed) return cached;
  const h = ctx.loadPublicKey(bytes);
  publicKeys.set(key, h);
  if (publicKeys.size > MAX_KEYS) {
    const [oldKey, old] = publicKeys.entries().next().value as [string, HePublicKey];
    publicKeys.delete(oldKey);
    old.dispose();
  }
  return h;
}

export async function executeHeTask(task: HeTask): Promise<CiphertextBytes> {
  const ctx = await contextFor(task.options);
  switch (task.op) {
    case HeTaskOp.Encrypt:
      return ctx.encryptColumn(task.values, publicKeyFor(ctx, task.publicKey));
    case HeTaskOp.Add: {
      let level = [...task.ciphertexts];
      if (level.length === 0) throw new InvalidArgumentError("nothing to add");
      while (level.length > 1) {
        const next: Uint8Array[] = [];
        for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? ctx.add(level[i] as Uint8Array, level[i + 1] as Uint8Array) : (level[i] as Uint8Array));
        level = next;
      }
      return level[0] as Uint8Array;
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown HE task ${String((op as { op: unknown }).op)}`);
    }
  }
}
