/**
 * Receipts' rules (docs/venue.md, "Receipts and statements"), as attacks on a
 * real exchange by parties driven by hand: a provider reporting more keys
 * than the job declared, a buyer reporting a unit no contract prices (or
 * leaving out one that is priced), an ack of an edited receipt, a party
 * acking another buyer's receipt. Each refusal names its rule and leaves the
 * exchange's store, ledger and receipts as they were. A succeeded event sent
 * again (an agent's restart) issues no second receipt; an edited bundle is
 * refused by the offline check.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeIdentity } from "../../node/identity.js";
import { contractDigest, signContract, type ContractDocument } from "../../node/venue/contract.js";
import { ReceiptRefusedError, receiptDigest, signAck, verifyReceiptBundle, type Receipt, type ReceiptBundle } from "../../node/venue/receipt.js";
import { startExchange, type TestExchange } from "../helpers/nodes.js";
import { descriptor, exchangeSnapshot, handParty, signedRequest, takeMail } from "./kit.js";

let x: TestExchange;
let acme: NodeIdentity;
let bank: NodeIdentity;
let other: NodeIdentity;
const PRICES = { currency: "EUR", perJob: 500, perKey: 3, perMatchedRow: 7, perCell: 0 };
const DIGEST = "ab".repeat(32);

type Err = { error?: { code: string; rule?: string } };

/** What a refusal must leave unchanged: the exchange's store, ledger and mailboxes, its receipts and contracts. */
const state = () =>
  JSON.stringify([
    exchangeSnapshot(x),
    x.store.receipts.list().map((r) => [r.id, r.job, r.digest, r.amount, r.ackSignature]),
    x.store.venue.listContracts().map((c) => [c.id, c.state, c.jobsUsed]),
  ]);

