/**
 * The venue's rules (docs/venue.md), as attacks on a real exchange and real
 * party agents: a job on a dataset sold as a product runs only under an
 * active contract of its buyer, in its window and within its quota — also
 * when N submissions race for k < N jobs —, and a contract counts only with
 * the signatures of the parties that registered its keys. Each refusal names
 * its rule and leaves the exchange's store and ledger (and the provider's
 * store) as they were. A contract the exchange tampers with, or forges, is
 * refused by the provider's own check.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { generateIdentity } from "../../node/identity.js";
import { revokeContract } from "../../node/server/exchange/routes/contracts.js";
import { openStore, type Store } from "../../node/store.js";
import { contractDigest, countersign, signContract, type ContractDocument } from "../../node/venue/contract.js";
import { api, startExchange, startParty, waitForJob, waitUntil, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { descriptor, handParty, signedRequest, snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
const dir = mkdtempSync(join(tmpdir(), "umbra-venue-"));
const dbFile = join(dir, "exchange.db");
let x: TestExchange;
let acme: TestParty;
let bank: TestParty;
let other: TestParty;

const PRODUCT = "acme.matching";
const DATASET = "acme.subs.csv";

/** The venue's rows of a store: products and contracts with their state, signatures and jobs counted. */
const venueRows = (s: Store) =>
  JSON.stringify({
    products: s.venue.listProducts().map((p) => [p.id, p.version, p.state, p.digest]),
    contracts: s.venue.listContracts().map((c) => [c.id, c.state, c.jobsUsed, c.digest, c.providerSignature, c.exchangeSignature]),
  });
/** What a refusal must leave as it was: the exchange's store and ledger, its venue, the provider's store and venue. */
const state = () => JSON.stringify([snapshot(x.store), venueRows(x.store), snapshot(acme.store), venueRows(acme.store)]);

type Answer = { id?: string; state?: string; error?: { code: string; rule?: string } };

/** bank orders the product and acme approves (signs) it: an active contract's id. */
async function contractFor(quotaJobs: number): Promise<string> {
  const o = await api<Answer>(bank.url, "POST", "/v1/orders", { product: PRODUCT, purpose: "fraud screening", quotaJobs });
  if (o.status !== 201 || o.body.id === undefined) throw new Error(`ordering: ${o.status} ${JSON.stringify(o.body)}`);
  const a = await api<Answer>(acme.url, "POST", `/v1/orders/${o.body.id}/approve`, {});
  if (a.status !== 200 || a.body.state !== "active") throw new Error(`approving: ${a.status} ${JSON.stringify(a.body)}`);
  return o.body.id;
}

/**
 * Waits until the receipt of a job that succeeded under a contract is
 * acknowledged by bank's agent (asked to sync at once): the ack's ledger entry
 * must not land in the middle of a later test's before/after snapshot.
 */
const receiptSettled = (job: string) =>
  waitUntil(async () => {
    await api(bank.url, "GET", "/v1/receipts");
    return x.store.receipts.byJob(job)?.ackSignature != null;
  }, "bank's agent acknowledged the job's receipt");

/** bank submits a psi job on acme's dataset, under `contract` when given. */
const submit = (contract?: string) =>
  api<Answer>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: DATASET, params: { keyColumns: ["phone"] }, ...(contract ? { contracts: [contract] } : {}) });

/** A contract document for bank as its agent would write it, of the product's current version, in [notBefore, notAfter). */
function contractDoc(notBefore: number, notAfter: number): ContractDocument {
  const p = x.store.venue.latestProduct(PRODUCT);
  if (p === undefined) throw new Error("no product");
  return {
    v: 1,
    id: `contract-${randomUUID()}`,
    product: { id: PRODUCT, version: p.version, digest: p.digest },
    buyer: "bank",
    provider: "acme",
    purpose: "fraud screening",
    quota: { jobs: 5 },
    prices: (p.document as { prices: ContractDocument["prices"] }).prices,
    share: "equal",
    notBefore: new Date(notBefore).toISOString(),
    notAfter: new Date(notAfter).toISOString(),
  };
}

/** Stores a contract at the exchange as active, countersigned with the exchange's key (what only the exchange, or whoever holds its store, can do). */
function putAtExchange(c: ContractDocument, providerSecret: Uint8Array): void {
  const buyerSignature = signContract(bank.identity.signing.secretKey, c);
  const providerSignature = signContract(providerSecret, c);
  const digest = contractDigest(c);
  x.store.venue.putContract({
    id: c.id,
    productId: c.product.id,
    productVersion: c.product.version,
    buyer: c.buyer,
    provider: c.provider,
    document: c,
    digest,
    buyerSignature,
    providerSignature,
    exchangeSignature: countersign(x.identity.signing.secretKey, digest, buyerSignature, providerSignature),
    state: "active",
    quotaJobs: c.quota.jobs,
    notBefore: Date.parse(c.notBefore),
    notAfter: Date.parse(c.notAfter),
  });
}

