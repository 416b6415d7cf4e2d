/**
 * A party's local API stays available while a join-aggregate job runs
 * (security finding 14): an exchange and two party agents in this process,
 * a job of 20,000 rows per side (its column work and HE on the pool's
 * workers, the rest in slices), and every status request a client sends
 * the buyer's and the provider's agents meanwhile — forwarded by each to the
 * exchange, as `umbra job submit --wait` polls — is answered 200, until the
 * job has succeeded.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { api, startExchange, startParty, type TestExchange, type TestParty } from "./helpers/nodes.js";

const N = 20_000;
const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;

beforeAll(async () => {
  x = await startExchange({ pool });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  // Half of the keys shared; the buyer's rows in 10 groups; the provider's values within ±1000.
  const buyer = ["id,segment", ...Array.from({ length: N }, (_, i) => `c-${i},g${i % 10}`)];
  const provider = ["id,spend", ...Array.from({ length: N }, (_, j) => `c-${N / 2 + j},${((N / 2 + j) * 7919) % 2001 - 1000}`)];
  writeFileSync(join(bank.dataDir, "customers.csv"), buyer.join("\n") + "\n");
  writeFileSync(join(telco.dataDir, "usage.csv"), provider.join("\n") + "\n");
  const policy = { allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 10, budgetUnit: "jobs", expiresAt: null };
  const r = await api(telco.url, "POST", "/v1/datasets", { file: "usage.csv", policy });
  if (r.status !== 201) throw new Error(`dataset registration answered ${r.status}`);
}, 60_000);

afterAll(async () => {
  for (const p of [bank, telco]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("a party's API during a job", () => {
  it("answers every status request 200 while a join-aggregate job runs, and the job succeeds", async () => {
    const submitted = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "join-aggregate",
      buyerDataset: "customers.csv",
      providerDataset: "telco.usage.csv",
      params: { keyColumns: ["id"], aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "var", column: "spend" }], groupBy: { column: "segment" }, maxAbsValue: "1000" } },
    });
    const id = submitted.body.id;
    const statuses = new Set<number>();
    let state = "submitted";
    // Both agents polled in turn, each request after the previous answer, until the buyer's shows the job ended.
    for (let i = 0; state === "submitted" || state === "running"; i++) {
      const r = await api<{ state?: string }>(i % 2 === 0 ? bank.url : telco.url, "GET", `/v1/jobs/${id}`);
      statuses.add(r.status);
      if (i % 2 === 0 && r.status === 200 && typeof r.body.state === "string") state = r.body.state;
      await new Promise((res) => setTimeout(res, 25));
    }
    expect({ statuses: [...statuses], state }).toEqual({ statuses: [200], state: "succeeded" });
  }, 180_000);
});
