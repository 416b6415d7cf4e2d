/**
 * federated-aggregate with differential privacy through the node: an
 * exchange, a buyer and two provider agents on loopback. A dataset whose
 * policy sets a privacy budget refuses a job without dp (dp-required) and
 * one whose ρ exceeds what remains (privacy-budget-exhausted), with nothing
 * spent; each job's ρ is spent at the exchange and in each provider's own
 * copy, and recorded in its job.submitted entry; of two jobs racing for the
 * last of a budget exactly one passes; a restarted exchange keeps what was
 * spent. The differencing attack — a sum over the data and over the same
 * data minus one row — recovers the row exactly without dp, and with dp
 * (each provider's noise seeded through the test seam, so the run replays)
 * misses it by exactly the difference of the noise the providers drew,
 * within the 95% half-widths.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noiseHalfWidth, seededUniformSource } from "../engine/dp/index.js";
import { CryptoPool } from "../engine/index.js";
import { faParamsOf, faTestNoise } from "../node/jobs/federated-aggregate.js";
import type { JobRequest } from "../node/policy.js";
import { faDpSigma2, faNoiseShares, resolveFaParams } from "../protocols/index.js";
import { api, partyHeaders, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 1 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;
let retailer: TestParty;

const TARGET = 777;
const telcoRows = [120, 340, 15, 990, 505, 61];
const retailerRows = [250, TARGET, 33, 812, 400];
const minus = retailerRows.filter((v) => v !== TARGET);
const csv = (values: readonly number[]) => "spend\n" + values.map((v) => `${v}\n`).join("");

const base = { allowedProtocols: ["federated-aggregate"], outputColumns: ["spend"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };
const BUDGETED = { ...base, privacyBudget: { rho: "1/2" } };
const aggregate = (rho?: string) => ({ aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], maxAbsValue: "1000", ...(rho ? { dp: { rho } } : {}) });
const submit = (datasets: string[], rho?: string) =>
  api<{ id: string; error?: { code: string; rule?: string } }>(bank.url, "POST", "/v1/jobs", { protocol: "federated-aggregate", providerDatasets: datasets, params: { aggregate: aggregate(rho) } });

async function sumOf(id: string): Promise<number> {
  const done = await waitForJob(bank.url, id);
  expect(done, JSON.stringify(done)).toMatchObject({ state: "succeeded" });
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  return Number(tableFromIPC(new Uint8Array(await res.arrayBuffer())).getChild("sum_spend")?.get(0));
}

/** The noise the providers of job `id` drew into its sum, replayed from their seeds, and its 95% half-width. */
function replayedSumNoise(id: string): { noise: bigint; halfWidth: bigint } {
  const request = (x.store.getJob(id)?.params as unknown as { request: JobRequest }).request;
  const s = resolveFaParams(faParamsOf(id, request));
  const o = s.columnOffsets[0] as number;
  const noise = [0, 1].reduce((acc, i) => acc + (faNoiseShares(s.dp!, s.stride, s.length, seededUniformSource(`${seedOf(id)}/${i}`))[o] as bigint), 0n);
  return { noise, halfWidth: noiseHalfWidth({ kind: "distributed-discrete-gaussian", parties: 2, sigma2: faDpSigma2(s.dp!, o) }) };
}

/**
 * Each job's noise seed: its request (datasets and parameters), the same in
 * every run — not its random id — so the noise drawn, and every assertion on
 * it, is the same in every run.
 */
function seedOf(job: string): string {
  return JSON.stringify((x.store.getJob(job)?.params as unknown as { request: JobRequest }).request);
}

const spent = (store: TestExchange["store"], dataset: string) => store.getPrivacySpent(dataset, "bank");

