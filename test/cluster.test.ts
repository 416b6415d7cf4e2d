/**
 * Cluster mode (issue 17), correctness: runPsi (intersection, cardinality)
 * and runJoinAggregate (count, sum, avg, var by group) given a ClusterPool
 * whose chunks run on three `umbra worker` processes equal the same calls on
 * the in-process pool exactly, and the plain-JS oracle — on 5·10^3–4·10^4 keys a side
 * with duplicates, nulls, unicode, composite keys, disjoint and empty sides;
 * the chunks were spread over all three workers; the match, partition by
 * partition, equals the in-process one. And the CLI: `umbra worker`
 * and `--cluster` refusals, and `umbra psi --cluster` writing the same file
 * as without. One private Redis for the file; every worker is killed in
 * afterAll.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Float64, Table, Utf8, vectorFromArray } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type LocalRedis } from "../bench/cluster/redis-server.js";
import { ClusterPool } from "../engine/cluster/index.js";
import { CryptoPool, GroupId } from "../engine/index.js";
import { seededUniformSource } from "../engine/dp/index.js";
import { decodeMessage, runJoinAggregate, runPsi, type AggregateSpec, type JoinCiphertext, type RunJoinAggregateOptions, type RunPsiOptions } from "../protocols/index.js";
import { umbra, type CliRun } from "./helpers/cli.js";
import { clusterKeyFile, killWorkers, startWorker, type WorkerProcess } from "./helpers/cluster.js";
import { compositeKeyTable, oracleCardinality, oracleIntersectionRows, oracleKey, randomKeys, rng, singleKeyTable, type Side } from "./helpers/data.js";

const CHUNK = 2048;

let redis: LocalRedis;
let dir: string;
let keyFile: string;
let key: Uint8Array;
let cluster: ClusterPool;
const local = new CryptoPool({ threads: 1, inlineBelow: 64 });
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), "umbra-cluster-"));
  ({ path: keyFile, key } = clusterKeyFile(dir));
  for (let i = 0; i < 3; i++) workers.push(await startWorker(redis.url, keyFile));
  cluster = await ClusterPool.connect({ redis: redis.url, key, chunkElements: CHUNK, idleTimeoutMs: 60_000 });
});
afterAll(async () => {
  await killWorkers(workers);
  await cluster?.close();
  await local.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const side = (table: Table, keys: string[]): Side => ({ table, keys });

function psiCases(): { name: string; buyer: Side; provider: Side; group: GroupId }[] {
  const r = rng(17);
  const bk = randomKeys(r, 10_000, 14_000);
  const pk = randomKeys(r, 9_000, 14_000);
  const composite = (n: number): [(string | null)[], (number | null)[]] => {
    const a = randomKeys(r, n, 3000);
    return [a, a.map(() => (r() < 0.03 ? null : Math.floor(r() * 5)))];
  };
  const [ca, cb] = composite(10_000);
  const [pa, pb] = composite(6_000);
  const disjointB = Array.from({ length: 10_000 }, (_, i) => `buyer-only-${i}`);
  const disjointP = Array.from({ length: 4_000 }, (_, i) => `provider-only-${i}`);
  return [
    { name: "duplicates, nulls, unicode (x25519)", buyer: side(singleKeyTable(bk, "b", r), ["k"]), provider: side(singleKeyTable(pk, "p", r), ["k"]), group: GroupId.X25519 },
    { name: "composite keys (ristretto255)", buyer: side(compositeKeyTable(ca, cb, "b", r), ["k1", "k2"]), provider: side(compositeKeyTable(pa, pb, "p", r), ["k1", "k2"]), group: GroupId.Ristretto255 },
    { name: "disjoint sides", buyer: side(singleKeyTable(disjointB, "b", r), ["k"]), provider: side(singleKeyTable(disjointP, "p", r), ["k"]), group: GroupId.X25519 },
    { name: "an empty provider", buyer: side(singleKeyTable(disjointB.slice(0, 5_000), "b", r), ["k"]), provider: side(singleKeyTable([], "p", r), ["k"]), group: GroupId.Ristretto255 },
  ];
}

function psiOptions(c: { buyer: Side; provider: Side; group: GroupId }, pool: CryptoPool): RunPsiOptions {
  return { buyer: { table: c.buyer.table, keys: c.buyer.keys }, provider: { table: c.provider.table, keys: c.provider.keys }, group: c.group, pool, job: "cluster-psi" };
}

/** join-aggregate data: buyer k (duplicates, nulls, unicode) with group g (one per key), provider k with v (int, nulls) and w (2 decimals). */
function jaData(seed: number, nb: number, np: number, universe: number): { buyer: Table; provider: Table } {
  const r = rng(seed);
  const grades = ["A", "B", "C", "Ünï", "李"];
  const bk = randomKeys(r, nb, universe, 0.04);
  const groupOf = new Map<string, string | null>();
  const bg = bk.map((k) => {
    const g = r() < 0.04 ? null : (grades[Math.floor(r() * grades.length)] as string);
    if (k === null) return g;
    const norm = k.trim().normalize("NFC");
    if (!groupOf.has(norm)) groupOf.set(norm, g);
    return groupOf.get(norm) as string | null;
  });
  const pk = randomKeys(r, np, universe, 0.04);
  const v = pk.map(() => (r() < 0.05 ? null : Math.round((r() - 0.5) * 20_000)));
  const w = pk.map(() => (r() < 0.05 ? null : Math.round((r() - 0.3) * 1e6) / 100));
  return {
    buyer: new Table({ k: vectorFromArray(bk, new Utf8()), g: vectorFromArray(bg, new Utf8()) }),
    provider: new Table({ k: vectorFromArray(pk, new Utf8()), v: vectorFromArray(v, new Float64()), w: vectorFromArray(w, new Float64()) }),
  };
}

