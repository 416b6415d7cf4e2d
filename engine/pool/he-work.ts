/**
 * The pool's HE work (engine/he): BFV encryption, sums, masked sums,
 * re-randomisation, key generation, key checks and decryption, and CKKS
 * encryption and sums, each cut into tasks across the workers and joined on
 * this thread. CryptoPool's methods of the same names call these; their
 * contracts are documented there.
 */
import { InvalidArgumentError, PoolClosedError } from "../errors.js";
import { checkMasks, checkRowBound, type CiphertextBytes, type HeKeyBytes } from "../he/bfv.js";
import { concatCkksColumns, selectCkksParameters, type CkksCiphertextBytes, type CkksContextOptions } from "../he/ckks.js";
import type { ColumnValues } from "../he/encode.js";
import { heErrorFromSerialized, ValueOutOfRangeError } from "../he/errors.js";
import type { HeContextOptions } from "../he/params.js";
import { loadSeal } from "../he/seal.js";
import { HeTaskOp, unpackParts, type HeTask } from "../he/task.js";
import { blockSource, inLanes, ranges } from "./chunks.js";
import { executeTask } from "./execute.js";
import type { PoolWorkers, RunOptions } from "./types.js";

/** The most ciphertext bytes an HE task is cut to when its column comes in parts (the copy this thread makes for it). */
const TASK_BYTES = 8 * 1024 * 1024;

/** The work of CryptoPool.heEncrypt (its contract is documented there). */
export async function heEncrypt(w: PoolWorkers, options: HeContextOptions, publicKey: Uint8Array, values: ColumnValues, runOptions?: RunOptions): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const n = values.length;
  const block = ctx.params.slotCount;
  if (n <= block || w.inlineBelow > n) {
    const value = await executeTask({ op: HeTaskOp.Encrypt, options, publicKey, values });
    runOptions?.onProgress?.(n, n);
    return value;
  }
  // Whole blocks per chunk, about one chunk per worker and at most 16 blocks each.
  const blocks = Math.ceil(n / block);
  const perChunk = Math.max(1, Math.min(16, Math.ceil(blocks / w.threads))) * block;
  const parts: Uint8Array[] = [];
  let done = 0;
  const jobs: Promise<void>[] = [];
  for (let start = 0, i = 0; start < n; start += perChunk, i++) {
    const chunk = values.slice(start, Math.min(n, start + perChunk)) as ColumnValues;
    const size = chunk.length; // before the transfer detaches it
    const index = i;
    jobs.push(
      w.runHe({ op: HeTaskOp.Encrypt, options, publicKey, values: chunk }, [chunk.buffer as ArrayBuffer]).then((value) => {
        parts[index] = value;
        done += size;
        runOptions?.onProgress?.(done, n);
      }),
    );
  }
  await Promise.all(jobs);
  return ctx.concat(parts);
}

/** The work of CryptoPool.heAdd (its contract is documented there). */
export async function heAdd(w: PoolWorkers, options: HeContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const task = { op: HeTaskOp.Add, options, ciphertexts: [...ciphertexts] } as const;
  if (w.inlineBelow > 0 && ciphertexts.length < 2) return executeTask(task);
  return w.runHe(task);
}

