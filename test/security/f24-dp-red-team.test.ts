/**
 * Red team of differential-privacy budgets (policy `privacyBudget { rho }`,
 * node/rho.ts, node/policy.ts checkPrivacy / spendPrivacy) and of psi-ot
 * node jobs, against a real exchange and real party agents on loopback
 * (bank the buyer, telco and retailer the providers). Requests are sent
 * raw to the exchange, signed with the buyer's own key, as an attacker
 * holding that key would — or through the buyer's agent where it is the
 * agent that is attacked. Each attack names the refusal it meets and shows
 * what the exchange and the provider spent (privacy and query budgets) and
 * the ledger as they were: a request refused as malformed (400) leaves the
 * exchange and the provider exactly as they were; a job refused by a policy
 * rule (403) records only that refusal (one job.refused entry naming the
 * rule), nothing spent.
 *
 * ρ as written (join-aggregate on a dataset with a budget of 1/2):
 *  1. ρ negative, zero, "1/0", "0/5", "NaN", "Infinity", hex, "1/2/3",
 *     padded, an exponent of four digits, a 31-digit numerator, a
 *     negative or zero number, null, an object, a boolean: 400
 *     UMBRA_INVALID_JOB_REQUEST naming params.aggregate.dp.rho, nothing changed.
 *  2. ρ exact but too small to run ("1e-400": its exact form is longer
 *     than a protocol reads; "1/999…9": the noise it needs does not fit in
 *     64 bits): 400 UMBRA_INVALID_JOB_REQUEST on params.aggregate, nothing
 *     changed — it is never charged a rounded 0.
 *  3. ρ over the budget by 10^-22 ("0.5000000000000000000001") and a
 *     30-digit numerator: 403 privacy-budget-exhausted; "999…9e999", whose
 *     exact form is longer than a protocol reads: 400, nothing changed.
 * Without dp:
 *  4. join-aggregate (params.aggregate without dp, and the older `mode`
 *     form that carries none) and federated-aggregate on budgeted datasets:
 *     403 dp-required; federated-aggregate's older single-dataset `mode`
 *     form: 400 (the exchange runs only the multi-provider form).
 * dp.maxRowsPerKey (join-aggregate's cap of the buyer's rows per key):
 *  5. 50 runs with that cap and the ledger records it with the ρ (left out:
 *     1); 0, 65,537, 1.5 or a string, or the field on federated-aggregate,
 *     or any other dp field: 400 UMBRA_INVALID_JOB_REQUEST, nothing changed.
 * Spending:
 *  6. six jobs racing, each 1/10 spelled differently ("0.1", "1/10",
 *     "2/20", 0.1, "1e-1", "0.10"), on a budget of 1/2: exactly five pass,
 *     the sixth is privacy-budget-exhausted; the exchange and the provider
 *     each spend exactly 1/2; each job's ledger entry charges the ρ (1/10,
 *     canonical) the provider runs with; then another of 1/10 and one of
 *     10^-15 are privacy-budget-exhausted.
 *     The provider registering the dataset again (update) keeps the spend.
 *  7. federated-aggregate with ρ "2/4": charged 1/2 to both providers'
 *     datasets (at the exchange and in each provider's copy); the next,
 *     however small, is privacy-budget-exhausted.
 *  8. the provider's own copy: an exchange whose copy of the spend lags
 *     behind the provider's (restored from an older backup) passes a job
 *     the provider's copy does not: the provider refuses it
 *     (privacy-budget-exhausted), spending nothing, and nothing runs; the
 *     exchange gives back the ρ it charged (and the query budget), recorded
 *     in the job.refused entry.
 *     Two such jobs racing for the last 1/4 of the provider's copy: the
 *     provider accepts exactly one, refuses the other.
 * psi-ot:
 *  9. a policy allowing only psi refuses psi-ot: 403 protocol-not-allowed.
 * 10. psi-ot declaring more keys than the budget in keys holds: 403
 *     budget-exhausted; declaring none: 403 query-count-missing.
 * 11. a buyer whose set has more keys than it declared (queryCount): the
 *     provider fails the job (UMBRA_KEY_LIMIT_EXCEEDED), and the budget it
 *     reserved is given back at the exchange and at the provider.
 *
 * No attack found a defect: every one is refused as named here.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import type { JobRequest } from "../../node/policy.js";
import type { Store } from "../../node/store.js";
import { api, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { exchangeSnapshot, ledgerKinds, signedRequest, snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;
let retailer: TestParty;

type Answer = { id?: string; state?: string; error?: { code: string; rule?: string; message?: string } };

const ids = Array.from({ length: 6 }, (_, i) => `c-${i}`);
const JA = "telco.ja.csv";
const JA_LAGGING = "telco.ja-lag.csv";
const JA_RACE = "telco.ja-race.csv";
const JA_CAP = "telco.ja-cap.csv";
const FA_T = "telco.fa.csv";
const FA_R = "retailer.fa.csv";
const PSI_ONLY = "telco.psi-only.csv";
const OT = "telco.ot.csv";

/** Each dataset's whole query budget (its policy's queryBudget). */
const FULL: Record<string, number> = { [JA_CAP]: 100, [JA]: 100, [JA_LAGGING]: 100, [JA_RACE]: 100, [FA_T]: 100, [FA_R]: 100, [PSI_ONLY]: 5, [OT]: 5 };

