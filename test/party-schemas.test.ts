/**
 * The party agent's local API takes its documents on the same schemas as the
 * exchange (node/schemas/): its OpenAPI document describes the policy a file
 * is offered under and the job request a buyer submits, and a body failing
 * its schema is refused before the handler runs — with the document's own
 * code, naming the field — so nothing is read, registered or submitted.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { api, partyHeaders, startNodes, type TestNodes, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 1 });
let nodes: TestNodes;
let telco: TestParty;

type Doc = { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, { properties?: Record<string, unknown> }> } }> } }>> };

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco"]);
  [telco] = nodes.parties as [TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n");
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("the party agent's route schemas", () => {
  it("its OpenAPI document describes the policy a file is registered under, and a job request", async () => {
    const doc = (await (await fetch(`${telco.url}/documentation/json`, { headers: partyHeaders(telco.url) })).json()) as Doc;
    const datasets = doc.paths["/v1/datasets"]?.["post"]?.requestBody?.content["application/json"]?.schema;
    expect(Object.keys(datasets?.properties["policy"]?.properties ?? {})).toContain("keyColumns");
    const jobs = doc.paths["/v1/jobs"]?.["post"]?.requestBody?.content["application/json"]?.schema;
    expect(Object.keys(jobs?.properties ?? {})).toEqual(["protocol", "buyer", "buyerDataset", "providerDataset", "providerDatasets", "params", "contracts"]);
  });

  it("a policy failing its schema is refused with 400 UMBRA_INVALID_POLICY naming the field; nothing is registered here or at the exchange", async () => {
    const r = await api<{ error: { code: string; message: string } }>(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], budgetUnit: "rows" } });
    expect([r.status, r.body.error.code, r.body.error.message]).toEqual([400, "UMBRA_INVALID_POLICY", 'invalid policy: budgetUnit: must be one of "keys", "jobs"']);
    expect(telco.store.listDatasets()).toEqual([]);
    expect(nodes.x.store.listDatasets()).toEqual([]);
  });

  it("a job request failing its schema is refused with 400 UMBRA_INVALID_JOB_REQUEST before it reaches the exchange", async () => {
    const r = await api<{ error: { code: string; message: string } }>(telco.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "subs.csv", providerDataset: "x.y", params: { keyColumns: "phone" } });
    expect([r.status, r.body.error.code, r.body.error.message]).toEqual([400, "UMBRA_INVALID_JOB_REQUEST", "invalid job request: params.keyColumns: must be an array of the join key columns (several for a composite key)"]);
    expect(nodes.x.store.listJobs()).toEqual([]);
  });
});
