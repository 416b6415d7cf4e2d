/**
 * F25 — attacks on cluster mode (issue 17). Redis is shared ground: whoever
 * can write there may run their own worker on the queue, overwrite or move
 * results, or queue jobs out of shape; a worker may hold the wrong cluster
 * key; a batch may carry a point that does not decode. Each is refused with
 * its typed error (the evidence is in the assertions), and nothing readable
 * in Redis holds the scalar, a raw key or a result element. One private Redis
 * for the file; every worker process is killed in afterAll.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, QueueEvents, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type LocalRedis } from "../../bench/cluster/redis-server.js";
import { decodeChunk, encodeChunk, runChunk, type ChunkTask } from "../../engine/cluster/chunk-task.js";
import { ClusterError, ClusterPool } from "../../engine/cluster/index.js";
import { checkJobData, doneKey, inputKey, QUEUE_PREFIX, resultKey, type ChunkJobData } from "../../engine/cluster/keys.js";
import { open, seal } from "../../engine/cluster/seal.js";
import { BackendId, createGroup, CryptoPool, GroupId, InvalidPointError, packStrings } from "../../engine/index.js";
import { clusterKeyFile, killWorkers, startWorker, type WorkerProcess } from "../helpers/cluster.js";

const CHUNK = 1024;
const DST = new TextEncoder().encode("umbra-f25-cluster");
const ristretto = { group: GroupId.Ristretto255 };

let redis: LocalRedis;
let dir: string;
let keyFile: string;
let key: Uint8Array;
const local = new CryptoPool({ threads: 1, inlineBelow: 64 });
const workers: WorkerProcess[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "umbra-f25-"));
  ({ path: keyFile, key } = clusterKeyFile(dir));
});
afterAll(async () => {
  await killWorkers(workers);
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await local.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function worker(file: string, queue: string): Promise<WorkerProcess> {
  const w = await startWorker(redis.url, file, "--queue", queue, "--lock-ms", "2000");
  workers.push(w);
  return w;
}

async function cluster(queue: string, extra: { idleTimeoutMs?: number; maxInFlight?: number } = {}): Promise<ClusterPool> {
  const p = await ClusterPool.connect({ redis: redis.url, key, queue, chunkElements: CHUNK, idleTimeoutMs: 60_000, ...extra });
  closers.push(() => p.close());
  return p;
}

function connection(): Redis {
  const r = new Redis(redis.url, { maxRetriesPerRequest: null });
  r.on("error", () => undefined);
  closers.push(async () => r.disconnect());
  return r;
}

/** A BullMQ worker of the attacker's own on `queue` (Redis write access, no cluster key unless given). */
function rogueWorker(queue: string, processor: (job: Job<ChunkJobData>, r: Redis) => Promise<void>): Worker<ChunkJobData> {
  const r = connection();
  const w = new Worker<ChunkJobData>(queue, (job) => processor(job, r), { connection: connection(), prefix: QUEUE_PREFIX, concurrency: 4 });
  w.on("error", () => undefined);
  closers.push(() => w.close(true));
  return w;
}

/** Each shape's decodeChunk outcome: its error code, or "accepted". */
function decodeCodes(shapes: Record<string, Uint8Array>): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.entries(shapes).map(([name, b]) => {
      try {
        decodeChunk(b);
        return [name, "accepted"];
      } catch (err) {
        return [name, (err as { code?: string }).code];
      }
    }),
  );
}

const report = (r: Redis, run: string, i: number): Promise<unknown> => r.rpush(doneKey(run), JSON.stringify({ i, ok: true }));
const keys = (n: number, tag: string) => packStrings(Array.from({ length: n }, (_, i) => `${tag}-${i}@example.org`));

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err as Error & { code?: string },
  );
  if (e === undefined) throw new Error("the call succeeded where it had to fail");
  return e;
}

