/**
 * Finding 8 (high): any registered party read the whole ledger through
 * GET /v1/audit — other parties' submissions, registrations and result
 * summaries such as a psi-cardinality count — and GET /v1/jobs/:id showed a
 * job's providers the buyer's result summary (a psi provider learned how many
 * matched).
 *
 * Shown here, against an exchange and real party agents on loopback: a party
 * outside a job reads of its entries only {seq, prevHash, hash, signature}
 * and still checks every link and signature of the chain; the provider of a
 * psi-cardinality job reads the job's entries in full, and neither they nor
 * its job view hold the count; the exchange stores no summary at all — its
 * job.result is the digest — while the buyer's own agent shows it; the
 * signed head is served; reading changes nothing at the exchange.
 */
import { createPublicKey, verify } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { GENESIS_HASH, verifiedEntry } from "../../node/ledger.js";
import { generateIdentity } from "../../node/identity.js";
import { api, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { exchangeSnapshot, signedRequest } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
let eve: TestParty;
let job: string;
let count: number;

interface Audit {
  readonly publicKey: string;
  readonly entries: readonly Record<string, unknown>[];
  readonly next?: number;
}

const SPKI = Buffer.from("302a300506032b6570032100", "hex");
const signedBy = (publicKeyHex: string, hash: string, signature: string): boolean =>
  verify(null, Buffer.from(hash, "hex"), createPublicKey({ key: Buffer.concat([SPKI, Buffer.from(publicKeyHex, "hex")]), format: "der", type: "spki" }), Buffer.from(signature, "hex"));

/** The whole ledger as `party` reads it, page by page. */
async function readLedger(party: TestParty): Promise<{ publicKey: string; entries: Record<string, unknown>[] }> {
  const entries: Record<string, unknown>[] = [];
  let publicKey = "";
  for (let after = 0; ; ) {
    const r = await signedRequest<Audit>(x.url, party.identity, "GET", `/v1/audit?after=${after}&limit=7`);
    expect(r.status).toBe(200);
    publicKey = r.body.publicKey;
    entries.push(...r.body.entries);
    if (r.body.next === undefined) break;
    after = r.body.next;
  }
  return { publicKey, entries };
}

beforeAll(async () => {
  x = await startExchange();
  telco = await startParty("telco", x.url, pool);
  bank = await startParty("bank", x.url, pool);
  eve = await startParty("eve", x.url, pool);
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n" + Array.from({ length: 40 }, (_, i) => `p${i}`).join("\n") + "\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n" + Array.from({ length: 30 }, (_, i) => `p${i + 23}`).join("\n") + "\n");
  writeFileSync(join(eve.dataDir, "own.csv"), "phone\nq1\nq2\n");
  const policy = { allowedProtocols: ["psi-cardinality"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 10, budgetUnit: "jobs" };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy })).status).toBe(201);
  expect((await api(eve.url, "POST", "/v1/datasets", { file: "own.csv", policy: { ...policy, allowedBuyers: ["eve"] } })).status).toBe(201);
  const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi-cardinality", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
  expect(r.status).toBe(201);
  job = r.body.id;
  expect(await waitForJob(bank.url, job)).toMatchObject({ state: "succeeded" });
  const res = await fetch(`${bank.url}/v1/jobs/${job}/result`, { headers: { authorization: `Bearer ${bank.agent.token}` } });
  count = (JSON.parse(await res.text()) as { count: number }).count;
  expect(count).toBe(17);
}, 60_000);

afterAll(async () => {
  for (const p of [eve, bank, telco]) await p?.close();
  await x?.close();
  await pool.close();
});

