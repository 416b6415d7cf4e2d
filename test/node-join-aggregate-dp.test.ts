/**
 * join-aggregate with differential privacy through the node: an exchange
 * (matcher and aggregator), a buyer and a provider agent on loopback. The
 * differencing attack — a sum over the join and over the same join minus
 * one provider row — recovers the row exactly without dp, and with dp
 * (the provider's and the exchange's noise seeded through the test seam,
 * so the run replays) misses it by exactly the difference of the noise the
 * two parties drew, within the 95% half-widths. A dataset whose policy sets
 * a privacy budget refuses a job without dp (dp-required) and one whose ρ
 * exceeds what remains (privacy-budget-exhausted), naming the rule, with
 * nothing spent and no job recorded; each job's ρ is spent at the exchange
 * and in the provider's own copy and recorded in its job.submitted entry;
 * of two jobs racing for the last of a budget exactly one passes;
 * `umbra job submit --protocol join-aggregate --rho` submits a dp job; a
 * contract over a budgeted dataset shows the buyer's ρ budget, spent and
 * remaining, and a dp job run under it shows there as spent; a party not on
 * the contract reads none of it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noiseHalfWidth, seededUniformSource } from "../engine/dp/index.js";
import { CryptoPool } from "../engine/index.js";
import { jobCommand } from "../node/commands/jobs.js";
import { contractCommand, orderCommand, productCommand } from "../node/commands/venue.js";
import { jaParamsOf, jaTestNoise } from "../node/jobs/join-aggregate.js";
import type { JobRequest } from "../node/policy.js";
import { jaExchangeNoise, jaProviderNoise, resolveJaParams } from "../protocols/index.js";
import { api, partyHeaders, startExchange, startParty, tokenFileOf, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;

const TARGET = 777;
const ids = Array.from({ length: 12 }, (_, i) => `c-${i}`);
const spend = [120, 340, 15, 990, 505, 61, 250, 33, 812, 400, 5, 9];
const row = (id: string, v: number) => `${id},${v}\n`;
const usage = "id,spend\n" + ids.map((id, i) => row(id, spend[i] as number)).join("") + row("c-3", TARGET);
const usageMinus = "id,spend\n" + ids.map((id, i) => row(id, spend[i] as number)).join("");

const base = { allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };
const BUDGETED = { ...base, privacyBudget: { rho: "1/2" } };

const submit = (dataset: string, rho?: string) =>
  api<{ id: string; error?: { code: string; rule?: string } }>(bank.url, "POST", "/v1/jobs", {
    protocol: "join-aggregate",
    buyerDataset: "customers.csv",
    providerDataset: dataset,
    params: { keyColumns: ["id"], minGroupSize: 1, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], maxAbsValue: "1000", ...(rho ? { dp: { rho } } : {}) } },
  });

async function sumOf(id: string): Promise<bigint> {
  const done = await waitForJob(bank.url, id);
  expect(done, JSON.stringify(done)).toMatchObject({ state: "succeeded" });
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  return BigInt(tableFromIPC(new Uint8Array(await res.arrayBuffer())).getChild("sum_spend")?.get(0) as bigint | number);
}

/** The noise the provider and the exchange of job `id` drew into its (one group's) sum, replayed from their seeds, and its 95% half-width. */
function replayedSumNoise(id: string): { noise: bigint; halfWidth: bigint } {
  const request = (x.store.getJob(id)?.params as unknown as { request: JobRequest }).request;
  const s = resolveJaParams(jaParamsOf(id, request));
  const dp = s.dp!;
  const k = s.stats.findIndex((st) => st.stat === "s");
  const provider = jaProviderNoise(dp, seededUniformSource(`${seedOf(id)}/provider`))[k]?.[0] as bigint;
  const rng = seededUniformSource(`${seedOf(id)}/exchange`);
  const exchange = dp.statistics.map((_, i) => jaExchangeNoise(dp, i, 1, rng)[0] as bigint)[k] as bigint;
  const [num, den] = dp.statistics[k]!.sigma2.split("/").map(BigInt) as [bigint, bigint];
  return { noise: provider + exchange, halfWidth: noiseHalfWidth({ kind: "distributed-discrete-gaussian", parties: 2, sigma2: { num, den } }) };
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
const submittedJobs = () => [...x.store.ledgerRows({})].filter((e) => e.kind === "job.submitted").length;

beforeAll(async () => {
  jaTestNoise.source = (job, role) => seededUniformSource(`${seedOf(job)}/${role}`);
  x = await startExchange({ jobTimeoutMs: 20_000, pool });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  writeFileSync(join(bank.dataDir, "customers.csv"), "id\n" + ids.map((id) => `${id}\n`).join(""));
  const files: [string, string, object][] = [
    ["u.csv", usage, BUDGETED],
    ["u-minus.csv", usageMinus, BUDGETED],
    ["u-open.csv", usage, base],
    ["u-open-minus.csv", usageMinus, base],
  ];
  for (const [file, text, policy] of files) {
    writeFileSync(join(telco.dataDir, file), text);
    const reg = await api(telco.url, "POST", "/v1/datasets", { file, policy });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  jaTestNoise.source = undefined;
  for (const p of [bank, telco]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("join-aggregate: differential privacy budgets and the differencing attack through the node", () => {
  it("without dp, the differencing attack recovers the target provider row exactly", async () => {
    const all = await submit("telco.u-open.csv");
    const rest = await submit("telco.u-open-minus.csv");
    expect((await sumOf(all.body.id)) - (await sumOf(rest.body.id))).toBe(BigInt(TARGET));
  }, 90_000);

  it("a dataset with a privacy budget refuses a job without dp (dp-required): nothing spent, no job recorded", async () => {
    const before = submittedJobs();
    const r = await submit("telco.u.csv");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "dp-required" });
    expect([spent(x.store, "telco.u.csv"), spent(telco.store, "telco.u.csv")]).toEqual(["0/1", "0/1"]);
    expect(submittedJobs()).toBe(before);
  });

  it("with dp, the attack misses by exactly the difference of the noise drawn, within the 95% half-widths; ρ is spent and recorded", async () => {
    const all = await submit("telco.u.csv", "1/8");
    const rest = await submit("telco.u-minus.csv", "0.125");
    expect([all.status, rest.status]).toEqual([201, 201]);
    const error = (await sumOf(all.body.id)) - (await sumOf(rest.body.id)) - BigInt(TARGET);
    const [a, b] = [replayedSumNoise(all.body.id), replayedSumNoise(rest.body.id)];
    expect(error).toBe(a.noise - b.noise);
    expect(error).not.toBe(0n);
    expect(error <= a.halfWidth + b.halfWidth && -error <= a.halfWidth + b.halfWidth).toBe(true);
    // Spent at the exchange and in the provider's own copy; recorded with the job.
    expect([spent(x.store, "telco.u.csv"), spent(x.store, "telco.u-minus.csv")]).toEqual(["1/8", "1/8"]);
    expect([spent(telco.store, "telco.u.csv"), spent(telco.store, "telco.u-minus.csv")]).toEqual(["1/8", "1/8"]);
    const entry = [...x.store.ledgerRows({ job: all.body.id })].find((e) => e.kind === "job.submitted");
    const body = JSON.parse(entry?.body ?? "{}") as { privacy: unknown; params: { dp: unknown } };
    expect(body.privacy).toEqual([{ dataset: "telco.u.csv", rho: "1/8", spent: "1/8", remaining: "3/8" }]);
    expect(body.params.dp).toEqual({ rho: "1/8", maxRowsPerKey: 1 });
  }, 90_000);

  it("a job whose ρ exceeds what remains is refused (privacy-budget-exhausted): nothing spent, no job recorded", async () => {
    const before = submittedJobs();
    const r = await submit("telco.u.csv", "1/2");
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "privacy-budget-exhausted" });
    expect([spent(x.store, "telco.u.csv"), spent(telco.store, "telco.u.csv")]).toEqual(["1/8", "1/8"]);
    expect(submittedJobs()).toBe(before);
  });

  it("of two jobs racing for the last of a budget, exactly one passes", async () => {
    const both = await Promise.all([submit("telco.u.csv", "3/8"), submit("telco.u.csv", "3/8")]);
    expect(both.map((r) => r.status).sort()).toEqual([201, 403]);
    const loser = both.find((r) => r.status === 403);
    expect(loser?.body.error).toMatchObject({ rule: "privacy-budget-exhausted" });
    const winner = both.find((r) => r.status === 201) as (typeof both)[number];
    expect(await waitForJob(bank.url, winner.body.id)).toMatchObject({ state: "succeeded" });
    expect([spent(x.store, "telco.u.csv"), spent(telco.store, "telco.u.csv")]).toEqual(["1/2", "1/2"]);
  }, 90_000);

  it("umbra job submit --protocol join-aggregate --rho R submits a job with dp, charged to the budget", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: (l: string) => void lines.push(l) };
    const code = await jobCommand(
      ["submit", "--party", bank.url, "--token-file", tokenFileOf(bank), "--protocol", "join-aggregate", "--provider-dataset", "telco.u-minus.csv", "--input", "customers.csv", "--key", "id",
        "--agg", "count,sum(spend)", "--min-group-size", "1", "--max-abs-value", "1000", "--rho", "0.01", "--wait"],
      io,
    );
    expect(code, lines.join("\n")).toBe(0);
    const id = /job (job-\S+) submitted/.exec(lines.join("\n"))?.[1] as string;
    expect((x.store.getJob(id)?.params as unknown as { request: JobRequest }).request.params.aggregate?.dp).toEqual({ rho: "1/100" });
    expect([spent(x.store, "telco.u-minus.csv"), spent(telco.store, "telco.u-minus.csv")]).toEqual(["27/200", "27/200"]);
  }, 90_000);
});

