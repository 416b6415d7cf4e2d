/**
 * What a party learns of datasets it may not use (found by the red team after
 * finding 8's fix): a buyer outside a dataset's allowed buyers learned that it
 * existed (403 buyer-not-allowed where a missing one gave 404) and its row
 * count (federated-aggregate's maxRowsPerProvider checked against it before
 * the policy, 20 probes for an exact count).
 *
 * Now such a dataset is answered exactly as one that does not exist — same
 * status, same body, nothing recorded — whatever the protocol or parameters.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { api, startNodes, type TestNodes, type TestParty } from "../helpers/nodes.js";
import { exchangeSnapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 1 });
let nodes: TestNodes;
let telco: TestParty;
let retailer: TestParty;
let bank: TestParty;

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "retailer", "bank"]);
  [telco, retailer, bank] = nodes.parties as [TestParty, TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "secret.csv"), "phone,region,spend\n" + Array.from({ length: 137 }, (_, i) => `${i},north,${i}`).join("\n") + "\n");
  writeFileSync(join(retailer.dataDir, "open.csv"), "phone,region,spend\n1,north,5\n");
  const policy = { allowedProtocols: ["psi", "federated-aggregate"], outputColumns: ["region", "spend"], keyColumns: ["phone"], allowedBuyers: ["insurer"] };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "secret.csv", policy })).status).toBe(201);
  expect((await api(retailer.url, "POST", "/v1/datasets", { file: "open.csv", policy: { ...policy, allowedBuyers: "any" } })).status).toBe(201);
  writeFileSync(join(bank.dataDir, "c.csv"), "phone\n1\n");
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const fa = (dataset: string, maxRowsPerProvider: number) =>
  api<unknown>(bank.url, "POST", "/v1/jobs", {
    protocol: "federated-aggregate",
    providerDatasets: [dataset, "retailer.open.csv"],
    params: { aggregate: { aggregates: [{ fn: "count" }], groupBy: { column: "region", categories: ["north"] }, maxRowsPerProvider } },
  });

describe("a dataset a buyer may not use is one that does not exist", () => {
  it("psi: the same 404 as for a missing dataset, nothing recorded", async () => {
    const before = exchangeSnapshot(nodes.x);
    const hidden = await api<unknown>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "c.csv", providerDataset: "telco.secret.csv", params: { keyColumns: ["phone"] } });
    const missing = await api<unknown>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "c.csv", providerDataset: "telco.nothing.csv", params: { keyColumns: ["phone"] } });
    expect([hidden.status, hidden.body]).toEqual([missing.status, missing.body]);
    expect(hidden.status).toBe(404);
    expect(exchangeSnapshot(nodes.x)).toEqual(before);
  });

  it("federated-aggregate: probing maxRowsPerProvider around the row count gives the same 404 every time", async () => {
    const before = exchangeSnapshot(nodes.x);
    const answers = new Set<string>();
    for (const rows of [1, 100, 136, 137, 138, 1_000]) {
      const r = await fa("telco.secret.csv", rows);
      answers.add(JSON.stringify([r.status, r.body]));
    }
    const missing = await fa("telco.nothing.csv", 137);
    expect([...answers]).toEqual([JSON.stringify([missing.status, missing.body])]);
    expect(exchangeSnapshot(nodes.x)).toEqual(before);
  });
});