async function ok<T>(who: NodeIdentity, method: string, path: string, body?: unknown): Promise<T> {
  const r = await signedRequest<T & Err>(x.url, who, method, path, body === undefined ? {} : { body });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** An active contract of acme's product for `buyer`: ordered with its signature, approved with acme's. */
async function contractFor(buyer: NodeIdentity): Promise<string> {
  const p = x.store.venue.latestProduct("acme.matching")!;
  const now = Math.floor(Date.now() / 1000) * 1000;
  const c: ContractDocument = {
    v: 1,
    id: `contract-${randomUUID()}`,
    product: { id: "acme.matching", version: p.version, digest: p.digest },
    buyer: buyer.name,
    provider: "acme",
    purpose: "fraud screening",
    quota: { jobs: 20 },
    prices: PRICES,
    share: "equal",
    notBefore: new Date(now - 1000).toISOString(),
    notAfter: new Date(now + 86_400_000).toISOString(),
  };
  await ok(buyer, "POST", "/v1/orders", { contract: c, signature: signContract(buyer.signing.secretKey, c) });
  await ok(acme, "POST", `/v1/contracts/${c.id}/approve`, { signature: signContract(acme.signing.secretKey, c) });
  expect(contractDigest(c)).toBe(x.store.venue.getContract(c.id)?.digest);
  return c.id;
}

/** A running psi job of `buyer` under `contract`, declaring `queryCount` keys. */
async function runningJob(buyer: NodeIdentity, contract: string, queryCount: number): Promise<string> {
  const sub = await ok<{ id: string }>(buyer, "POST", "/v1/jobs", { protocol: "psi", buyer: buyer.name, buyerDataset: "mine.csv", providerDataset: "acme.d.csv", params: { keyColumns: ["k"], queryCount }, contracts: [contract] });
  await takeMail(x, acme);
  await ok(acme, "POST", `/v1/jobs/${sub.id}/events`, { kind: "accepted" });
  return sub.id;
}

const event = (who: NodeIdentity, job: string, body: Record<string, unknown>) => signedRequest<Err>(x.url, who, "POST", `/v1/jobs/${job}/events`, { body });

beforeAll(async () => {
  x = await startExchange();
  acme = await handParty(x, "acme");
  bank = await handParty(x, "bank");
  other = await handParty(x, "other");
  await ok(acme, "POST", "/v1/datasets", { descriptor: descriptor("acme"), policy: { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: ["bank", "other"], queryBudget: 1000, budgetUnit: "jobs" } });
  await ok(acme, "POST", "/v1/products", { product: { id: "acme.matching", title: "Matching", datasets: ["acme.d.csv"], protocols: ["psi"], prices: PRICES } });
}, 60_000);

afterAll(async () => {
  await x?.close();
});

describe("metering refusals (the exchange, before anything is recorded)", () => {
  it("a product priced per matched row that offers psi-cardinality (the count metered is the result): product-matched-rows-reveal-cardinality", async () => {
    const before = state();
    const r = await signedRequest<{ error?: { code: string; message: string } }>(x.url, acme, "POST", "/v1/products", {
      body: { product: { id: "acme.count", title: "Count", datasets: ["acme.d.csv"], protocols: ["psi-cardinality"], prices: { currency: "EUR", perJob: 1, perMatchedRow: 1 } } },
    });
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe("UMBRA_INVALID_PRODUCT");
    expect(r.body.error?.message).toContain("prices.perMatchedRow: must be 0 when the protocols include psi-cardinality (product-matched-rows-reveal-cardinality");
    expect(state()).toBe(before);
    expect(x.store.venue.latestProduct("acme.count")).toBeUndefined();
  });

  it("a provider reporting more keys than the job declared: metering-keys-over-declared", async () => {
    const job = await runningJob(bank, await contractFor(bank), 10);
    const before = state();
    const r = await event(acme, job, { kind: "charged", units: 11 });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_METERING_REFUSED", rule: "metering-keys-over-declared" });
    expect(state()).toBe(before);
  });

  it("a buyer reporting a unit no contract of the job prices: metering-unit-not-priced; leaving out a priced one: metering-unit-missing", async () => {
    const job = await runningJob(bank, await contractFor(bank), 10);
    await ok(acme, "POST", `/v1/jobs/${job}/events`, { kind: "charged", units: 8 });
    const before = state();
    const extra = await event(bank, job, { kind: "succeeded", digest: DIGEST, matchedRows: 4, cells: 2 });
    expect(extra.status).toBe(403);
    expect(extra.body.error).toMatchObject({ code: "UMBRA_METERING_REFUSED", rule: "metering-unit-not-priced" });
    const missing = await event(bank, job, { kind: "succeeded", digest: DIGEST });
    expect(missing.status).toBe(403);
    expect(missing.body.error).toMatchObject({ rule: "metering-unit-missing" });
    expect(state()).toBe(before);
    expect(x.store.getJob(job)?.state).toBe("running");
  });
});

describe("receipts", () => {
  let job: string;
  let receiptId: string;

  it("a job that succeeds under a contract gets one receipt: price × units, signed, logged", async () => {
    job = await runningJob(bank, await contractFor(bank), 10);
    await ok(acme, "POST", `/v1/jobs/${job}/events`, { kind: "charged", units: 8 });
    await ok(bank, "POST", `/v1/jobs/${job}/events`, { kind: "succeeded", digest: DIGEST, matchedRows: 4 });
    const row = x.store.receipts.byJob(job)!;
    receiptId = row.id;
    const doc = row.document as unknown as Receipt;
    expect(doc.lines[0]!.units).toEqual({ jobs: 1, keys: 8, matchedRows: 4 });
    expect(doc.amount).toBe(500 + 3 * 8 + 7 * 4);
    expect(doc.shares).toEqual([{ provider: "acme", amount: 552 }]);
    const kinds = [...x.store.ledgerRows()].map((r) => r.kind);
    expect(kinds.filter((k) => k === "receipt.issued")).toHaveLength(1);
  });

  it("the succeeded event sent again (the buyer's agent restarted) issues no second receipt", async () => {
    const before = state();
    const again = await event(bank, job, { kind: "succeeded", digest: DIGEST, matchedRows: 4 });
    expect(again.status).toBe(200);
    expect(state()).toBe(before);
    expect(x.store.receipts.list({ job })).toHaveLength(1);
  });

  it("after the exchange restarts, the succeeded event sent again still issues no second receipt", async () => {
    x = await x.restart();
    const before = state();
    // The client's kept-alive connection to the old server is gone: the first attempt may fail to connect, and is sent again as an agent would.
    const again = await event(bank, job, { kind: "succeeded", digest: DIGEST, matchedRows: 4 }).catch(() => event(bank, job, { kind: "succeeded", digest: DIGEST, matchedRows: 4 }));
    expect(again.status).toBe(200);
    expect(state()).toBe(before);
    expect(x.store.receipts.list({ job }).map((r) => r.id)).toEqual([receiptId]);
    expect([...x.store.ledgerRows()].filter((r) => r.kind === "receipt.issued" && (JSON.parse(r.body) as { job: string }).job === job)).toHaveLength(1);
  });

  it("an ack of an edited receipt (another digest) is refused: receipt-ack-invalid", async () => {
    const before = state();
    const row = x.store.receipts.get(receiptId)!;
    const edited = { ...(row.document as unknown as Receipt), amount: 1 };
    const r = await signedRequest<Err>(x.url, bank, "POST", `/v1/receipts/${receiptId}/ack`, { body: { signature: signAck(bank.signing.secretKey, receiptId, receiptDigest(edited as Receipt)) } });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_RECEIPT_REFUSED", rule: "receipt-ack-invalid" });
    expect(state()).toBe(before);
  });

  it("a party acking another buyer's receipt is refused: receipt-not-buyer", async () => {
    const before = state();
    const row = x.store.receipts.get(receiptId)!;
    const r = await signedRequest<Err>(x.url, other, "POST", `/v1/receipts/${receiptId}/ack`, { body: { signature: signAck(other.signing.secretKey, receiptId, row.digest) } });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ rule: "receipt-not-buyer" });
    // The provider is no buyer either.
    const p = await signedRequest<Err>(x.url, acme, "POST", `/v1/receipts/${receiptId}/ack`, { body: { signature: signAck(acme.signing.secretKey, receiptId, row.digest) } });
    expect(p.body.error).toMatchObject({ rule: "receipt-not-buyer" });
    // Nor does another party read it.
    expect((await signedRequest(x.url, other, "GET", `/v1/receipts/${receiptId}`)).status).toBe(404);
    expect(state()).toBe(before);
  });

  it("the buyer's ack is verified and logged once", async () => {
    const row = x.store.receipts.get(receiptId)!;
    const signature = signAck(bank.signing.secretKey, receiptId, row.digest);
    await ok(bank, "POST", `/v1/receipts/${receiptId}/ack`, { signature });
    await ok(bank, "POST", `/v1/receipts/${receiptId}/ack`, { signature });
    expect(x.store.receipts.get(receiptId)?.ackSignature).toBe(signature);
    expect([...x.store.ledgerRows()].filter((r) => r.kind === "receipt.acknowledged")).toHaveLength(1);
  });

  it("the bundle verifies offline with only the exchange's key; every edit is refused naming its check", async () => {
    const { bundle } = await ok<{ bundle: ReceiptBundle }>(bank, "GET", `/v1/receipts/${receiptId}`);
    const key = x.identity.signing.publicKey;
    expect(verifyReceiptBundle(JSON.parse(JSON.stringify(bundle)), key).receipt.amount).toBe(552);
    const rule = (b: unknown) => {
      try {
        verifyReceiptBundle(b, key);
      } catch (err) {
        return (err as ReceiptRefusedError).rule;
      }
      return undefined;
    };
    const r = bundle.receipt;
    const l = r.lines[0]!;
    expect(rule({ ...bundle, receipt: { ...r, amount: 1 } })).toBe("receipt-arithmetic");
    expect(rule({ ...bundle, receipt: { ...r, amount: 545, shares: [{ provider: "acme", amount: 545 }], lines: [{ ...l, units: { ...l.units, matchedRows: 3 }, amount: 545 }] } })).toBe("receipt-signature-invalid");
    expect(rule({ ...bundle, receipt: { ...r, shares: [{ provider: "acme", amount: 500 }, { provider: "other", amount: 52 }] } })).toBe("receipt-signature-invalid");
    expect(rule({ ...bundle, receipt: { ...r, job: "job-else" } })).toBe("receipt-signature-invalid");
    expect(rule({ ...bundle, entry: { ...bundle.entry, body: { ...bundle.entry.body, amount: 1 } } })).toBe("receipt-not-logged");
    expect(rule({ ...bundle, inclusion: [] })).toBe("receipt-not-logged");
  });
});
