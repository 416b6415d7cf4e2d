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
 *
 * Masked group sums (`CryptoPool.heMaskedGroupSums`) take three kinds of
 * task: `HeMaskedBlockSumsTask` on a range of whole blocks (the column's and
 * the masks' matching parts, transferred), `HeBlockTotalsTask` on a range of
 * groups (the partial sums' matching blocks, added first), and
 * `HeReRandomizeTask` on the totals (added first). Loaded Galois keys are
 * cached like public keys, fewer of them: ~140 MB of WASM memory each at
 * N = 8192.
 *
 * CKKS (`CryptoPool.ckksEncrypt`, `ckksAdd`) takes `CkksEncryptTask` on a
 * chunk of whole blocks and `CkksAddTask`; each thread caches its CKKS
 * contexts and loaded public keys the same way, apart from the BFV ones.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";
import { createHeContext, type CiphertextBytes, type HeContext, type HeGaloisKeys, type HePublicKey } from "./bfv.js";
import { int64Residues, type ColumnValues } from "./encode.js";
import type { HeContextOptions } from "./params.js";
import { createCkksContext, type CkksContext, type CkksContextOptions, type CkksPublicKey } from "./ckks.js";

export const HeTaskOp = {
  Encrypt: "he-encrypt",
  Add: "he-add",
  MaskedBlockSums: "he-masked-block-sums",
  BlockTotals: "he-block-totals",
  ReRandomize: "he-rerandomize",
  EncryptResidues: "he-encrypt-residues",
  AddAll: "he-add-all",
  CkksEncrypt: "ckks-encrypt",
  CkksAdd: "ckks-add",
  GenerateKeys: "he-generate-keys",
  CheckPublicKey: "he-check-public-key",
  DecryptBlockResidues: "he-decrypt-block-residues",
  EncryptInt64: "he-encrypt-int64",
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
/** HeContext.maskedBlockSums on a range of whole blocks: the column's part and each mask's matching part. */
export interface HeMaskedBlockSumsTask {
  readonly op: typeof HeTaskOp.MaskedBlockSums;
  readonly options: HeContextOptions;
  readonly ciphertext: Uint8Array;
  readonly masks: readonly Uint32Array[];
  readonly rows: number;
}
/** addAll(parts, rows), then HeContext.blockTotals with the placement: one range of groups. */
export interface HeBlockTotalsTask {
  readonly op: typeof HeTaskOp.BlockTotals;
  readonly options: HeContextOptions;
  readonly parts: readonly Uint8Array[];
  readonly galoisKeys: Uint8Array;
  readonly rows: number;
  readonly first: number;
  readonly length: number;
}
/** addAll(parts, rows), then HeContext.reRandomize under the public key. */
export interface HeReRandomizeTask {
  readonly op: typeof HeTaskOp.ReRandomize;
  readonly options: HeContextOptions;
  readonly parts: readonly Uint8Array[];
  readonly publicKey: Uint8Array;
  readonly rows: number;
}
/** HeContext.encryptResidues on a range of whole blocks (one Uint32Array per CRT prime). */
export interface HeEncryptResiduesTask {
  readonly op: typeof HeTaskOp.EncryptResidues;
  readonly options: HeContextOptions;
  readonly publicKey: Uint8Array;
  readonly residues: readonly Uint32Array[];
  readonly level: "first" | "mask";
}
/** addAll(parts, rows): partial sums of one column into one. */
export interface HeAddAllTask {
  readonly op: typeof HeTaskOp.AddAll;
  readonly options: HeContextOptions;
  readonly parts: readonly Uint8Array[];
  readonly rows: number;
}
/** CkksContext.encryptColumn on a chunk of whole blocks (the last chunk may end in a partial block). */
export interface CkksEncryptTask {
  readonly op: typeof HeTaskOp.CkksEncrypt;
  readonly options: CkksContextOptions;
  readonly publicKey: Uint8Array;
  readonly values: Float64Array;
}
/** Slot-wise sum of several CKKS ciphertexts of one column (a tree of CkksContext.add, on one thread). */
export interface CkksAddTask {
  readonly op: typeof HeTaskOp.CkksAdd;
  readonly options: CkksContextOptions;
  readonly ciphertexts: readonly Uint8Array[];
}
/** HeContext.generateKeys: the key frames packed as {@link packParts} (public, secret, then Galois keys when asked for). */
export interface HeGenerateKeysTask {
  readonly op: typeof HeTaskOp.GenerateKeys;
  readonly options: HeContextOptions;
  readonly galois: boolean;
}
/** Loads a public key (size-checked, then by SEAL), refusing a malformed one; returns its 16-byte key-set id. */
export interface HeCheckPublicKeyTask {
  readonly op: typeof HeTaskOp.CheckPublicKey;
  readonly options: HeContextOptions;
  readonly publicKey: Uint8Array;
}
/** HeContext.decryptBlockResidueSums: the bytes of its Uint32Array. */
export interface HeDecryptBlockResiduesTask {
  readonly op: typeof HeTaskOp.DecryptBlockResidues;
  readonly options: HeContextOptions;
  readonly ciphertext: Uint8Array;
  readonly secretKey: Uint8Array;
}
/** A chunk of signed 64-bit integers (already scaled and bounded) as residues (engine/he int64Residues), then HeContext.encryptResidues. */
export interface HeEncryptInt64Task {
  readonly op: typeof HeTaskOp.EncryptInt64;
  readonly options: HeContextOptions;
  readonly publicKey: Uint8Array;
  readonly values: BigInt64Array;
  readonly level: "first" | "mask";
}
export type HeTask =
  | HeEncryptInt64Task
  | HeEncryptTask
  | HeAddTask
  | HeMaskedBlockSumsTask
  | HeBlockTotalsTask
  | HeReRandomizeTask
  | HeEncryptResiduesTask
  | HeAddAllTask
  | CkksEncryptTask
  | CkksAddTask
  | HeGenerateKeysTask
  | HeCheckPublicKeyTask
  | HeDecryptBlockResiduesTask;

/** Several byte strings as one: [u32 LE count][u32 LE length]… then the bytes (a task's result is one buffer). */
export function packParts(parts: readonly Uint8Array[]): Uint8Array {
  const head = 4 + 4 * parts.length;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, head));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  let off = head;
  parts.forEach((p, i) => {
    dv.setUint32(4 + 4 * i, p.length, true);
    out.set(p, off);
    off += p.length;
  });
  return out;
}

/** The parts of {@link packParts}' bytes (views into them). */
export function unpackParts(bytes: Uint8Array): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = bytes.length >= 4 ? dv.getUint32(0, true) : 0;
  const head = 4 + 4 * count;
  if (bytes.length < head) throw new InvalidArgumentError("packed parts: truncated");
  const out: Uint8Array[] = [];
  let off = head;
  for (let i = 0; i < count; i++) {
    const len = dv.getUint32(4 + 4 * i, true);
    if (off + len > bytes.length) throw new InvalidArgumentError("packed parts: truncated");
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

const HE_OPS: ReadonlySet<string> = new Set(Object.values(HeTaskOp));

/** Whether a pool task is HE work (routed to executeHeTask). */
export function isHeTask(task: { readonly op: string }): task is HeTask {
  return HE_OPS.has(task.op);
}

const MAX_CONTEXTS = 4;
const MAX_KEYS = 4;
const MAX_GALOIS_KEYS = 2;
const contexts = new Map<string, Promise<HeContext>>();
const publicKeys = new Map<string, HePublicKey>();
const galoisKeys = new Map<string, HeGaloisKeys>();

/** One key per distinct set of HE options (the thread caches and the pool key contexts by it). */
export function optionsKey(o: HeContextOptions): string {
  return JSON.stringify([String(o.maxAbsValue), typeof o.maxAbsValue, o.maxRows, o.scale ?? 0, o.maxLength ?? null, o.polyModulusDegree ?? null]);
}

/** A context from `cache` under `key`, created once; the oldest is disposed past MAX_CONTEXTS. */
function cachedContext<C extends { dispose(): void }>(cache: Map<string, Promise<C>>, key: string, create: () => Promise<C>): Promise<C> {
  let p = cache.get(key);
  if (!p) {
    p = create();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
    if (cache.size > MAX_CONTEXTS) {
      const [oldKey, old] = cache.entries().next().value as [string, Promise<C>];
      cache.delete(oldKey);
      void old.then((c) => c.dispose(), () => undefined);
    }
  }
  return p;
}

/** This thread's context for `options`. */
function contextFor(options: HeContextOptions): Promise<HeContext> {
  return cachedContext(contexts, optionsKey(options), () => createHeContext(options));
}

/** A loaded key, cached by the hash of its bytes and its context (handles die with their context); the oldest is disposed past `max`. */
function cachedKey<H extends { readonly disposed: boolean; dispose(): void }>(cache: Map<string, H>, max: number, ctx: HeContext, bytes: Uint8Array, load: (b: Uint8Array) => H): H {
  const key = `${ctx.params.fingerprint}:${createHash("sha256").update(bytes).digest("hex")}`;
  const cached = cache.get(key);
  if (cached && !cached.disposed) return cached;
  const h = load(bytes);
  cache.set(key, h);
  if (cache.size > max) {
    const [oldKey, old] = cache.entries().next().value as [string, H];
    cache.delete(oldKey);
    old.dispose();
  }
  return h;
}

function publicKeyFor(ctx: HeContext, bytes: Uint8Array): HePublicKey {
  return cachedKey(publicKeys, MAX_KEYS, ctx, bytes, (b) => ctx.loadPublicKey(b));
}

function galoisKeysFor(ctx: HeContext, bytes: Uint8Array): HeGaloisKeys {
  return cachedKey(galoisKeys, MAX_GALOIS_KEYS, ctx, bytes, (b) => ctx.loadGaloisKeys(b));
}

export async function executeHeTask(task: HeTask): Promise<CiphertextBytes> {
  if (task.op === HeTaskOp.CkksEncrypt || task.op === HeTaskOp.CkksAdd) return executeCkksTask(task);
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
    case HeTaskOp.MaskedBlockSums:
      return ctx.maskedBlockSums(task.ciphertext, task.masks, task.rows);
    case HeTaskOp.BlockTotals: {
      const sum = ctx.addAll(task.parts, task.rows);
      return ctx.blockTotals(sum, galoisKeysFor(ctx, task.galoisKeys), task.rows, { first: task.first, length: task.length });
    }
    case HeTaskOp.ReRandomize:
      return ctx.reRandomize(ctx.addAll(task.parts, task.rows), publicKeyFor(ctx, task.publicKey));
    case HeTaskOp.EncryptResidues:
      return ctx.encryptResidues(task.residues, publicKeyFor(ctx, task.publicKey), { level: task.level });
    case HeTaskOp.AddAll:
      return ctx.addAll(task.parts, task.rows);
    case HeTaskOp.GenerateKeys: {
      const k = ctx.generateKeys({ galois: task.galois });
      return packParts([k.publicKey, k.secretKey, ...(k.galoisKeys ? [k.galoisKeys] : [])]);
    }
    case HeTaskOp.CheckPublicKey:
      return publicKeyFor(ctx, task.publicKey).keyId.slice();
    case HeTaskOp.EncryptInt64:
      return ctx.encryptResidues(int64Residues(task.values, 0, task.values.length, ctx.params.plainModuli), publicKeyFor(ctx, task.publicKey), { level: task.level });
    case HeTaskOp.DecryptBlockResidues: {
      const r = ctx.decryptBlockResidueSums(task.ciphertext, task.secretKey);
      return new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
    }
    default: {
      const op: never = task;
      throw new InvalidArgumentError(`unknown HE task ${String((op as { op: unknown }).op)}`);
    }
  }
}

// ------------------------------------------------------------------ CKKS

const ckksContexts = new Map<string, Promise<CkksContext>>();
const ckksPublicKeys = new Map<string, CkksPublicKey>();

function ckksOptionsKey(o: CkksContextOptions): string {
  return JSON.stringify([o.maxAbsValue, o.maxRows, o.precisionBits ?? null, o.maxLength ?? null]);
}

/** This thread's CKKS context for `options`. */
function ckksContextFor(options: CkksContextOptions): Promise<CkksContext> {
  return cachedContext(ckksContexts, ckksOptionsKey(options), () => createCkksContext(options));
}

function ckksPublicKeyFor(ctx: CkksContext, bytes: Uint8Array): CkksPublicKey {
  const key = `${ctx.params.fingerprint}:${createHash("sha256").update(bytes).digest("hex")}`;
  const cached = ckksPublicKeys.get(key);
  if (cached && !cached.disposed) return cached;
  const h = ctx.loadPublicKey(bytes);
  ckksPublicKeys.set(key, h);
  if (ckksPublicKeys.size > MAX_KEYS) {
    const [oldKey, old] = ckksPublicKeys.entries().next().value as [string, CkksPublicKey];
    ckksPublicKeys.delete(oldKey);
    old.dispose();
  }
  return h;
}

async function executeCkksTask(task: CkksEncryptTask | CkksAddTask): Promise<Uint8Array> {
  const ctx = await ckksContextFor(task.options);
  switch (task.op) {
    case HeTaskOp.CkksEncrypt:
      return ctx.encryptColumn(task.values, ckksPublicKeyFor(ctx, task.publicKey));
    case HeTaskOp.CkksAdd: {
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
      throw new InvalidArgumentError(`unknown CKKS task ${String((op as { op: unknown }).op)}`);
    }
  }
}
