/**
 * Cluster mode under faults (issue 17): a worker SIGKILLed mid-chunk (a
 * group chunk, and an HE chunk of join-aggregate's encryption), a
 * worker stopped (SIGSTOP) while it holds chunks with another added mid-call,
 * and Redis restarted mid-call. Each call's bytes equal the in-process pool's
 * exactly — a chunk retried elsewhere is put in place once, nothing is lost
 * or taken twice. One private Redis (AOF on) for the file; every worker is
 * killed in afterAll.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type LocalRedis } from "../bench/cluster/redis-server.js";
import { ClusterPool } from "../engine/cluster/index.js";
import { createGroup, CryptoPool, GroupId, packStrings, type PackedBytes } from "../engine/index.js";
import { clusterKeyFile, killWorkers, startWorker, type WorkerProcess } from "./helpers/cluster.js";

const CHUNK = 1024;
const DST = new TextEncoder().encode("umbra-cluster-faults-test");
const ristretto = { group: GroupId.Ristretto255 };

let redis: LocalRedis;
let dir: string;
let keyFile: string;
let key: Uint8Array;
const local = new CryptoPool({ threads: 1, inlineBelow: 64 });
const workers: WorkerProcess[] = [];
const pools: ClusterPool[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "umbra-cluster-faults-"));
  ({ path: keyFile, key } = clusterKeyFile(dir));
});
afterAll(async () => {
  await killWorkers(workers);
  for (const p of pools) await p.close();
  await local.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function worker(...extra: string[]): Promise<WorkerProcess> {
  const w = await startWorker(redis.url, keyFile, "--lock-ms", "2000", ...extra);
  workers.push(w);
  return w;
}

async function cluster(): Promise<ClusterPool> {
  const p = await ClusterPool.connect({ redis: redis.url, key, chunkElements: CHUNK, idleTimeoutMs: 60_000 });
  pools.push(p);
  return p;
}

function keys(n: number, tag: string): PackedBytes {
  return packStrings(Array.from({ length: n }, (_, i) => `${tag}-${i}@example.com`));
}

const finished = (w: WorkerProcess): number => w.chunks().filter((e) => e.ok === true).length;
/** Resolves once `w` has printed at least `n` finished chunks (its line may follow the coordinator's read of the result). */
const reported = (w: WorkerProcess, n: number): Promise<unknown> => w.waitFor((_e, all) => all.filter((x) => x.event === "chunk" && x.ok === true).length >= n);

