/**
 * ClusterPool: a CryptoPool whose bulk work — hashing-and-blinding keys and
 * raising received points, the two costs of ECDH-PSI and of the join in
 * join-aggregate, and join-aggregate's HE work (the provider encrypting its
 * statistic columns, the exchange's masked block sums; he-chunk.ts) — is cut
 * into chunks and run by `umbra worker` processes on any number of machines,
 * through a BullMQ queue on the party's Redis. Everything else (and any
 * batch smaller than one chunk) runs on the local pool it extends, so a
 * protocol given a ClusterPool runs unchanged: the messages between parties
 * are the same bytes (an HE chunk's ciphertexts are fresh encryptions, as
 * any two runs' are).
 *
 * Per call: every chunk's input is sealed (seal.ts) and SET in Redis with a
 * TTL, and a BullMQ job names it; at most `maxInFlight` chunks are out at a
 * time, so Redis memory stays flat whatever the call's size. Workers report
 * finished chunks on a list this call reads with BLPOP; each result is opened
 * (authenticated, bound to its chunk), checked for length and put in place by
 * its chunk index, so order is kept and a chunk that ran twice (a worker
 * stalled, its chunk retried elsewhere) is taken once. Once every chunk of a
 * call is sent, chunks still out when nothing has finished for a while are
 * queued once more, so a slow worker does not hold the call. A chunk's typed error
 * (a point that does not decode) fails the call with that error, its index
 * made global, as the local pool does; a call with no finished chunk for
 * `idleTimeoutMs` fails with ClusterError Timeout and cancels its chunks.
 */
import { randomUUID } from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { InvalidArgumentError, InvalidPointError, PoolClosedError, UmbraError } from "../errors.js";
import { heErrorFromSerialized, ValueOutOfRangeError } from "../he/errors.js";
import { checkMasks, checkRowBound, type CiphertextBytes } from "../he/bfv.js";
import type { HeContextOptions } from "../he/params.js";
import { HeTaskOp, unpackParts } from "../he/task.js";
import { defaultBackend } from "../group/index.js";
import { GroupId } from "../group/types.js";
import { assertPacked, type PackedBytes } from "../packed.js";
import { blockSource, countOf, sliceMessages, slices, stripIndex, type Slice } from "../pool/chunks.js";
import { CryptoPool } from "../pool/pool.js";
import type { GroupChoice, PoolOptions, RunOptions } from "../pool/types.js";
import { encodeChunk, MAX_CHUNK_ELEMENTS, type ChunkTask } from "./chunk-task.js";
import { MAX_HE_CHUNK_BYTES } from "./he-chunk.js";
import { ClusterError, ClusterErrorCode } from "./errors.js";
import { cancelKey, doneKey, inputKey, parseReport, QUEUE_PREFIX, DEFAULT_QUEUE, resultKey, type ChunkJobData } from "./keys.js";
import { open, seal } from "./seal.js";

export interface ClusterOptions extends PoolOptions {
  /** The party's Redis, e.g. redis://10.0.0.5:6379 (a password in the URL, or in `password`). */
  readonly redis: string;
  /** Redis's password, when the URL does not carry it (so that it appears on no command line). */
  readonly password?: string;
  /** The 32-byte cluster key its workers hold too (see `umbra worker`). */
  readonly key: Uint8Array;
  /** The BullMQ queue's name (default umbra-chunks): the workers must name the same. */
  readonly queue?: string;
  /** Elements per chunk (default 4,096: a protocol message of 16,384 points makes four, so two or four workers share it evenly; at most 65,536). */
  readonly chunkElements?: number;
  /** Chunks out at a time per call (default 32). */
  readonly maxInFlight?: number;
  /** Seconds a chunk's input and result live in Redis (default 600). */
  readonly ttlSeconds?: number;
  /** A call fails when no chunk finished for this long (default 300,000 ms). */
  readonly idleTimeoutMs?: number;
}

export interface ClusterStats {
  /** Chunks sent and finished. */
  readonly chunks: number;
  /** Of those, HE chunks (join-aggregate's encryption and masked sums). */
  readonly heChunks: number;
  /** Sealed bytes written to Redis (inputs) and read back (results). */
  readonly bytesOut: number;
  readonly bytesIn: number;
  /** Reports of a chunk already taken (a retried chunk that also finished): ignored. */
  readonly duplicates: number;
  /** Chunks queued a second time because they were still out at the end of a call (a slow or stopped worker). */
  readonly resent: number;
}