describe("a contract shows the privacy budget of its product's datasets", () => {
  it("the buyer's ρ budget, spent and remaining: 0 spent after the order, the job's ρ after a dp job under the contract", async () => {
    writeFileSync(join(telco.dataDir, "u-sold.csv"), usage);
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "u-sold.csv", policy: BUDGETED })).status).toBe(201);
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: (l: string) => void lines.push(l) };
    const as = (p: TestParty) => ["--party", p.url, "--token-file", tokenFileOf(p)];
    const file = join(telco.dataDir, "product.json");
    writeFileSync(file, JSON.stringify({ id: "telco.spend", title: "Spend per customer", datasets: ["telco.u-sold.csv"], protocols: ["join-aggregate"], outputColumns: ["spend"], prices: { currency: "EUR", perJob: 100 }, share: "equal" }));
    expect(await productCommand(["publish", "--file", file, ...as(telco)], io), lines.join("\n")).toBe(0);
    expect(await orderCommand(["create", "--product", "telco.spend", "--purpose", "spend study", "--quota-jobs", "3", "--days", "7", "--json", ...as(bank)], io), lines.join("\n")).toBe(0);
    const contract = (JSON.parse(lines[lines.length - 1] as string) as { id: string }).id;
    expect(await orderCommand(["approve", "--order", contract, ...as(telco)], io), lines.join("\n")).toBe(0);
    const show = async (p: TestParty) => {
      lines.length = 0;
      expect(await contractCommand(["show", "--contract", contract, ...as(p)], io), lines.join("\n")).toBe(0);
      return lines.find((l) => l.includes("privacy budget"));
    };
    expect(await show(bank)).toBe("  privacy budget on telco.u-sold.csv: ρ 0/1 spent of 1/2, 1/2 remains (ε 5.22 at δ = 1e-6)");
    const job = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "join-aggregate",
      buyerDataset: "customers.csv",
      providerDataset: "telco.u-sold.csv",
      contracts: [contract],
      params: { keyColumns: ["id"], minGroupSize: 1, aggregate: { aggregates: [{ fn: "sum", column: "spend" }], maxAbsValue: "1000", dp: { rho: "1/8" } } },
    });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    expect(await waitForJob(bank.url, job.body.id)).toMatchObject({ state: "succeeded" });
    // The buyer and the provider read the same line: the exchange's record of the buyer's spend.
    expect([await show(bank), await show(telco)]).toEqual([
      "  privacy budget on telco.u-sold.csv: ρ 1/8 spent of 1/2, 3/8 remains (ε 4.44 at δ = 1e-6)",
      "  privacy budget on telco.u-sold.csv: ρ 1/8 spent of 1/2, 3/8 remains (ε 4.44 at δ = 1e-6)",
    ]);
    lines.length = 0;
    await contractCommand(["show", "--contract", contract, "--json", ...as(bank)], io);
    expect((JSON.parse(lines[0] as string) as { privacy: unknown }).privacy).toEqual([{ dataset: "telco.u-sold.csv", budget: "1/2", source: "exchange", buyers: [{ buyer: "bank", spent: "1/8", remaining: "3/8" }] }]);
    // A party not on the contract asks for it (and so for the bank's spend): answered as missing, in the list too; nothing recorded.
    const insurer = await startParty("insurer", x.url, pool);
    try {
      const ledgerBefore = [...x.store.ledgerRows({})].length;
      const err = await contractCommand(["show", "--contract", contract, "--json", ...as(insurer)], io).catch((e: unknown) => e);
      lines.length = 0;
      expect(await contractCommand(["list", "--json", ...as(insurer)], io)).toBe(0);
      expect([(err as { status?: number }).status, JSON.parse(lines[0] as string), [...x.store.ledgerRows({})].length, spent(x.store, "telco.u-sold.csv")]).toEqual([404, [], ledgerBefore, "1/8"]);
    } finally {
      await insurer.close();
    }
  }, 90_000);
});
