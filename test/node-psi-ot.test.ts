/**
 * psi-ot as a node job: an exchange and two parties on loopback; a dataset
 * whose policy names psi-ot runs it and the buyer fetches the same rows psi
 * gives; a dataset whose policy allows psi only refuses psi-ot (a provider
 * opts in by name).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { api, partyHeaders, startNodes, waitForJob, type TestParty, type TestNodes } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 1 });
let nodes: TestNodes;
let telco: TestParty;
let bank: TestParty;

const phones = (from: number, n: number) => Array.from({ length: n }, (_, i) => `+86 138 ${String(10_000_000 + from + i)}`);
const policy = (allowedProtocols: string[]) => ({ allowedProtocols, keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100_000, budgetUnit: "keys", expiresAt: null });

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  const tp = phones(0, 300);
  writeFileSync(join(telco.dataDir, "subscribers.csv"), "phone,spend\n" + tp.map((p, i) => `${p},${i}`).join("\n") + "\n");
  writeFileSync(join(telco.dataDir, "psi-only.csv"), "phone,spend\n" + tp.map((p, i) => `${p},${i}`).join("\n") + "\n");
  const bp = [...phones(200, 200), "", "+86 138 10000205"];
  writeFileSync(join(bank.dataDir, "customers.csv"), "phone,grade\n" + bp.map((p, i) => `${p},${"ABC"[i % 3]}`).join("\n") + "\n");
  for (const [file, protocols] of [["subscribers.csv", ["psi", "psi-ot"]], ["psi-only.csv", ["psi"]]] as const) {
    const reg = await api(telco.url, "POST", "/v1/datasets", { file, policy: policy([...protocols]) });
    expect(reg.status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const job = (protocol: string, providerDataset: string) => ({ protocol, buyerDataset: "customers.csv", providerDataset, params: { keyColumns: ["phone"], queryCount: 202 } });

async function rowsOf(id: string): Promise<unknown[]> {
  expect(await waitForJob(bank.url, id)).toMatchObject({ state: "succeeded" });
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  expect(res.status).toBe(200);
  return tableFromIPC(new Uint8Array(await res.arrayBuffer())).toArray().map((r) => JSON.stringify(r));
}

describe("psi-ot through the nodes", () => {
  it("runs under a policy that names it, and the buyer gets the rows psi gives", async () => {
    const ot = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", job("psi-ot", "telco.subscribers.csv"));
    expect(ot.status).toBe(201);
    const otRows = await rowsOf(ot.body.id);
    expect(otRows.length).toBe(101); // 100 shared phones, one of them twice; the empty phone never matches
    const psi = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", job("psi", "telco.subscribers.csv"));
    expect(otRows).toEqual(await rowsOf(psi.body.id));
  });

  it("is refused under a policy that allows psi only", async () => {
    const r = await api<{ error: { code: string; rule: string } }>(bank.url, "POST", "/v1/jobs", job("psi-ot", "telco.psi-only.csv"));
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "protocol-not-allowed" });
  });
});
