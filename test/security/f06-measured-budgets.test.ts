/**
 * Finding 6 (high): key budgets were self-declared — the charge was the
 * job's declared queryCount: psi with `--query-count 1` sent 160 keys and was
 * charged 1; join-aggregate too.
 *
 * The attacks, through real agents: psi and join-aggregate declaring 1 key
 * and sending 160 — the provider's role refuses the buyer's hello, nothing is
 * evaluated, and no budget is spent. An honest job declaring more than it
 * sends is charged what was measured, at the provider and the exchange alike,
 * with a `charged` entry in the ledger.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { ExchangeClient } from "../../node/server/client.js";
import { api, startNodes, startParty, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
const BUDGET = 10_000;
const phones = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `1380000${String(from + i).padStart(4, "0")}`);

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"], { exchangePool: true });
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone,spend\n" + phones(300).map((p, i) => `${p},${i}`).join("\n") + "\n");
  // 160 distinct keys (and one repeated: measured in distinct keys).
  writeFileSync(join(bank.dataDir, "probe.csv"), "phone,segment\n" + [...phones(160, 100), phones(1, 100)[0]].map((p) => `${p},a`).join("\n") + "\n");
  const policy = { allowedProtocols: ["psi", "lookup", "join-aggregate"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: BUDGET, budgetUnit: "keys" };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

/** The bank's budget on the telco's dataset at the exchange and at the provider (a row is made at the first charge). */
const budgets = () => [x.store.getBudget("telco.subs.csv", "bank")?.remaining ?? BUDGET, telco.store.getBudget("telco.subs.csv", "bank")?.remaining ?? BUDGET];
/** Waits until the provider's own record of the job has ended too (it settles its budget as it ends). */
const providerDone = (job: string) => waitUntil(() => ["failed", "succeeded", "refused"].includes(telco.store.getJob(job)?.state ?? ""), "the provider's end of the job");
const charges = (job: string) => [...x.store.ledgerRows({ job })].map((r) => JSON.parse(r.body) as Record<string, unknown>).filter((b) => b["step"] === "charged");
const psi = (queryCount: number) => api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "probe.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"], queryCount } });
const ja = (queryCount: number) =>
  api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
    protocol: "join-aggregate", buyerDataset: "probe.csv", providerDataset: "telco.subs.csv",
    params: { keyColumns: ["phone"], queryCount, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "segment" }, maxAbsValue: "1000", maxJoinRows: 10_000 } },
  });

describe("finding 6: budgets count the keys measured, not declared", () => {
  it("psi declaring 1 key and sending 160: the provider refuses the hello; nothing evaluated, nothing spent", async () => {
    const before = budgets();
    const r = await psi(1);
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "failed", reason: "UMBRA_KEY_LIMIT_EXCEEDED" });
    await providerDone(r.body.id);
    expect(budgets()).toEqual(before);
    expect(charges(r.body.id)).toEqual([]);
    // The provider sent its own set and its refusal, never the buyer's keys raised to its scalar (step 5).
    const steps = [...x.store.ledgerRows({ job: r.body.id })].map((e) => JSON.parse(e.body) as { step?: unknown; from?: unknown }).filter((b) => b.from === "telco").map((b) => b.step);
    expect(steps).not.toContain(5);
  });

  it("join-aggregate declaring 1 key and sending 160: refused the same way", async () => {
    const before = budgets();
    const r = await ja(1);
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "failed", reason: "UMBRA_KEY_LIMIT_EXCEEDED" });
    await providerDone(r.body.id);
    expect(budgets()).toEqual(before);
    expect(charges(r.body.id)).toEqual([]);
  });

  it("psi declaring 1,000 and sending 160 distinct keys is charged 160, at the provider and at the exchange", async () => {
    const [xb, tb] = budgets() as [number, number];
    const r = await psi(1_000);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    await providerDone(r.body.id);
    expect(budgets()).toEqual([xb - 160, tb - 160]);
    expect(charges(r.body.id)).toEqual([{ step: "charged", by: "telco", dataset: "telco.subs.csv", units: 160 }]);
  });

  it("join-aggregate and lookup too", async () => {
    const [xb, tb] = budgets() as [number, number];
    const j = await ja(1_000);
    expect(await waitForJob(bank.url, j.body.id)).toMatchObject({ state: "succeeded" });
    const l = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "lookup", buyerDataset: "probe.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"], outputColumns: ["spend"], queryCount: 500 } });
    expect(await waitForJob(bank.url, l.body.id)).toMatchObject({ state: "succeeded" });
    await providerDone(j.body.id);
    await providerDone(l.body.id);
    expect(budgets()).toEqual([xb - 320, tb - 320]);
    expect(charges(l.body.id)).toEqual([{ step: "charged", by: "telco", dataset: "telco.subs.csv", units: 160 }]);
  });

  it("a forged charge report — by the buyer, or by a party not in the job — is refused and changes nothing", async () => {
    // A job held before its provider answers (the provider is offline).
    const ghost = await startParty("ghost", x.url, pool);
    writeFileSync(join(ghost.dataDir, "g.csv"), "phone\n1\n");
    const policy = { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: BUDGET, budgetUnit: "keys" };
    expect((await api(ghost.url, "POST", "/v1/datasets", { file: "g.csv", policy })).status).toBe(201);
    await ghost.close();
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "probe.csv", providerDataset: "ghost.g.csv", params: { keyColumns: ["phone"], queryCount: 5_000 } });
    expect(r.status).toBe(201);
    expect(x.store.getBudget("ghost.g.csv", "bank")?.remaining).toBe(BUDGET - 5_000);
    const before = snapshot(x.store);
    const asBuyer = await new ExchangeClient(x.url, bank.identity).json("POST", `/v1/jobs/${r.body.id}/events`, { kind: "charged", units: 0 }).catch((e: unknown) => e);
    expect(asBuyer).toMatchObject({ status: 400, code: "UMBRA_BAD_REQUEST" });
    const outsider = await new ExchangeClient(x.url, telco.identity).json("POST", `/v1/jobs/${r.body.id}/events`, { kind: "charged", units: 0 }).catch((e: unknown) => e);
    expect(outsider).toMatchObject({ status: 404, code: "UMBRA_NOT_FOUND" });
    expect(snapshot(x.store)).toBe(before);
  });
});