/** The work of CryptoPool.heMaskedGroupSums (its contract is documented there). */
export async function heMaskedGroupSums(w: PoolWorkers, options: HeContextOptions, ct: CiphertextBytes, masks: readonly Uint32Array[], galoisKeys: Uint8Array, publicKey: Uint8Array, rows: number, runOptions?: RunOptions): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const params = ctx.params;
  if (params.polyModulusDegree !== 8192) {
    throw new InvalidArgumentError("masked group sums need an N = 8192 context (maxRows above 4096, or polyModulusDegree 8192): at N = 4096 the noise budget holds one plaintext multiplication, and they take two");
  }
  const info = ctx.inspect(ct);
  checkMasks(params, info.length, masks);
  checkRowBound(params, rows);
  const n = params.slotCount;
  const groups = masks.length;
  const total = info.blocks + groups;
  let done = 0;
  const run = async (task: HeTask, transferList: ArrayBuffer[], units: number): Promise<Uint8Array> => {
    const value = await w.runHe(task, transferList);
    done += units;
    runOptions?.onProgress?.(done, total);
    return value;
  };
  const partials = await Promise.all(
    ranges(info.blocks, w.threads).map(([b0, b1]) => {
      const ciphertext = ctx.sliceBlocks(ct, b0, b1);
      const parts = masks.map((m) => m.slice(b0 * n, Math.min(info.length, b1 * n)));
      const transfer = [ciphertext.buffer as ArrayBuffer, ...parts.map((m) => m.buffer as ArrayBuffer)];
      return run({ op: HeTaskOp.MaskedBlockSums, options, ciphertext, masks: parts, rows }, transfer, b1 - b0);
    }),
  );
  const totals = await Promise.all(
    ranges(groups, w.threads).map(([g0, g1]) => {
      const parts = partials.map((p) => ctx.sliceBlocks(p, g0, g1));
      const task = { op: HeTaskOp.BlockTotals, options, parts, galoisKeys, rows, first: g0, length: groups } as const;
      return run(task, parts.map((p) => p.buffer as ArrayBuffer), g1 - g0);
    }),
  );
  return w.runHe({ op: HeTaskOp.ReRandomize, options, parts: totals, publicKey, rows }, totals.map((t) => t.buffer as ArrayBuffer));
}

/** The work of CryptoPool.heEncryptResidues (its contract is documented there). */
export async function heEncryptResidues(w: PoolWorkers, options: HeContextOptions, publicKey: Uint8Array, residues: readonly Uint32Array[], runOptions?: RunOptions & { readonly level?: "first" | "mask" }): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const level = runOptions?.level ?? "first";
  const length = residues[0]?.length ?? 0;
  const n = ctx.params.slotCount;
  const blocks = Math.ceil(length / n);
  if (blocks <= 1 || w.inlineBelow > length) {
    const value = await executeTask({ op: HeTaskOp.EncryptResidues, options, publicKey, residues, level });
    runOptions?.onProgress?.(length, length);
    return value;
  }
  let done = 0;
  const parts = await Promise.all(
    ranges(blocks, w.threads).map(async ([b0, b1]) => {
      const part = residues.map((r) => r.slice(b0 * n, Math.min(length, b1 * n)));
      const size = part[0]?.length ?? 0;
      const value = await w.runHe({ op: HeTaskOp.EncryptResidues, options, publicKey, residues: part, level }, part.map((x) => x.buffer as ArrayBuffer));
      done += size;
      runOptions?.onProgress?.(done, length);
      return value;
    }),
  );
  return ctx.concat(parts);
}

/** The work of CryptoPool.heMaskedBlockSums (its contract is documented there). */
export async function heMaskedBlockSums(w: PoolWorkers, options: HeContextOptions, ct: CiphertextBytes | readonly CiphertextBytes[], masks: readonly Uint32Array[], rows: number, runOptions?: RunOptions): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const params = ctx.params;
  const column = blockSource(ctx, ct);
  checkMasks(params, column.length, masks);
  checkRowBound(params, rows);
  const n = params.slotCount;
  // About one range per worker, at most 16 blocks and ~8 MB (what this thread copies for one task).
  const per = Math.max(1, Math.min(16, Math.ceil(column.blocks / w.threads), Math.floor(TASK_BYTES / column.blockBytes)));
  const tasks = Math.ceil(column.blocks / per);
  let done = 0;
  const partials = await inLanes(tasks, 2 * w.threads, async (t) => {
    const b0 = t * per;
    const b1 = Math.min(column.blocks, b0 + per);
    const { bytes: ciphertext, fresh } = column.blocksOf(b0, b1);
    const parts = masks.map((m) => m.slice(b0 * n, Math.min(column.length, b1 * n)));
    // A caller's own part is copied to the worker, never moved (detached).
    const transfer = [...(fresh ? [ciphertext.buffer as ArrayBuffer] : []), ...parts.map((m) => m.buffer as ArrayBuffer)];
    const value = await w.runHe({ op: HeTaskOp.MaskedBlockSums, options, ciphertext, masks: parts, rows }, transfer);
    done += b1 - b0;
    runOptions?.onProgress?.(done, column.blocks);
    return value;
  });
  if (partials.length === 1) return partials[0] as CiphertextBytes;
  return w.runHe({ op: HeTaskOp.AddAll, options, parts: partials, rows }, partials.map((p) => p.buffer as ArrayBuffer));
}

