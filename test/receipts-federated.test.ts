/**
 * A two-provider federated-aggregate job under two contracts (docs/venue.md,
 * "Revenue shares"): each line is priced per job and per released cell, and
 * split among BOTH providers by its product's share rule ("rows" for one,
 * "equal" for the other) — recomputed here from the data the test wrote
 * (the rows each provider registered, the categories k leaves released).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import type { Receipt } from "../node/venue/receipt.js";
import { api, startExchange, startParty, waitForJob, waitUntil, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 1 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;
let retailer: TestParty;
const K = 5;
const CATEGORIES = ["north", "south", "east", "west"];

/** `n` rows over north/south/east and `west` rows of west (under k). */
const rowsOf = (n: number, west: number, seed: number) =>
  Array.from({ length: n }, (_, i) => ({ region: i < west ? "west" : (["north", "south", "east"][(i * seed) % 3] as string), spend: (i * 37 + seed) % 1000 }));
const data = { telco: rowsOf(83, 2, 7), retailer: rowsOf(41, 1, 11) };
const PRICES = { telco: { currency: "EUR", perJob: 1001, perCell: 13 }, retailer: { currency: "EUR", perJob: 250, perCell: 7 } };
const SHARE = { telco: "rows", retailer: "equal" } as const;

/** Largest remainder, written again here: floors, then the units left to the largest remainders, ties by name. */
function split(amount: number, weights: Record<string, number>): Record<string, number> {
  const names = Object.keys(weights).sort();
  const total = names.reduce((s, n) => s + (weights[n] as number), 0);
  const floors = names.map((n) => Math.floor((amount * (weights[n] as number)) / total));
  const rems = names.map((n, i) => amount * (weights[n] as number) - (floors[i] as number) * total);
  let left = amount - floors.reduce((s, f) => s + f, 0);
  const order = names.map((_, i) => i).sort((a, b) => (rems[b] as number) - (rems[a] as number) || a - b);
  for (const i of order) if (left-- > 0) floors[i] = (floors[i] as number) + 1;
  return Object.fromEntries(names.map((n, i) => [n, floors[i] as number]));
}

beforeAll(async () => {
  x = await startExchange({ jobTimeoutMs: 20_000 });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  retailer = await startParty("retailer", x.url, pool);
  for (const [p, name] of [[telco, "telco"], [retailer, "retailer"]] as const) {
    writeFileSync(join(p.dataDir, "households.csv"), "region,spend\n" + data[name].map((r) => `${r.region},${r.spend}`).join("\n") + "\n");
    const reg = await api(p.url, "POST", "/v1/datasets", { file: "households.csv", policy: { allowedProtocols: ["federated-aggregate"], outputColumns: ["region", "spend"], allowedBuyers: ["bank"], minGroupSize: K, queryBudget: 100, budgetUnit: "jobs" } });
    expect(reg.status).toBe(201);
    const pub = await api(p.url, "POST", "/v1/products", { product: { id: `${name}.totals`, title: "Totals", datasets: [`${name}.households.csv`], protocols: ["federated-aggregate"], outputColumns: ["region", "spend"], prices: PRICES[name], share: SHARE[name] } });
    expect(pub.status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  for (const p of [bank, telco, retailer]) await p?.close();
  await x?.close();
  await pool.close();
});

describe("a two-provider job's receipt", () => {
  it("prices the released cells and splits each line among both providers by its share rule, exactly", async () => {
    const contracts: string[] = [];
    for (const [p, name] of [[telco, "telco"], [retailer, "retailer"]] as const) {
      const o = await api<{ id: string }>(bank.url, "POST", "/v1/orders", { product: `${name}.totals`, purpose: "research", quotaJobs: 2 });
      expect(o.status).toBe(201);
      expect((await api(p.url, "POST", `/v1/orders/${o.body.id}/approve`, {})).status).toBe(200);
      contracts.push(o.body.id);
    }
    const aggregate = { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "region", categories: CATEGORIES }, maxAbsValue: "1000" };
    const sub = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "federated-aggregate", providerDatasets: ["telco.households.csv", "retailer.households.csv"], params: { aggregate }, contracts });
    expect(sub.status).toBe(201);
    expect(await waitForJob(bank.url, sub.body.id, 120_000)).toMatchObject({ state: "succeeded" });
    await waitUntil(async () => ((await api<{ receipts: { acknowledged: boolean }[] }>(bank.url, "GET", `/v1/receipts?job=${sub.body.id}`)).body.receipts[0]?.acknowledged ?? false) === true, "the buyer's agent acknowledged the receipt");
    const receipt = x.store.receipts.byJob(sub.body.id)!.document as unknown as Receipt;

    // From the data: a category is released when the rows it keeps (each provider's, where it has at least k) reach k.
    const released = CATEGORIES.filter((c) => {
      const kept = Object.values(data).map((rows) => rows.filter((r) => r.region === c).length).filter((n) => n >= K);
      return kept.reduce((s, n) => s + n, 0) >= K;
    }).length;
    const cells = released * aggregate.aggregates.length;
    expect(released).toBe(3);
    const lineOf = (name: "telco" | "retailer") => PRICES[name].perJob + PRICES[name].perCell * cells;
    expect(receipt.lines.map((l) => [l.provider, l.units, l.amount])).toEqual([
      ["telco", { jobs: 1, cells }, lineOf("telco")],
      ["retailer", { jobs: 1, cells }, lineOf("retailer")],
    ]);
    expect(receipt.amount).toBe(lineOf("telco") + lineOf("retailer"));
    const byRows = split(lineOf("telco"), { telco: data.telco.length, retailer: data.retailer.length });
    const equal = split(lineOf("retailer"), { telco: 1, retailer: 1 });
    expect(receipt.shares).toEqual([
      { provider: "retailer", amount: (byRows["retailer"] as number) + (equal["retailer"] as number) },
      { provider: "telco", amount: (byRows["telco"] as number) + (equal["telco"] as number) },
    ]);
    expect(receipt.shares.reduce((s, r) => s + r.amount, 0)).toBe(receipt.amount);
    // The provider's statement through its own agent: its share.
    const st = await api<{ totals: { amount: number }[] }>(retailer.url, "GET", `/v1/statement?from=0&to=${Date.now() + 60_000}`);
    expect(st.body.totals).toEqual([{ currency: "EUR", role: "provider", amount: receipt.shares[0]!.amount, receipts: 1 }]);
  }, 180_000);
});
