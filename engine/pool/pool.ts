/**
 * engine/pool: one piscina pool that runs the group and OPRF work on every
 * core, and the HE work (engine/he/task.ts): encryption, the masked sums,
 * and key generation, key checks and decryption, so that no SEAL context is
 * built on the calling thread (its host-side context only inspects, cuts and
 * joins frames).
 *
 * Work is split into chunks (default 4,096 elements) that travel to the
 * workers as flat transferable buffers and come back the same way; batches
 * smaller than `inlineBelow` (default 512) run on the calling thread, where a
 * round trip to a worker would cost more than the work. A failed chunk
 * rejects the call with the typed error the worker raised, its element index
 * made global. `close()` ends every worker: a script that closes its pool
 * exits by itself.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import {
  errorFromSerialized,
  InvalidArgumentError,
  InvalidLengthError,
  InvalidPointError,
  PoolClosedError,
  UnsupportedBackendError,
  type UmbraError,
} from "../errors.js";
import { defaultBackend } from "../group/index.js";
import { assertPacked, type PackedBytes } from "../packed.js";
import { GroupId, type BackendId } from "../group/types.js";
import { executeTask } from "./execute.js";
import { TaskOp, type GroupTask, type PoolTask, type TaskResult } from "./tasks.js";
import { checkMasks, checkRowBound, createHeContext, type CiphertextBytes, type HeContext, type HeKeyBytes } from "../he/bfv.js";
import { heErrorFromSerialized } from "../he/errors.js";
import type { ColumnValues } from "../he/encode.js";
import type { HeContextOptions } from "../he/params.js";
import { HeTaskOp, optionsKey, unpackParts, type HeTask } from "../he/task.js";
import { concatCkksColumns, selectCkksParameters, type CkksCiphertextBytes, type CkksContextOptions } from "../he/ckks.js";
import { ValueOutOfRangeError } from "../he/errors.js";
import { loadSeal } from "../he/seal.js";
import type { KeyColumn } from "../columns/keys.js";
import { int64GroupStats, pairCounts, type Int64Column, type Int64GroupStats, type PairCounts } from "../columns/group.js";
import { distinctKeys, shuffledOrder, type DistinctKeys } from "../psi/distinct.js";
import { ColumnTaskOp, unpackArrays, type ColumnTask } from "./column-task.js";

export interface PoolOptions {
  /** Worker threads (default: the available cores). */
  readonly threads?: number;
  /** Elements per task sent to a worker (default 4,096). */
  readonly chunkSize?: number;
  /** Batches with fewer elements run on the calling thread (default 512). Set 0 to always use workers. */
  readonly inlineBelow?: number;
  /** Milliseconds an idle worker is kept (default 30,000). */
  readonly idleTimeout?: number;
}

export interface GroupChoice {
  readonly group: GroupId;
  /** Default: the fastest backend for the group. */
  readonly backend?: BackendId;
}

export interface RunOptions {
  /** Called after each finished chunk with (elements done, elements in all). */
  readonly onProgress?: (done: number, total: number) => void;
}

const DEFAULT_CHUNK = 4096;
/** The most ciphertext bytes an HE task is cut to when its column comes in parts (the copy this thread makes for it). */
const TASK_BYTES = 8 * 1024 * 1024;
const DEFAULT_INLINE = 512;