beforeAll(async () => {
  faTestNoise.source = (job, index) => seededUniformSource(`${seedOf(job)}/${index}`);
  x = await startExchange({ jobTimeoutMs: 20_000 });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  retailer = await startParty("retailer", x.url, pool);
  const files: [TestParty, string, readonly number[], object][] = [
    [telco, "t.csv", telcoRows, BUDGETED],
    [telco, "t-open.csv", telcoRows, base],
    [retailer, "r.csv", retailerRows, BUDGETED],
    [retailer, "r-minus.csv", minus, BUDGETED],
    [retailer, "r-open.csv", retailerRows, base],
    [retailer, "r-open-minus.csv", minus, base],
  ];
  for (const [p, file, rows, policy] of files) {
    writeFileSync(join(p.dataDir, file), csv(rows));
    const reg = await api(p.url, "POST", "/v1/datasets", { file, policy });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  faTestNoise.source = undefined;
  for (const p of [bank, telco, retailer]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("differential privacy budgets and the differencing attack through the node", () => {
  it("without dp, the differencing attack recovers the target row exactly", async () => {
    const all = await submit(["telco.t-open.csv", "retailer.r-open.csv"]);
    const rest = await submit(["telco.t-open.csv", "retailer.r-open-minus.csv"]);
    expect(await sumOf(all.body.id) - (await sumOf(rest.body.id))).toBe(TARGET);
  }, 60_000);

  it("a dataset with a privacy budget refuses a job without dp (dp-required), spending nothing", async () => {
    const r = await submit(["telco.t.csv", "retailer.r.csv"]);
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "dp-required" });
    expect([spent(x.store, "telco.t.csv"), spent(x.store, "retailer.r.csv")]).toEqual(["0/1", "0/1"]);
  });

  it("with dp, the attack misses by exactly the difference of the noise drawn, within the 95% half-widths; ρ is spent and recorded", async () => {
    const all = await submit(["telco.t.csv", "retailer.r.csv"], "1/8");
    const rest = await submit(["telco.t.csv", "retailer.r-minus.csv"], "0.125");
    expect([all.status, rest.status]).toEqual([201, 201]);
    const error = BigInt((await sumOf(all.body.id)) - (await sumOf(rest.body.id)) - TARGET);
    const [a, b] = [replayedSumNoise(all.body.id), replayedSumNoise(rest.body.id)];
    expect(error).toBe(a.noise - b.noise);
    expect(error).not.toBe(0n);
    expect(error <= a.halfWidth + b.halfWidth && -error <= a.halfWidth + b.halfWidth).toBe(true);
    // Spent at the exchange and in each provider's own copy; recorded with the job.
    expect([spent(x.store, "telco.t.csv"), spent(x.store, "retailer.r.csv"), spent(x.store, "retailer.r-minus.csv")]).toEqual(["1/4", "1/8", "1/8"]);
    expect([spent(telco.store, "telco.t.csv"), spent(retailer.store, "retailer.r.csv"), spent(retailer.store, "retailer.r-minus.csv")]).toEqual(["1/4", "1/8", "1/8"]);
    const entry = [...x.store.ledgerRows({ job: rest.body.id })].find((e) => e.kind === "job.submitted");
    expect((JSON.parse(entry?.body ?? "{}") as { privacy: unknown }).privacy).toEqual([
      { dataset: "telco.t.csv", rho: "1/8", spent: "1/4", remaining: "1/4" },
      { dataset: "retailer.r-minus.csv", rho: "1/8", spent: "1/8", remaining: "3/8" },
    ]);
  }, 60_000);

  it("a job whose ρ exceeds what remains is refused (privacy-budget-exhausted), nothing spent", async () => {
    const r = await submit(["telco.t.csv", "retailer.r.csv"], "3/10");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ rule: "privacy-budget-exhausted" });
    expect([spent(x.store, "telco.t.csv"), spent(x.store, "retailer.r.csv")]).toEqual(["1/4", "1/8"]);
  });

  it("of two jobs racing for the last of a budget, exactly one passes", async () => {
    const both = await Promise.all([submit(["telco.t.csv", "retailer.r.csv"], "1/4"), submit(["telco.t.csv", "retailer.r-minus.csv"], "1/4")]);
    expect(both.map((r) => r.status).sort()).toEqual([201, 403]);
    const loser = both.find((r) => r.status === 403);
    expect(loser?.body.error).toMatchObject({ rule: "privacy-budget-exhausted" });
    const winner = both.find((r) => r.status === 201) as (typeof both)[number];
    expect(await waitForJob(bank.url, winner.body.id)).toMatchObject({ state: "succeeded" });
    expect(spent(x.store, "telco.t.csv")).toBe("1/2");
    expect(spent(telco.store, "telco.t.csv")).toBe("1/2");
  }, 60_000);

  it("a restarted exchange keeps what was spent: the exhausted budget still refuses", async () => {
    x = await x.restart();
    expect(spent(x.store, "telco.t.csv")).toBe("1/2");
    const r = await submit(["telco.t.csv", "retailer.r.csv"], "1/1000");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ rule: "privacy-budget-exhausted" });
    expect(spent(x.store, "telco.t.csv")).toBe("1/2");
  }, 60_000);
});
