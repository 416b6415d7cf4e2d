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
 *
 * Layout: this module is the pool itself (its workers, the group and OPRF
 * work, the HE context cache, close); the HE work is in he-work.ts and the
 * column work in column-work.ts, both given the pool's workers
 * (types.ts PoolWorkers); chunking helpers are in chunks.ts. Each public
 * method is documented here, where callers look.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { errorFromSerialized, InvalidArgumentError, InvalidLengthError, InvalidPointError, PoolClosedError, UnsupportedBackendError, type UmbraError } from "../errors.js";
import { defaultBackend } from "../group/index.js";
import { assertPacked, type PackedBytes } from "../packed.js";
import { GroupId, type BackendId } from "../group/types.js";
import { executeTask } from "./execute.js";
import { TaskOp, type GroupTask, type PoolTask, type TaskResult } from "./tasks.js";
import { createHeContext, type CiphertextBytes, type HeContext, type HeKeyBytes } from "../he/bfv.js";
import { heErrorFromSerialized } from "../he/errors.js";
import type { ColumnValues } from "../he/encode.js";
import type { HeContextOptions } from "../he/params.js";
import { optionsKey, type HeTask } from "../he/task.js";
import type { CkksCiphertextBytes, CkksContextOptions } from "../he/ckks.js";
import type { KeyColumn } from "../columns/keys.js";
import type { Int64Column, Int64GroupStats, PairCounts } from "../columns/group.js";
import type { DistinctKeys } from "../psi/distinct.js";
import { ElementIndex } from "../psi/element-index.js";
import { ColumnTaskOp, type ColumnTask } from "./column-task.js";
import { countOf, sliceMessages, slices, stripIndex, transferablesOf, type Slice } from "./chunks.js";
import * as columnWork from "./column-work.js";
import * as otWork from "./ot-work.js";
import type { OtTask } from "./ot-task.js";
import type { ItemDigests } from "../psi/cuckoo.js";
import * as heWork from "./he-work.js";
import type { GroupChoice, PoolOptions, PoolWorkers, RunOptions } from "./types.js";

export type { GroupChoice, PoolOptions, RunOptions } from "./types.js";

const DEFAULT_CHUNK = 4096;
const DEFAULT_INLINE = 512;

