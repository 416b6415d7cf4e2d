/**
 * Finding 2 (high): key columns were not governed. With outputColumns
 * ["monthly_spend"], a buyer ran psi on the composite key phone + diagnosis
 * over 40 phones × 4 candidate diagnoses and learned each phone's diagnosis.
 *
 * The attack, through real agents and the exchange: the same 160-row probe is
 * refused (key-column-not-allowed) by the exchange with one ledger entry and
 * nothing else changed; the same job forced past the exchange (its check
 * skipped) is refused by the provider's own agent before it answers anything.
 * psi on the allowed key alone still runs.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { sealEnvelope } from "../../node/envelope.js";
import { appendEntry, LedgerKind, requestDigest } from "../../node/ledger.js";
import { parseJobRequest } from "../../node/policy.js";
import { CONTROL_STEP, ControlType } from "../../node/server/control.js";
import { api, startNodes, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let clinic: TestParty;
let bank: TestParty;

const DIAGNOSES = ["diabetes", "asthma", "hypertension", "none"];
const phones = Array.from({ length: 40 }, (_, i) => `1380000${String(i).padStart(4, "0")}`);

beforeAll(async () => {
  nodes = await startNodes(pool, ["clinic", "bank"]);
  x = nodes.x;
  [clinic, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(clinic.dataDir, "patients.csv"), "phone,diagnosis,monthly_spend\n" + phones.map((p, i) => `${p},${DIAGNOSES[i % 4]},${100 + i}`).join("\n") + "\n");
  // The probe: every phone with every candidate diagnosis.
  writeFileSync(join(bank.dataDir, "probe.csv"), "phone,diagnosis\n" + phones.flatMap((p) => DIAGNOSES.map((d) => `${p},${d}`)).join("\n") + "\n");
  writeFileSync(join(bank.dataDir, "phones.csv"), "phone\n" + phones.join("\n") + "\n");
  const policy = { allowedProtocols: ["psi"], outputColumns: ["monthly_spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs" };
  expect((await api(clinic.url, "POST", "/v1/datasets", { file: "patients.csv", policy })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const probe = { protocol: "psi", buyerDataset: "probe.csv", providerDataset: "clinic.patients.csv", params: { keyColumns: ["phone", "diagnosis"] } };

describe("finding 2: key columns are governed", () => {
  it("the exchange refuses psi on phone + diagnosis (key-column-not-allowed): one ledger entry, nothing else", async () => {
    const before = { x: snapshot(x.store), clinic: snapshot(clinic.store) };
    const ledger = [...x.store.ledgerRows()].length;
    const r = await api<{ error: { code: string; rule: string; message: string } }>(bank.url, "POST", "/v1/jobs", probe);
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "key-column-not-allowed" });
    expect(r.body.error.message).not.toMatch(/diabetes|asthma|1380000/);
    const added = [...x.store.ledgerRows()].slice(ledger);
    expect(added.map((e) => e.kind)).toEqual(["job.refused"]);
    expect(JSON.parse(added[0]?.body ?? "{}")).toMatchObject({ rule: "key-column-not-allowed", by: "exchange" });
    // Besides that entry and the refused job's record, the exchange and the provider are unchanged.
    expect(snapshot(clinic.store)).toBe(before.clinic);
    expect(x.store.listJobs({ state: ["submitted", "running", "succeeded"] }).length).toBe(0);
  });

  it("forced past the exchange, the provider's own agent refuses it before answering anything", async () => {
    // A job.start for the probe, signed by the exchange as if its check had passed.
    const id = "job-forced-probe";
    const request = parseJobRequest({ ...probe, buyer: "bank" });
    x.store.createJob({ id, protocol: "psi", buyer: "bank", providers: ["clinic"], params: { request } as never });
    const record = appendEntry(x.store, x.identity.signing, { kind: LedgerKind.JobSubmitted, job: id, body: { protocol: "psi", buyer: "bank", dataset: "clinic.patients.csv", cost: 1, request: requestDigest(request) } });
    const start = { type: ControlType.Start, job: id, role: "provider", request, counterpart: "bank", record };
    const clinicBefore = snapshot(clinic.store);
    x.app.mailboxes.put("clinic", sealEnvelope({ job: id, step: CONTROL_STEP, sender: x.identity, recipient: "clinic", sequence: 1_000_000, payload: new TextEncoder().encode(JSON.stringify(start)) }));
    await waitUntil(() => x.store.getJob(id)?.state === "refused", "the provider's refusal");
    expect(x.store.getJob(id)?.reason).toBe("key-column-not-allowed");
    // The provider recorded its refusal and nothing else: no budget spent, no step, no state.
    expect(clinic.store.getJob(id)?.state).toBe("refused");
    expect(clinic.store.listSteps(id)).toEqual([]);
    const parts = (snap: string) => JSON.parse(snap) as { budgets: unknown; policies: unknown; datasets: unknown; ledger: unknown };
    const after = parts(snapshot(clinic.store));
    const was = parts(clinicBefore);
    expect([after.budgets, after.policies, after.datasets]).toEqual([was.budgets, was.policies, was.datasets]);
    expect(x.store.listSteps(id)).toEqual([]);
  });

  it("psi on the allowed key alone still runs", async () => {
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "phones.csv", providerDataset: "clinic.patients.csv", params: { keyColumns: ["phone"] } });
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
  });
});