/** Where the compiled worker entry is: next to this module when running from dist/, else in dist/. */
export function workerFilename(): string {
  const here = new URL("./group.task.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return fileURLToPath(here);
  const built = new URL("../../dist/engine/pool/group.task.js", import.meta.url);
  if (existsSync(fileURLToPath(built))) return fileURLToPath(built);
  throw new UnsupportedBackendError("the compiled worker (dist/engine/pool/group.task.js) is missing: run `npm run build`");
}

interface Slice {
  readonly start: number;
  readonly end: number;
}

function slices(n: number, chunk: number): Slice[] {
  const out: Slice[] = [];
  for (let s = 0; s < n; s += chunk) out.push({ start: s, end: Math.min(n, s + chunk) });
  return out;
}

/** A copy of messages [start, end) with offsets rebased to 0 (a transferable chunk). */
function sliceMessages(m: PackedBytes, s: Slice): { data: Uint8Array; offsets: Uint32Array } {
  const base = m.offsets[s.start] ?? 0;
  const endByte = m.offsets[s.end] ?? base;
  const data = m.data.slice(base, endByte);
  const offsets = new Uint32Array(s.end - s.start + 1);
  for (let i = 0; i <= s.end - s.start; i++) offsets[i] = (m.offsets[s.start + i] ?? base) - base;
  return { data, offsets };
}

export class CryptoPool {
  readonly threads: number;
  readonly chunkSize: number;
  readonly inlineBelow: number;
  #piscina: Piscina<PoolTask, TaskResult> | undefined;
  /** Host-side HE contexts (for joining chunk ciphertexts), by options. */
  readonly #he = new Map<string, Promise<HeContext>>();
  #closed = false;
  readonly #idleTimeout: number;

  constructor(options: PoolOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new InvalidArgumentError("threads must be a positive integer");
    const chunk = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1) throw new InvalidArgumentError("chunkSize must be a positive integer");
    const inline = options.inlineBelow ?? DEFAULT_INLINE;
    if (!Number.isInteger(inline) || inline < 0) throw new InvalidArgumentError("inlineBelow must be a non-negative integer");
    this.threads = threads;
    this.chunkSize = chunk;
    this.inlineBelow = inline;
    this.#idleTimeout = options.idleTimeout ?? 30_000;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Element i = encode(scalar · H(messages_i)) (scalar optional), n × 32 bytes. */
  hashToGroup(choice: GroupChoice, messages: PackedBytes, dst: Uint8Array, scalar?: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    assertPacked(messages, "messages");
    const n = messages.offsets.length - 1;
    const g = this.#choice(choice);
    return this.#run(n, 32, options, (s) => {
      const m = sliceMessages(messages, s);
      return { op: TaskOp.Hash, ...g, data: m.data, offsets: m.offsets, dst, ...(scalar ? { scalar } : {}) };
    });
  }

  /** Element i = scalar · points_i for n received (untrusted) points, n × 32 bytes. */
  multiply(choice: GroupChoice, scalar: Uint8Array, points: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    const n = countOf(points, 32, "element batch");
    const g = this.#choice(choice);
    return this.#run(n, 32, options, (s) => ({ op: TaskOp.Multiply, ...g, scalar, points: points.slice(s.start * 32, s.end * 32) }));
  }

  /** Element i = scalars_i · points_i. */
  multiplyEach(choice: GroupChoice, scalars: Uint8Array, points: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    const n = countOf(points, 32, "element batch");
    if (scalars.length !== n * 32) throw new InvalidLengthError("scalar batch", `${n * 32}`, scalars.length);
    const g = this.#choice(choice);
    return this.#run(n, 32, options, (s) => ({
      op: TaskOp.MultiplyEach,
      ...g,
      scalars: scalars.slice(s.start * 32, s.end * 32),
      points: points.slice(s.start * 32, s.end * 32),
    }));
  }

  /** RFC 9497 Evaluate(secretKey, input_i) over a column: n × 64 output bytes. */
  oprfEvaluate(secretKey: Uint8Array, inputs: PackedBytes, options?: RunOptions & { backend?: BackendId }): Promise<Uint8Array> {
    assertPacked(inputs, "inputs");
    const g = this.#choice({ group: GroupId.Ristretto255, ...(options?.backend ? { backend: options.backend } : {}) });
    return this.#run(inputs.offsets.length - 1, 64, options, (s) => ({ op: TaskOp.OprfEvaluate, ...g, secretKey, ...sliceMessages(inputs, s) }));
  }

  /** RFC 9497 Blind(input_i, blind_i) over a column, one fresh blind per row supplied by the caller: n × 32 bytes. */
  oprfBlind(inputs: PackedBytes, blinds: Uint8Array, options?: RunOptions & { backend?: BackendId }): Promise<Uint8Array> {
    assertPacked(inputs, "inputs");
    const n = inputs.offsets.length - 1;
    if (blinds.length !== n * 32) throw new InvalidLengthError("blind batch", `${n * 32}`, blinds.length);
    const g = this.#choice({ group: GroupId.Ristretto255, ...(options?.backend ? { backend: options.backend } : {}) });
    return this.#run(n, 32, options, (s) => ({ op: TaskOp.OprfBlind, ...g, blinds: blinds.slice(s.start * 32, s.end * 32), ...sliceMessages(inputs, s) }));
  }

  /** RFC 9497 Finalize(input_i, blind_i, evaluated_i) over a column: n × 64 bytes. */
  oprfFinalize(inputs: PackedBytes, blinds: Uint8Array, evaluated: Uint8Array, options?: RunOptions & { backend?: BackendId }): Promise<Uint8Array> {
    assertPacked(inputs, "inputs");
    const n = inputs.offsets.length - 1;
    if (blinds.length !== n * 32) throw new InvalidLengthError("blind batch", `${n * 32}`, blinds.length);
    if (evaluated.length !== n * 32) throw new InvalidLengthError("evaluated batch", `${n * 32}`, evaluated.length);
    const g = this.#choice({ group: GroupId.Ristretto255, ...(options?.backend ? { backend: options.backend } : {}) });
    return this.#run(n, 64, options, (s) => ({
      op: TaskOp.OprfFinalize,
      ...g,
      blinds: blinds.slice(s.start * 32, s.end * 32),
      evaluated: evaluated.slice(s.start * 32, s.end * 32),
      ...sliceMessages(inputs, s),
    }));
  }

  /**
   * Encrypts a numeric column under an HE public key on every worker (engine/he):
   * the column is cut into chunks of whole blocks, each worker encrypts its
   * chunks with its own SEAL instance, and the parts are joined in order.
   */
  async heEncrypt(options: HeContextOptions, publicKey: Uint8Array, values: ColumnValues, runOptions?: RunOptions): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    const n = values.length;
    const block = ctx.params.slotCount;
    if (n <= block || this.inlineBelow > n) {
      const value = await executeTask({ op: HeTaskOp.Encrypt, options, publicKey, values });
      runOptions?.onProgress?.(n, n);
      return value;
    }
    // Whole blocks per chunk, about one chunk per worker and at most 16 blocks each.
    const blocks = Math.ceil(n / block);
    const perChunk = Math.max(1, Math.min(16, Math.ceil(blocks / this.threads))) * block;
    const parts: Uint8Array[] = [];
    let done = 0;
    const jobs: Promise<void>[] = [];
    for (let start = 0, i = 0; start < n; start += perChunk, i++) {
      const chunk = values.slice(start, Math.min(n, start + perChunk)) as ColumnValues;
      const size = chunk.length; // before the transfer detaches it
      const index = i;
      jobs.push(
        this.#runHe({ op: HeTaskOp.Encrypt, options, publicKey, values: chunk }, [chunk.buffer as ArrayBuffer]).then((value) => {
          parts[index] = value;
          done += size;
          runOptions?.onProgress?.(done, n);
        }),
      );
    }
    await Promise.all(jobs);
    return ctx.concat(parts);
  }

  /** The slot-wise sum of several ciphertexts of one column (a tree of adds, in a worker). */
  async heAdd(options: HeContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const task = { op: HeTaskOp.Add, options, ciphertexts: [...ciphertexts] } as const;
    if (this.inlineBelow > 0 && ciphertexts.length < 2) return executeTask(task);
    return this.#runHe(task);
  }

  /**
   * Encrypted per-group weighted totals of an encrypted column, on every
   * worker: T_g = Σ_s masks[g][s] · x[s] for each group g, returned as one
   * ciphertext of G slots (slot g holds T_g) re-randomised under the public
   * key and at the last modulus, ready for the key holder's decryptSums.
   *
   * 1. The column's blocks are cut into one contiguous range per worker; each
   *    worker runs HeContext.maskedBlockSums on its range (the column's
   *    blocks and the masks' matching parts are copied and transferred).
   * 2. The groups are cut likewise; each worker adds the partial sums of its
   *    groups' blocks (addAll) and runs blockTotals, placing its totals at
   *    their slots of a G-slot column.
   * 3. One worker adds those columns and re-randomises the sum.
   * Each phase waits for the previous one; the caller's buffers are never
   * detached. Everything runs on the workers whatever the column's size
   * (even one block costs G · k full rotate-and-sums, seconds at N = 8192).
   *
   * `rows` is the caller's bound on the rows any T_g includes (counting a row
   * w times when its weight is w), checked against maxRows and carried by
   * every intermediate and the result. Masks and rows are checked here
   * before any work (errors name the mask and the global slot). Needs an
   * N = 8192 context: at N = 4096 the noise budget holds one plaintext
   * multiplication and this takes two (see HeContext.blockTotals). Progress
   * counts blocks masked, then groups totalled: (done, blocks + G).
   */
  async heMaskedGroupSums(
    options: HeContextOptions,
    ct: CiphertextBytes,
    masks: readonly Uint32Array[],
    galoisKeys: Uint8Array,
    publicKey: Uint8Array,
    rows: number,
    runOptions?: RunOptions,
  ): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
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
      const value = await this.#runHe(task, transferList);
      done += units;
      runOptions?.onProgress?.(done, total);
      return value;
    };
    const partials = await Promise.all(
      ranges(info.blocks, this.threads).map(([b0, b1]) => {
        const ciphertext = ctx.sliceBlocks(ct, b0, b1);
        const parts = masks.map((m) => m.slice(b0 * n, Math.min(info.length, b1 * n)));
        const transfer = [ciphertext.buffer as ArrayBuffer, ...parts.map((m) => m.buffer as ArrayBuffer)];
        return run({ op: HeTaskOp.MaskedBlockSums, options, ciphertext, masks: parts, rows }, transfer, b1 - b0);
      }),
    );
    const totals = await Promise.all(
      ranges(groups, this.threads).map(([g0, g1]) => {
        const parts = partials.map((p) => ctx.sliceBlocks(p, g0, g1));
        const task = { op: HeTaskOp.BlockTotals, options, parts, galoisKeys, rows, first: g0, length: groups } as const;
        return run(task, parts.map((p) => p.buffer as ArrayBuffer), g1 - g0);
      }),
    );
    return this.#runHe({ op: HeTaskOp.ReRandomize, options, parts: totals, publicKey, rows }, totals.map((t) => t.buffer as ArrayBuffer));
  }

  /**
   * Encrypts a column given as residues (`residues[j]` modulo the j-th CRT
   * prime, as HeContext.encryptResidues) on every worker: cut into ranges of
   * whole blocks, one per worker, joined in order. `level: "mask"` leaves the
   * ciphertexts at the masked-sums level (smaller; see HeContext Levels).
   */
  async heEncryptResidues(options: HeContextOptions, publicKey: Uint8Array, residues: readonly Uint32Array[], runOptions?: RunOptions & { readonly level?: "first" | "mask" }): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    const level = runOptions?.level ?? "first";
    const length = residues[0]?.length ?? 0;
    const n = ctx.params.slotCount;
    const blocks = Math.ceil(length / n);
    if (blocks <= 1 || this.inlineBelow > length) {
      const value = await executeTask({ op: HeTaskOp.EncryptResidues, options, publicKey, residues, level });
      runOptions?.onProgress?.(length, length);
      return value;
    }
    let done = 0;
    const parts = await Promise.all(
      ranges(blocks, this.threads).map(async ([b0, b1]) => {
        const part = residues.map((r) => r.slice(b0 * n, Math.min(length, b1 * n)));
        const size = part[0]?.length ?? 0;
        const value = await this.#runHe({ op: HeTaskOp.EncryptResidues, options, publicKey, residues: part, level }, part.map((x) => x.buffer as ArrayBuffer));
        done += size;
        runOptions?.onProgress?.(done, length);
        return value;
      }),
    );
    return ctx.concat(parts);
  }

  /**
   * The first half of heMaskedGroupSums on every worker: for each group g,
   * block g of the result is Σ_b ct_b ⊙ masks[g]_b (HeContext.maskedBlockSums
   * per range of blocks, the partials added). A column of G blocks at the
   * mask level; `rows` as for heMaskedGroupSums. For protocols that finish
   * the totals another way (join-aggregate masks each block with a zero-sum
   * vector instead of rotating).
   *
   * The column may be given as consecutive parts (every part but the last of
   * whole blocks, as concat takes them: the chunks it arrived in) and is then
   * never joined whole. Each task's blocks — about one range per worker, at
   * most 16 blocks and ~8 MB — are cut or joined from the parts only when a
   * worker is ready for it, so that no copy on this thread is larger than
   * one task's.
   */
  async heMaskedBlockSums(options: HeContextOptions, ct: CiphertextBytes | readonly CiphertextBytes[], masks: readonly Uint32Array[], rows: number, runOptions?: RunOptions): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    const params = ctx.params;
    const column = blockSource(ctx, ct);
    checkMasks(params, column.length, masks);
    checkRowBound(params, rows);
    const n = params.slotCount;
    // About one range per worker, at most 16 blocks and ~8 MB (what this thread copies for one task).
    const per = Math.max(1, Math.min(16, Math.ceil(column.blocks / this.threads), Math.floor(TASK_BYTES / column.blockBytes)));
    const tasks = Math.ceil(column.blocks / per);
    let done = 0;
    const partials = await inLanes(tasks, 2 * this.threads, async (t) => {
      const b0 = t * per;
      const b1 = Math.min(column.blocks, b0 + per);
      const { bytes: ciphertext, fresh } = column.blocksOf(b0, b1);
      const parts = masks.map((m) => m.slice(b0 * n, Math.min(column.length, b1 * n)));
      // A caller's own part is copied to the worker, never moved (detached).
      const transfer = [...(fresh ? [ciphertext.buffer as ArrayBuffer] : []), ...parts.map((m) => m.buffer as ArrayBuffer)];
      const value = await this.#runHe({ op: HeTaskOp.MaskedBlockSums, options, ciphertext, masks: parts, rows }, transfer);
      done += b1 - b0;
      runOptions?.onProgress?.(done, column.blocks);
      return value;
    });
    if (partials.length === 1) return partials[0] as CiphertextBytes;
    return this.#runHe({ op: HeTaskOp.AddAll, options, parts: partials, rows }, partials.map((p) => p.buffer as ArrayBuffer));
  }

  /**
   * Encrypts a column of signed 64-bit integers (already scaled and within
   * the context's bound) on every worker, as parts of `blocksPerPart` whole
   * blocks (the last one shorter): what a protocol sends in chunks, never
   * joined into one column here. Each worker turns its values into residues
   * (engine/he int64Residues) and encrypts them (HeContext.encryptResidues at
   * `level`); the tasks are cut only when a worker is ready for one. Progress
   * counts values.
   */
  async heEncryptInt64Parts(
    options: HeContextOptions,
    publicKey: Uint8Array,
    values: BigInt64Array,
    o: RunOptions & { readonly level?: "first" | "mask"; readonly blocksPerPart: number },
  ): Promise<CiphertextBytes[]> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    const n = ctx.params.slotCount;
    const level = o.level ?? "first";
    if (!Number.isSafeInteger(o.blocksPerPart) || o.blocksPerPart < 1) throw new InvalidArgumentError("blocksPerPart must be a positive integer");
    if (values.length < 1) throw new InvalidArgumentError("nothing to encrypt");
    const blocks = Math.ceil(values.length / n);
    // Whole parts per task, about 4 blocks each (~4 MB at N = 8192: what this thread cuts into parts at once).
    const perTask = o.blocksPerPart * Math.max(1, Math.ceil(4 / o.blocksPerPart));
    const tasks = Math.ceil(blocks / perTask);
    let done = 0;
    const encrypted = await inLanes(tasks, 2 * this.threads, async (t) => {
      const b0 = t * perTask;
      const b1 = Math.min(blocks, b0 + perTask);
      const chunk = values.slice(b0 * n, Math.min(values.length, b1 * n));
      const size = chunk.length;
      const ct = await this.#runHe({ op: HeTaskOp.EncryptInt64, options, publicKey, values: chunk, level }, [chunk.buffer as ArrayBuffer]);
      done += size;
      o.onProgress?.(done, values.length);
      const parts: CiphertextBytes[] = [];
      for (let p = 0; p < b1 - b0; p += o.blocksPerPart) parts.push(b1 - b0 <= o.blocksPerPart ? ct : ctx.sliceBlocks(ct, p, Math.min(b1 - b0, p + o.blocksPerPart)));
      return parts;
    });
    return encrypted.flat();
  }

  /**
   * addAll(parts, rows) then reRandomize under the public key, over every
   * worker (ranges of whole blocks), joined in order: what a ciphertext
   * goes through last before the key holder gets it.
   */
  async heReRandomize(options: HeContextOptions, parts: readonly CiphertextBytes[], publicKey: Uint8Array, rows: number): Promise<CiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    if (parts.length === 0) throw new InvalidArgumentError("nothing to re-randomise");
    const info = ctx.inspect(parts[0] as CiphertextBytes);
    const out = await Promise.all(
      ranges(info.blocks, this.threads).map(async ([b0, b1]) => {
        const slices = parts.map((p) => ctx.sliceBlocks(p, b0, b1));
        return this.#runHe({ op: HeTaskOp.ReRandomize, options, parts: slices, publicKey, rows }, slices.map((x) => x.buffer as ArrayBuffer));
      }),
    );
    return out.length === 1 ? (out[0] as CiphertextBytes) : ctx.concat(out);
  }

  /**
   * A fresh key set (HeContext.generateKeys) made on a worker: the SEAL
   * context and the key generation take seconds at N = 8192, none of them on
   * this thread.
   */
  async heGenerateKeys(options: HeContextOptions, keyOptions: { readonly galois?: boolean } = {}): Promise<HeKeyBytes> {
    if (this.#closed) throw new PoolClosedError();
    const galois = keyOptions.galois !== false;
    const [publicKey, secretKey, galoisKeys] = unpackParts(await this.#runHe({ op: HeTaskOp.GenerateKeys, options, galois }));
    if (!publicKey || !secretKey || (galois && !galoisKeys)) throw new InvalidArgumentError("a worker returned an incomplete key set");
    return { publicKey: publicKey.slice(), secretKey: secretKey.slice(), ...(galois && galoisKeys ? { galoisKeys: galoisKeys.slice() } : {}) };
  }

  /**
   * Loads public-key bytes on a worker (size-checked, then by SEAL: a
   * malformed key is refused with InvalidKeyError, one made for other
   * parameters with ParameterMismatchError) and returns its key-set id, hex.
   * The worker keeps the loaded key for the encryptions that follow.
   */
  async heCheckPublicKey(options: HeContextOptions, publicKey: Uint8Array): Promise<string> {
    if (this.#closed) throw new PoolClosedError();
    return Buffer.from(await this.#runHe({ op: HeTaskOp.CheckPublicKey, options, publicKey })).toString("hex");
  }

  /**
   * Per block of `ct`, the signed total of its slots in (−M/2, M/2) (M the
   * product of the CRT primes): decrypted and summed per prime on a worker
   * (HeContext.decryptBlockResidueSums), combined here, one CRT combination
   * per block. Equals summing decryptSums' slots block by block, modulo M.
   */
  async heDecryptBlockSums(options: HeContextOptions, ct: CiphertextBytes, secretKey: Uint8Array): Promise<bigint[]> {
    if (this.#closed) throw new PoolClosedError();
    const ctx = await this.#heContext(options);
    const info = ctx.inspect(ct);
    let r = await this.#runHe({ op: HeTaskOp.DecryptBlockResidues, options, ciphertext: ct, secretKey });
    if (r.byteOffset % 4 !== 0) r = r.slice();
    return ctx.blockSumsFromResidues(new Uint32Array(r.buffer, r.byteOffset, r.byteLength >>> 2), info.blocks);
  }

  /** This pool's host-side HE context for `options` (created once, disposed by close()): for inspecting, slicing and joining what the workers return. */
  heContext(options: HeContextOptions): Promise<HeContext> {
    if (this.#closed) throw new PoolClosedError();
    return this.#heContext(options);
  }

  /**
   * Encrypts a column of doubles under a CKKS public key on every worker
   * (engine/he CkksContext.encryptColumn): cut into chunks of whole blocks of
   * 4096 values (about one per worker, at most 16 blocks each), each worker
   * encrypting with its own SEAL instance and cached context and key, the
   * parts joined in order on this thread without SEAL (concatCkksColumns).
   * The caller's buffer is copied, never detached. Options and length are
   * checked here first; a value out of range or not finite is refused with
   * ValueOutOfRangeError and its index in the whole column.
   */
  async ckksEncrypt(options: CkksContextOptions, publicKey: Uint8Array, values: Float64Array, runOptions?: RunOptions): Promise<CkksCiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    if (!(values instanceof Float64Array) || values.length < 1) throw new InvalidArgumentError("values must be a non-empty Float64Array");
    const params = selectCkksParameters(await loadSeal(), options);
    const n = values.length;
    if (n > params.maxLength) throw new InvalidArgumentError(`column of ${n} values is longer than maxLength ${params.maxLength}`);
    const block = params.slotCount;
    if (n <= block || this.inlineBelow > n) {
      const value = await executeTask({ op: HeTaskOp.CkksEncrypt, options, publicKey, values });
      runOptions?.onProgress?.(n, n);
      return value;
    }
    const blocks = Math.ceil(n / block);
    const perChunk = Math.max(1, Math.min(16, Math.ceil(blocks / this.threads))) * block;
    const pool = this.#pool();
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

  /** The slot-wise sum of several CKKS ciphertexts of one column (a tree of adds, in a worker). */
  async ckksAdd(options: CkksContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CkksCiphertextBytes> {
    if (this.#closed) throw new PoolClosedError();
    const task = { op: HeTaskOp.CkksAdd, options, ciphertexts: [...ciphertexts] } as const;
    if (this.inlineBelow > 0 && ciphertexts.length < 2) return executeTask(task);
    return this.#runHe(task);
  }

  // ---------------------------------------------------------------- column work

  /**
   * engine/psi distinctKeys on a worker: the key column is copied there, the
   * results are moved back. Below `inlineBelow` rows, on this thread.
   */
  async distinctKeys(keys: KeyColumn): Promise<DistinctKeys> {
    if (this.#closed) throw new PoolClosedError();
    if (keys.length < this.inlineBelow) return distinctKeys(keys);
    const [data, offsets, rowToDistinct] = unpackArrays(
      await this.#runColumn({ op: ColumnTaskOp.DistinctKeys, data: whole(keys.data), offsets: whole(keys.offsets), valid: whole(keys.valid), length: keys.length }),
    ) as [Uint8Array, Uint8Array, Uint8Array];
    const distinct = { data, offsets: u32(offsets) };
    return { distinct, rowToDistinct: i32(rowToDistinct), count: distinct.offsets.length - 1 };
  }

  /** engine/psi shuffledOrder(n) on a worker (its randomness from node:crypto there). Below `inlineBelow`, on this thread. */
  async shuffledOrder(n: number): Promise<Uint32Array> {
    if (this.#closed) throw new PoolClosedError();
    if (n < this.inlineBelow) return shuffledOrder(n);
    return u32(await this.#runColumn({ op: ColumnTaskOp.ShuffledOrder, n }));
  }

  /** engine/columns pairCounts (COUNT(*) per key and group) on a worker. */
  async pairCounts(keyOf: Int32Array, groupOf: Uint32Array, keys: number, groups: number): Promise<PairCounts> {
    if (this.#closed) throw new PoolClosedError();
    if (keyOf.length < this.inlineBelow) return pairCounts(keyOf, groupOf, keys, groups);
    const [offsets, g, rows] = unpackArrays(await this.#runColumn({ op: ColumnTaskOp.PairCounts, keyOf: whole(keyOf), groupOf: whole(groupOf), keys, groups })) as [Uint8Array, Uint8Array, Uint8Array];
    return { offsets: u32(offsets), groups: u32(g), rows: u32(rows) };
  }

  /**
   * engine/columns int64GroupStats on a worker: COUNT(*) per key and, per
   * column, COUNT / SUM / SUM of squares of its valid values (a total leaving
   * the 64-bit range refused with BoundExceededError).
   */
  async int64GroupStats(keyOf: Int32Array, keys: number, columns: readonly Int64Column[], length: number = keys): Promise<Int64GroupStats> {
    if (this.#closed) throw new PoolClosedError();
    if (keyOf.length < this.inlineBelow) return int64GroupStats(keyOf, keys, columns, length);
    const task = { op: ColumnTaskOp.Int64GroupStats, keyOf: whole(keyOf), keys, length, columns: columns.map((c) => ({ values: whole(c.values), valid: whole(c.valid), squares: c.squares })) } as const;
    const [rows, ...stats] = unpackArrays(await this.#runColumn(task));
    let at = 0;
    const out = columns.map((c) => {
      const n = i64(stats[at++] as Uint8Array);
      const sum = i64(stats[at++] as Uint8Array);
      const q = c.squares ? i64(stats[at++] as Uint8Array) : null;
      return { n, s: sum, q };
    });
    return { rows: u32(rows as Uint8Array), columns: out };
  }

  async #runColumn(task: ColumnTask): Promise<Uint8Array> {
    const r = await this.#pool().run(task);
    if (!r.ok) throw heErrorFromSerialized(r.error);
    return r.value;
  }

  /** Runs one HE task on a worker (`transfer` moved, not copied); a worker's error comes back as its typed error. */
  async #runHe(task: HeTask, transfer: ArrayBuffer[] = []): Promise<Uint8Array> {
    const r = await this.#pool().run(task, { transferList: transfer });
    if (!r.ok) throw heErrorFromSerialized(r.error);
    return r.value;
  }

  #heContext(options: HeContextOptions): Promise<HeContext> {
    const key = optionsKey(options);
    let p = this.#he.get(key);
    if (!p) {
      p = createHeContext(options);
      p.catch(() => this.#he.delete(key));
      this.#he.set(key, p);
    }
    return p;
  }

  /** Ends every worker. Idempotent; work submitted afterwards is refused with PoolClosedError. */
  async close(): Promise<void> {
    this.#closed = true;
    const p = this.#piscina;
    this.#piscina = undefined;
    for (const c of this.#he.values()) void c.then((x) => x.dispose(), () => undefined);
    this.#he.clear();
    if (p) await p.destroy();
  }

  #choice(choice: GroupChoice): { group: GroupId; backend: BackendId } {
    if (this.#closed) throw new PoolClosedError();
    if (choice.group !== GroupId.Ristretto255 && choice.group !== GroupId.X25519) {
      throw new InvalidArgumentError(`unknown group "${String(choice.group)}"`);
    }
    return { group: choice.group, backend: choice.backend ?? defaultBackend(choice.group) };
  }

  #pool(): Piscina<PoolTask, TaskResult> {
    if (this.#closed) throw new PoolClosedError();
    this.#piscina ??= new Piscina<PoolTask, TaskResult>({
      filename: workerFilename(),
      minThreads: 0,
      maxThreads: this.threads,
      idleTimeout: this.#idleTimeout,
    });
    return this.#piscina;
  }

  async #run(n: number, outSize: number, options: RunOptions | undefined, makeTask: (s: Slice) => GroupTask): Promise<Uint8Array> {
    if (this.#closed) throw new PoolClosedError();
    if (n < this.inlineBelow || n === 0) {
      const value = await executeTask(makeTask({ start: 0, end: n }));
      options?.onProgress?.(n, n);
      return value;
    }
    const pool = this.#pool();
    const out = new Uint8Array(n * outSize);
    let done = 0;
    let firstError: UmbraError | undefined;
    // Enough chunks to keep every worker busy, none larger than chunkSize.
    const chunk = Math.max(1, Math.min(this.chunkSize, Math.ceil(n / this.threads)));
    const all = slices(n, chunk);
    let next = 0;
    // Two chunks in flight per worker, each made when a lane takes it: the copies that make the
    // chunks spread over the run instead of taking the calling thread for all of them at once.
    const lane = async (): Promise<void> => {
      while (next < all.length) {
        const s = all[next++] as Slice;
        const task = makeTask(s);
        const result = await pool.run(task, { transferList: transferablesOf(task) });
        if (!result.ok) {
          const err = errorFromSerialized(result.error);
          firstError ??= err instanceof InvalidPointError && err.index !== undefined ? new InvalidPointError(stripIndex(err.message), err.index + s.start) : err;
          continue;
        }
        out.set(result.value, s.start * outSize);
        done += s.end - s.start;
        options?.onProgress?.(done, n);
      }
    };
    await Promise.all(Array.from({ length: Math.min(all.length, 2 * this.threads) }, lane));
    if (firstError) throw firstError;
    return out;
  }
}

/** A typed array that spans its whole buffer (what a worker is sent: structured clone copies a view's whole buffer). */
function whole<T extends Uint8Array | Uint32Array | Int32Array | BigInt64Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

const u32 = (b: Uint8Array): Uint32Array => new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
const i32 = (b: Uint8Array): Int32Array => new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
const i64 = (b: Uint8Array): BigInt64Array => new BigInt64Array(b.buffer, b.byteOffset, b.byteLength >>> 3);

/**
 * fn(0) … fn(count − 1), at most `width` at a time, each started when an
 * earlier one ends; the results in order. After a failure no new one starts
 * and the first failure is thrown.
 */
async function inLanes<T>(count: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        out[i] = await fn(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, Math.max(1, width)) }, lane));
  return out;
}

/**
 * A column given whole or as consecutive parts (every part but the last of
 * whole blocks), read a range of blocks at a time: the parts are only
 * inspected here; blocksOf copies just the blocks asked for (or gives one
 * of the caller's parts as it is: `fresh` false).
 */
function blockSource(
  ctx: HeContext,
  ct: CiphertextBytes | readonly CiphertextBytes[],
): { readonly length: number; readonly blocks: number; readonly blockBytes: number; blocksOf(b0: number, b1: number): { bytes: CiphertextBytes; fresh: boolean } } {
  const parts: readonly CiphertextBytes[] = ct instanceof Uint8Array ? [ct] : ct;
  if (parts.length === 0) throw new InvalidArgumentError("an empty column");
  const n = ctx.params.slotCount;
  const infos = parts.map((p) => ctx.inspect(p));
  const first: number[] = [];
  let blocks = 0;
  let length = 0;
  infos.forEach((info, i) => {
    if (i < infos.length - 1 && info.length % n !== 0) throw new InvalidArgumentError(`part ${i} does not fill whole blocks of ${n} slots`);
    first.push(blocks);
    blocks += info.blocks;
    length += info.length;
  });
  return {
    length,
    blocks,
    blockBytes: Math.max(1, Math.ceil(parts.reduce((sum, p) => sum + p.length, 0) / Math.max(1, blocks))),
    blocksOf(b0, b1) {
      const pieces: CiphertextBytes[] = [];
      parts.forEach((p, i) => {
        const s = first[i] as number;
        const e = s + (infos[i] as { blocks: number }).blocks;
        if (e <= b0 || s >= b1) return;
        pieces.push(s >= b0 && e <= b1 && parts.length > 1 ? p : ctx.sliceBlocks(p, Math.max(b0, s) - s, Math.min(b1, e) - s));
      });
      if (pieces.length > 1) return { bytes: ctx.concat(pieces), fresh: true };
      const only = pieces[0] as CiphertextBytes;
      return { bytes: only, fresh: !parts.includes(only) };
    },
  };
}

/** [0, count) cut into at most `parts` contiguous ranges of near-equal size. */
function ranges(count: number, parts: number): [number, number][] {
  const m = Math.min(parts, count);
  const out: [number, number][] = [];
  for (let i = 0; i < m; i++) out.push([Math.floor((i * count) / m), Math.floor(((i + 1) * count) / m)]);
  return out;
}

function stripIndex(message: string): string {
  return message.replace(/ \(element \d+\)$/, "");
}

function countOf(buf: Uint8Array, size: number, what: string): number {
  if (!(buf instanceof Uint8Array) || buf.length % size !== 0) throw new InvalidLengthError(what, `a multiple of ${size}`, buf?.length ?? 0);
  return buf.length / size;
}

/** Fields that hold the caller's own buffers (shared by every chunk): never detached. */
const CALLER_OWNED = new Set(["scalar", "dst", "secretKey"]);

/** The chunk buffers a task owns (all freshly sliced), moved rather than copied. */
function transferablesOf(task: GroupTask): ArrayBuffer[] {
  const bufs: ArrayBuffer[] = [];
  for (const [key, v] of Object.entries(task)) {
    if (CALLER_OWNED.has(key) || !(v instanceof Uint8Array || v instanceof Uint32Array)) continue;
    if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer) bufs.push(v.buffer);
  }
  return bufs;
}

let defaultPool: CryptoPool | undefined;

/** The process-wide pool, created on first use. */
export function getPool(options?: PoolOptions): CryptoPool {
  if (!defaultPool || defaultPool.closed) defaultPool = new CryptoPool(options);
  return defaultPool;
}

/** Closes the process-wide pool if one was created. */
export async function closePool(): Promise<void> {
  const p = defaultPool;
  defaultPool = undefined;
  if (p) await p.close();
}