const AGGS: AggregateSpec[] = [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }, { fn: "var", column: "v" }, { fn: "sum", column: "w" }, { fn: "avg", column: "w" }];

/** The plain-JS join: per buyer group, COUNT(*), SUM/AVG/VAR_SAMP of v and SUM/AVG of w over buyer ⋈ provider (nulls skipped as SQL does). */
function jaOracle(buyer: Table, provider: Table): Map<string | null, Record<string, number | null>> {
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < provider.numRows; i++) {
    const k = oracleKey(provider, ["k"], i);
    if (k !== null) byKey.set(k, [...(byKey.get(k) ?? []), i]);
  }
  const acc = new Map<string | null, { n: number; v: number[]; w: number[] }>();
  for (let i = 0; i < buyer.numRows; i++) {
    const k = oracleKey(buyer, ["k"], i);
    const rows = k === null ? undefined : byKey.get(k);
    if (!rows) continue;
    const g = (buyer.getChild("g")?.get(i) as string | null) ?? null;
    const a = acc.get(g) ?? { n: 0, v: [], w: [] };
    acc.set(g, a);
    for (const j of rows) {
      a.n++;
      const v = provider.getChild("v")?.get(j) as number | null;
      const w = provider.getChild("w")?.get(j) as number | null;
      if (v !== null) a.v.push(v);
      if (w !== null) a.w.push(w);
    }
  }
  const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0);
  const out = new Map<string | null, Record<string, number | null>>();
  for (const [g, a] of acc) {
    const mv = a.v.length ? sum(a.v) / a.v.length : null;
    const varV = a.v.length > 1 ? sum(a.v.map((x) => (x - (mv as number)) ** 2)) / (a.v.length - 1) : null;
    out.set(g, { count: a.n, sum_v: a.v.length ? sum(a.v) : null, avg_v: mv, var_v: varV, sum_w: a.w.length ? sum(a.w) : null, avg_w: a.w.length ? sum(a.w) / a.w.length : null });
  }
  return out;
}

function jaOptions(d: { buyer: Table; provider: Table }, pool: CryptoPool, group: GroupId): RunJoinAggregateOptions {
  return { buyer: { table: d.buyer, keys: ["k"], groupBy: "g" }, provider: { table: d.provider, keys: ["k"] }, aggregates: AGGS, minGroupSize: 1, maxAbsValue: 1_000_000, scale: 2, group, pool, job: "cluster-ja" };
}