describe("F25 cluster: results and chunks are authenticated", () => {
  it("a worker holding a different cluster key: the call fails UMBRA_CLUSTER_TAMPERED", async () => {
    const other = clusterKeyFile(dir, "other.key");
    const w = await worker(other.path, "f25-wrong-key");
    const pool = await cluster("f25-wrong-key");
    const e = await failure(pool.hashToGroup(ristretto, keys(2 * CHUNK, "wrong-key"), DST, (await createGroup(ristretto)).randomScalar()));
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.code).toBe("UMBRA_CLUSTER_TAMPERED");
    expect(e.message).toContain("failed authentication");
    expect(w.chunks().every((c) => c.ok === false)).toBe(true);
  });

  it("a result overwritten in Redis with random bytes and reported ok: UMBRA_CLUSTER_TAMPERED", async () => {
    rogueWorker("f25-overwrite", async (job, r) => {
      const { run, index } = job.data;
      await r.set(resultKey(run, index), randomBytes(CHUNK * 32 + 28));
      await report(r, run, index);
    });
    const pool = await cluster("f25-overwrite");
    const e = await failure(pool.hashToGroup(ristretto, keys(2 * CHUNK, "overwrite"), DST));
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.code).toBe("UMBRA_CLUSTER_TAMPERED");
    expect(e.message).toMatch(/^chunk [01]: the result failed authentication/);
  });

  it("a genuine sealed result moved from chunk i to chunk j: UMBRA_CLUSTER_TAMPERED", async () => {
    // The rogue holds the key to make genuine results (as an honest worker would), then moves one in Redis.
    const sealed = new Map<number, Buffer>();
    let moved: { from: number; to: number } | undefined;
    rogueWorker("f25-move", async (job, r) => {
      const { run, index } = job.data;
      const input = (await r.getBuffer(inputKey(run, index))) as Buffer;
      const value = await runChunk(local, decodeChunk(open(key, run, index, "in", input)));
      sealed.set(index, seal(key, run, index, "out", value));
      if (sealed.size < 2) return; // the first result is held back: only the moved one is reported
      const from = [...sealed.keys()].find((i) => i !== index) as number;
      moved = { from, to: index };
      await r.set(resultKey(run, index), sealed.get(from) as Buffer);
      await report(r, run, index);
    });
    const pool = await cluster("f25-move");
    const e = await failure(pool.hashToGroup(ristretto, keys(2 * CHUNK, "move"), DST, (await createGroup(ristretto)).randomScalar()));
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.code).toBe("UMBRA_CLUSTER_TAMPERED");
    expect(e.message).toBe(`chunk ${moved?.to}: the result failed authentication (a different cluster key, or changed in Redis)`);
  });

  it("a raise of points with a non-canonical ristretto255 encoding at element e: InvalidPointError at e, as in-process", async () => {
    await worker(keyFile, "f25-points");
    const pool = await cluster("f25-points");
    const points = await local.hashToGroup(ristretto, keys(3 * CHUNK, "points"), DST);
    const e = 2 * CHUNK + 37;
    // p = 2^255 − 19 encoded little-endian: a field element out of range, refused by every decoder.
    points.set(Buffer.from("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "hex"), e * 32);
    const scalar = (await createGroup(ristretto)).randomScalar();
    const inProcess = await failure(local.multiply(ristretto, scalar, points));
    const viaCluster = await failure(pool.multiply(ristretto, scalar, points));
    expect(inProcess).toBeInstanceOf(InvalidPointError);
    expect((inProcess as InvalidPointError).index).toBe(e);
    expect(viaCluster).toBeInstanceOf(InvalidPointError);
    expect((viaCluster as InvalidPointError).index).toBe(e);
    expect(viaCluster.message).toBe(inProcess.message);
  });
});