const jaPolicy = { allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null, privacyBudget: { rho: "1/2" } };
const faPolicy = { allowedProtocols: ["federated-aggregate"], outputColumns: ["spend"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null, privacyBudget: { rho: "0.5" } };
const psiOnly = { allowedProtocols: ["psi"], keyColumns: ["id"], allowedBuyers: ["bank"], queryBudget: 5, budgetUnit: "keys", expiresAt: null };
const otPolicy = { allowedProtocols: ["psi-ot"], keyColumns: ["id"], allowedBuyers: ["bank"], queryBudget: 5, budgetUnit: "keys", expiresAt: null };

/** A join-aggregate request on `dataset` with `dp` as given (left out: none). */
const jaRequest = (dataset: string, dp?: unknown): Record<string, unknown> => ({
  protocol: "join-aggregate",
  buyer: "bank",
  buyerDataset: "customers.csv",
  providerDataset: dataset,
  params: { keyColumns: ["id"], minGroupSize: 1, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], maxAbsValue: "1000", ...(dp !== undefined ? { dp } : {}) } },
});
const faRequest = (dp?: unknown): Record<string, unknown> => ({
  protocol: "federated-aggregate",
  buyer: "bank",
  providerDatasets: [FA_T, FA_R],
  params: { aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], maxAbsValue: "1000", ...(dp !== undefined ? { dp } : {}) } },
});
const psiOtRequest = (dataset: string, buyerDataset: string, queryCount?: number): Record<string, unknown> => ({
  protocol: "psi-ot",
  buyer: "bank",
  buyerDataset,
  providerDataset: dataset,
  params: { keyColumns: ["id"], ...(queryCount !== undefined ? { queryCount } : {}) },
});

/** A job request sent raw to the exchange, signed with the buyer's own key. */
const raw = (body: unknown) => signedRequest<Answer>(x.url, bank.identity, "POST", "/v1/jobs", { body });
/** The same through the buyer's agent (its API strips `buyer`: the agent names itself). */
const viaAgent = (body: Record<string, unknown>) => {
  const { buyer: _buyer, ...rest } = body;
  return api<Answer>(bank.url, "POST", "/v1/jobs", rest);
};

