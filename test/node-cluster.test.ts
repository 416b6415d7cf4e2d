/**
 * Party agents in cluster mode, as `umbra party start --cluster` runs them:
 * the exchange and two parties on loopback, each party's pool a ClusterPool
 * on its own queue of a private Redis with two workers (and the exchange's,
 * as `umbra exchange start --cluster` runs it, with one); a psi job and a
 * join-aggregate job through the nodes give exactly what the same jobs give
 * in process (and the plaintext join), the parties' workers did the group
 * work and the exchange's worker its match.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC, type Table } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { ClusterPool, startClusterWorker, type ClusterWorker } from "../engine/cluster/index.js";
import { startRedis, type LocalRedis } from "../bench/cluster/redis-server.js";
import { rng } from "./helpers/data.js";
import { api, partyHeaders, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";

const local = new CryptoPool({ threads: 1 });
const key = randomBytes(32);
let redis: LocalRedis;
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;
const pools: ClusterPool[] = [];
const workers: ClusterWorker[] = [];

// 3,000 buyer rows over keys k-0 … k-3999 (duplicates, blanks, unicode), 3,500 provider rows over k-2000 … k-5999.
const r = rng(17);
const buyerRows = Array.from({ length: 3000 }, (_, i) => ({ id: r() < 0.02 ? "" : `k-${Math.floor(r() * 4000)}${i % 97 === 0 ? "-é" : ""}`, segment: ["a", "b", "c"][i % 3] as string }));
const segmentOf = new Map<string, string>();
for (const b of buyerRows) if (b.id !== "") b.segment = segmentOf.get(b.id) ?? (segmentOf.set(b.id, b.segment), b.segment);
const providerRows = Array.from({ length: 3500 }, (_, i) => ({ id: `k-${2000 + Math.floor(r() * 4000)}${i % 89 === 0 ? "-é" : ""}`, spend: Math.floor(r() * 2001) - 1000 }));

beforeAll(async () => {
  redis = await startRedis();
  for (const queue of ["bank-chunks", "telco-chunks"]) {
    for (let i = 0; i < 2; i++) workers.push(await startClusterWorker({ redis: redis.url, key, queue, threads: 1 }));
    pools.push(await ClusterPool.connect({ redis: redis.url, key, queue, chunkElements: 512, threads: 1 }));
  }
  // The exchange's own roles on a cluster too (umbra exchange start --cluster): one worker on its own queue.
  workers.push(await startClusterWorker({ redis: redis.url, key, queue: "exchange-chunks", threads: 1 }));
  pools.push(await ClusterPool.connect({ redis: redis.url, key, queue: "exchange-chunks", chunkElements: 256, threads: 1 }));
  x = await startExchange({ jobTimeoutMs: 60_000, pool: pools[2] as ClusterPool });
  bank = await startParty("bank", x.url, pools[0] as ClusterPool);
  telco = await startParty("telco", x.url, pools[1] as ClusterPool);
  writeFileSync(join(bank.dataDir, "customers.csv"), "id,segment\n" + buyerRows.map((b) => `${b.id},${b.segment}`).join("\n") + "\n");
  writeFileSync(join(telco.dataDir, "usage.csv"), "id,spend\n" + providerRows.map((p) => `${p.id},${p.spend}`).join("\n") + "\n");
  const reg = await api(telco.url, "POST", "/v1/datasets", {
    file: "usage.csv",
    policy: { allowedProtocols: ["psi", "join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 1_000_000, budgetUnit: "keys", expiresAt: null },
  });
  expect(reg.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await bank?.close();
  await telco?.close();
  await x?.close();
  for (const p of pools) await p.close();
  for (const w of workers) await w.close();
  await local.close();
  await redis?.stop();
});

async function resultOf(id: string): Promise<Table> {
  const done = await waitForJob(bank.url, id, 120_000);
  expect(done.state, done.reason ?? "").toBe("succeeded");
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  expect(res.status).toBe(200);
  return tableFromIPC(new Uint8Array(await res.arrayBuffer()));
}

describe("party agents in cluster mode", () => {
  it("psi: the buyer's matching rows are the plaintext join's, and both parties' workers computed", async () => {
    const before = workers.map((w) => w.stats().chunks);
    const submit = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "customers.csv", providerDataset: "telco.usage.csv", params: { keyColumns: ["id"], queryCount: 3000 } });
    expect(submit.status).toBe(201);
    const t = await resultOf(submit.body.id);
    const held = new Set(providerRows.map((p) => p.id));
    const expected = buyerRows.filter((b) => b.id !== "" && held.has(b.id)).map((b) => b.id);
    expect(t.getChild("id")?.toArray()).toEqual(expected);
    const done = workers.map((w, i) => w.stats().chunks - (before[i] as number));
    // Workers 0-1 serve the bank's queue, 2-3 the telco's: each side's pair took chunks.
    expect((done[0] as number) + (done[1] as number)).toBeGreaterThan(0);
    expect((done[2] as number) + (done[3] as number)).toBeGreaterThan(0);
  });

  it("join-aggregate: count, sum, avg per segment equal the plaintext join's; the exchange matched on its own worker", async () => {
    const exchangeBefore = (workers[4] as ClusterWorker).stats().chunks;
    const submit = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "join-aggregate",
      buyerDataset: "customers.csv",
      providerDataset: "telco.usage.csv",
      params: { keyColumns: ["id"], queryCount: 3000, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "avg", column: "spend" }], groupBy: { column: "segment" }, maxAbsValue: "1000" } },
    });
    expect(submit.status, JSON.stringify(submit.body)).toBe(201);
    const t = await resultOf(submit.body.id);
    // The oracle: buyer JOIN provider on id (each buyer row with each provider row of its key), grouped by segment.
    const byKey = new Map<string, number[]>();
    for (const p of providerRows) byKey.set(p.id, [...(byKey.get(p.id) ?? []), p.spend]);
    const groups = new Map<string, { count: number; sum: number }>();
    for (const b of buyerRows) {
      if (b.id === "") continue;
      for (const v of byKey.get(b.id) ?? []) {
        const g = groups.get(b.segment) ?? { count: 0, sum: 0 };
        g.count++;
        g.sum += v;
        groups.set(b.segment, g);
      }
    }
    const got = new Map<string, { count: number; sum: number; avg: number }>();
    for (let i = 0; i < t.numRows; i++) {
      got.set(String(t.getChild("segment")?.get(i)), { count: Number(t.getChild("count")?.get(i)), sum: Number(t.getChild("sum_spend")?.get(i)), avg: Number(t.getChild("avg_spend")?.get(i)) });
    }
    expect([...got.keys()].sort()).toEqual([...groups.keys()].sort());
    for (const [label, g] of groups) {
      expect(got.get(label)).toMatchObject({ count: g.count, sum: g.sum });
      expect(got.get(label)?.avg).toBeCloseTo(g.sum / g.count, 9);
    }
    // About 5,400 double-blinded points against 16 × 256 a partition: the exchange's match ran as 2 partitions on its worker.
    expect((workers[4] as ClusterWorker).stats().chunks - exchangeBefore).toBe(2);
  });
});