describe("F25 cluster: refusals", () => {
  it("no worker on the queue: UMBRA_CLUSTER_TIMEOUT naming the queue", async () => {
    const pool = await cluster("f25-nobody-home", { idleTimeoutMs: 300 });
    const e = await failure(pool.hashToGroup(ristretto, keys(2 * CHUNK, "timeout"), DST));
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.code).toBe("UMBRA_CLUSTER_TIMEOUT");
    expect(e.message).toContain("queue f25-nobody-home");
  });

  it("an unknown group: InvalidArgumentError on the coordinator, as in process, and nothing queued or written in Redis", async () => {
    const pool = await cluster("f25-unknown-group");
    const r = connection();
    const before = (await r.keys("umbra:*")).sort();
    // Thrown as the local pool throws it: before any promise, so a caller's try/catch or .then both see it.
    const e = await failure(Promise.resolve().then(() => pool.hashToGroup({ group: "p256" as GroupId }, keys(2 * CHUNK, "group"), DST)));
    expect(e.code).toBe("UMBRA_INVALID_ARGUMENT");
    expect(e.message).toBe('unknown group "p256"');
    expect((await r.keys("umbra:*")).sort()).toEqual(before);
  });

  it("Redis unreachable, or the wrong password: UMBRA_CLUSTER_UNAVAILABLE, the password never in the message", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const a = s.address() as { port: number };
        s.close(() => resolve(a.port));
      });
    });
    const password = `pw-${randomBytes(8).toString("hex")}`;
    const closed = await failure(ClusterPool.connect({ redis: `redis://:${password}@127.0.0.1:${port}`, key }));
    expect(closed).toBeInstanceOf(ClusterError);
    expect(closed.code).toBe("UMBRA_CLUSTER_UNAVAILABLE");
    expect(closed.message).toContain(`127.0.0.1:${port}`);
    expect(closed.message).not.toContain(password);
    const wrong = await failure(ClusterPool.connect({ redis: `redis://:${password}@127.0.0.1:${redis.port}`, key }));
    expect(wrong.code).toBe("UMBRA_CLUSTER_UNAVAILABLE");
    expect(wrong.message).not.toContain(password);
  });

  it("decodeChunk refuses every malformed shape with UMBRA_CLUSTER_MALFORMED", async () => {
    const scalar = (await createGroup(ristretto)).randomScalar();
    const hash: ChunkTask = { op: "hash", group: GroupId.Ristretto255, backend: BackendId.Noble, dst: DST, scalar, messages: keys(4, "shape") };
    const multiply: ChunkTask = { op: "multiply", group: GroupId.Ristretto255, backend: BackendId.Noble, scalar, points: new Uint8Array(3 * 32) };
    const h = encodeChunk(hash);
    const m = encodeChunk(multiply);
    expect(decodeChunk(h)).toMatchObject({ op: "hash" });
    expect(decodeChunk(m)).toMatchObject({ op: "multiply" });
    const offsets = 20 + 32 + DST.length; // where a hash chunk's offsets start
    const mutate = (b: Uint8Array, f: (c: Uint8Array, v: DataView) => void): Uint8Array => {
      const c = b.slice();
      f(c, new DataView(c.buffer));
      return c;
    };
    const shapes: Record<string, Uint8Array> = {
      "bad magic": mutate(h, (c) => (c[0] = 0x56)),
      "unknown op": mutate(h, (c) => (c[4] = 2)),
      "unknown group": mutate(h, (c) => (c[5] = 2)),
      "unknown backend": mutate(h, (c) => (c[6] = 3)),
      "scalar flag 2": mutate(h, (c) => (c[7] = 2)),
      "count over 65,536": mutate(h, (_c, v) => v.setUint32(8, 65_537, true)),
      "a byte more than the header adds up to": Uint8Array.from([...h, 0]),
      "a byte less": h.slice(0, -1),
      "a count one more than the offsets": mutate(h, (_c, v) => v.setUint32(8, 5, true)),
      "first offset not 0": mutate(h, (_c, v) => v.setUint32(offsets, 1, true)),
      "offsets out of order": mutate(h, (_c, v) => v.setUint32(offsets + 8, v.getUint32(offsets + 4, true) - 1, true)),
      "offsets not ending at the data's end": mutate(h, (_c, v) => v.setUint32(offsets + 16, v.getUint32(offsets + 16, true) - 1, true)),
      "multiply without a scalar": Uint8Array.from([...m.slice(0, 7), 0, ...m.slice(8, 20), ...m.slice(52)]),
      "multiply with a dst": mutate(m, (_c, v) => v.setUint32(12, 1, true)),
      "multiply points not count × 32": mutate(m, (_c, v) => v.setUint32(8, 2, true)),
      "shorter than a header": h.slice(0, 19),
    };
    expect(decodeCodes(shapes)).toEqual(Object.fromEntries(Object.keys(shapes).map((n) => [n, "UMBRA_CLUSTER_MALFORMED"])));
  });

  it("decodeChunk refuses every malformed HE chunk with UMBRA_CLUSTER_MALFORMED (options, op, level, lengths, bounds)", async () => {
    const options = { maxAbsValue: 1000n, maxRows: 100_000, scale: 0, polyModulusDegree: 8192 as const };
    const enc: ChunkTask = { op: "he-encrypt", options, publicKey: new Uint8Array(40).fill(7), values: BigInt64Array.from([1n, -2n, 3n]), level: "mask", blocksPerPart: 2 };
    const sums: ChunkTask = { op: "he-sums", options, ciphertext: new Uint8Array(50).fill(9), masks: [Uint32Array.from([1, 0, 1]), Uint32Array.from([0, 1, 0])], rows: 3 };
    const e = encodeChunk(enc);
    const m = encodeChunk(sums);
    expect(decodeChunk(e)).toEqual(enc);
    // One weight per slot: sent as (mask, weight) per slot; masks sharing a slot: sent dense. Both decode to the masks.
    expect([m[6], m.length]).toEqual([1, 32 + (m[8] as number) + 50 + 3 * 6]);
    expect(decodeChunk(m)).toEqual(sums);
    const overlapping: ChunkTask = { ...sums, masks: [Uint32Array.from([1, 2, 0]), Uint32Array.from([1, 0, 0])] };
    const d = encodeChunk(overlapping);
    expect(d[6]).toBe(0);
    expect(decodeChunk(d)).toEqual(overlapping);
    const sparseAt = 32 + (m[8] as number) + 50; // where a one-per-slot chunk's mask indices start
    const mutate = (b: Uint8Array, f: (c: Uint8Array, v: DataView) => void): Uint8Array => {
      const c = b.slice();
      f(c, new DataView(c.buffer));
      return c;
    };
    // The options JSON of `b`, replaced (the header's length field made to match).
    const withOptions = (b: Uint8Array, json: string): Uint8Array => {
      const v = new DataView(b.buffer, b.byteOffset);
      const old = v.getUint32(8, true);
      const o = new TextEncoder().encode(json);
      const out = Uint8Array.from([...b.slice(0, 32), ...o, ...b.slice(32 + old)]);
      new DataView(out.buffer).setUint32(8, o.length, true);
      return out;
    };
    const shapes: Record<string, Uint8Array> = {
      "unknown op": mutate(e, (c) => (c[4] = 2)),
      "unknown level": mutate(e, (c) => (c[5] = 2)),
      "sums at the mask level": mutate(m, (c) => (c[5] = 1)),
      "an encrypt chunk with a mask form": mutate(e, (c) => (c[6] = 1)),
      "an unknown mask form": mutate(m, (c) => (c[6] = 2)),
      "the last reserved byte set": mutate(m, (c) => (c[7] = 1)),
      "a slot naming mask 2 of 2": mutate(m, (_c, v) => v.setUint16(sparseAt, 2, true)),
      "a weight with no mask": mutate(m, (_c, v) => v.setUint16(sparseAt + 2, 0xffff, true)),
      // 4,096 masks of 4,097 slots in one-per-slot form: 24 KiB on the wire, over 64 MiB expanded.
      "masks that would expand past 64 MiB": (() => {
        const big = encodeChunk({ ...sums, masks: Array.from({ length: 4096 }, (_, g) => Uint32Array.from({ length: 4097 }, (_, i) => (i === g ? 1 : 0))) });
        expect(big[6]).toBe(1);
        return big;
      })(),
      "a byte more than the header adds up to": Uint8Array.from([...e, 0]),
      "a byte less": m.slice(0, -1),
      "no values": mutate(e, (_c, v) => v.setUint32(16, 0, true)),
      "an encrypt chunk with masks": mutate(e, (_c, v) => v.setUint32(20, 1, true)),
      "blocksPerPart 0": mutate(e, (_c, v) => v.setFloat64(24, 0, true)),
      "rows not an integer": mutate(m, (_c, v) => v.setFloat64(24, 1.5, true)),
      "more than 4,096 masks": mutate(m, (_c, v) => v.setUint32(16, 4097, true)),
      "options not JSON": withOptions(e, "{maxRows:1"),
      "an unknown option": withOptions(e, '{"maxAbsValue":"1000","maxRows":100000,"galois":true}'),
      "maxAbsValue not a decimal string": withOptions(e, '{"maxAbsValue":1000,"maxRows":100000}'),
      "maxRows negative": withOptions(e, '{"maxAbsValue":"1000","maxRows":-1}'),
      "a degree of 16384": withOptions(e, '{"maxAbsValue":"1000","maxRows":100000,"polyModulusDegree":16384}'),
      "options over 1 KiB": withOptions(e, `{"maxAbsValue":"1000","maxRows":100000${" ".repeat(1100)}}`),
      "shorter than a header": e.slice(0, 31),
    };
    expect(decodeCodes(shapes)).toEqual(Object.fromEntries(Object.keys(shapes).map((n) => [n, "UMBRA_CLUSTER_MALFORMED"])));
  });

  it("decodeChunk refuses every malformed match chunk with UMBRA_CLUSTER_MALFORMED", async () => {
    const good: ChunkTask = { op: "match", indexed: new Uint8Array(3 * 32).fill(1), probe: new Uint8Array(2 * 32).fill(2) };
    const b = encodeChunk(good);
    expect(decodeChunk(b)).toEqual(good);
    const set = (i: number, v: number): Uint8Array => {
      const c = b.slice();
      new DataView(c.buffer).setUint32(i, v, true);
      return c;
    };
    const shapes: Record<string, Uint8Array> = {
      "no indexed points": set(4, 0),
      "no probes": set(8, 0),
      "over 2^20 points": set(4, 1 << 20),
      "a count one more than the bytes": set(8, 3),
      "a byte more": Uint8Array.from([...b, 0]),
      "shorter than a header": b.slice(0, 11),
    };
    expect(decodeCodes(shapes)).toEqual(Object.fromEntries(Object.keys(shapes).map((n) => [n, "UMBRA_CLUSTER_MALFORMED"])));
  });

  it("jobs whose data is out of shape are ignored by a worker: no chunk started, nothing written", async () => {
    const w = await worker(keyFile, "f25-shapes");
    const r = connection();
    const queue = new Queue("f25-shapes", { connection: r, prefix: QUEUE_PREFIX });
    const events = new QueueEvents("f25-shapes", { connection: connection(), prefix: QUEUE_PREFIX });
    closers.push(() => events.close(), () => queue.close());
    await events.waitUntilReady();
    const before = (await r.keys("umbra:chunk:*")).sort();
    const run = randomBytes(16).toString("hex");
    const bad: unknown[] = [null, "x", { run: "not-a-run", index: 0, ttl: 60 }, { run: run.toUpperCase(), index: 0, ttl: 60 }, { run, index: -1, ttl: 60 }, { run, index: 1.5, ttl: 60 }, { run, index: 0, ttl: 0 }, { run, index: 0, ttl: 86_401 }, { run, index: 0 }];
    expect(bad.map((d) => checkJobData(d))).toEqual(bad.map(() => undefined));
    for (const [i, data] of bad.entries()) {
      const job = await queue.add("chunk", data as ChunkJobData, { jobId: `bad-${i}` });
      await job.waitUntilFinished(events);
    }
    expect(w.events.filter((e) => e.event !== "ready")).toEqual([]);
    expect((await r.keys("umbra:chunk:*")).sort()).toEqual(before);
  });
});