/** Every budget a job could spend, as one comparable value: privacy and query budgets, at the exchange and in each provider's copy. */
function spending(): string {
  // No budget row yet is the whole budget (a row is made, full, when a job is first checked against it).
  const of = (s: Store, datasets: readonly string[]) => datasets.map((d) => [d, s.getPrivacySpent(d, "bank"), s.getBudget(d, "bank")?.remaining ?? FULL[d]]);
  return JSON.stringify({
    exchange: of(x.store, [JA, JA_LAGGING, JA_RACE, JA_CAP, FA_T, FA_R, PSI_ONLY, OT]),
    telco: of(telco.store, [JA, JA_LAGGING, JA_RACE, JA_CAP, FA_T, PSI_ONLY, OT]),
    retailer: of(retailer.store, [FA_R]),
  });
}
/** Everything a malformed request must leave as it was: the exchange (store, ledger, mailboxes), the providers' stores, every budget. */
const everything = () => JSON.stringify([exchangeSnapshot(x), snapshot(telco.store), snapshot(retailer.store), spending()]);
const spentAt = (s: Store, dataset: string) => s.getPrivacySpent(dataset, "bank");
/** The bodies of the exchange's ledger entries of one kind for one job. */
const entries = (job: string, kind: string) => [...x.store.ledgerRows({ job })].filter((e) => e.kind === kind).map((e) => JSON.parse(e.body) as Record<string, unknown>);

/**
 * Sends `attack` and expects a 403 naming `rule`: nothing spent anywhere,
 * and the ledger grown by exactly one job.refused entry naming the rule
 * (the refusal is recorded; no job.submitted).
 */
async function expectRefused(attack: () => Promise<{ status: number; body: Answer }>, rule: string): Promise<void> {
  const [budgets, kinds] = [spending(), ledgerKinds(x.store)];
  const r = await attack();
  expect(r.status, JSON.stringify(r.body)).toBe(403);
  expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule });
  expect(spending()).toBe(budgets);
  expect(ledgerKinds(x.store)).toEqual([...kinds, "job.refused"]);
  const last = [...x.store.ledgerRows()].at(-1);
  expect(JSON.parse(last?.body ?? "{}")).toMatchObject({ rule, by: "exchange" });
}

/** Sends `attack` and expects a 400 naming the job request field `field` (or one under it), with the exchange, the providers and every budget exactly as they were. */
async function expectMalformed(attack: () => Promise<{ status: number; body: Answer }>, field: string): Promise<void> {
  const before = everything();
  const r = await attack();
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  expect(r.body.error?.code).toBe("UMBRA_INVALID_JOB_REQUEST");
  expect(r.body.error?.message).toContain(`invalid job request: ${field}`);
  expect(everything()).toBe(before);
}

async function succeeded(id: string | undefined): Promise<void> {
  expect(await waitForJob(bank.url, id as string, 90_000)).toMatchObject({ state: "succeeded" });
}

beforeAll(async () => {
  x = await startExchange({ jobTimeoutMs: 30_000, pool });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  retailer = await startParty("retailer", x.url, pool);
  writeFileSync(join(bank.dataDir, "customers.csv"), "id\n" + ids.map((id) => `${id}\n`).join(""));
  writeFileSync(join(bank.dataDir, "three.csv"), "id\nc-0\nc-1\nc-2\n");
  const usage = "id,spend\n" + ids.map((id, i) => `${id},${(i + 1) * 10}\n`).join("");
  const spend = "spend\n10\n20\n30\n";
  const files: [TestParty, string, string, object][] = [
    [telco, "ja.csv", usage, jaPolicy],
    [telco, "ja-lag.csv", usage, jaPolicy],
    [telco, "ja-race.csv", usage, jaPolicy],
    [telco, "ja-cap.csv", usage, jaPolicy],
    [telco, "fa.csv", spend, faPolicy],
    [retailer, "fa.csv", spend, faPolicy],
    [telco, "psi-only.csv", usage, psiOnly],
    [telco, "ot.csv", usage, otPolicy],
  ];
  for (const [p, file, text, policy] of files) {
    writeFileSync(join(p.dataDir, file), text);
    const reg = await api(p.url, "POST", "/v1/datasets", { file, policy });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  }
}, 90_000);