/** The work of CryptoPool.heEncryptInt64Parts (its contract is documented there). */
export async function heEncryptInt64Parts(w: PoolWorkers, options: HeContextOptions, publicKey: Uint8Array, values: BigInt64Array, o: RunOptions & { readonly level?: "first" | "mask"; readonly blocksPerPart: number }): Promise<CiphertextBytes[]> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const n = ctx.params.slotCount;
  const level = o.level ?? "first";
  if (!Number.isSafeInteger(o.blocksPerPart) || o.blocksPerPart < 1) throw new InvalidArgumentError("blocksPerPart must be a positive integer");
  if (values.length < 1) throw new InvalidArgumentError("nothing to encrypt");
  const blocks = Math.ceil(values.length / n);
  // Whole parts per task, about 4 blocks each (~4 MB at N = 8192: what this thread cuts into parts at once).
  const perTask = o.blocksPerPart * Math.max(1, Math.ceil(4 / o.blocksPerPart));
  const tasks = Math.ceil(blocks / perTask);
  let done = 0;
  const encrypted = await inLanes(tasks, 2 * w.threads, async (t) => {
    const b0 = t * perTask;
    const b1 = Math.min(blocks, b0 + perTask);
    const chunk = values.slice(b0 * n, Math.min(values.length, b1 * n));
    const size = chunk.length;
    const ct = await w.runHe({ op: HeTaskOp.EncryptInt64, options, publicKey, values: chunk, level }, [chunk.buffer as ArrayBuffer]);
    done += size;
    o.onProgress?.(done, values.length);
    const parts: CiphertextBytes[] = [];
    for (let p = 0; p < b1 - b0; p += o.blocksPerPart) parts.push(b1 - b0 <= o.blocksPerPart ? ct : ctx.sliceBlocks(ct, p, Math.min(b1 - b0, p + o.blocksPerPart)));
    return parts;
  });
  return encrypted.flat();
}

/** The work of CryptoPool.heReRandomize (its contract is documented there). */
export async function heReRandomize(w: PoolWorkers, options: HeContextOptions, parts: readonly CiphertextBytes[], publicKey: Uint8Array, rows: number): Promise<CiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  if (parts.length === 0) throw new InvalidArgumentError("nothing to re-randomise");
  const info = ctx.inspect(parts[0] as CiphertextBytes);
  const out = await Promise.all(
    ranges(info.blocks, w.threads).map(async ([b0, b1]) => {
      const slices = parts.map((p) => ctx.sliceBlocks(p, b0, b1));
      return w.runHe({ op: HeTaskOp.ReRandomize, options, parts: slices, publicKey, rows }, slices.map((x) => x.buffer as ArrayBuffer));
    }),
  );
  return out.length === 1 ? (out[0] as CiphertextBytes) : ctx.concat(out);
}

/** The work of CryptoPool.heGenerateKeys (its contract is documented there). */
export async function heGenerateKeys(w: PoolWorkers, options: HeContextOptions, keyOptions: { readonly galois?: boolean } = {}): Promise<HeKeyBytes> {
  if (w.closed) throw new PoolClosedError();
  const galois = keyOptions.galois !== false;
  const [publicKey, secretKey, galoisKeys] = unpackParts(await w.runHe({ op: HeTaskOp.GenerateKeys, options, galois }));
  if (!publicKey || !secretKey || (galois && !galoisKeys)) throw new InvalidArgumentError("a worker returned an incomplete key set");
  return { publicKey: publicKey.slice(), secretKey: secretKey.slice(), ...(galois && galoisKeys ? { galoisKeys: galoisKeys.slice() } : {}) };
}

