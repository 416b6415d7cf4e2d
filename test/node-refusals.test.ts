/**
 * Every refusal at the exchange answers a clear error and changes nothing:
 * the stored jobs, parties, nonces and the ledger are compared before and
 * after. Bad signature, unknown sender, stale timestamp, reused nonce,
 * envelope for a job it does not belong to, oversized payload, a policy rule.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { sealEnvelope } from "../node/envelope.js";
import { generateIdentity, type NodeIdentity } from "../node/identity.js";
import { signRequest } from "../node/server/auth.js";
import { api, startNodes, waitForJob, type TestExchange, type TestParty, type TestNodes } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
let mallory: NodeIdentity;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Everything the exchange stores that a refused request must leave as it was. */
function snapshot(): string {
  const s = x.store;
  return JSON.stringify(
    {
      parties: s.listParties().map((p) => [p.name, hex(p.signingPublicKey)]),
      datasets: s.listDatasets().map((d) => [d.id, d.contentHash]),
      jobs: s.listJobs().map((j) => [j.id, j.state, j.reason]),
      ledger: [...s.ledgerRows()].map((r) => r.hash),
    },
    null,
    0,
  );
}

async function signed(id: NodeIdentity, method: string, path: string, body: unknown, opts: { time?: number; tamper?: boolean; contentType?: string; raw?: Uint8Array } = {}) {
  const bytes = opts.raw ?? new TextEncoder().encode(body === undefined ? "" : JSON.stringify(body));
  const headers: Record<string, string> = { ...signRequest(id, method, path, bytes, opts.time ?? Date.now()) };
  if (opts.tamper) headers["x-umbra-signature"] = "00".repeat(64);
  if (bytes.length > 0) headers["content-type"] = opts.contentType ?? "application/json";
  const res = await fetch(x.url + path, { method, headers, ...(bytes.length > 0 ? { body: bytes } : {}) });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string; rule?: string } }, headers };
}

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
  const reg = await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 10, budgetUnit: "jobs" } });
  expect(reg.status).toBe(201);
  mallory = generateIdentity("mallory");
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("refusals change nothing", () => {
  it("a bad signature", async () => {
    const before = snapshot();
    const r = await signed(generateIdentity("bank"), "GET", "/v1/datasets", undefined); // a key that is not bank's
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe("UMBRA_BAD_SIGNATURE");
    expect(snapshot()).toBe(before);
  });

  it("an unknown sender", async () => {
    const before = snapshot();
    const r = await signed(mallory, "GET", "/v1/datasets", undefined);
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe("UMBRA_UNKNOWN_SENDER");
    expect(snapshot()).toBe(before);
  });

  it("a stale timestamp", async () => {
    const before = snapshot();
    const r = await signed(telcoIdentity(), "GET", "/v1/datasets", undefined, { time: Date.now() - 10 * 60 * 1000 });
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe("UMBRA_STALE_MESSAGE");
    expect(snapshot()).toBe(before);
  });

  it("a reused nonce (a replayed request)", async () => {
    const id = telcoIdentity();
    const path = "/v1/datasets";
    const headers = signRequest(id, "GET", path, new Uint8Array(0));
    const first = await fetch(x.url + path, { headers });
    expect(first.status).toBe(200);
    const before = snapshot();
    const again = await fetch(x.url + path, { headers });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("UMBRA_REPLAY");
    expect(snapshot()).toBe(before);
  });

  it("an envelope for a job it does not belong to, and an oversized one", async () => {
    const id = telcoIdentity();
    const env = sealEnvelope({ job: "job-nope", step: 2, sender: id, recipient: "bank", sequence: 1, payload: new Uint8Array(10) });
    const before = snapshot();
    const r = await signed(id, "POST", "/v1/relay", undefined, { raw: env, contentType: "application/octet-stream" });
    expect(r.status).toBe(409);
    expect(r.body.error?.code).toBe("UMBRA_WRONG_JOB");
    const big = await signed(id, "POST", "/v1/relay", undefined, { raw: new Uint8Array(17 * 1024 * 1024), contentType: "application/octet-stream" }).catch(() => ({ status: 413 }));
    expect(big.status).toBe(413);
    expect(snapshot()).toBe(before);
  });

  it("a job against the policy: the exact rule, one ledger entry, nothing else", async () => {
    const ledgerBefore = [...x.store.ledgerRows()].length;
    const r = await api<{ error: { code: string; rule: string; message: string } }>(bank.url, "POST", "/v1/jobs", {
      protocol: "lookup",
      buyerDataset: "cust.csv",
      providerDataset: "telco.subs.csv",
      params: { keyColumns: ["phone"], outputColumns: ["phone2"], queryCount: 3 },
    });
    expect(r.status).toBe(403);
    expect(r.body.error.rule).toBe("protocol-not-allowed");
    expect(r.body.error.message).not.toMatch(/\b[234]\b/);
    const rows = [...x.store.ledgerRows()];
    expect(rows.length).toBe(ledgerBefore + 1);
    expect(rows.at(-1)?.kind).toBe("job.refused");
  });

  it("an allowed job still runs afterwards", async () => {
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
  });
});

function telcoIdentity(): NodeIdentity {
  return telco.identity;
}