/** Every key's name and value in Redis, as one buffer (strings, lists, hashes, sets, sorted sets, streams). */
async function everything(r: Redis): Promise<{ all: Buffer; keys: string[] }> {
  const names = await r.keys("*");
  const parts: Buffer[] = [];
  for (const k of names) {
    parts.push(Buffer.from(k));
    const type = await r.type(k);
    const v: unknown =
      type === "string" ? await r.getBuffer(k) : type === "list" ? await r.lrangeBuffer(k, 0, -1) : type === "hash" ? await r.hgetallBuffer(k) : type === "set" ? await r.smembersBuffer(k) : type === "zset" ? await r.zrangeBuffer(k, "0", "-1") : type === "stream" ? await r.xrangeBuffer(k, "-", "+") : null;
    const flat = (x: unknown): void => {
      if (Buffer.isBuffer(x)) parts.push(x);
      else if (Array.isArray(x)) x.forEach(flat);
      else if (x && typeof x === "object") Object.entries(x).forEach(([a, b]) => (parts.push(Buffer.from(a)), flat(b)));
      else if (x !== null && x !== undefined) parts.push(Buffer.from(String(x)));
    };
    flat(v);
  }
  return { all: Buffer.concat(parts), keys: names };
}

describe("F25 cluster: Redis never holds a secret in the clear", () => {
  it("during a call, no key's value holds the scalar, a raw key or a result element", async () => {
    const r = connection();
    const pool = await cluster("f25-scan", { maxInFlight: 64 });
    const scalar = (await createGroup(ristretto)).randomScalar();
    const raw = Array.from({ length: 6 * CHUNK }, (_, i) => `secret-customer-${i}@example.org`);
    const want = await local.hashToGroup(ristretto, packStrings(raw), DST, scalar);
    const secrets: [string, Buffer][] = [
      ["the scalar", Buffer.from(scalar)],
      ["the scalar in hex", Buffer.from(Buffer.from(scalar).toString("hex"))],
      ["a raw key", Buffer.from(raw[CHUNK + 5] as string)],
      ["the first result element", Buffer.from(want.subarray(0, 32))],
      ["a result element of chunk 3", Buffer.from(want.subarray((3 * CHUNK + 1) * 32, (3 * CHUNK + 2) * 32))],
    ];
    const earlier = new Set(await r.keys("umbra:chunk:*")); // other tests' calls, failed on purpose, keep theirs until their TTL
    const ours = (ks: string[]): string[] => ks.filter((k) => k.startsWith("umbra:chunk:") && !earlier.has(k));
    const found = (all: Buffer): string[] => secrets.filter(([, s]) => all.includes(s)).map(([n]) => n);
    let during: Promise<{ all: Buffer; keys: string[] }> | undefined;
    const call = pool.hashToGroup(ristretto, packStrings(raw), DST, scalar, {
      onProgress: () => void (during ??= everything(r)),
    });
    // No worker yet: every chunk's input is in Redis once all six are queued.
    let queued = await everything(r);
    while (ours(queued.keys).filter((k) => k.endsWith(":in")).length < 6) queued = await everything(r);
    expect(found(queued.all)).toEqual([]);
    await worker(keyFile, "f25-scan");
    const got = await call;
    const mid = await (during as Promise<{ all: Buffer; keys: string[] }>);
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
    expect(found(mid.all)).toEqual([]);
    // The scans saw the sealed inputs, and a result or a done report mid-call.
    expect(ours(queued.keys).filter((k) => /^umbra:chunk:[0-9a-f]{32}:\d+:in$/.test(k))).toHaveLength(6);
    expect(ours(mid.keys).length).toBeGreaterThan(0);
  });
});