/** The work of CryptoPool.heCheckPublicKey (its contract is documented there). */
export async function heCheckPublicKey(w: PoolWorkers, options: HeContextOptions, publicKey: Uint8Array): Promise<string> {
  if (w.closed) throw new PoolClosedError();
  return Buffer.from(await w.runHe({ op: HeTaskOp.CheckPublicKey, options, publicKey })).toString("hex");
}

/** The work of CryptoPool.heDecryptBlockSums (its contract is documented there). */
export async function heDecryptBlockSums(w: PoolWorkers, options: HeContextOptions, ct: CiphertextBytes, secretKey: Uint8Array): Promise<bigint[]> {
  if (w.closed) throw new PoolClosedError();
  const ctx = await w.heContext(options);
  const info = ctx.inspect(ct);
  let r = await w.runHe({ op: HeTaskOp.DecryptBlockResidues, options, ciphertext: ct, secretKey });
  if (r.byteOffset % 4 !== 0) r = r.slice();
  return ctx.blockSumsFromResidues(new Uint32Array(r.buffer, r.byteOffset, r.byteLength >>> 2), info.blocks);
}

/** The work of CryptoPool.ckksEncrypt (its contract is documented there). */
export async function ckksEncrypt(w: PoolWorkers, options: CkksContextOptions, publicKey: Uint8Array, values: Float64Array, runOptions?: RunOptions): Promise<CkksCiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  if (!(values instanceof Float64Array) || values.length < 1) throw new InvalidArgumentError("values must be a non-empty Float64Array");
  const params = selectCkksParameters(await loadSeal(), options);
  const n = values.length;
  if (n > params.maxLength) throw new InvalidArgumentError(`column of ${n} values is longer than maxLength ${params.maxLength}`);
  const block = params.slotCount;
  if (n <= block || w.inlineBelow > n) {
    const value = await executeTask({ op: HeTaskOp.CkksEncrypt, options, publicKey, values });
    runOptions?.onProgress?.(n, n);
    return value;
  }
  const blocks = Math.ceil(n / block);
  const perChunk = Math.max(1, Math.min(16, Math.ceil(blocks / w.threads))) * block;
  const pool = w.piscina();
  const parts: Uint8Array[] = [];
  let done = 0;
  const jobs: Promise<void>[] = [];
  for (let start = 0, i = 0; start < n; start += perChunk, i++) {
    const chunk = values.slice(start, Math.min(n, start + perChunk));
    const size = chunk.length; // before the transfer detaches it
    const index = i;
    const offset = start;
    jobs.push(
      pool.run({ op: HeTaskOp.CkksEncrypt, options, publicKey, values: chunk }, { transferList: [chunk.buffer as ArrayBuffer] }).then((r) => {
        if (!r.ok) {
          const err = heErrorFromSerialized(r.error);
          throw err instanceof ValueOutOfRangeError && err.index !== undefined ? new ValueOutOfRangeError(err.message, err.index + offset) : err;
        }
        parts[index] = r.value;
        done += size;
        runOptions?.onProgress?.(done, n);
      }),
    );
  }
  await Promise.all(jobs);
  return concatCkksColumns(params, parts);
}

/** The work of CryptoPool.ckksAdd (its contract is documented there). */
export async function ckksAdd(w: PoolWorkers, options: CkksContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CkksCiphertextBytes> {
  if (w.closed) throw new PoolClosedError();
  const task = { op: HeTaskOp.CkksAdd, options, ciphertexts: [...ciphertexts] } as const;
  if (w.inlineBelow > 0 && ciphertexts.length < 2) return executeTask(task);
  return w.runHe(task);
}
