/**
 * Receipts against real servers (docs/venue.md, "Receipts and statements"):
 * a provider's agent sells psi and lookup under products with random prices;
 * the buyer's agent runs several jobs with random inputs under contracts.
 * Each receipt must equal price × units recomputed here from the CSVs the
 * test wrote (the buyer's distinct keys, the true intersection), be
 * acknowledged by the buyer's agent, and the buyer's and the provider's
 * statements must add up to their receipts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import Database from "better-sqlite3";
import { generateIdentity } from "../node/identity.js";
import { openStore } from "../node/store.js";
import { umbra } from "./helpers/cli.js";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import type { Receipt } from "../node/venue/receipt.js";
import type { Statement } from "../node/venue/statement.js";
import { writeStatement } from "../node/venue/statement.js";
import { api, startExchange, tokenFileOf, startParty, waitForJob, waitUntil, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let acme: TestParty;
let bank: TestParty;
let carol: TestParty;
const dir = mkdtempSync(join(tmpdir(), "umbra-receipts-"));
const dbFile = join(dir, "exchange.db");

/** A small deterministic generator (the prices and inputs of a run are reproducible from its seed). */
let seed = 20261206;
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const price = () => (rand(3) === 0 ? 0 : 1 + rand(1000));

const PROVIDER_KEYS = Array.from({ length: 120 }, (_, i) => `k${1000 + i}`);
const prices = {
  psi: { currency: "EUR", perJob: 1 + rand(5000), perKey: price(), perMatchedRow: 1 + rand(50), perCell: 0 },
  lookup: { currency: "EUR", perJob: 1 + rand(5000), perKey: 1 + rand(20), perMatchedRow: price(), perCell: 0 },
};

type Answer = { id?: string; state?: string; error?: { code: string; rule?: string } };

async function contractFor(product: string, buyer: TestParty = bank): Promise<string> {
  const o = await api<Answer>(buyer.url, "POST", "/v1/orders", { product, purpose: "testing", quotaJobs: 10 });
  if (o.status !== 201 || o.body.id === undefined) throw new Error(`ordering: ${o.status} ${JSON.stringify(o.body)}`);
  const a = await api<Answer>(acme.url, "POST", `/v1/orders/${o.body.id}/approve`, {});
  if (a.status !== 200) throw new Error(`approving: ${a.status} ${JSON.stringify(a.body)}`);
  return o.body.id;
}

/** Writes the buyer's input: `n` keys, `m` of them the provider's, some twice; returns its distinct keys and the true intersection. */
function buyerInput(file: string, n: number, m: number): { distinct: number; matched: number } {
  const shared = PROVIDER_KEYS.slice(rand(40), 200).slice(0, m);
  const own = Array.from({ length: n - m }, (_, i) => `b${file}-${i}`);
  const keys = [...shared, ...own];
  writeFileSync(join(bank.dataDir, file), "phone\n" + keys.join("\n") + "\n");
  return { distinct: new Set(keys).size, matched: shared.length };
}

const receiptOf = async (job: string): Promise<{ receipt: Receipt; acknowledged: boolean }> => {
  const r = await api<{ receipts: { receipt: Receipt; acknowledged: boolean }[] }>(bank.url, "GET", `/v1/receipts?job=${job}`);
  return r.body.receipts[0] as { receipt: Receipt; acknowledged: boolean };
};