describe("cluster results equal the in-process pool's and the oracle's", () => {
  for (const c of psiCases()) {
    it(`runPsi intersection and cardinality: ${c.name}`, async () => {
      const before = cluster.clusterStats().chunks;
      const viaCluster = await runPsi({ ...psiOptions(c, cluster), mode: "intersection" });
      const inProcess = await runPsi({ ...psiOptions(c, local), mode: "intersection" });
      const oracle = oracleIntersectionRows(c.buyer, c.provider);
      expect(Array.from(viaCluster.matchedRows)).toEqual(oracle);
      expect(Array.from(viaCluster.matchedRows)).toEqual(Array.from(inProcess.matchedRows));
      expect(viaCluster.table.toArray().map((r) => JSON.stringify(r))).toEqual(inProcess.table.toArray().map((r) => JSON.stringify(r)));
      const count = await runPsi({ ...psiOptions(c, cluster), mode: "cardinality" });
      expect(count.count).toBe(oracleCardinality(c.buyer, c.provider));
      expect(count.count).toBe((await runPsi({ ...psiOptions(c, local), mode: "cardinality" })).count);
      // The buyer's keys went through the cluster in chunks of CHUNK.
      expect(cluster.clusterStats().chunks - before).toBeGreaterThanOrEqual(2 * Math.floor(c.buyer.table.numRows / CHUNK));
    });
  }

  {
    const group = GroupId.X25519;
    it("runJoinAggregate count/sum/avg/var by group: duplicates, nulls, unicode keys and labels", async () => {
      // 50,000 provider rows, about 47,000 distinct keys: 6 blocks per statistic column, so the HE work (encryption, masked sums) runs in chunks too.
      const d = jaData(5, 20_000, 50_000, 400_000);
      const before = cluster.clusterStats().chunks;
      const heBefore = cluster.clusterStats().heChunks;
      const viaCluster = await runJoinAggregate(jaOptions(d, cluster, group));
      const inProcess = await runJoinAggregate(jaOptions(d, local, group));
      expect(viaCluster.result).toEqual(inProcess.result);
      expect(viaCluster.rows).toEqual(inProcess.rows);
      expect(viaCluster.suppressedGroups).toBe(inProcess.suppressedGroups);
      const oracle = jaOracle(d.buyer, d.provider);
      expect(viaCluster.rows.map((r) => r.g ?? null).sort()).toEqual([...oracle.keys()].sort());
      for (const row of viaCluster.rows) {
        const want = oracle.get((row.g as string | null) ?? null) as Record<string, number | null>;
        for (const [stat, w] of Object.entries(want)) {
          const got = row[stat] as number | null;
          if (w === null) expect(got, `${stat} of ${String(row.g)}`).toBeNull();
          else expect(Math.abs((got as number) - w), `${stat} of ${String(row.g)}: ${got} vs ${w}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(w)));
        }
      }
      expect(cluster.clusterStats().chunks - before).toBeGreaterThanOrEqual(Math.floor(10_000 / CHUNK));
      // Per statistic column (n, s, q of v; n, s of w): 2 encryption chunks (4 blocks, 2) and 6 masked-sum chunks of one block.
      expect(cluster.clusterStats().heChunks - heBefore).toBe(5 * (2 + 6));
    });
  }

  it("runJoinAggregate with dp (seeded noise): the cluster's noisy result equals the in-process one — shares inline, COUNT(*) in one block", async () => {
    // 38,000 provider rows, about 36,000 keys padded to 36,864: 5 blocks per column, the last with 4,096 spare slots for its shares and
    // COUNT(*)'s (the count's mask reads the first column). Ungrouped: one group, code 0 in both runs (grouped, the buyer's random codes
    // give each label other shares).
    const d = jaData(5, 20_000, 38_000, 400_000);
    // Step 8's chunks of a noise block of its own (column ≥ the 6 statistics): none.
    const noiseBlocks: number[] = [];
    const noisy = (pool: CryptoPool) =>
      runJoinAggregate({
        ...jaOptions(d, pool, GroupId.X25519),
        tap: (_from, _to, frame) => {
          const m = decodeMessage(frame);
          if (m.kind === "joinCiphertext" && m.header.step === 8 && (m as JoinCiphertext).column >= 6) noiseBlocks.push((m as JoinCiphertext).column);
        },
        buyer: { table: d.buyer, keys: ["k"] },
        job: "cluster-ja-dp",
        dp: { rho: "1" },
        testNoiseSources: { provider: seededUniformSource("cluster/provider"), exchange: seededUniformSource("cluster/exchange") },
      });
    const heBefore = cluster.clusterStats().heChunks;
    const viaCluster = await noisy(cluster);
    const inProcess = await noisy(local);
    expect(viaCluster.result).toEqual(inProcess.result);
    expect(viaCluster.rows).toEqual(inProcess.rows);
    expect(viaCluster.result.dp?.statistics.map((st) => st.name)).toEqual(["count", "n(v)", "sum(v)", "sumsq(v)", "n(w)", "sum(w)"]);
    // Per column the provider encrypts (n, s, q of v; n, s of w): 2 encryption chunks (4 blocks, 1) and 5 masked-sum chunks of a block;
    // COUNT(*)'s masked sum reads the first column's last chunk alone, one block: on the coordinator, no chunk.
    expect([noiseBlocks, cluster.clusterStats().heChunks - heBefore]).toEqual([[], 5 * (2 + 5)]);
  });

  it("matchElements partition by partition equals the in-process match: 120,000 indexed points (some repeated) and 80,000 probes, 8 partitions", async () => {
    const r = rng(29);
    const point = (): number[] => Array.from({ length: 32 }, () => Math.floor(r() * 256));
    const indexedList = Array.from({ length: 120_000 }, point);
    for (let i = 0; i < 500; i++) indexedList[119_000 + i] = indexedList[i * 7] as number[]; // equal points: the first position wins
    const probeList = Array.from({ length: 80_000 }, (_, i) => (i % 3 === 0 ? (indexedList[Math.floor(r() * 120_000)] as number[]) : point()));
    const indexed = Uint8Array.from(indexedList.flat());
    const probe = Uint8Array.from(probeList.flat());
    const before = cluster.clusterStats().chunks;
    const got = await cluster.matchElements(indexed, probe);
    const want = await local.matchElements(indexed, probe);
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(got.filter((x) => x >= 0).length).toBe(Math.ceil(80_000 / 3));
    // 200,000 points: 8 partitions of at most 16 × CHUNK = 32,768 points on average, each one chunk.
    expect(cluster.clusterStats().chunks - before).toBe(8);
  });

  it("the chunks were spread: each of the three workers finished at least one", async () => {
    for (const w of workers) await w.waitFor((e) => e.event === "chunk" && e.ok === true);
    expect(workers.map((w) => w.chunks().filter((e) => e.ok === true).length >= 1)).toEqual([true, true, true]);
    expect(cluster.clusterStats().duplicates).toBe(0);
  });
});

describe("the CLI", () => {
  const run = (args: string[]): Promise<CliRun> => umbra(args, {}, { cwd: dir, timeoutMs: 90_000 });

  it("umbra worker without --redis exits 2 with its usage", async () => {
    const r = await run(["worker", "--cluster-key", keyFile]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--redis");
    expect(r.stderr).toContain("worker --redis URL --cluster-key FILE");
  });

  it("a cluster key file readable by others (0644) is refused: UMBRA_SECRET_FILE_PERMISSIONS", async () => {
    const open = join(dir, "open.key");
    writeFileSync(open, `${"ab".repeat(32)}\n`, { mode: 0o644 });
    const r = await run(["worker", "--redis", redis.url, "--cluster-key", open]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("UMBRA_SECRET_FILE_PERMISSIONS");
    expect(r.stderr).toContain(`chmod 600 "${open}"`);
  });

  it("umbra psi --cluster without --cluster-key exits 2", async () => {
    const r = await run(["psi", "--buyer", "b.csv", "--provider", "p.csv", "--key", "k", "--out", "o.csv", "--cluster", redis.url]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--cluster needs --cluster-key FILE");
  });

  it("umbra exchange start --cluster without --cluster-key exits 2 before it opens anything", async () => {
    const r = await run(["exchange", "start", "--port", "0", "--db", join(dir, "x.db"), "--cluster", redis.url]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--cluster needs --cluster-key FILE");
    expect(existsSync(join(dir, "x.db"))).toBe(false);
  });

  it("umbra psi --engine ot --cluster exits 2", async () => {
    const r = await run(["psi", "--buyer", "b.csv", "--provider", "p.csv", "--key", "k", "--out", "o.csv", "--engine", "ot", "--cluster", redis.url, "--cluster-key", keyFile]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("drop --engine ot");
  });

  it("umbra psi --cluster --out writes the same file as without --cluster (2 workers)", async () => {
    await killWorkers(workers.slice(2)); // two workers for this run
    const r = rng(99);
    const lines = (n: number, tag: string): string => ["email,spend", ...Array.from({ length: n }, (_, i) => `${r() < 0.5 ? "shared" : tag}-${i}@example.com,${Math.round(r() * 1e4) / 100}`)].join("\n") + "\n";
    writeFileSync(join(dir, "buyer.csv"), lines(9000, "buyer"));
    writeFileSync(join(dir, "provider.csv"), lines(9000, "provider"));
    const before = workers.slice(0, 2).map((w) => w.chunks().length);
    const common = ["psi", "--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "email", "--engine", "ecdh", "--quiet"];
    const clustered = await run([...common, "--out", "clustered.csv", "--cluster", redis.url, "--cluster-key", keyFile]);
    expect(clustered.stderr).toBe("");
    expect(clustered.status).toBe(0);
    const plain = await run([...common, "--out", "plain.csv"]);
    expect(plain.status).toBe(0);
    const file = readFileSync(join(dir, "clustered.csv"), "utf8");
    expect(file).toBe(readFileSync(join(dir, "plain.csv"), "utf8"));
    expect(file.split("\n").length).toBeGreaterThan(1000);
    // The 9,000 keys of each side (over 4,096, the CLI's chunk) ran on the workers.
    await Promise.race(workers.slice(0, 2).map((w, i) => w.waitFor((_e, all) => all.filter((x) => x.event === "chunk").length > (before[i] as number))));
    expect(workers.slice(0, 2).reduce((s, w, i) => s + w.chunks().length - (before[i] as number), 0)).toBeGreaterThanOrEqual(1);
  });
});