const ELEMENT = 32;
const DEFAULT_CHUNK_ELEMENTS = 4096;
const POLL_SECONDS = 1;
/** A chunk still out once all are sent is sent again when nothing finished for this many mean completion intervals. */
const STRAGGLER_INTERVALS = 4;
const STRAGGLER_MIN_MS = 2000;
/** HE chunks: blocks per encryption chunk, ranges per masked-sum column, bytes of ciphertext and of masks per chunk, chunks out at a time (each is megabytes). */
const HE_ENCRYPT_BLOCKS = 4;
const HE_SUM_RANGES = 8;
const HE_TASK_BYTES = 16 * 1024 * 1024;
const HE_MASK_BYTES = 32 * 1024 * 1024;
const HE_IN_FLIGHT = 8;
/** Points (both sides) per match partition, in chunks' elements (65,536 at the default chunk): a match of at most one partition runs here. */
const MATCH_CHUNKS_PER_PARTITION = 16;

/** One call's chunks: how many, how each is made and how its result is taken. */
interface ChunkPlan {
  readonly count: number;
  readonly inFlight: number;
  /** HE chunks (counted apart in the stats). */
  readonly he?: boolean;
  /** Chunk i's encoded task (made when it is sent). */
  encode(i: number): Uint8Array;
  /** Takes chunk i's opened result (ClusterError Malformed when it is out of shape). */
  take(i: number, value: Uint8Array): void;
  /** Where chunk i starts in the call's elements: a point error's index is made global with it. */
  start?(i: number): number;
}

/** A chunk's error about one of its elements, its index made the call's (as the local pool reports it). */
function globalIndex(err: UmbraError, start: number): UmbraError {
  if (err instanceof InvalidPointError && err.index !== undefined) return new InvalidPointError(stripIndex(err.message), err.index + start);
  if (err instanceof ValueOutOfRangeError && err.index !== undefined) return new ValueOutOfRangeError(stripIndex(err.message), err.index + start);
  return err;
}