describe("finding 8: a party reads only its own entries of the ledger", () => {
  it("a party outside the job: its own entries in full, of every other one {seq, prevHash, hash, signature} only", async () => {
    const before = exchangeSnapshot(x);
    const { publicKey, entries } = await readLedger(eve);
    expect(publicKey).toBe(Buffer.from(x.publicKey).toString("hex"));
    const all = [...x.store.ledgerRows()];
    expect(entries.map((e) => e["seq"])).toEqual(all.map((r) => r.seq));
    const full = entries.filter((e) => "body" in e);
    // Eve's registration, her dataset's registration, its policy and its certificate: nothing else.
    expect(full.map((e) => [e["kind"], e["job"]])).toEqual([["party.registered", null], ["dataset.registered", null], ["policy.changed", null], ["dataset.certified", null]]);
    expect(full.map((e) => (e["body"] as Record<string, unknown>)["dataset"] ?? (e["body"] as Record<string, unknown>)["name"])).toEqual(["eve", "eve.own.csv", "eve.own.csv", "eve.own.csv"]);
    for (const e of entries.filter((e) => !("body" in e))) expect(Object.keys(e).sort()).toEqual(["hash", "prevHash", "seq", "signature"]);
    // Nothing of the bank's job, of the telco's or the bank's registrations reaches her.
    const text = JSON.stringify(entries);
    const resultDigest = (JSON.parse([...x.store.ledgerRows({ job })].find((r) => r.kind === "job.result")?.body ?? "{}") as { digest: string }).digest;
    expect(resultDigest).toMatch(/^[0-9a-f]{64}$/);
    for (const secret of [job, "telco", "bank", "psi-cardinality", "job.result", "job.submitted", resultDigest]) expect(text).not.toContain(secret);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("with what she reads she checks every link and every signature of the chain, and her own entries' hashes", async () => {
    const { publicKey, entries } = await readLedger(eve);
    let prev = GENESIS_HASH;
    for (const e of entries) {
      expect(e["prevHash"]).toBe(prev);
      expect(signedBy(publicKey, e["hash"] as string, e["signature"] as string)).toBe(true);
      if ("body" in e) expect(verifiedEntry(e, x.publicKey)?.hash).toBe(e["hash"]);
      prev = e["hash"] as string;
    }
    const head = await signedRequest<{ seq: number; hash: string; signature: string; at: number }>(x.url, eve.identity, "GET", "/v1/audit/head");
    expect(head.status).toBe(200);
    const last = x.store.ledgerHead();
    expect(head.body).toEqual({ seq: last?.seq, hash: last?.hash, signature: last?.signature, at: last?.at });
    expect(head.body.hash).toBe(prev);
    expect(signedBy(publicKey, head.body.hash, head.body.signature)).toBe(true);
  });

  it("asking for another party's job by id is answered as for no job at all", async () => {
    const before = exchangeSnapshot(x);
    const r = await signedRequest(x.url, eve.identity, "GET", `/v1/audit?job=${job}`);
    expect(r.status).toBe(404);
    expect(r.body.error?.code).toBe("UMBRA_NOT_FOUND");
    expect(JSON.stringify(r.body)).not.toContain(job);
    const v = await signedRequest(x.url, eve.identity, "GET", `/v1/jobs/${job}`);
    expect(v.status).toBe(404);
    expect(exchangeSnapshot(x)).toBe(before);
  });

  it("the provider reads its job's entries in full — and the count is in none of them, nor in its view of the job", async () => {
    const r = await signedRequest<Audit>(x.url, telco.identity, "GET", `/v1/audit?job=${job}`);
    expect(r.status).toBe(200);
    expect(r.body.entries.every((e) => "body" in e && e["job"] === job)).toBe(true);
    expect(r.body.entries.map((e) => e["kind"])).toContain("job.submitted");
    const result = r.body.entries.find((e) => e["kind"] === "job.result");
    expect(Object.keys(result?.["body"] as object)).toEqual(["digest"]);
    const view = await signedRequest<{ state: string; progress: Record<string, unknown> | null }>(x.url, telco.identity, "GET", `/v1/jobs/${job}`);
    expect(view.body.state).toBe("succeeded");
    // Its own progress at most: never the buyer's counts, never a summary.
    expect(Object.keys(view.body.progress ?? {}).filter((k) => k !== "telco")).toEqual([]);
    expect(JSON.stringify(view.body)).not.toMatch(/"count"|"bank":\{/);
  });

  it("the exchange keeps no summary: its job.result is the digest and the job's progress holds no count; the buyer's agent shows its own", async () => {
    const result = [...x.store.ledgerRows({ job })].find((r) => r.kind === "job.result");
    expect(Object.keys(JSON.parse(result?.body ?? "{}") as object)).toEqual(["digest"]);
    expect(JSON.stringify(x.store.getJob(job)?.progress ?? null)).not.toContain('"count"');
    for (const r of x.store.ledgerRows()) expect(r.body).not.toMatch(/"summary"|"count"/);
    const mine = await api<{ state: string; progress: unknown }>(bank.url, "GET", `/v1/jobs/${job}`);
    expect(mine.body).toMatchObject({ state: "succeeded", progress: { count } });
    // The buyer's view at the exchange itself: every party's progress, but no summary either.
    const atExchange = await signedRequest<{ progress: unknown }>(x.url, bank.identity, "GET", `/v1/jobs/${job}`);
    expect(JSON.stringify(atExchange.body.progress)).not.toContain('"count"');
  });

  it("a key that is not registered reads nothing", async () => {
    const before = exchangeSnapshot(x);
    const r = await signedRequest(x.url, generateIdentity("mallory"), "GET", "/v1/audit");
    expect(r.status).toBe(401);
    expect(r.body.error?.code).toBe("UMBRA_UNKNOWN_SENDER");
    const h = await signedRequest(x.url, generateIdentity("mallory"), "GET", "/v1/audit/head");
    expect(h.status).toBe(401);
    expect(exchangeSnapshot(x)).toBe(before);
  });
});