describe("cluster faults", () => {
  it("a worker SIGKILLed mid-chunk: its chunk is retried on the other, the result is byte-exact and every chunk is taken once", async () => {
    const [a, b] = [await worker(), await worker()];
    try {
      const pool = await cluster();
      const messages = keys(12 * CHUNK, "kill");
      const scalar = (await createGroup(ristretto)).randomScalar();
      const want = await local.hashToGroup(ristretto, messages, DST, scalar);
      const killed = a.waitFor((e) => e.event === "chunk-start").then(() => a.child.kill("SIGKILL"));
      const got = await pool.hashToGroup(ristretto, messages, DST, scalar);
      await killed;
      await a.exited;
      expect(a.child.signalCode).toBe("SIGKILL");
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      expect(pool.clusterStats()).toMatchObject({ chunks: 12, duplicates: 0 });
      // A's unfinished chunk was retried on B: between them every chunk was finished once.
      await reported(b, 12 - finished(a));
      expect(finished(a) + finished(b)).toBe(12);
    } finally {
      await killWorkers([a, b]);
    }
  });

  it("a worker stopped (SIGSTOP) while holding chunks does not hold the call: a worker started mid-call takes them, the result is byte-exact", async () => {
    const a = await worker();
    const pool = await cluster();
    const messages = keys(16 * CHUNK, "stop");
    const scalar = (await createGroup(ristretto)).randomScalar();
    const want = await local.hashToGroup(ristretto, messages, DST, scalar);
    const doneBefore = finished(a);
    let b: WorkerProcess | undefined;
    const stopped = a
      .waitFor((e, all) => e.event === "chunk" && all.filter((x) => x.event === "chunk" && x.ok === true).length > doneBefore)
      .then(async () => {
        a.child.kill("SIGSTOP");
        b = await worker();
      });
    try {
      const got = await pool.hashToGroup(ristretto, messages, DST, scalar);
      await stopped;
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      expect(pool.clusterStats().chunks).toBe(16);
      // B's chunk line may follow the coordinator's read of its result: wait for it.
      await reported(b as WorkerProcess, 1);
      expect(finished(b as WorkerProcess)).toBeGreaterThanOrEqual(1);
    } finally {
      await killWorkers([a, b]);
    }
  });

  it("a worker SIGKILLed mid HE chunk: join-aggregate's encryption and masked sums still decrypt to the plaintext totals, every chunk taken once", async () => {
    const [a, b] = [await worker(), await worker()];
    try {
      const pool = await cluster();
      const options = { maxAbsValue: 1000n, maxRows: 200_000, scale: 0, polyModulusDegree: 8192 as const };
      const keySet = await local.heGenerateKeys(options, { galois: false });
      const n = 8192;
      const length = 9 * n - 100; // 9 blocks, the last one short
      const values = BigInt64Array.from({ length }, (_, i) => BigInt(((i * 7919) % 2001) - 1000));
      const killed = a.waitFor((e) => e.event === "chunk-start").then(() => a.child.kill("SIGKILL"));
      // Encryption: 3 chunks of 4, 4 and 1 blocks, in parts of 2 blocks.
      const parts = await pool.heEncryptInt64Parts(options, keySet.publicKey, values, { level: "mask", blocksPerPart: 2 });
      await killed;
      expect(a.child.signalCode).toBe("SIGKILL");
      expect(parts.length).toBe(5);
      const blockTotals = (await Promise.all(parts.map((p) => local.heDecryptBlockSums(options, p, keySet.secretKey)))).flat();
      const want = Array.from({ length: 9 }, (_, blk) => values.subarray(blk * n, (blk + 1) * n).reduce((t, v) => t + v, 0n));
      expect(blockTotals).toEqual(want);
      // Masked sums over the parts as they are (on B alone now): group g takes the rows with i % 3 === g, weighted 1 or 2.
      const masks = [0, 1, 2].map((g) => Uint32Array.from({ length }, (_, i) => (i % 3 === g ? 1 + (i % 2) : 0)));
      const sums = await pool.heMaskedBlockSums(options, parts, masks, 2 * length);
      const totals = await local.heDecryptBlockSums(options, sums, keySet.secretKey);
      expect(totals).toEqual(masks.map((m) => values.reduce((t, v, i) => t + v * BigInt(m[i] as number), 0n)));
      // 3 encryption chunks and 5 masked-sum chunks (2 blocks each, the last one), each taken once.
      expect(pool.clusterStats()).toMatchObject({ chunks: 8, heChunks: 8, duplicates: 0 });
    } finally {
      await killWorkers([a, b]);
    }
  });

  it("Redis restarted mid-call (AOF on): the call completes with the byte-exact result", async () => {
    const [a, b] = [await worker(), await worker()];
    try {
      const pool = await cluster();
      const messages = keys(16 * CHUNK, "restart");
      const scalar = (await createGroup(ristretto)).randomScalar();
      const want = await local.hashToGroup(ristretto, messages, DST, scalar);
      let restarted: Promise<void> | undefined;
      let latest = 0;
      let doneWhenBack = -1;
      const got = await pool.hashToGroup(ristretto, messages, DST, scalar, {
        onProgress: (done) => {
          latest = done;
          if (restarted === undefined && done >= 3 * CHUNK) restarted = redis.restart().then(() => void (doneWhenBack = latest));
        },
      });
      await restarted;
      // Redis was back while the call still had chunks to finish: they finished through the restarted server.
      expect(doneWhenBack).toBeGreaterThanOrEqual(3 * CHUNK);
      expect(doneWhenBack).toBeLessThan(16 * CHUNK);
      expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      expect(pool.clusterStats().chunks).toBe(16);
    } finally {
      await killWorkers([a, b]);
    }
  });
});
