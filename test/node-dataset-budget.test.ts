/**
 * `umbra dataset budget` and `umbra job submit --epsilon` through the built
 * CLI against an exchange, a buyer and two provider agents on loopback: a
 * federated-aggregate job submitted with --epsilon 1 spends the ρ that ε
 * converts to (487/20000 at δ = 1e-6) on each provider's dataset; the
 * provider's command shows its own record of every buyer (the policy's
 * named buyers too, at 0), the buyer's shows the exchange's record of its
 * own line (and no other buyer's); --buyer picks one; --json carries ρ and ε; a dataset without a
 * privacy budget is a clear error; --epsilon with --rho is a usage error,
 * as is --max-rows-per-key without either or outside join-aggregate.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { umbra } from "./helpers/cli.js";
import { api, startExchange, startParty, tokenFileOf, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 1 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;
let retailer: TestParty;

const csv = (values: readonly number[]) => "spend\n" + values.map((v) => `${v}\n`).join("");
const base = { allowedProtocols: ["federated-aggregate"], outputColumns: ["spend"], allowedBuyers: ["bank", "insurer"], minGroupSize: 1, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };
const BUDGETED = { ...base, privacyBudget: { rho: "1/2" } };

const as = (p: TestParty) => ["--party", p.url, "--token-file", tokenFileOf(p)];
const budget = (p: TestParty, ...args: string[]) => umbra(["dataset", "budget", ...args, ...as(p)], {}, { timeoutMs: 60_000 });

beforeAll(async () => {
  x = await startExchange({ jobTimeoutMs: 20_000 });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  retailer = await startParty("retailer", x.url, pool);
  for (const [p, file, policy] of [
    [telco, "t.csv", BUDGETED],
    [retailer, "r.csv", BUDGETED],
    [retailer, "r-open.csv", base],
  ] as const) {
    writeFileSync(join(p.dataDir, file), csv([120, 340, 15, 990]));
    const reg = await api(p.url, "POST", "/v1/datasets", { file, policy });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
  }
  const job = await umbra(
    ["job", "submit", "--protocol", "federated-aggregate", "--provider-dataset", "telco.t.csv", "--provider-dataset", "retailer.r.csv", "--agg", "count,sum(spend)", "--max-abs-value", "1000", "--epsilon", "1", "--wait", ...as(bank)],
    {},
    { timeoutMs: 90_000 },
  );
  expect(job.status, job.stderr + job.stdout).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const p of [bank, telco, retailer]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("umbra dataset budget", () => {
  it("on the provider: its own record, every buyer, with ρ and ε spent and remaining", async () => {
    const r = await budget(telco, "telco.t.csv");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("dataset telco.t.csv: privacy budget ρ = 1/2 zCDP per buyer (ε = 5.22 at δ = 1e-6); this party's own record");
    expect(r.stdout.split("\n").slice(2, 4).map((l) => l.split(/\s+/))).toEqual([
      ["bank", "487/20000", "1.00", "9513/20000", "5.08"],
      ["insurer", "0/1", "0", "1/2", "5.22"],
    ]);
  }, 60_000);

  it("on the buyer: the exchange's record of its own line, as JSON with ρ and ε", async () => {
    const r = await budget(bank, "retailer.r.csv", "--json");
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { source: string; buyers: { buyer: string; spent: { rho: string; epsilon: number }; remaining: { rho: string } }[] };
    expect([out.source, out.buyers.map((b) => [b.buyer, b.spent.rho, b.remaining.rho, b.spent.epsilon <= 1])]).toEqual(["exchange", [["bank", "487/20000", "9513/20000", true]]]);
  }, 60_000);

  it("--buyer picks one buyer's line", async () => {
    const r = await budget(retailer, "retailer.r.csv", "--buyer", "insurer", "--json");
    expect((JSON.parse(r.stdout) as { buyers: { buyer: string; spent: { rho: string } }[] }).buyers.map((b) => [b.buyer, b.spent.rho])).toEqual([["insurer", "0/1"]]);
  }, 60_000);

  it("on a buyer, --buyer naming another buyer is refused: the exchange shows a buyer its own line only", async () => {
    const r = await budget(bank, "retailer.r.csv", "--buyer", "insurer");
    expect([r.status, r.stderr.trim()]).toEqual([1, "umbra: UMBRA_NOT_FOUND: the exchange shows a buyer its own line of a dataset's budget only: insurer is not this party"]);
  }, 60_000);

  it("a party the dataset is not shown to learns nothing of its budget (not found)", async () => {
    const r = await budget(telco, "retailer.r.csv");
    expect([r.status, r.stderr.trim()]).toEqual([1, "umbra: UMBRA_NOT_FOUND: no such dataset, or it is not shown to this party"]);
  }, 60_000);

  it("a dataset without a privacy budget is a clear error", async () => {
    const r = await budget(retailer, "retailer.r-open.csv");
    expect([r.status, r.stderr.trim()]).toEqual([1, "umbra: UMBRA_NO_PRIVACY_BUDGET: dataset retailer.r-open.csv has no privacy budget: its policy sets no privacyBudget (a job on it need not declare differential privacy)"]);
  }, 60_000);

  it("job submit refuses --epsilon with --rho (a usage error, nothing submitted)", async () => {
    const r = await umbra(["job", "submit", "--protocol", "federated-aggregate", "--provider-dataset", "telco.t.csv", "--provider-dataset", "retailer.r.csv", "--agg", "count", "--epsilon", "1", "--rho", "1/10", ...as(bank)], {}, { timeoutMs: 60_000 });
    expect([r.status, r.stderr.split("\n")[0]]).toEqual([2, "umbra: --rho and --epsilon are two ways to say the same budget: give one of them"]);
  }, 60_000);

  it("job submit refuses --max-rows-per-key without --rho/--epsilon, and on federated-aggregate (usage errors, nothing submitted)", async () => {
    const ja = ["job", "submit", "--protocol", "join-aggregate", "--input", "c.csv", "--provider-dataset", "telco.t.csv", "--key", "id", "--agg", "count"];
    const without = await umbra([...ja, "--max-rows-per-key", "3", ...as(bank)], {}, { timeoutMs: 60_000 });
    expect([without.status, without.stderr.split("\n")[0]]).toEqual([2, "umbra: --max-rows-per-key applies with --rho or --epsilon only"]);
    const zero = await umbra([...ja, "--rho", "1/10", "--max-rows-per-key", "0", ...as(bank)], {}, { timeoutMs: 60_000 });
    expect([zero.status, zero.stderr.split("\n")[0]]).toEqual([2, "umbra: --max-rows-per-key needs an integer in [1, 65536]"]);
    const fa = await umbra(["job", "submit", "--protocol", "federated-aggregate", "--provider-dataset", "telco.t.csv", "--provider-dataset", "retailer.r.csv", "--agg", "count", "--rho", "1/10", "--max-rows-per-key", "3", ...as(bank)], {}, { timeoutMs: 60_000 });
    expect([fa.status, fa.stderr.split("\n")[0]]).toEqual([2, "umbra: --max-rows-per-key applies to join-aggregate only"]);
  }, 60_000);
});
