/**
 * The node end to end in one process: an exchange and two parties on
 * loopback run psi, psi-cardinality and lookup as real jobs; refusals name
 * their rule and change nothing; the audit ledger verifies and detects an edit.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { verifyLedger } from "../node/ledger.js";
import { api, partyHeaders, startNodes, waitForJob, type TestExchange, type TestParty, type TestNodes } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;

const phones = (from: number, n: number) => Array.from({ length: n }, (_, i) => `+86 138 ${String(10_000_000 + from + i)}`);

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  const tp = phones(0, 300);
  writeFileSync(join(telco.dataDir, "subscribers.csv"), "phone,spend\n" + tp.map((p, i) => `${p},${(i * 1.5).toFixed(1)}`).join("\n") + "\n");
  const bp = [...phones(200, 200), "", "+86 138 10000205"];
  writeFileSync(join(bank.dataDir, "customers.csv"), "phone,grade\n" + bp.map((p, i) => `${p},${"ABC"[i % 3]}`).join("\n") + "\n");
  const reg = await api<{ id: string }>(telco.url, "POST", "/v1/datasets", {
    file: "subscribers.csv",
    policy: { allowedProtocols: ["psi", "psi-cardinality", "lookup"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100_000, budgetUnit: "keys", expiresAt: null },
  });
  expect(reg.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("jobs through the nodes", () => {
  it("psi: the buyer fetches its matching rows; the ledger records the job", async () => {
    const submit = await api<{ id: string; state: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "psi",
      buyerDataset: "customers.csv",
      providerDataset: "telco.subscribers.csv",
      params: { keyColumns: ["phone"], queryCount: 202 },
    });
    expect(submit.status).toBe(201);
    const done = await waitForJob(bank.url, submit.body.id);
    expect(done).toMatchObject({ state: "succeeded" });
    const res = await fetch(`${bank.url}/v1/jobs/${submit.body.id}/result`, { headers: partyHeaders(bank.url) });
    expect(res.status).toBe(200);
    const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    expect(table.numRows).toBe(101); // 100 shared phones, one of them twice; the empty phone never matches
    const v = verifyLedger(x.store, x.publicKey);
    expect(v.ok).toBe(true);
    const kinds = x.store.ledgerRows({ job: submit.body.id });
    expect([...kinds].map((r) => r.kind)).toEqual(expect.arrayContaining(["job.submitted", "job.step", "job.result"]));
  });

  it("refuses a job against the policy with the exact rule, and records it", async () => {
    const before = [...x.store.ledgerRows()].length;
    const r = await api<{ error: { code: string; rule: string } }>(bank.url, "POST", "/v1/jobs", {
      protocol: "join-aggregate",
      buyerDataset: "customers.csv",
      providerDataset: "telco.subscribers.csv",
      params: { keyColumns: ["phone"], mode: "count", queryCount: 10 },
    });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "protocol-not-allowed" });
    expect([...x.store.ledgerRows()].length).toBe(before + 1);
  });

  it("psi-cardinality and lookup run as jobs", async () => {
    const card = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi-cardinality", buyerDataset: "customers.csv", providerDataset: "telco.subscribers.csv", params: { keyColumns: ["phone"], queryCount: 202 } });
    expect(card.status).toBe(201);
    expect(await waitForJob(bank.url, card.body.id)).toMatchObject({ state: "succeeded" });
    const c = await fetch(`${bank.url}/v1/jobs/${card.body.id}/result`, { headers: partyHeaders(bank.url) });
    expect(JSON.parse(await c.text())).toEqual({ count: 100 });

    const lk = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "lookup", buyerDataset: "customers.csv", providerDataset: "telco.subscribers.csv", params: { keyColumns: ["phone"], outputColumns: ["spend"], queryCount: 202 } });
    expect(lk.status).toBe(201);
    expect(await waitForJob(bank.url, lk.body.id)).toMatchObject({ state: "succeeded" });
    const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${lk.body.id}/result`, { headers: partyHeaders(bank.url) })).arrayBuffer()));
    expect(t.numRows).toBe(202);
    expect(t.schema.fields.map((f) => f.name)).toEqual(["phone", "grade", "spend"]);
    expect(t.getChild("spend")!.toArray().filter((v: unknown) => v !== null && !Number.isNaN(v)).length).toBeGreaterThan(0);
  });

  it("the ledger verifies", async () => {
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
  });

  it("both APIs document themselves as OpenAPI", async () => {
    const xdoc = (await (await fetch(`${x.url}/documentation/json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(xdoc.openapi).toMatch(/^3\./);
    expect(Object.keys(xdoc.paths)).toEqual(expect.arrayContaining(["/v1/jobs", "/v1/datasets", "/v1/relay", "/v1/mailbox", "/v1/audit"]));
    const pdoc = (await (await fetch(`${bank.url}/documentation/json`, { headers: partyHeaders(bank.url) })).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(pdoc.paths)).toEqual(expect.arrayContaining(["/v1/jobs", "/v1/datasets", "/v1/jobs/{id}/result"]));
  });
});
