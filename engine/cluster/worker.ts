/**
 * A cluster worker: takes chunk tasks from the BullMQ queue on the party's
 * Redis, runs each on its own CryptoPool (its threads) and writes the sealed
 * result back with the call's TTL, then reports the chunk on the call's done
 * list. Any number run on any number of machines; `umbra worker` is this.
 *
 * A chunk that fails for a reason of its own — a point that does not decode,
 * an input that is not the cluster's format or fails authentication, an input
 * that expired — is reported as failed (retrying cannot help); any other
 * failure (Redis gone mid-chunk) is thrown, and BullMQ retries the chunk. A
 * worker killed mid-chunk loses its lock; after `lockDurationMs` another
 * worker's stalled check puts the chunk back on the queue. Chunks of a call
 * its coordinator cancelled are skipped.
 */
import { Worker, type Job } from "bullmq";
import { InvalidArgumentError, serializeError, UmbraError } from "../errors.js";
import { CryptoPool } from "../pool/pool.js";
import { chunkCount, decodeChunk, runChunk } from "./chunk-task.js";
import { connectRedis } from "./cluster-pool.js";
import { ClusterError, ClusterErrorCode } from "./errors.js";
import { cancelKey, checkJobData, doneKey, inputKey, QUEUE_PREFIX, DEFAULT_QUEUE, resultKey, type ChunkJobData, type ChunkReport } from "./keys.js";
import { open, seal } from "./seal.js";

export interface ClusterWorkerOptions {
  readonly redis: string;
  /** Redis's password, when the URL does not carry it. */
  readonly password?: string;
  /** The 32-byte cluster key (the coordinator's). */
  readonly key: Uint8Array;
  readonly queue?: string;
  /** Threads of this worker's pool (default: the available cores). */
  readonly threads?: number;
  /** Chunks taken at a time (default one per thread: a worker holding a second chunk while another worker idles slows the call more than fetching it late costs). */
  readonly concurrency?: number;
  /** How long a chunk's lock lasts without renewal before another worker may take it (default 30,000 ms). */
  readonly lockDurationMs?: number;
  /** How often this worker looks for stalled chunks (default: half the lock duration). */
  readonly stalledIntervalMs?: number;
  /** Called when this worker starts a chunk (for logs and tests: no data in it). */
  readonly onStart?: () => void;
  /** Called after each chunk this worker finished (for logs: no data in it). */
  readonly onChunk?: (event: { readonly elements: number; readonly ms: number; readonly ok: boolean }) => void;
}

export interface ClusterWorker {
  /** Chunks finished by this worker, and their elements. */
  stats(): { readonly chunks: number; readonly elements: number; readonly failed: number };
  /** Stops taking chunks, lets the ones in hand finish, and closes the pool. */
  close(): Promise<void>;
}

/** Errors that a retry cannot change: reported as the chunk's failure. */
function isFinal(err: unknown): boolean {
  if (err instanceof ClusterError) return err.code !== ClusterErrorCode.Unavailable;
  return err instanceof UmbraError;
}

export async function startClusterWorker(options: ClusterWorkerOptions): Promise<ClusterWorker> {
  if (options.key.length !== 32) throw new InvalidArgumentError("the cluster key must be 32 bytes");
  const redis = await connectRedis(options.redis, options.password);
  const pool = new CryptoPool({ ...(options.threads ? { threads: options.threads } : {}), inlineBelow: 0 });
  const counts = { chunks: 0, elements: 0, failed: 0 };
  const report = async (run: string, r: ChunkReport, ttl: number): Promise<void> => {
    await redis.multi().rpush(doneKey(run), JSON.stringify(r)).expire(doneKey(run), ttl).exec();
  };
  const processor = async (job: Job<ChunkJobData>): Promise<void> => {
    const data = checkJobData(job.data);
    if (!data) return; // not ours: nothing to report to
    const { run, index, ttl } = data;
    if ((await redis.exists(cancelKey(run))) === 1) return;
    const started = Date.now();
    options.onStart?.();
    let elements = 0;
    try {
      const sealed = await redis.getBuffer(inputKey(run, index));
      if (sealed === null) throw new ClusterError(ClusterErrorCode.Expired, `chunk ${index}: its input expired from Redis before a worker took it`);
      const task = decodeChunk(open(options.key, run, index, "in", sealed));
      const value = await runChunk(pool, task);
      elements = chunkCount(task);
      await redis.set(resultKey(run, index), seal(options.key, run, index, "out", value), "EX", ttl);
      await report(run, { i: index, ok: true }, ttl);
      await redis.del(inputKey(run, index));
      counts.chunks++;
      counts.elements += elements;
      options.onChunk?.({ elements, ms: Date.now() - started, ok: true });
    } catch (err) {
      if (!isFinal(err)) throw err; // BullMQ retries it
      const e = serializeError(err);
      await report(run, { i: index, ok: false, error: e }, ttl);
      counts.failed++;
      options.onChunk?.({ elements, ms: Date.now() - started, ok: false });
    }
  };
  const threads = pool.threads;
  const lockDuration = options.lockDurationMs ?? 30_000;
  const workerConnection = redis.duplicate();
  workerConnection.on("error", () => undefined);
  const worker = new Worker<ChunkJobData>(options.queue ?? DEFAULT_QUEUE, processor, {
    connection: workerConnection,
    prefix: QUEUE_PREFIX,
    concurrency: options.concurrency ?? threads,
    lockDuration,
    stalledInterval: options.stalledIntervalMs ?? Math.max(1000, Math.floor(lockDuration / 2)),
    maxStalledCount: 5,
  });
  worker.on("error", () => undefined); // connection errors: BullMQ reconnects
  await worker.waitUntilReady();
  await pool.warm();
  return {
    stats: () => ({ ...counts }),
    close: async () => {
      await worker.close();
      await pool.close();
      workerConnection.disconnect();
      redis.disconnect();
    },
  };
}