beforeAll(async () => {
  // The exchange's database in a file: the operator's statement reads it, and one test edits a receipt in it behind the exchange's back.
  x = await startExchange({}, { store: openStore(dbFile), identity: generateIdentity("exchange"), port: 0 });
  acme = await startParty("acme", x.url, pool);
  bank = await startParty("bank", x.url, pool);
  // A buyer whose agent syncs its receipts only when asked (no timer): the test edits its receipt before it looks.
  carol = await startParty("carol", x.url, pool, undefined, { orderPollMs: 0 });
  writeFileSync(join(acme.dataDir, "subs.csv"), "phone,plan\n" + PROVIDER_KEYS.map((k, i) => `${k},${i % 7}`).join("\n") + "\n");
  const reg = await api(acme.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi", "lookup"], outputColumns: ["plan"], keyColumns: ["phone"], allowedBuyers: ["bank", "carol"], queryBudget: 100_000, budgetUnit: "jobs" } });
  expect(reg.status).toBe(201);
  for (const [id, protocol, p] of [["acme.matching", "psi", prices.psi], ["acme.lookup", "lookup", prices.lookup]] as const) {
    const pub = await api(acme.url, "POST", "/v1/products", { product: { id, title: id, datasets: ["acme.subs.csv"], protocols: [protocol], outputColumns: protocol === "lookup" ? ["plan"] : [], prices: p } });
    expect(pub.status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  for (const p of [carol, bank, acme]) await p?.close();
  await x?.close();
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("receipts of real jobs", () => {
  const issued: Receipt[] = [];

  for (const [i, protocol] of (["psi", "lookup", "psi", "lookup"] as const).entries()) {
    it(`${protocol} job ${i + 1}: the receipt is price × the units measured from the data, and acknowledged`, async () => {
      const contract = await contractFor(protocol === "psi" ? "acme.matching" : "acme.lookup");
      const n = 20 + rand(40);
      const m = 1 + rand(Math.min(n, 30));
      const file = `cust${i}.csv`;
      const truth = buyerInput(file, n, m);
      const sub = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
        protocol,
        buyerDataset: file,
        providerDataset: "acme.subs.csv",
        params: { keyColumns: ["phone"], queryCount: n + 5, ...(protocol === "lookup" ? { outputColumns: ["plan"] } : {}) },
        contracts: [contract],
      });
      expect(sub.status).toBe(201);
      expect(await waitForJob(bank.url, sub.body.id)).toMatchObject({ state: "succeeded" });
      // The result the buyer got: psi's rows are the intersection.
      if (protocol === "psi") {
        const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${sub.body.id}/result`, { headers: { authorization: `Bearer ${bank.agent.token}` } })).arrayBuffer()));
        expect(t.numRows).toBe(truth.matched);
      }
      await waitUntil(async () => (await receiptOf(sub.body.id))?.acknowledged === true, "the buyer's agent acknowledged the receipt");
      const { receipt } = await receiptOf(sub.body.id);
      const p = prices[protocol];
      const units: Record<string, number> = { jobs: 1 };
      if (p.perKey > 0) units["keys"] = truth.distinct;
      if (p.perMatchedRow > 0) units["matchedRows"] = truth.matched;
      expect(receipt.lines).toHaveLength(1);
      expect(receipt.lines[0]!.units).toEqual(units);
      const expected = p.perJob + p.perKey * truth.distinct + p.perMatchedRow * truth.matched;
      expect(receipt.amount).toBe(expected);
      expect(receipt.shares).toEqual([{ provider: "acme", amount: expected }]);
      expect(x.store.receipts.byJob(sub.body.id)?.ackSignature).not.toBeNull();
      issued.push(receipt);
    }, 120_000);
  }

  it("the buyer's and the provider's statements add up to their receipts; written as CSV and Arrow", async () => {
    const from = 0;
    const to = Date.now() + 60_000;
    const b = await api<Statement>(bank.url, "GET", `/v1/statement?from=${from}&to=${to}`);
    expect(b.status).toBe(200);
    const sum = issued.reduce((s, r) => s + r.amount, 0);
    expect(b.body.rows.filter((r) => r.role === "buyer")).toHaveLength(issued.length);
    expect(b.body.totals).toEqual([{ currency: "EUR", role: "buyer", amount: sum, receipts: issued.length }]);
    const a = await api<Statement>(acme.url, "GET", `/v1/statement?from=${from}&to=${to}`);
    expect(a.body.totals).toEqual([{ currency: "EUR", role: "provider", amount: sum, receipts: issued.length }]);
    // A window that ends before the first receipt holds none.
    const none = await api<Statement>(bank.url, "GET", `/v1/statement?from=0&to=${Date.parse(issued[0]!.at)}`);
    expect(none.body.rows).toEqual([]);
    const csv = join(bank.dataDir, "statement.csv");
    await writeStatement(csv, b.body);
    const lines = readFileSync(csv, "utf8").trim().split(/\r?\n/);
    expect(lines[0]).toBe("kind,receipt,job,at,role,currency,amount");
    expect(lines).toHaveLength(1 + issued.length + 1);
    expect(lines.at(-1)).toBe(`total,"","","",buyer,EUR,${sum}`);
    // Arrow: the same rows, amounts as exact 64-bit integers.
    const arrow = join(bank.dataDir, "statement.arrow");
    await writeStatement(arrow, b.body);
    const t = tableFromIPC(readFileSync(arrow));
    expect(t.numRows).toBe(issued.length + 1);
    expect(t.getChild("amount")!.get(issued.length)).toBe(BigInt(sum));
  });

  it("the CLI: receipt show saves a bundle that receipt verify checks offline; statement writes the party's and the operator's", async () => {
    const r = issued[0]!;
    const file = join(dir, "receipt.json");
    const show = await umbra(["receipt", "show", r.id, "--out", file, "--party", bank.url, "--token-file", tokenFileOf(bank)]);
    expect(show.status).toBe(0);
    const key = Buffer.from(x.identity.signing.publicKey).toString("hex");
    const ok = await umbra(["receipt", "verify", file, "--exchange-key", key, "--json"]);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, receipt: { id: r.id, amount: r.amount } });
    const bundle = JSON.parse(readFileSync(file, "utf8")) as { receipt: Receipt };
    const l = bundle.receipt.lines[0]!;
    // One matched row more, the amounts made to add up: only the exchange's signature can tell.
    const units = { ...l.units, matchedRows: (l.units.matchedRows as number) + 1 };
    const amount = l.amount + l.prices.perMatchedRow;
    writeFileSync(file, JSON.stringify({ ...bundle, receipt: { ...bundle.receipt, amount, shares: [{ provider: "acme", amount }], lines: [{ ...l, units, amount }] } }));
    const bad = await umbra(["receipt", "verify", file, "--exchange-key", key, "--json"]);
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, rule: "receipt-signature-invalid" });
    const csv = join(dir, "mine.csv");
    const st = await umbra(["statement", "--from", "2000-01-01", "--to", "2100-01-01", "--out", csv, "--json", "--party", bank.url, "--token-file", tokenFileOf(bank)]);
    expect(st.status).toBe(0);
    const sum = issued.reduce((s, x) => s + x.amount, 0);
    expect((JSON.parse(st.stdout) as Statement).totals).toEqual([{ currency: "EUR", role: "buyer", amount: sum, receipts: issued.length }]);
    const op = await umbra(["statement", "--db", dbFile, "--for", "acme", "--from", "2000-01-01", "--to", "2100-01-01", "--out", join(dir, "acme.arrow"), "--json"]);
    expect(op.status).toBe(0);
    expect((JSON.parse(op.stdout) as Statement).totals).toEqual([{ currency: "EUR", role: "provider", amount: sum, receipts: issued.length }]);
  }, 60_000);

  it("a receipt edited at the exchange is refused by the buyer's agent (never kept, never acknowledged)", async () => {
    const contract = await contractFor("acme.matching", carol);
    const truth = { file: "carol.csv" };
    writeFileSync(join(carol.dataDir, truth.file), "phone\n" + PROVIDER_KEYS.slice(0, 5).join("\n") + "\nzz1\n");
    const sub = await api<{ id: string }>(carol.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: truth.file, providerDataset: "acme.subs.csv", params: { keyColumns: ["phone"], queryCount: 10 }, contracts: [contract] });
    expect(sub.status).toBe(201);
    expect(await waitForJob(carol.url, sub.body.id)).toMatchObject({ state: "succeeded" });
    await waitUntil(() => x.store.receipts.byJob(sub.body.id) !== undefined, "the exchange issued the receipt");
    const row = x.store.receipts.byJob(sub.body.id)!;
    const doc = row.document as unknown as Receipt;
    const l = doc.lines[0]!;
    // One matched row fewer, its amounts made to add up (as whoever held the exchange's database could).
    const units = { ...l.units, matchedRows: (l.units.matchedRows as number) - 1 };
    const amount = l.amount - l.prices.perMatchedRow;
    const edited = { ...doc, amount, shares: [{ provider: "acme", amount }], lines: [{ ...l, units, amount }] };
    const db = new Database(dbFile);
    db.prepare("UPDATE receipts SET document = ? WHERE id = ?").run(JSON.stringify(edited), row.id);
    db.close();
    const r = await api<{ error?: { rule?: string } }>(carol.url, "GET", `/v1/receipts?job=${sub.body.id}`);
    expect(r.status).toBe(403);
    expect(r.body.error?.rule).toBe("receipt-signature-invalid");
    expect(carol.store.receipts.byJob(sub.body.id)).toBeUndefined();
    expect(x.store.receipts.byJob(sub.body.id)?.ackSignature).toBeNull();
    expect([...x.store.ledgerRows()].filter((e) => e.kind === "receipt.acknowledged" && (JSON.parse(e.body) as { receipt: string }).receipt === row.id)).toEqual([]);
  }, 60_000);
});