beforeAll(async () => {
  // A store in a file: one test changes it behind the exchange's back, as whoever held the exchange could.
  x = await startExchange({}, { store: openStore(dbFile), identity: generateIdentity("exchange"), port: 0 });
  acme = await startParty("acme", x.url, pool);
  bank = await startParty("bank", x.url, pool);
  other = await startParty("other", x.url, pool);
  writeFileSync(join(acme.dataDir, "subs.csv"), "phone\n1\n2\n3\n4\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n5\n");
  const reg = await api(acme.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank", "other"], queryBudget: 1000, budgetUnit: "jobs" } });
  expect(reg.status).toBe(201);
  const product = { id: PRODUCT, title: "Subscriber matching", datasets: [DATASET], protocols: ["psi"], prices: { currency: "EUR", perJob: 500, perKey: 2 }, autoApprove: { buyers: ["other"], maxQuotaJobs: 10 } };
  const pub = await api(acme.url, "POST", "/v1/products", { product });
  expect(pub.status).toBe(201);
}, 60_000);

afterAll(async () => {
  for (const p of [other, bank, acme]) await p?.close();
  await x?.close();
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("a job under a contract", () => {
  it("runs, and both the exchange and the provider count it against the quota", async () => {
    const c = await contractFor(3);
    const r = await submit(c);
    const end = await waitForJob(bank.url, r.body.id as string);
    expect([end.state, x.store.venue.getContract(c)?.jobsUsed, acme.store.venue.getContract(c)?.jobsUsed]).toEqual(["succeeded", 1, 1]);
    await receiptSettled(r.body.id as string);
  });

  it("an order within the product's auto-approve rule is signed by the provider's agent on its own", async () => {
    const o = await api<Answer>(other.url, "POST", "/v1/orders", { product: PRODUCT, purpose: "research", quotaJobs: 2 });
    // The exchange marks it active when the provider's signature arrives; the provider's agent keeps its own copy once the
    // exchange's countersigned answer verifies, a moment later: wait for both.
    await waitUntil(() => x.store.venue.getContract(o.body.id as string)?.state === "active" && acme.store.venue.getContract(o.body.id as string) !== undefined, "the order signed by the provider's watcher, and the provider's own copy");
    expect([x.store.venue.getContract(o.body.id as string)?.state, acme.store.venue.getContract(o.body.id as string)?.state]).toEqual(["active", "active"]);
  });
});

describe("refused at the exchange, nothing recorded", () => {
  it("a party the datasets' policies do not show: the product is answered as missing, and its order too", async () => {
    const stranger = await handParty(x, "stranger");
    const list = await signedRequest<{ products: unknown[] }>(x.url, stranger, "GET", "/v1/products");
    const show = await signedRequest<Answer>(x.url, stranger, "GET", `/v1/products/${PRODUCT}`);
    const c = { ...contractDoc(Date.now(), Date.now() + 86_400_000), buyer: "stranger" };
    const before = state();
    const order = await signedRequest<Answer>(x.url, stranger, "POST", "/v1/orders", { body: { contract: c, signature: signContract(stranger.signing.secretKey, c) } });
    expect([list.body.products, show.status, order.status, order.body.error?.code, state()]).toEqual([[], 404, 404, "UMBRA_NOT_FOUND", before]);
  });

  it("a job on a product's dataset without a contract: contract-required", async () => {
    const before = state();
    const r = await submit();
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-required", before]);
  });

  it("a contract its buyer revoked: contract-revoked", async () => {
    const c = await contractFor(3);
    expect((await api(bank.url, "POST", `/v1/contracts/${c}/revoke`, {})).status).toBe(200);
    const before = state();
    const r = await submit(c);
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-revoked", before]);
  });

  it("a contract the exchange's operator revoked: contract-revoked", async () => {
    const c = await contractFor(3);
    expect(revokeContract(x.store, x.identity, c, "operator")).toBe(true);
    const before = state();
    const r = await submit(c);
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-revoked", before]);
  });

  it("an expired contract, signed by all three: contract-expired", async () => {
    const day = 24 * 3600 * 1000;
    const c = contractDoc(Date.now() - 2 * day, Date.now() - day);
    putAtExchange(c, acme.identity.signing.secretKey);
    const before = state();
    const r = await submit(c.id);
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-expired", before]);
  });

  it("5 submissions racing for a quota of 2: exactly 2 accepted, 3 refused contract-quota-exhausted", async () => {
    const c = await contractFor(2);
    const answers = await Promise.all(Array.from({ length: 5 }, () => submit(c)));
    const accepted = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201).map((a) => `${a.status} ${a.body.error?.rule}`);
    for (const a of accepted) await waitForJob(bank.url, a.body.id as string);
    for (const a of accepted) await receiptSettled(a.body.id as string);
    expect([accepted.length, refused, x.store.venue.getContract(c)?.jobsUsed, acme.store.venue.getContract(c)?.jobsUsed]).toEqual([2, Array(3).fill("403 contract-quota-exhausted"), 2, 2]);
    // Past its quota, one more: refused, nothing recorded.
    const before = state();
    const r = await submit(c);
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-quota-exhausted", before]);
  });

  it.each([
    ["signed with another registered party's key", () => signContract(other.identity.signing.secretKey, contractDoc(Date.now(), Date.now() + 86_400_000))],
    ["with a forged signature", () => "5a".repeat(64)],
  ])("an order whose buyer signature is %s: contract-signature-invalid", async (_what, forge) => {
    const c = contractDoc(Date.now(), Date.now() + 86_400_000);
    const before = state();
    const r = await signedRequest<Answer>(x.url, bank.identity, "POST", "/v1/orders", { body: { contract: c, signature: forge() } });
    expect([r.status, r.body.error?.rule, state()]).toEqual([403, "contract-signature-invalid", before]);
  });

  it("an approval signed with another registered party's key: contract-signature-invalid, the order still pending", async () => {
    const o = await api<Answer>(bank.url, "POST", "/v1/orders", { product: PRODUCT, purpose: "fraud screening", quotaJobs: 1 });
    const doc = x.store.venue.getContract(o.body.id as string)?.document as unknown as ContractDocument;
    const before = state();
    const r = await signedRequest<Answer>(x.url, acme.identity, "POST", `/v1/contracts/${o.body.id}/approve`, { body: { signature: signContract(other.identity.signing.secretKey, doc) } });
    expect([r.status, r.body.error?.rule, state(), x.store.venue.getContract(o.body.id as string)?.state]).toEqual([403, "contract-signature-invalid", before, "pending"]);
  });

  it("an exchange started with requireContracts: a job on any dataset without one, contract-required", async () => {
    const strict = await startExchange({ requireContracts: true });
    try {
      const [p, b] = [await handParty(strict, "shop"), await handParty(strict, "lab")];
      const d = descriptor(p.name);
      const reg = await signedRequest(strict.url, p, "POST", "/v1/datasets", { body: { descriptor: d, policy: { allowedProtocols: ["psi"], keyColumns: ["k"], allowedBuyers: [b.name] } } });
      expect(reg.status).toBe(201);
      const before = snapshot(strict.store);
      const r = await signedRequest<Answer>(strict.url, b, "POST", "/v1/jobs", { body: { protocol: "psi", buyer: b.name, buyerDataset: "mine.csv", providerDataset: d["id"], params: { keyColumns: ["k"] } } });
      expect([r.status, r.body.error?.rule, snapshot(strict.store)]).toEqual([403, "contract-required", before]);
    } finally {
      await strict.close();
    }
  });
});

describe("the ledger", () => {
  it("records the venue's entries, and a party reads in full only those of its own products and contracts", async () => {
    const c = await contractFor(1);
    type Entry = { kind?: string; body?: Record<string, unknown> };
    const read = async (p: TestParty) => (await signedRequest<{ entries: Entry[] }>(x.url, p.identity, "GET", "/v1/audit")).body.entries;
    const [asBank, asOther] = [await read(bank), await read(other)];
    const signedEntry = (es: Entry[]) => es.find((e) => e.kind === "contract.signed" && e.body?.["contract"] === c);
    const published = (es: Entry[]) => es.filter((e) => e.kind === "product.published").length;
    expect([signedEntry(asBank)?.body?.["provider"], signedEntry(asOther), published(asBank), published(await read(acme))]).toEqual(["acme", undefined, 0, 1]);
  });
});

describe("refused by the provider's own check", () => {
  it("a contract the exchange tampered with (relayed with another purpose): contract-mismatch, the provider's copy unchanged", async () => {
    const c = await contractFor(3);
    const db = new Database(dbFile);
    db.prepare("UPDATE contracts SET document = json_set(document, '$.purpose', 'resale') WHERE id = ?").run(c);
    db.close();
    const provider = venueRows(acme.store);
    const r = await submit(c);
    const end = await waitForJob(bank.url, r.body.id as string);
    expect([r.status, end.state, end.reason, venueRows(acme.store)]).toEqual([201, "refused", "contract-mismatch", provider]);
  });

  it("a contract the provider never signed (its signature made with another party's key): contract-unknown", async () => {
    const c = contractDoc(Date.now() - 1000, Date.now() + 86_400_000);
    putAtExchange(c, other.identity.signing.secretKey);
    const provider = venueRows(acme.store);
    const r = await submit(c.id);
    const end = await waitForJob(bank.url, r.body.id as string);
    expect([r.status, end.state, end.reason, venueRows(acme.store)]).toEqual([201, "refused", "contract-unknown", provider]);
  });
});