afterAll(async () => {
  for (const p of [bank, telco, retailer]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("ρ as written: malformed, unrunnable and over-budget values are refused before anything is spent", () => {
  const malformed: [string, unknown][] = [
    ["negative", "-1"],
    ["negative fraction", "-1/2"],
    ["zero", "0"],
    ["zero decimal", "0.000"],
    ["a zero denominator", "1/0"],
    ["a zero numerator", "0/5"],
    ["NaN", "NaN"],
    ["Infinity", "Infinity"],
    ["hex", "0x10"],
    ["two slashes", "1/2/3"],
    ["padded", " 1/8"],
    ["a four-digit exponent", "1e-1000"],
    ["a 31-digit numerator", `${"1".repeat(31)}/1`],
    ["a negative number", -0.25],
    ["the number 0", 0],
    ["null", null],
    ["an object", { num: 1, den: 8 }],
    ["a boolean", true],
  ];
  it.each(malformed)("ρ %s (%j), raw at the exchange: 400 on params.aggregate.dp.rho, nothing changed", async (_what, rho) => {
    await expectMalformed(() => raw(jaRequest(JA, { rho })), "params.aggregate.dp.rho:");
  });

  it.each([["1e-400"], ["1/999999999999999999999999999999"]])("ρ %s, exact but too small for noise that fits: 400 on params.aggregate, never charged as a rounded 0", async (rho) => {
    await expectMalformed(() => raw(jaRequest(JA, { rho })), "params.aggregate:");
  });

  it("ρ over the budget by 10^-22 (0.5000000000000000000001 against 1/2): 403 privacy-budget-exhausted, nothing spent", async () => {
    await expectRefused(() => raw(jaRequest(JA, { rho: "0.5000000000000000000001" })), "privacy-budget-exhausted");
  });

  it("ρ with a huge numerator (30 nines): 403 privacy-budget-exhausted, nothing spent", async () => {
    await expectRefused(() => raw(jaRequest(JA, { rho: "9".repeat(30) })), "privacy-budget-exhausted");
  });

  it("ρ of 1030 digits (30 nines e999), whose exact form is more than a protocol takes: 400 on params.aggregate, nothing changed", async () => {
    await expectMalformed(() => raw(jaRequest(JA, { rho: `${"9".repeat(30)}e999` })), "params.aggregate:");
  });
});

describe("a job without dp on a budgeted dataset is refused (dp-required)", () => {
  it("join-aggregate with params.aggregate and no dp: 403 dp-required", async () => {
    await expectRefused(() => raw(jaRequest(JA)), "dp-required");
  });

  it("join-aggregate in the older mode form (which carries no dp): 403 dp-required", async () => {
    const older = { protocol: "join-aggregate", buyer: "bank", buyerDataset: "customers.csv", providerDataset: JA, params: { keyColumns: ["id"], mode: "sum", outputColumns: ["spend"], minGroupSize: 1 } };
    await expectRefused(() => raw(older), "dp-required");
  });

  it("federated-aggregate in the older single-dataset mode form (which carries no dp): 400 on params.aggregate, nothing changed", async () => {
    const older = { protocol: "federated-aggregate", buyer: "bank", buyerDataset: "customers.csv", providerDataset: FA_T, params: { keyColumns: ["spend"], mode: "sum", outputColumns: ["spend"], minGroupSize: 1 } };
    await expectMalformed(() => raw(older), "params.aggregate: a federated-aggregate job names its providerDatasets");
  });

  it("federated-aggregate without dp: 403 dp-required", async () => {
    await expectRefused(() => raw(faRequest()), "dp-required");
  });
});

describe("dp.maxRowsPerKey, the buyer's cap on its rows per key: join-aggregate only, recorded with the ρ", () => {
  it("50 through the buyer's agent: the job runs with the cap, the ledger records ρ and the cap, ρ is charged as given", async () => {
    const r = await viaAgent(jaRequest(JA_CAP, { rho: "1/10", maxRowsPerKey: 50 }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    await succeeded(r.body.id);
    expect(entries(r.body.id as string, "job.submitted")[0]?.["params"]).toMatchObject({ dp: { rho: "1/10", maxRowsPerKey: 50 } });
    expect([spentAt(x.store, JA_CAP), spentAt(telco.store, JA_CAP)]).toEqual(["1/10", "1/10"]);
  }, 90_000);

  it("left out: the ledger records the default cap, 1", async () => {
    const r = await viaAgent(jaRequest(JA_CAP, { rho: "1/10" }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    await succeeded(r.body.id);
    expect(entries(r.body.id as string, "job.submitted")[0]?.["params"]).toMatchObject({ dp: { rho: "1/10", maxRowsPerKey: 1 } });
  }, 90_000);

  const bad: [string, unknown][] = [
    ["0", 0],
    ["65,537", 65_537],
    ["1.5", 1.5],
    ['"2" (a string)', "2"],
  ];
  for (const [name, cap] of bad) {
    it(`${name} raw at the exchange: 400 on params.aggregate.dp.maxRowsPerKey, nothing changed`, async () => {
      await expectMalformed(() => raw(jaRequest(JA_CAP, { rho: "1/10", maxRowsPerKey: cap })), "params.aggregate.dp.maxRowsPerKey");
    });
  }

  it("on federated-aggregate, through the buyer's agent: 400 (applies to join-aggregate only), nothing changed", async () => {
    await expectMalformed(() => viaAgent(faRequest({ rho: "1/10", maxRowsPerKey: 2 })), "params.aggregate.dp.maxRowsPerKey: applies to join-aggregate only");
  });

  it("an unknown dp field (epsilon) raw at the exchange: 400 unknown field params.aggregate.dp.epsilon, nothing changed", async () => {
    await expectMalformed(() => raw(jaRequest(JA, { rho: "1/10", epsilon: 100 })), 'params.aggregate.dp."epsilon": unknown field');
  });
});

describe("spending the budget: exact, race-free, the same at the exchange and the provider", () => {
  const spellings: unknown[] = ["0.1", "1/10", "2/20", 0.1, "1e-1", "0.10"];
  let winners: string[] = [];

  it("six jobs racing, each 1/10 spelled differently, on a budget of 1/2: exactly five pass, the sixth is privacy-budget-exhausted", async () => {
    const answers = await Promise.all(spellings.map((rho) => viaAgent(jaRequest(JA, { rho }))));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 201, 201, 201, 201, 403]);
    expect(answers.find((a) => a.status === 403)?.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "privacy-budget-exhausted" });
    winners = answers.filter((a) => a.status === 201).map((a) => a.body.id as string);
    for (const id of winners) await succeeded(id);
  }, 240_000);

  it("each job's ledger entry charges the canonical 1/10 the provider runs with, and the exchange and the provider have spent exactly 1/2", () => {
    for (const id of winners) {
      const [submitted] = entries(id, "job.submitted");
      expect((submitted?.["privacy"] as { rho: string }[])[0]?.rho).toBe("1/10");
      const provider = (telco.store.getJob(id)?.params as unknown as { request: JobRequest }).request;
      expect(provider.params.aggregate?.dp).toEqual({ rho: "1/10" });
    }
    expect([spentAt(x.store, JA), spentAt(telco.store, JA)]).toEqual(["1/2", "1/2"]);
  });

  it("another job of 1/10 on the spent budget: 403 privacy-budget-exhausted, nothing spent", async () => {
    await expectRefused(() => viaAgent(jaRequest(JA, { rho: "0.1" })), "privacy-budget-exhausted");
  });

  it("a job of 10^-15 on the spent budget: 403 privacy-budget-exhausted, nothing spent", async () => {
    await expectRefused(() => raw(jaRequest(JA, { rho: "1e-15" })), "privacy-budget-exhausted");
  });

  it("the provider registering the dataset again (update, same policy) keeps what was spent: a job of 1/10 is still privacy-budget-exhausted", async () => {
    const again = await api(telco.url, "POST", "/v1/datasets", { file: "ja.csv", policy: jaPolicy, update: true });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    await expectRefused(() => raw(jaRequest(JA, { rho: "1/10" })), "privacy-budget-exhausted");
  });

  it("federated-aggregate with ρ 2/4: charged 1/2 to both datasets, at the exchange and in each provider's copy", async () => {
    const r = await viaAgent(faRequest({ rho: "2/4" }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    await succeeded(r.body.id);
    expect([spentAt(x.store, FA_T), spentAt(x.store, FA_R), spentAt(telco.store, FA_T), spentAt(retailer.store, FA_R)]).toEqual(["1/2", "1/2", "1/2", "1/2"]);
  }, 120_000);

  it("federated-aggregate on the spent budgets, however small its ρ: 403 privacy-budget-exhausted, nothing spent", async () => {
    await expectRefused(() => raw(faRequest({ rho: "1/1000000000" })), "privacy-budget-exhausted");
  });
});

describe("the provider's own copy of the budget", () => {
  it("an exchange whose copy lags behind the provider's passes a job the provider refuses: refused by the provider (privacy-budget-exhausted), nothing spent there, nothing run, the exchange's charge given back", async () => {
    // The provider has spent all of it (jobs an exchange restored from an older backup no longer knows).
    telco.store.setPrivacySpent(JA_LAGGING, "bank", "1/2");
    const r = await viaAgent(jaRequest(JA_LAGGING, { rho: "1/4" }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(await waitForJob(bank.url, r.body.id as string, 60_000)).toMatchObject({ state: "refused", reason: "privacy-budget-exhausted" });
    expect(spentAt(telco.store, JA_LAGGING)).toBe("1/2");
    // Nothing ran: the exchange gives back the 1/4 it charged at submission, and records it with the refusal.
    expect(spentAt(x.store, JA_LAGGING)).toBe("0/1");
    expect(entries(r.body.id as string, "job.refused")).toEqual([
      expect.objectContaining({ rule: "privacy-budget-exhausted", by: "provider", privacyRefunded: [{ dataset: JA_LAGGING, rho: "1/4", spent: "0/1" }] }),
    ]);
    expect(telco.store.getResult(r.body.id as string) ?? bank.store.getResult(r.body.id as string)).toBeUndefined();
  }, 90_000);
});

describe("the provider's own copy, raced", () => {
  it("two jobs of 1/4 that a lagging exchange passes both, racing for the last 1/4 of the provider's copy: the provider accepts exactly one and refuses the other (privacy-budget-exhausted)", async () => {
    telco.store.setPrivacySpent(JA_RACE, "bank", "1/4");
    const both = await Promise.all([viaAgent(jaRequest(JA_RACE, { rho: "1/4" })), viaAgent(jaRequest(JA_RACE, { rho: "0.25" }))]);
    expect(both.map((a) => a.status)).toEqual([201, 201]);
    const ends = await Promise.all(both.map((a) => waitForJob(bank.url, a.body.id as string, 90_000)));
    expect(ends.map((e) => `${e.state}:${e.reason}`).sort()).toEqual(["refused:privacy-budget-exhausted", "succeeded:null"]);
    expect(spentAt(telco.store, JA_RACE)).toBe("1/2");
  }, 120_000);
});

describe("psi-ot jobs", () => {
  it("a policy allowing only psi refuses psi-ot: 403 protocol-not-allowed, nothing spent", async () => {
    await expectRefused(() => raw(psiOtRequest(PSI_ONLY, "customers.csv", 3)), "protocol-not-allowed");
  });

  it("psi-ot declaring more keys than the budget in keys holds: 403 budget-exhausted, nothing spent", async () => {
    await expectRefused(() => raw(psiOtRequest(OT, "customers.csv", 6)), "budget-exhausted");
  });

  it("psi-ot declaring no key count on a budget in keys: 403 query-count-missing, nothing spent", async () => {
    await expectRefused(() => raw(psiOtRequest(OT, "customers.csv")), "query-count-missing");
  });

  it("a buyer whose set has more keys than it declared: the provider fails the job (UMBRA_KEY_LIMIT_EXCEEDED), and what it reserved is given back at the exchange and at the provider", async () => {
    const before = spending();
    const r = await viaAgent(psiOtRequest(OT, "three.csv", 1));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(await waitForJob(bank.url, r.body.id as string, 60_000)).toMatchObject({ state: "failed", reason: "UMBRA_KEY_LIMIT_EXCEEDED" });
    expect(entries(r.body.id as string, "job.failed")).toEqual([{ by: "telco", reason: "UMBRA_KEY_LIMIT_EXCEEDED" }]);
    expect(spending()).toBe(before);
  }, 90_000);
});
