/**
 * Finding 5 (high): `minIntersection` and psi-cardinality's k were never
 * enforced: a psi on one key released a 1-row match against minIntersection
 * 20; psi-cardinality returned count 1 against k = 10.
 *
 * The attacks, through real agents: the same two jobs. The buyer's agent
 * withholds each result (UMBRA_BELOW_MINIMUM, shown to the buyer only), and
 * the job ends as a released one does, so the provider and the exchange do
 * not learn that the intersection was small (the digest recorded is a salted
 * commitment; a count's plain hash would give the count away).
 * A job meeting the thresholds is released. A job asking for a lower
 * minIntersection than the policy's is refused by the exchange.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { ExchangeClient } from "../../node/server/client.js";
import { api, partyHeaders, startNodes, waitForJob, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
const phones = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `1380000${String(from + i).padStart(4, "0")}`);

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n" + phones(100).join("\n") + "\n");
  writeFileSync(join(bank.dataDir, "one.csv"), "phone\n" + [phones(1, 50)[0], ...phones(5, 500)].join("\n") + "\n"); // one shared key
  writeFileSync(join(bank.dataDir, "many.csv"), "phone\n" + phones(30, 10).join("\n") + "\n"); // 30 shared keys
  const base = { keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100, budgetUnit: "jobs" };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { ...base, allowedProtocols: ["psi", "psi-cardinality"], minIntersection: 20, minGroupSize: 10 } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const job = (protocol: string, file: string, params: Record<string, unknown> = {}) =>
  api<{ id: string; error?: { rule: string } }>(bank.url, "POST", "/v1/jobs", { protocol, buyerDataset: file, providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"], ...params } });

/**
 * Withheld: the buyer's agent releases nothing — its result is only the
 * withheld marker — while the job ends as any job does, so the provider (and
 * the exchange) cannot tell it from a released one: same state, no reason, a
 * salted digest.
 */
async function expectWithheld(id: string, threshold: number): Promise<void> {
  expect(await waitForJob(bank.url, id)).toMatchObject({ state: "succeeded", reason: "UMBRA_BELOW_MINIMUM", progress: { withheld: 1 } });
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  expect(JSON.parse(await res.text())).toEqual({ withheld: { code: "UMBRA_BELOW_MINIMUM", rule: "minIntersection", minIntersection: threshold } });
  // What the provider's agent is told of the job: exactly what it is told of a released one.
  const seen = (await new ExchangeClient(x.url, telco.identity).json<Record<string, unknown>>("GET", `/v1/jobs/${id}`)) as { state: string; reason: unknown; progress: unknown };
  expect([seen.state, seen.reason, Object.keys(seen.progress ?? {})]).toEqual(["succeeded", null, ["telco"]]);
  expect(telco.store.getJob(id)?.state).toBe("succeeded");
}

describe("finding 5: thresholds on intersections are enforced", () => {
  it("psi with one shared key against minIntersection 20: withheld", async () => {
    const r = await job("psi", "one.csv");
    expect(r.status).toBe(201);
    await expectWithheld(r.body.id, 20);
  });

  it("psi-cardinality with a count of 1 against k = 10 (and minIntersection 20): withheld", async () => {
    const r = await job("psi-cardinality", "one.csv");
    expect(r.status).toBe(201);
    await expectWithheld(r.body.id, 20);
  });

  it("30 shared keys meet both thresholds: released", async () => {
    const p = await job("psi", "many.csv");
    expect(await waitForJob(bank.url, p.body.id)).toMatchObject({ state: "succeeded" });
    const c = await job("psi-cardinality", "many.csv");
    expect(await waitForJob(bank.url, c.body.id)).toMatchObject({ state: "succeeded" });
    expect(JSON.parse(await (await fetch(`${bank.url}/v1/jobs/${c.body.id}/result`, { headers: partyHeaders(bank.url) })).text())).toEqual({ count: 30 });
    const seen = (await new ExchangeClient(x.url, telco.identity).json<Record<string, unknown>>("GET", `/v1/jobs/${c.body.id}`)) as { state: string; reason: unknown; progress: unknown };
    expect([seen.state, seen.reason, Object.keys(seen.progress ?? {})]).toEqual(["succeeded", null, ["telco"]]);
  });

  it("a job asking for a lower minIntersection than the policy's is refused before it starts", async () => {
    const r = await job("psi", "one.csv", { minIntersection: 2 });
    expect(r.status).toBe(403);
    expect(r.body.error?.rule).toBe("intersection-below-minimum");
  });
});
