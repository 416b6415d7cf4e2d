/**
 * ClusterPool: a CryptoPool whose bulk group work — hashing-and-blinding keys
 * and raising received points, the two costs of ECDH-PSI and of the join in
 * join-aggregate — is cut into chunks and run by `umbra worker` processes on
 * any number of machines, through a BullMQ queue on the party's Redis.
 * Everything else (and any batch smaller than one chunk) runs on the local
 * pool it extends, so a protocol given a ClusterPool runs unchanged: the
 * messages between parties are the same bytes.
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
import { errorFromSerialized, InvalidArgumentError, InvalidPointError, PoolClosedError, type UmbraError } from "../errors.js";
import { defaultBackend } from "../group/index.js";
import { GroupId } from "../group/types.js";
import { assertPacked, type PackedBytes } from "../packed.js";
import { countOf, sliceMessages, slices, stripIndex, type Slice } from "../pool/chunks.js";
import { CryptoPool } from "../pool/pool.js";
import type { GroupChoice, PoolOptions, RunOptions } from "../pool/types.js";
import { encodeChunk, MAX_CHUNK_ELEMENTS, type ChunkTask } from "./chunk-task.js";
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
  #stats = { chunks: 0, bytesOut: 0, bytesIn: 0, duplicates: 0, resent: 0 };

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
    return this.#distribute(n, options, (s) => {
      const m = sliceMessages(messages, s);
      return { op: "hash", ...g, dst, ...(scalar ? { scalar } : {}), messages: m };
    });
  }

  override multiply(choice: GroupChoice, scalar: Uint8Array, points: Uint8Array, options?: RunOptions): Promise<Uint8Array> {
    const n = countOf(points, ELEMENT, "element batch");
    if (n < this.chunkElements) return super.multiply(choice, scalar, points, options);
    const g = this.#choice(choice);
    return this.#distribute(n, options, (s) => ({ op: "multiply", ...g, scalar, points: points.subarray(s.start * ELEMENT, s.end * ELEMENT) }));
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

  async #distribute(n: number, options: RunOptions | undefined, makeChunk: (s: Slice) => ChunkTask): Promise<Uint8Array> {
    if (this.closed) throw new PoolClosedError();
    const run = randomUUID().replaceAll("-", "");
    const key = this.#options.key;
    const all = slices(n, this.chunkElements);
    const out = new Uint8Array(n * ELEMENT);
    const pending = new Map<number, Slice>();
    const blocking = this.#redis.duplicate();
    blocking.on("error", () => undefined); // reported through its commands
    let next = 0;
    let finished = 0;
    let elements = 0;
    const started = Date.now();
    let last = started;
    let failure: UmbraError | undefined;
    const again = new Set<number>();
    const submit = async (index: number): Promise<void> => {
      const s = all[index] as Slice;
      const sealed = seal(key, run, index, "in", encodeChunk(makeChunk(s)));
      pending.set(index, s);
      await this.#redis.set(inputKey(run, index), sealed, "EX", this.#ttl);
      await this.#add(run, index, `${run}-${index}`);
      this.#stats.bytesOut += sealed.length;
    };
    // A slow or stopped worker must not hold the call: once every chunk is sent and nothing has finished for a while,
    // the chunks still out are queued once more (their inputs are still in Redis); the first result of each is taken.
    const stragglers = async (): Promise<void> => {
      if (next < all.length || finished === 0) return;
      const interval = (last - started) / finished;
      if (Date.now() - last < Math.max(STRAGGLER_MIN_MS, STRAGGLER_INTERVALS * interval)) return;
      for (const index of pending.keys()) {
        if (again.has(index)) continue;
        again.add(index);
        this.#stats.resent++;
        await this.#add(run, index, `${run}-${index}-again`);
      }
    };
    try {
      while (finished < all.length) {
        while (next < all.length && pending.size < this.#maxInFlight) await submit(next++);
        const popped = await blocking.blpop(doneKey(run), POLL_SECONDS);
        if (popped === null) {
          await stragglers();
          if (Date.now() - last > this.#idleTimeoutMs) {
            throw new ClusterError(ClusterErrorCode.Timeout, `no chunk finished in ${Math.round(this.#idleTimeoutMs / 1000)} s (${finished} of ${all.length} done): are workers running on queue ${this.#options.queue ?? DEFAULT_QUEUE}?`);
          }
          continue;
        }
        const report = parseReport(popped[1]);
        const s = report ? pending.get(report.i) : undefined;
        if (!report || !s) {
          this.#stats.duplicates++;
          continue;
        }
        if (!report.ok) {
          // A worker's own cluster error (a wrong key, an input changed in Redis) keeps its code: errorFromSerialized knows only the pool's errors.
          const err = CLUSTER_CODES.has(report.error.code) ? new ClusterError(report.error.code as ClusterCode, `chunk ${report.i} on a worker: ${stripChunk(report.error.message)}`) : errorFromSerialized(report.error);
          failure = err instanceof InvalidPointError && err.index !== undefined ? new InvalidPointError(stripIndex(err.message), err.index + s.start) : err;
          throw failure;
        }
        const sealed = await this.#redis.getBuffer(resultKey(run, report.i));
        if (sealed === null) throw new ClusterError(ClusterErrorCode.Expired, `chunk ${report.i}: its result expired from Redis before it was read`);
        const value = open(key, run, report.i, "out", sealed);
        if (value.length !== (s.end - s.start) * ELEMENT) throw new ClusterError(ClusterErrorCode.Malformed, `chunk ${report.i}: a result of ${value.length} bytes where ${(s.end - s.start) * ELEMENT} were expected`);
        out.set(value, s.start * ELEMENT);
        pending.delete(report.i);
        this.#stats.bytesIn += sealed.length;
        this.#stats.chunks++;
        finished++;
        elements += s.end - s.start;
        last = Date.now();
        void this.#redis.del(resultKey(run, report.i));
        options?.onProgress?.(elements, n);
      }
      void this.#redis.del(doneKey(run));
      return out;
    } catch (err) {
      // Workers skip the chunks of a cancelled call; its keys expire with their TTL.
      await this.#redis.set(cancelKey(run), "1", "EX", this.#ttl).catch(() => undefined);
      if (err instanceof ClusterError || err === failure) throw err;
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