/** Where the compiled worker entry is: next to this module when running from dist/, else in dist/. */
export function workerFilename(): string {
  const here = new URL("./group.task.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return fileURLToPath(here);
  const built = new URL("../../dist/engine/pool/group.task.js", import.meta.url);
  if (existsSync(fileURLToPath(built))) return fileURLToPath(built);
  throw new UnsupportedBackendError("the compiled worker (dist/engine/pool/group.task.js) is missing: run `npm run build`");
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
  /** What the work modules (he-work.ts, column-work.ts) are given. */
  readonly #workers: PoolWorkers;

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
    const pool = this;
    this.#workers = {
      threads,
      inlineBelow: inline,
      get closed() {
        return pool.#closed;
      },
      runHe: (task, transfer) => this.#runHe(task, transfer),
      runColumn: (task) => this.#runColumn(task),
      heContext: (heOptions) => this.#heContext(heOptions),
      piscina: () => this.#pool(),
    };
  }

  /** The workers this pool's HE work runs on (engine/pool/he-work.ts): a subclass that runs some of it elsewhere adds its parts here. */
  protected get poolWorkers(): PoolWorkers {
    return this.#workers;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Starts every worker thread now (each loads its modules: a few hundred
   * milliseconds), so that a caller with work of its own to do first — reading
   * keys, a base OT — overlaps the start-up with it. Resolves once all have
   * run a trivial task. Idempotent in effect: started workers stay until idle.
   */
  async warm(): Promise<void> {
    const pool = this.#pool();
    await Promise.all(Array.from({ length: this.threads }, () => pool.run({ op: ColumnTaskOp.ShuffledOrder, n: 1 })));
  }

  /** For a health check: the worker threads, and the share of their time spent on tasks since they started (0 to 1; 0 before the first task). */
  stats(): { readonly threads: number; readonly utilization: number } {
    return { threads: this.threads, utilization: this.#piscina?.utilization ?? 0 };
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
   * The match step of a PSI: for each 32-byte point of `probe`, the position
   * of an equal point of `indexed` (the first, with duplicates) or −1
   * (ElementIndex, built and probed in slices with the event loop let run
   * between them). A ClusterPool matches partition by partition on its
   * workers.
   * @throws InvalidLengthError when either side is not a whole number of points.
   */
  async matchElements(indexed: Uint8Array, probe: Uint8Array): Promise<Int32Array> {
    if (this.#closed) throw new PoolClosedError();
    const index = await ElementIndex.buildAsync(indexed, 32);
    return index.matchAllAsync(probe);
  }

  /**
   * Encrypts a numeric column under an HE public key on every worker (engine/he):
   * the column is cut into chunks of whole blocks, each worker encrypts its
   * chunks with its own SEAL instance, and the parts are joined in order.
   */
  heEncrypt(options: HeContextOptions, publicKey: Uint8Array, values: ColumnValues, runOptions?: RunOptions): Promise<CiphertextBytes> {
    return heWork.heEncrypt(this.#workers, options, publicKey, values, runOptions);
  }

  /** The slot-wise sum of several ciphertexts of one column (a tree of adds, in a worker). */
  heAdd(options: HeContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CiphertextBytes> {
    return heWork.heAdd(this.#workers, options, ciphertexts);
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
  heMaskedGroupSums(
    options: HeContextOptions,
    ct: CiphertextBytes,
    masks: readonly Uint32Array[],
    galoisKeys: Uint8Array,
    publicKey: Uint8Array,
    rows: number,
    runOptions?: RunOptions,
  ): Promise<CiphertextBytes> {
    return heWork.heMaskedGroupSums(this.#workers, options, ct, masks, galoisKeys, publicKey, rows, runOptions);
  }

  /**
   * Encrypts a column given as residues (`residues[j]` modulo the j-th CRT
   * prime, as HeContext.encryptResidues) on every worker: cut into ranges of
   * whole blocks, one per worker, joined in order. `level: "mask"` leaves the
   * ciphertexts at the masked-sums level (smaller; see HeContext Levels).
   */
  heEncryptResidues(options: HeContextOptions, publicKey: Uint8Array, residues: readonly Uint32Array[], runOptions?: RunOptions & { readonly level?: "first" | "mask" }): Promise<CiphertextBytes> {
    return heWork.heEncryptResidues(this.#workers, options, publicKey, residues, runOptions);
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
  heMaskedBlockSums(options: HeContextOptions, ct: CiphertextBytes | readonly CiphertextBytes[], masks: readonly Uint32Array[], rows: number, runOptions?: RunOptions): Promise<CiphertextBytes> {
    return heWork.heMaskedBlockSums(this.#workers, options, ct, masks, rows, runOptions);
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
  heEncryptInt64Parts(
    options: HeContextOptions,
    publicKey: Uint8Array,
    values: BigInt64Array,
    o: RunOptions & { readonly level?: "first" | "mask"; readonly blocksPerPart: number },
  ): Promise<CiphertextBytes[]> {
    return heWork.heEncryptInt64Parts(this.#workers, options, publicKey, values, o);
  }

  /**
   * addAll(parts, rows) then reRandomize under the public key, over every
   * worker (ranges of whole blocks), joined in order: what a ciphertext
   * goes through last before the key holder gets it.
   */
  heReRandomize(options: HeContextOptions, parts: readonly CiphertextBytes[], publicKey: Uint8Array, rows: number): Promise<CiphertextBytes> {
    return heWork.heReRandomize(this.#workers, options, parts, publicKey, rows);
  }

  /**
   * A fresh key set (HeContext.generateKeys) made on a worker: the SEAL
   * context and the key generation take seconds at N = 8192, none of them on
   * this thread.
   */
  heGenerateKeys(options: HeContextOptions, keyOptions: { readonly galois?: boolean } = {}): Promise<HeKeyBytes> {
    return heWork.heGenerateKeys(this.#workers, options, keyOptions);
  }

  /**
   * Loads public-key bytes on a worker (size-checked, then by SEAL: a
   * malformed key is refused with InvalidKeyError, one made for other
   * parameters with ParameterMismatchError) and returns its key-set id, hex.
   * The worker keeps the loaded key for the encryptions that follow.
   */
  heCheckPublicKey(options: HeContextOptions, publicKey: Uint8Array): Promise<string> {
    return heWork.heCheckPublicKey(this.#workers, options, publicKey);
  }

  /**
   * Per block of `ct`, the signed total of its slots in (−M/2, M/2) (M the
   * product of the CRT primes): decrypted and summed per prime on a worker
   * (HeContext.decryptBlockResidueSums), combined here, one CRT combination
   * per block. Equals summing decryptSums' slots block by block, modulo M.
   */
  heDecryptBlockSums(options: HeContextOptions, ct: CiphertextBytes, secretKey: Uint8Array): Promise<bigint[]> {
    return heWork.heDecryptBlockSums(this.#workers, options, ct, secretKey);
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
  ckksEncrypt(options: CkksContextOptions, publicKey: Uint8Array, values: Float64Array, runOptions?: RunOptions): Promise<CkksCiphertextBytes> {
    return heWork.ckksEncrypt(this.#workers, options, publicKey, values, runOptions);
  }

  /** The slot-wise sum of several CKKS ciphertexts of one column (a tree of adds, in a worker). */
  ckksAdd(options: CkksContextOptions, ciphertexts: readonly Uint8Array[]): Promise<CkksCiphertextBytes> {
    return heWork.ckksAdd(this.#workers, options, ciphertexts);
  }

  // ---------------------------------------------------------------- column work

  /**
   * engine/psi distinctKeys on a worker: the key column is copied there, the
   * results are moved back. Below `inlineBelow` rows, on this thread.
   */
  distinctKeys(keys: KeyColumn): Promise<DistinctKeys> {
    return columnWork.distinctKeys(this.#workers, keys);
  }

  /** engine/psi shuffledOrder(n) on a worker (its randomness from node:crypto there). Below `inlineBelow`, on this thread. */
  shuffledOrder(n: number): Promise<Uint32Array> {
    return columnWork.shuffledOrder(this.#workers, n);
  }

  /** engine/columns pairCounts (COUNT(*) per key and group) on a worker. */
  pairCounts(keyOf: Int32Array, groupOf: Uint32Array, keys: number, groups: number): Promise<PairCounts> {
    return columnWork.pairCounts(this.#workers, keyOf, groupOf, keys, groups);
  }

  /**
   * engine/columns int64GroupStats on a worker: COUNT(*) per key and, per
   * column, COUNT / SUM / SUM of squares of its valid values (a total leaving
   * the 64-bit range refused with BoundExceededError).
   */
  int64GroupStats(keyOf: Int32Array, keys: number, columns: readonly Int64Column[], length: number = keys): Promise<Int64GroupStats> {
    return columnWork.int64GroupStats(this.#workers, keyOf, keys, columns, length);
  }

  // ---------------------------------------------------------------- OT-PSI work (ot-work.ts)

  /** engine/psi itemDigests (each key's OPRF input block and cuckoo positions) over ranges of the keys on the workers. */
  otItemDigests(keys: PackedBytes, seed: Uint8Array, bins: number, options?: RunOptions): Promise<ItemDigests> {
    assertPacked(keys, "keys");
    return otWork.itemDigests(this.#workers, keys, seed, bins, options);
  }

  /**
   * The OPRF sender's tags of all its keys (digests, then
   * oprfSenderTagsForItems: 3 + stash per key, in simpleHashQueries' order)
   * over ranges of the keys on the workers. q (`input.rows`) reaches the
   * workers without a copy when it lies over a SharedArrayBuffer
   * (`extensionSend(…, into)`), else it is copied into one first.
   */
  otSenderTags(input: otWork.SenderTagsInput, options?: RunOptions): Promise<Uint8Array> {
    assertPacked(input.keys, "keys");
    return otWork.senderTags(this.#workers, input, options);
  }

  /**
   * The OT-extension receiver's whole part on the workers, by ranges of rows:
   * each range's codewords (engine/ot encodeInto of its 16-byte inputs),
   * extensionReceiveRange, and its rows' tags H(j, t_j). Returns u (to send)
   * and the m tags; the rows t stay on the workers. The same bytes as
   * encodeInto, extensionReceive and oprfReceiverTags on this thread.
   */
  otExtensionReceive(input: otWork.ExtensionReceiveInput, options?: RunOptions): Promise<{ message: Uint8Array; tags: Uint8Array }> {
    return otWork.extensionReceiveTags(this.#workers, input, options);
  }

  /**
   * The OT-extension sender's rows q on the workers, by ranges of rows
   * (extensionSendRange), written into one SharedArrayBuffer — ready for
   * otSenderTags. The same bytes as extensionSend.
   */
  otExtensionSend(input: otWork.ExtensionSendInput, options?: RunOptions): Promise<Uint8Array> {
    return otWork.extensionSendRows(this.#workers, input, options);
  }

  async #runColumn(task: ColumnTask | OtTask): Promise<Uint8Array> {
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

let defaultPool: CryptoPool | undefined;

/** The process-wide pool, created on first use. */
export function getPool(options?: PoolOptions): CryptoPool {
  if (!defaultPool || defaultPool.closed) defaultPool = new CryptoPool(options);
  return defaultPool;
}

/** The process-wide pool if one was created and is open (never creates one: for health reports). */
export function currentPool(): CryptoPool | undefined {
  return defaultPool !== undefined && !defaultPool.closed ? defaultPool : undefined;
}

/** Closes the process-wide pool if one was created. */
export async function closePool(): Promise<void> {
  const p = defaultPool;
  defaultPool = undefined;
  if (p) await p.close();
}