/** An encryption chunk's parts (engine/he packParts), checked. */
function unpackResult(value: Uint8Array, i: number): CiphertextBytes[] {
  try {
    return unpackParts(value);
  } catch {
    throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: its result is not a list of parts`);
  }
}

type ClusterCode = (typeof ClusterErrorCode)[keyof typeof ClusterErrorCode];
const CLUSTER_CODES: ReadonlySet<string> = new Set(Object.values(ClusterErrorCode));
/** A worker's message without its own "chunk N: " prefix (the coordinator names the chunk). */
const stripChunk = (m: string): string => m.replace(/^chunk \d+: /, "");

export class ClusterPool extends CryptoPool {
  readonly chunkElements: number;
  readonly #options: ClusterOptions;
  readonly #redis: Redis;
  readonly #queue: Queue<ChunkJobData>;
  readonly #ttl: number;
  readonly #maxInFlight: number;
  readonly #idleTimeoutMs: number;
  #stats = { chunks: 0, heChunks: 0, bytesOut: 0, bytesIn: 0, duplicates: 0, resent: 0 };

  private constructor(options: ClusterOptions, redis: Redis) {
    super({ threads: options.threads ?? 1, ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}), ...(options.inlineBelow !== undefined ? { inlineBelow: options.inlineBelow } : {}) });
    this.#options = options;
    this.#redis = redis;
    this.chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
    this.#ttl = options.ttlSeconds ?? 600;
    this.#maxInFlight = options.maxInFlight ?? 32;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
    this.#queue = new Queue<ChunkJobData>(options.queue ?? DEFAULT_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
  }

  /**
   * Connects to the cluster's Redis and checks it answers.
   * @throws ClusterError Unavailable when Redis cannot be reached.
   * @throws InvalidArgumentError for a key that is not 32 bytes or sizes out of range.
   */
  static async connect(options: ClusterOptions): Promise<ClusterPool> {
    if (options.key.length !== 32) throw new InvalidArgumentError("the cluster key must be 32 bytes");
    const chunk = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > MAX_CHUNK_ELEMENTS) throw new InvalidArgumentError(`chunkElements must be 1..${MAX_CHUNK_ELEMENTS}`);
    for (const [name, v, max] of [["maxInFlight", options.maxInFlight, 4096], ["ttlSeconds", options.ttlSeconds, 86_400]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > max)) throw new InvalidArgumentError(`${name} must be 1..${max}`);
    }
    const redis = await connectRedis(options.redis, options.password);
    return new ClusterPool(options, redis);
  }

  clusterStats(): ClusterStats {
    return { ...this.#stats };
  }

  override hashToGroup(choice: GroupChoice, messages: PackedBytes, dst: Uint8Array, scalar?: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    assertPacked(messages, "messages");
    const n = messages.offsets.length - 1;
    if (n < this.chunkElements) return super.hashToGroup(choice, messages, dst, scalar, options);
    const g = this.#choice(choice);
    return this.#elements(n, options, (s) => ({ op: "hash", ...g, dst, ...(scalar ? { scalar } : {}), messages: sliceMessages(messages, s) }));
  }

  override multiply(choice: GroupChoice, scalar: Uint8Array, points: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    const n = countOf(points, ELEMENT, "element batch");
    if (n < this.chunkElements) return super.multiply(choice, scalar, points, options);
    const g = this.#choice(choice);
    return this.#elements(n, options, (s) => ({ op: "multiply", ...g, scalar, points: points.subarray(s.start * ELEMENT, s.end * ELEMENT) }));
  }

  /**
   * The match partition by partition on the cluster's workers: both sides'
   * points are cut by their leading bits (pseudorandom points: the cut says
   * nothing about the keys, and equal points share a partition) into about
   * one partition per 16 chunks' worth of points (65,536 by default), each partition with points on
   * both sides is one chunk, and its positions are mapped back here. Smaller
   * matches run here (see CryptoPool.matchElements).
   */
  override async matchElements(indexed: Uint8Array, probe: Uint8Array): Promise<Int32Array> {
    if (this.closed) throw new PoolClosedError();
    const n = countOf(indexed, ELEMENT, "indexed points");
    const m = countOf(probe, ELEMENT, "probe points");
    const target = MATCH_CHUNKS_PER_PARTITION * this.chunkElements;
    if (n + m <= target || n === 0 || m === 0) return super.matchElements(indexed, probe);
    let bits = 0;
    while ((n + m) / 2 ** bits > target && bits < 16) bits++;
    const parts = 2 ** bits;
    // A point's partition: the leading `bits` of its first two bytes.
    const partOf = (points: Uint8Array, i: number): number => ((((points[i * ELEMENT] as number) << 8) | (points[i * ELEMENT + 1] as number)) >>> (16 - bits));
    const side = (points: Uint8Array, count: number): { points: Uint8Array[]; at: Uint32Array[] } => {
      const sizes = new Uint32Array(parts);
      for (let i = 0; i < count; i++) {
        const p = partOf(points, i);
        sizes[p] = (sizes[p] as number) + 1;
      }
      const out = Array.from({ length: parts }, (_, p) => new Uint8Array((sizes[p] as number) * ELEMENT));
      const at = Array.from({ length: parts }, (_, p) => new Uint32Array(sizes[p] as number));
      const fill = new Uint32Array(parts);
      for (let i = 0; i < count; i++) {
        const p = partOf(points, i);
        const k = fill[p] as number;
        fill[p] = k + 1;
        // Byte by byte: no view object per point on this thread.
        const dst = out[p] as Uint8Array;
        for (let j = 0, from = i * ELEMENT, to = k * ELEMENT; j < ELEMENT; j++) dst[to + j] = points[from + j] as number;
        (at[p] as Uint32Array)[k] = i;
      }
      return { points: out, at };
    };
    const a = side(indexed, n);
    const b = side(probe, m);
    const hit = new Int32Array(m).fill(-1);
    const live = Array.from({ length: parts }, (_, p) => p).filter((p) => (a.at[p] as Uint32Array).length > 0 && (b.at[p] as Uint32Array).length > 0);
    await this.#distribute({
      count: live.length,
      inFlight: this.#maxInFlight,
      encode: (i) => encodeChunk({ op: "match", indexed: a.points[live[i] as number] as Uint8Array, probe: b.points[live[i] as number] as Uint8Array }),
      take: (i, value) => {
        const p = live[i] as number;
        const from = a.at[p] as Uint32Array;
        const to = b.at[p] as Uint32Array;
        if (value.length !== to.length * 4) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: a match result of ${value.length} bytes where ${to.length * 4} were expected`);
        const r = new DataView(value.buffer, value.byteOffset, value.byteLength);
        for (let j = 0; j < to.length; j++) {
          const x = r.getInt32(j * 4, true);
          if (x < -1 || x >= from.length) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: a match position out of range`);
          if (x >= 0) hit[to[j] as number] = from[x] as number;
        }
      },
    });
    return hit;
  }

  /**
   * Encrypts on the cluster's workers, in chunks of about 4 blocks (whole
   * parts), the parts returned in order; a column of at most one chunk is
   * encrypted here (see CryptoPool.heEncryptInt64Parts).
   */
  override async heEncryptInt64Parts(
    options: HeContextOptions,
    publicKey: Uint8Array,
    values: BigInt64Array,
    o: RunOptions & { readonly level?: "first" | "mask"; readonly blocksPerPart: number },
  ): Promise<CiphertextBytes[]> {
    if (this.closed) throw new PoolClosedError();
    const ctx = await this.heContext(options);
    const n = ctx.params.slotCount;
    const bpp = o.blocksPerPart;
    const blocks = Math.ceil(values.length / n);
    const per = Number.isSafeInteger(bpp) && bpp >= 1 ? bpp * Math.max(1, Math.ceil(HE_ENCRYPT_BLOCKS / bpp)) : 0;
    // Anything this refuses, the local pool refuses the same way.
    if (per === 0 || blocks <= per || !(values instanceof BigInt64Array)) return super.heEncryptInt64Parts(options, publicKey, values, o);
    const chunks = Math.ceil(blocks / per);
    const parts: CiphertextBytes[][] = new Array(chunks);
    let done = 0;
    await this.#distribute({
      count: chunks,
      he: true,
      inFlight: Math.min(this.#maxInFlight, HE_IN_FLIGHT),
      start: (i) => i * per * n,
      encode: (i) => encodeChunk({ op: "he-encrypt", options, publicKey, values: values.subarray(i * per * n, Math.min(values.length, (i + 1) * per * n)), level: o.level ?? "first", blocksPerPart: bpp }),
      take: (i, value) => {
        const chunkBlocks = Math.min(blocks, (i + 1) * per) - i * per;
        const got = unpackResult(value, i);
        if (got.length !== Math.ceil(chunkBlocks / bpp)) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: ${got.length} parts where ${Math.ceil(chunkBlocks / bpp)} were expected`);
        // Each part's frame read before it is handed on: whole blocks of bpp (the last one the rest).
        got.forEach((part, k) => {
          const want = Math.min(bpp, chunkBlocks - k * bpp);
          let blocksIn: number;
          try {
            blocksIn = ctx.inspect(part).blocks;
          } catch {
            throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: part ${k} is not a ciphertext of this context`);
          }
          if (blocksIn !== want) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: part ${k} has ${blocksIn} blocks where ${want} were expected`);
        });
        parts[i] = got;
        done += Math.min(values.length, (i + 1) * per * n) - i * per * n;
        o.onProgress?.(done, values.length);
      },
    });
    return parts.flat();
  }

  /**
   * The masked block sums on the cluster's workers: the column's blocks in
   * ranges (at most 16 blocks, ~16 MB of ciphertext and ~32 MB of masks each,
   * about 8 ranges per column: each range's partial sum is G blocks back, so
   * fewer ranges move fewer bytes), the partials added here on a local thread; a column of one block is summed here (see
   * CryptoPool.heMaskedBlockSums).
   */
  override async heMaskedBlockSums(options: HeContextOptions, ct: CiphertextBytes | readonly CiphertextBytes[], masks: readonly Uint32Array[], rows: number, runOptions?: RunOptions): Promise<CiphertextBytes> {
    if (this.closed) throw new PoolClosedError();
    const ctx = await this.heContext(options);
    const params = ctx.params;
    const column = blockSource(ctx, ct);
    checkMasks(params, column.length, masks);
    checkRowBound(params, rows);
    const n = params.slotCount;
    // One block, or so many groups that one block's masks exceed what a worker takes: summed here.
    if (column.blocks < 2 || masks.length * n * 4 > MAX_HE_CHUNK_BYTES) return super.heMaskedBlockSums(options, ct, masks, rows, runOptions);
    const per = Math.max(1, Math.min(16, Math.ceil(column.blocks / HE_SUM_RANGES), Math.floor(HE_TASK_BYTES / column.blockBytes), Math.floor(HE_MASK_BYTES / (masks.length * n * 4))));
    const chunks = Math.ceil(column.blocks / per);
    const partials: CiphertextBytes[] = new Array(chunks);
    let done = 0;
    await this.#distribute({
      count: chunks,
      he: true,
      inFlight: Math.min(this.#maxInFlight, HE_IN_FLIGHT),
      encode: (i) => {
        const b0 = i * per;
        const b1 = Math.min(column.blocks, b0 + per);
        return encodeChunk({ op: "he-sums", options, ciphertext: column.blocksOf(b0, b1).bytes, masks: masks.map((m) => m.subarray(b0 * n, Math.min(column.length, b1 * n))), rows });
      },
      take: (i, value) => {
        partials[i] = value;
        done += Math.min(column.blocks, (i + 1) * per) - i * per;
        runOptions?.onProgress?.(done, column.blocks);
      },
    });
    // Always two ranges or more (per ≤ ⌈blocks / 8⌉ < blocks); adding them parses and checks every partial.
    return this.poolWorkers.runHe({ op: HeTaskOp.AddAll, options, parts: partials, rows });
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    await super.close();
    await this.#queue.close().catch(() => undefined);
    this.#redis.disconnect();
  }

  #add(run: string, index: number, jobId: string): Promise<unknown> {
    return this.#queue.add("chunk", { run, index, ttl: this.#ttl }, { jobId, attempts: 5, backoff: { type: "fixed", delay: 250 }, removeOnComplete: true, removeOnFail: true });
  }

  /** The group and backend of a call, refused here as the local pool refuses them (a worker would only see a malformed chunk). */
  #choice(choice: GroupChoice): { group: GroupChoice["group"]; backend: NonNullable<GroupChoice["backend"]> } {
    if (this.closed) throw new PoolClosedError();
    if (choice.group !== GroupId.Ristretto255 && choice.group !== GroupId.X25519) throw new InvalidArgumentError(`unknown group "${String(choice.group)}"`);
    return { group: choice.group, backend: choice.backend ?? defaultBackend(choice.group) };
  }

  /** A call on n elements in chunks of chunkElements, the results (32 bytes each) put in place by chunk index. */
  async #elements(n: number, options: RunOptions | undefined, makeChunk: (s: Slice) => ChunkTask): Promise<Uint8Array> {
    const all = slices(n, this.chunkElements);
    const out = new Uint8Array(n * ELEMENT);
    let elements = 0;
    await this.#distribute({
      count: all.length,
      inFlight: this.#maxInFlight,
      start: (i) => (all[i] as Slice).start,
      encode: (i) => encodeChunk(makeChunk(all[i] as Slice)),
      take: (i, value) => {
        const s = all[i] as Slice;
        if (value.length !== (s.end - s.start) * ELEMENT) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${i}: a result of ${value.length} bytes where ${(s.end - s.start) * ELEMENT} were expected`);
        out.set(value, s.start * ELEMENT);
        elements += s.end - s.start;
        options?.onProgress?.(elements, n);
      },
    });
    return out;
  }

  /**
   * Runs a call's chunks on the cluster (see the module comment): at most
   * `inFlight` out at a time, each result opened and handed to `take` once.
   */
  async #distribute(plan: ChunkPlan): Promise<void> {
    if (this.closed) throw new PoolClosedError();
    const run = randomUUID().replaceAll("-", "");
    const key = this.#options.key;
    const count = plan.count;
    const pending = new Set<number>();
    const blocking = this.#redis.duplicate();
    blocking.on("error", () => undefined); // reported through its commands
    let next = 0;
    let finished = 0;
    const started = Date.now();
    let last = started;
    let failure: UmbraError | undefined;
    const again = new Set<number>();
    const submit = async (index: number): Promise<void> => {
      const sealed = seal(key, run, index, "in", plan.encode(index));
      pending.add(index);
      await this.#redis.set(inputKey(run, index), sealed, "EX", this.#ttl);
      await this.#add(run, index, `${run}-${index}`);
      this.#stats.bytesOut += sealed.length;
    };
    // A slow or stopped worker must not hold the call: once every chunk is sent and nothing has finished for a while,
    // the chunks still out are queued once more (their inputs are still in Redis); the first result of each is taken.
    const stragglers = async (): Promise<void> => {
      if (next < count || finished === 0) return;
      const interval = (last - started) / finished;
      if (Date.now() - last < Math.max(STRAGGLER_MIN_MS, STRAGGLER_INTERVALS * interval)) return;
      for (const index of pending) {
        if (again.has(index)) continue;
        again.add(index);
        this.#stats.resent++;
        await this.#add(run, index, `${run}-${index}-again`);
      }
    };
    try {
      while (finished < count) {
        while (next < count && pending.size < plan.inFlight) await submit(next++);
        const popped = await blocking.blpop(doneKey(run), POLL_SECONDS);
        if (popped === null) {
          await stragglers();
          if (Date.now() - last > this.#idleTimeoutMs) {
            throw new ClusterError(ClusterErrorCode.Timeout, `no chunk finished in ${Math.round(this.#idleTimeoutMs / 1000)} s (${finished} of ${count} done): are workers running on queue ${this.#options.queue ?? DEFAULT_QUEUE}?`);
          }
          continue;
        }
        const report = parseReport(popped[1]);
        if (!report || !pending.has(report.i)) {
          this.#stats.duplicates++;
          continue;
        }
        if (!report.ok) {
          // A worker's own cluster error (a wrong key, an input changed in Redis) keeps its code: errorFromSerialized knows only the pool's errors.
          const err = CLUSTER_CODES.has(report.error.code) ? new ClusterError(report.error.code as ClusterCode, `chunk ${report.i} on a worker: ${stripChunk(report.error.message)}`) : heErrorFromSerialized(report.error);
          failure = plan.start ? globalIndex(err, plan.start(report.i)) : err;
          throw failure;
        }
        const sealed = await this.#redis.getBuffer(resultKey(run, report.i));
        if (sealed === null) throw new ClusterError(ClusterErrorCode.Expired, `chunk ${report.i}: its result expired from Redis before it was read`);
        plan.take(report.i, open(key, run, report.i, "out", sealed));
        pending.delete(report.i);
        this.#stats.bytesIn += sealed.length;
        this.#stats.chunks++;
        if (plan.he) this.#stats.heChunks++;
        finished++;
        last = Date.now();
        void this.#redis.del(resultKey(run, report.i));
      }
      void this.#redis.del(doneKey(run));
    } catch (err) {
      // Workers skip the chunks of a cancelled call; its keys expire with their TTL.
      await this.#redis.set(cancelKey(run), "1", "EX", this.#ttl).catch(() => undefined);
      if (err instanceof UmbraError) throw err;
      throw new ClusterError(ClusterErrorCode.Unavailable, "the cluster's Redis failed during a call", { cause: err });
    } finally {
      blocking.disconnect();
    }
  }
}

/**
 * A connection to Redis that has answered PING (BullMQ needs
 * maxRetriesPerRequest null on its blocking connections).
 * @throws ClusterError Unavailable naming the host, never the password.
 */
export async function connectRedis(url: string, password?: string): Promise<Redis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError("the Redis address must be a URL such as redis://127.0.0.1:6379");
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new InvalidArgumentError("the Redis address must start with redis:// or rediss://");
  const where = `${parsed.hostname}:${parsed.port || "6379"}`;
  const redis = new Redis(url, { ...(password !== undefined && parsed.password === "" ? { password } : {}), maxRetriesPerRequest: null, lazyConnect: true, connectTimeout: 5000, retryStrategy: (times) => Math.min(times * 200, 2000) });
  redis.on("error", () => undefined); // reported to callers through their commands
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new ClusterError(ClusterErrorCode.Unavailable, `Redis at ${where} cannot be reached: start it, or check --redis/--cluster and its password`, { cause: err });
  }
  return redis;
}
