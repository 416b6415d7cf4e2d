/**
 * Finding 4 (high): federated-aggregate's k was bypassed by a sybil
 * co-provider. The victim's cell had one row; a second dataset with 10 zero
 * rows in that cell (its policy: any buyer) made the cell count 11 and
 * released the victim's value.
 *
 * The attack, through real agents and the exchange as the aggregator: the
 * victim's one west row (spend 7,777) beside the sybil's ten zero rows, k =
 * 10. The cell is released with count 10 and sum 0 — the victim's own agent
 * left its under-k cell out — and the victim's value appears nowhere in the
 * result. Cells where each provider has k rows or more are exact.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { api, partyHeaders, startNodes, waitForJob, waitUntil, type TestParty, type TestNodes } from "../helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let victim: TestParty;
let sybil: TestParty;
let bank: TestParty;
const K = 10;

beforeAll(async () => {
  nodes = await startNodes(pool, ["victim", "sybil", "bank"], { exchangePool: true });
  [victim, sybil, bank] = nodes.parties as [TestParty, TestParty, TestParty];
  // The victim: 12 rows in the north (spend 100 each), one in the west (spend 7,777).
  writeFileSync(join(victim.dataDir, "h.csv"), "region,spend\n" + [...Array.from({ length: 12 }, () => "north,100"), "west,7777"].join("\n") + "\n");
  // The sybil: 10 rows of 0 in the west (to lift the cell to k), 10 in the north.
  writeFileSync(join(sybil.dataDir, "h.csv"), "region,spend\n" + [...Array.from({ length: 10 }, () => "west,0"), ...Array.from({ length: 10 }, () => "north,50")].join("\n") + "\n");
  // A budget in keys: a federated-aggregate job evaluates no buyer keys and costs one unit (red-team F9: it cost nothing).
  const victimPolicy = { allowedProtocols: ["federated-aggregate"], outputColumns: ["region", "spend"], allowedBuyers: ["bank"], minGroupSize: K, queryBudget: 100, budgetUnit: "keys" };
  expect((await api(victim.url, "POST", "/v1/datasets", { file: "h.csv", policy: victimPolicy })).status).toBe(201);
  expect((await api(sybil.url, "POST", "/v1/datasets", { file: "h.csv", policy: { ...victimPolicy, allowedBuyers: "any", minGroupSize: 1 } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("finding 4: k holds per provider per cell", () => {
  it("the victim's single west row never reaches the result, though the sybil lifted the cell's count to k", async () => {
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "federated-aggregate",
      providerDatasets: ["victim.h.csv", "sybil.h.csv"],
      params: { minGroupSize: K, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "region", categories: ["north", "west"] }, maxAbsValue: "10000" } },
    });
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${r.body.id}/result`, { headers: partyHeaders(bank.url) })).arrayBuffer()));
    const cells = Object.fromEntries(Array.from({ length: t.numRows }, (_, i) => [String(t.getChild("category")?.get(i)), { count: Number(t.getChild("count")?.get(i)), sum: Number(t.getChild("sum_spend")?.get(i)), suppressed: t.getChild("suppressed")?.get(i) }]));
    // West: the sybil's ten zeros only; the victim's 7,777 is not in it.
    expect(cells["west"]).toEqual({ count: 10, sum: 0, suppressed: false });
    // North: both providers have at least k rows there: exact.
    expect(cells["north"]).toEqual({ count: 22, sum: 12 * 100 + 10 * 50, suppressed: false });
    // One unit of the victim's budget in keys, at the exchange and at the victim's own agent.
    await waitUntil(() => victim.store.getJob(r.body.id)?.state === "succeeded", "the victim's end of the job");
    expect([nodes.x.store.getBudget("victim.h.csv", "bank")?.remaining, victim.store.getBudget("victim.h.csv", "bank")?.remaining]).toEqual([99, 99]);
  });
});
