/**
 * Durable jobs, in process (the chaos harness, test/chaos.test.ts, kills real
 * processes): a provider, a buyer or the exchange that stops mid-job and
 * comes back with its store takes the job up where it stopped, and the job
 * succeeds with the plaintext answer and one result entry; a dataset file
 * changed meanwhile fails the job with a clear code; a party that does not
 * come back makes the exchange fail the job after the silence timeout,
 * naming it. Nothing partial is released to the buyer.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { listEntries, LedgerKind } from "../node/ledger.js";
import { tableFromIPC } from "apache-arrow";
import { api, partyHeaders, startExchange, startParty, waitForJob, waitUntil, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;

const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `k${from + i}`).join("\n");
/** The plaintext answer: the bank's keys the telco also has. */
const expected = Array.from({ length: 30_000 }, (_, i) => `k${30_000 + i}`).sort();

beforeAll(async () => {
  // Long enough that a loaded machine's slowest stretch between two progress reports (16,384 exponentiations per party) is not taken for silence.
  x = await startExchange({ jobTimeoutMs: 15_000 });
  telco = await startParty("telco", x.url, pool);
  bank = await startParty("bank", x.url, pool);
  writeFileSync(join(telco.dataDir, "big.csv"), "k\n" + rows(60_000) + "\n");
  writeFileSync(join(bank.dataDir, "mine.csv"), "k\n" + rows(60_000, 30_000) + "\n");
  await api(telco.url, "POST", "/v1/datasets", { file: "big.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: "any", queryBudget: 100, budgetUnit: "jobs" } });
}, 60_000);

afterAll(async () => {
  await telco?.close().catch(() => undefined);
  await bank?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

const submit = async (): Promise<string> => (await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "mine.csv", providerDataset: "telco.big.csv", params: { keyColumns: ["k"] } })).body.id;

async function running(id: string): Promise<void> {
  await waitUntil(async () => (await api<{ state: string }>(bank.url, "GET", `/v1/jobs/${id}`)).body.state === "running", "the job to run");
}

/** The buyer's result file, as sorted keys. */
async function resultKeys(id: string): Promise<string[]> {
  const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
  expect(res.status).toBe(200);
  const t = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
  return Array.from({ length: t.numRows }, (_, i) => String(t.getChild("k")?.get(i))).sort();
}

/** One ledger entry of each kind that happens once per job. */
function onceEach(id: string): void {
  const entries = listEntries(x.store, { job: id });
  const count = (kind: string, step?: string) => entries.filter((e) => e.kind === kind && (step === undefined || e.body["step"] === step)).length;
  expect([count(LedgerKind.JobSubmitted), count(LedgerKind.JobResult), count(LedgerKind.JobStep, "accepted")]).toEqual([1, 1, 1]);
  const digests = entries.filter((e) => e.kind === LedgerKind.JobStep && typeof e.body["digest"] === "string").map((e) => e.body["digest"]);
  expect(new Set(digests).size).toBe(digests.length);
}

describe("durable jobs", () => {
  it("a provider stopped mid-job and started again with its store takes the job up: it succeeds with the plaintext answer, each entry once", async () => {
    const id = await submit();
    await running(id);
    telco = await telco.restart();
    expect(await waitForJob(bank.url, id, 60_000)).toMatchObject({ state: "succeeded" });
    expect(await resultKeys(id)).toEqual(expected);
    onceEach(id);
  }, 90_000);

  it("a buyer stopped mid-job and started again with its store takes the job up", async () => {
    const id = await submit();
    await running(id);
    bank = await bank.restart();
    expect(await waitForJob(bank.url, id, 60_000)).toMatchObject({ state: "succeeded" });
    expect(await resultKeys(id)).toEqual(expected);
    onceEach(id);
  }, 90_000);

  it("the exchange restarted mid-job with its store: queued envelopes are delivered, the job succeeds", async () => {
    const id = await submit();
    await running(id);
    x = await x.restart();
    expect(await waitForJob(bank.url, id, 60_000)).toMatchObject({ state: "succeeded" });
    expect(await resultKeys(id)).toEqual(expected);
    onceEach(id);
    expect(x.app.mailboxes.sizes()).toEqual({});
  }, 90_000);

  it("a dataset file changed while its provider was down: the job fails with UMBRA_DATASET_CHANGED, nothing released", async () => {
    const id = await submit();
    await running(id);
    await telco.agent.stop();
    writeFileSync(join(telco.dataDir, "big.csv"), "k\n" + rows(60_000, 1) + "\n");
    telco = await startParty("telco", x.url, pool, { store: telco.store, identity: telco.identity, dataDir: telco.dataDir });
    expect(await waitForJob(bank.url, id, 60_000)).toMatchObject({ state: "failed", reason: "UMBRA_DATASET_CHANGED" });
    expect((await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
    writeFileSync(join(telco.dataDir, "big.csv"), "k\n" + rows(60_000) + "\n");
  }, 90_000);

  it("a party gone for good: the exchange fails the job after the silence timeout, naming it", async () => {
    const id = await submit();
    await running(id);
    await telco.agent.stop();
    expect(await waitForJob(bank.url, id, 60_000)).toMatchObject({ state: "failed", reason: "UMBRA_MISSING_PARTY" });
    const failed = listEntries(x.store, { job: id }).find((e) => e.kind === LedgerKind.JobFailed);
    expect(failed?.body).toMatchObject({ reason: "UMBRA_MISSING_PARTY", missing: ["telco"] });
    expect((await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
    telco = await startParty("telco", x.url, pool, { store: telco.store, identity: telco.identity, dataDir: telco.dataDir });
  }, 90_000);
});
