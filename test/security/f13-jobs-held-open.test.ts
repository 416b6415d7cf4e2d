/**
 * Finding 13 (part, medium): the exchange recorded a job's activity before it
 * validated the event — any party of a job kept it (and the exchange's HE
 * role) alive forever with invalid events.
 *
 * Shown here, against an exchange on loopback with a short silence timeout
 * and parties driven by hand: a party sends invalid events (and repeats of
 * a progress report already stored) every 200 ms; each is refused (or
 * changes nothing) and leaves the exchange as it was; the job fails on time
 * all the same — a two-party job waiting for its provider, a running one,
 * and a federated-aggregate job whose exchange-side role is up — and the
 * exchange then holds nothing for it in memory.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import type { NodeIdentity } from "../../node/identity.js";
import { startExchange, type TestExchange } from "../helpers/nodes.js";
import { exchangeSnapshot, handJob, handParty, signedRequest, takeMail } from "./kit.js";

const pool = new CryptoPool({ threads: 1 });
let x: TestExchange;

beforeAll(async () => {
  x = await startExchange({ jobTimeoutMs: 1_500, pool });
});

afterAll(async () => {
  await x?.close();
  await pool.close();
});

/**
 * Sends `events` (by `who`, in turn, one every 200 ms) until the job is no
 * longer open; each answer must be one of `refusals` and leave the exchange
 * unchanged, except the last, which may meet the job just ended. Returns the
 * job as it ended.
 */
async function holdOpen(job: string, senders: readonly { who: NodeIdentity; event: Record<string, unknown>; status: number }[]) {
  const open = () => ["submitted", "running"].includes(x.store.getJob(job)?.state ?? "");
  const deadline = Date.now() + 60_000;
  let sent = 0;
  let checked = 0;
  while (open() && Date.now() < deadline) {
    const s = senders[sent++ % senders.length] as (typeof senders)[number];
    const before = exchangeSnapshot(x);
    const r = await signedRequest(x.url, s.who, "POST", `/v1/jobs/${job}/events`, { body: s.event });
    if (open()) {
      expect(r.status, JSON.stringify(s.event)).toBe(s.status);
      expect(exchangeSnapshot(x), JSON.stringify(s.event)).toBe(before);
      checked++;
    }
    await new Promise((res) => setTimeout(res, 200)); // the attacker's pace
  }
  expect(checked).toBeGreaterThan(0);
  return x.store.getJob(job);
}

const invalid = (buyer: NodeIdentity, provider: NodeIdentity) => [
  { who: buyer, event: { kind: "bogus" }, status: 400 },
  { who: buyer, event: { kind: "accepted" }, status: 400 }, // a buyer does not accept
  { who: buyer, event: { kind: "progress", progress: { phase: "x", done: -1, total: 1 } }, status: 400 },
  { who: buyer, event: { kind: "progress", progress: { phase: "\u0000", done: 1, total: 1 } }, status: 400 },
  { who: buyer, event: { kind: "charged", units: 1 }, status: 400 }, // only a provider reports a charge
  { who: provider, event: { kind: "succeeded", digest: "00".repeat(32) }, status: 400 }, // only the buyer succeeds
  { who: provider, event: { kind: "refused", rule: "r".repeat(65) }, status: 400 },
  { who: buyer, event: { kind: "progress" }, status: 400 },
  { who: buyer, event: { kind: "succeeded", digest: "not a digest" }, status: 400 },
];

describe("finding 13: invalid events do not keep a job open", () => {
  it("a job waiting for its provider, attacked by both its parties: fails on time with UMBRA_JOB_TIMEOUT", async () => {
    const bank = await handParty(x, "bank");
    const telco = await handParty(x, "telco");
    const job = await handJob(x, bank, telco, { accept: false });
    const ended = await holdOpen(job, [...invalid(bank, telco), { who: bank, event: { kind: "succeeded", digest: "00".repeat(32) }, status: 409 }]);
    expect(ended).toMatchObject({ state: "failed", reason: "UMBRA_JOB_TIMEOUT" });
    expect(x.app.inMemory()).toEqual({ roleJobs: 0, activity: 0 });
  }, 90_000);

  it("a running job whose buyer repeats a progress report already stored: fails on time", async () => {
    const bank = await handParty(x, "bank2");
    const telco = await handParty(x, "telco2");
    const job = await handJob(x, bank, telco, { file: "e.csv" });
    const progress = { kind: "progress", progress: { phase: "buyer: hash and blind", done: 5, total: 10 } };
    expect((await signedRequest(x.url, bank, "POST", `/v1/jobs/${job}/events`, { body: progress })).status).toBe(200);
    const ended = await holdOpen(job, [{ who: bank, event: progress, status: 200 }, ...invalid(bank, telco)]);
    expect(ended).toMatchObject({ state: "failed", reason: "UMBRA_JOB_TIMEOUT" });
    expect(x.app.inMemory()).toEqual({ roleJobs: 0, activity: 0 });
  }, 90_000);

  it("a federated-aggregate job with the exchange's role up, a provider sending invalid events: fails on time naming whom it waits for; the role is freed", async () => {
    const bank = await handParty(x, "bank3");
    const providers = [await handParty(x, "north"), await handParty(x, "south")];
    const policy = { allowedProtocols: ["federated-aggregate"], outputColumns: ["region", "spend"], allowedBuyers: ["bank3"], minGroupSize: 1, queryBudget: 10, budgetUnit: "jobs" };
    for (const p of providers) {
      const d = { id: `${p.name}.h.csv`, owner: p.name, name: "h.csv", schema: [{ name: "region", type: "Utf8" }, { name: "spend", type: "Int64" }], rowCount: 50, contentHash: "cd".repeat(32), createdAt: new Date().toISOString() };
      expect((await signedRequest(x.url, p, "POST", "/v1/datasets", { body: { descriptor: d, policy } })).status).toBe(201);
    }
    const sub = await signedRequest<{ id: string }>(x.url, bank, "POST", "/v1/jobs", {
      body: { protocol: "federated-aggregate", buyer: "bank3", providerDatasets: ["north.h.csv", "south.h.csv"], params: { aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], maxAbsValue: "1000" } } },
    });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    const job = sub.body.id;
    for (const p of providers) {
      await takeMail(x, p);
      expect((await signedRequest(x.url, p, "POST", `/v1/jobs/${job}/events`, { body: { kind: "accepted" } })).status).toBe(200);
    }
    expect(x.store.getJob(job)?.state).toBe("running");
    expect(x.app.inMemory().roleJobs).toBe(1);
    const [north, south] = providers as [NodeIdentity, NodeIdentity];
    const ended = await holdOpen(job, [
      { who: north, event: { kind: "bogus" }, status: 400 },
      { who: north, event: { kind: "accepted" }, status: 200 }, // accepted already: changes nothing
      { who: south, event: { kind: "succeeded", digest: "00".repeat(32) }, status: 400 },
      { who: north, event: { kind: "progress", progress: { phase: "x", done: 1 } }, status: 400 },
    ]);
    expect(ended).toMatchObject({ state: "failed", reason: "UMBRA_MISSING_PARTY" });
    const failed = [...x.store.ledgerRows({ job })].find((r) => r.kind === "job.failed");
    // The role waits for the buyer's key first.
    expect((JSON.parse(failed?.body ?? "{}") as { missing?: string[] }).missing).toEqual(["bank3"]);
    expect(x.app.inMemory()).toEqual({ roleJobs: 0, activity: 0 });
  }, 90_000);
});
