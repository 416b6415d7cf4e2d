/**
 * Never a hang: a party that stops mid-job and comes back fails its jobs with
 * a reason; a party that does not come back makes the exchange fail the job
 * after the silence timeout. Nothing partial is released to the buyer.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { api, partyHeaders, startNodes, startParty, waitForJob, type TestExchange, type TestParty, type TestNodes } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;

const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `k${from + i}`).join("\n");

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"], { jobTimeoutMs: 5000 });
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "big.csv"), "k\n" + rows(60_000) + "\n");
  writeFileSync(join(bank.dataDir, "mine.csv"), "k\n" + rows(60_000, 30_000) + "\n");
  await api(telco.url, "POST", "/v1/datasets", { file: "big.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: "any", queryBudget: 100, budgetUnit: "jobs" } });
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

async function running(id: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const s = await api<{ state: string }>(bank.url, "GET", `/v1/jobs/${id}`);
    if (s.body.state === "running") return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("job never ran");
}

describe("restarts and silence", () => {
  it("a party restarted mid-job fails the job with a reason; no result is released", async () => {
    const job = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "mine.csv", providerDataset: "telco.big.csv", params: { keyColumns: ["k"] } });
    await running(job.body.id);
    // The provider stops mid-job and comes back with its store and identity.
    await telco.agent.stop();
    telco = await startParty("telco", x.url, pool, { store: telco.store, identity: telco.identity, dataDir: telco.dataDir });
    const done = await waitForJob(bank.url, job.body.id, 30_000);
    expect(done.state).toBe("failed");
    expect(done.reason).toBe("UMBRA_PARTY_RESTARTED");
    expect((await fetch(`${bank.url}/v1/jobs/${job.body.id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
    expect(x.store.listJobs({ state: ["submitted", "running"] })).toEqual([]);
  });

  it("a party gone for good: the exchange fails the job after the silence timeout", async () => {
    const job = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "mine.csv", providerDataset: "telco.big.csv", params: { keyColumns: ["k"] } });
    await running(job.body.id);
    await telco.agent.stop();
    const done = await waitForJob(bank.url, job.body.id, 30_000);
    expect(done.state).toBe("failed");
    expect(done.reason).toBe("UMBRA_JOB_TIMEOUT");
    expect((await fetch(`${bank.url}/v1/jobs/${job.body.id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
  });
});
