/**
 * The venue's documents on their own (docs/venue.md): a product lists every
 * problem at once, each naming its field, and every term outside its
 * datasets' policies; a contract's signed bytes are its RFC 8785 canonical
 * JSON after the domain tag, the same whatever the order of its keys; each
 * signature verifies under its signer's key only, and not once the contract
 * changes; the store's quota never goes past its limit.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../node/identity.js";
import { parsePolicy } from "../node/policy.js";
import { openStore } from "../node/store.js";
import {
  checkContractStatus,
  ContractDeniedError,
  contractBytes,
  contractDigest,
  countersign,
  InvalidContractError,
  parseContract,
  signContract,
  verifyContractSignature,
  verifySignedContract,
  type ContractDocument,
} from "../node/venue/contract.js";
import { contractsForJob } from "../node/venue/job-contracts.js";
import { autoApproves, catalogIssues, InvalidProductError, parseProduct, productDigest } from "../node/venue/product.js";
import type { JobRequest } from "../node/policy.js";

const product = {
  id: "acme.matching",
  title: "Customer matching",
  datasets: ["acme.subs.csv"],
  protocols: ["psi"],
  prices: { currency: "EUR", perJob: 500, perKey: 1 },
};

const contract: ContractDocument = {
  v: 1,
  id: "contract-0123456789abcdef",
  product: { id: "acme.matching", version: 1, digest: "ab".repeat(32) },
  buyer: "bank",
  provider: "acme",
  purpose: "fraud screening",
  quota: { jobs: 3 },
  prices: { currency: "EUR", perJob: 500, perKey: 1, perMatchedRow: 0, perCell: 0 },
  share: "equal",
  notBefore: "2026-01-01T00:00:00Z",
  notAfter: "2026-02-01T00:00:00Z",
};

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidProductError || err instanceof InvalidContractError) return err.issues.map((i) => `${i.field}: ${i.problem}`);
    throw err;
  }
  return [];
}

describe("a product document", () => {
  it("lists every problem at once, each naming its field", () => {
    const bad = { ...product, id: "other.matching", protocols: [], prices: { currency: "eur", perJob: -1, perCell: 1.5 }, share: "most", datasets: ["acme.subs.csv", "acme.subs.csv"], prize: 1 };
    expect(issuesOf(() => parseProduct(bad, "acme"))).toEqual([
      '"prize": unknown field: did you mean prices? (the fields are id, title, description, datasets, protocols, outputColumns, prices, share, autoApprove)',
      "id: must be in the publisher's own namespace: its party name, a dot and a slug",
      "datasets[1]: duplicate entry",
      "protocols: must have at least 1 entry",
      "prices.currency: must be a currency code of 3 capital letters, as ISO 4217 (e.g. EUR, USD)",
      "prices.perJob: must be at least 0",
      "prices.perCell: must be an integer",
      'share: must be one of "equal", "rows"',
    ]);
  });

  it("fills its defaults, and its digest is SHA-256 of the tag and its canonical JSON", () => {
    const p = parseProduct(product, "acme");
    expect(p.prices).toEqual({ currency: "EUR", perJob: 500, perKey: 1, perMatchedRow: 0, perCell: 0 });
    expect(p.share).toBe("equal");
    const canonical =
      '{"datasets":["acme.subs.csv"],"id":"acme.matching","outputColumns":[],"prices":{"currency":"EUR","perCell":0,"perJob":500,"perKey":1,"perMatchedRow":0},"protocols":["psi"],"share":"equal","title":"Customer matching"}';
    expect(productDigest(p)).toBe(createHash("sha256").update(`umbra.v1.product\n${canonical}`).digest("hex"));
  });

  it("names each term its datasets' policies do not allow", () => {
    const p = parseProduct({ ...product, datasets: ["acme.subs.csv", "acme.missing.csv"], protocols: ["psi", "lookup"], outputColumns: ["plan", "age"] }, "acme");
    const policy = parsePolicy({ allowedProtocols: ["psi"], keyColumns: ["phone"], outputColumns: ["plan"] });
    const descriptor = { id: "acme.subs.csv", owner: "acme", name: "subs.csv", schema: [{ name: "phone", type: "Utf8" }, { name: "plan", type: "Utf8" }], rowCount: 3, contentHash: "00".repeat(32), createdAt: "2026-01-01T00:00:00Z" };
    expect(catalogIssues(p, "acme", (id) => (id === "acme.subs.csv" ? { descriptor: descriptor as never, policy } : undefined))).toEqual([
      { field: "datasets[1]", problem: "is not a dataset this party registered" },
      { field: "protocols[1]", problem: "protocol lookup is not allowed by the policy of datasets[0]" },
      { field: "outputColumns[1]", problem: 'column "age" is in none of the product\'s datasets' },
    ]);
  });

  it("auto-approves only an order every given field of its rule allows", () => {
    const p = parseProduct({ ...product, autoApprove: { maxQuotaJobs: 5, buyers: ["bank"] } }, "acme");
    expect([autoApproves(p, { buyer: "bank", purpose: "x", quotaJobs: 5 }), autoApproves(p, { buyer: "bank", purpose: "x", quotaJobs: 6 }), autoApproves(p, { buyer: "shop", purpose: "x", quotaJobs: 1 })]).toEqual([true, false, false]);
  });
});

describe("a contract document", () => {
  it("lists every problem at once", () => {
    const bad = { ...contract, quota: { jobs: 0 }, notBefore: "2026-02-30T00:00:00Z", buyer: "a b" };
    expect(issuesOf(() => parseContract(bad))).toEqual(["buyer: must be a party name: 1 to 64 of A-Z a-z 0-9 . _ -", "quota.jobs: must be between 1 and 1000000", "notBefore: is not a valid date-time"]);
  });

  it("signs the tag and its RFC 8785 canonical JSON, whatever the order of its keys", () => {
    const shuffled = Object.fromEntries(Object.entries(contract).reverse()) as ContractDocument;
    const expected =
      'umbra.v1.contract\n{"buyer":"bank","id":"contract-0123456789abcdef","notAfter":"2026-02-01T00:00:00Z","notBefore":"2026-01-01T00:00:00Z","prices":{"currency":"EUR","perCell":0,"perJob":500,"perKey":1,"perMatchedRow":0},"product":{"digest":"' +
      "ab".repeat(32) +
      '","id":"acme.matching","version":1},"provider":"acme","purpose":"fraud screening","quota":{"jobs":3},"share":"equal","v":1}';
    expect(new TextDecoder().decode(contractBytes(shuffled))).toBe(expected);
    expect(contractDigest(shuffled)).toBe(createHash("sha256").update(expected).digest("hex"));
  });

  it("a signature verifies under its signer's key only, and not once the contract changes", () => {
    const bank = generateIdentity("bank");
    const mallory = generateIdentity("mallory");
    const sig = signContract(bank.signing.secretKey, contract);
    expect([
      verifyContractSignature(bank.signing.publicKey, contract, sig),
      verifyContractSignature(mallory.signing.publicKey, contract, sig),
      verifyContractSignature(bank.signing.publicKey, { ...contract, quota: { jobs: 4 } }, sig),
    ]).toEqual([true, false, false]);
  });

  it("the exchange's countersignature covers both parties' signatures", () => {
    const [bank, acme, x] = [generateIdentity("bank"), generateIdentity("acme"), generateIdentity("exchange")];
    const buyer = signContract(bank.signing.secretKey, contract);
    const provider = signContract(acme.signing.secretKey, contract);
    const exchange = countersign(x.signing.secretKey, contractDigest(contract), buyer, provider);
    const keys = { buyer: bank.signing.publicKey, provider: acme.signing.publicKey, exchange: x.signing.publicKey };
    const other = signContract(generateIdentity("acme").signing.secretKey, contract);
    expect([verifySignedContract({ contract, signatures: { buyer, provider, exchange } }, keys), verifySignedContract({ contract, signatures: { buyer, provider: other, exchange } }, keys)]).toEqual([true, false]);
  });

  it("names the first status rule that fails", () => {
    const base = { state: "active" as const, notBefore: 1000, notAfter: 2000, buyer: "bank", jobsUsed: 0, quotaJobs: 1 };
    const rule = (c: typeof base | Record<string, unknown>, now: number) => {
      try {
        checkContractStatus(c as typeof base, "bank", now);
        return "ok";
      } catch (err) {
        return err instanceof ContractDeniedError ? err.rule : "other";
      }
    };
    expect([
      rule(base, 1500),
      rule({ ...base, state: "revoked" }, 1500),
      rule({ ...base, state: "pending" }, 1500),
      rule({ ...base, buyer: "shop" }, 1500),
      rule(base, 999),
      rule(base, 2000),
      rule({ ...base, jobsUsed: 1 }, 1500),
    ]).toEqual(["ok", "contract-revoked", "contract-not-active", "contract-buyer-mismatch", "contract-not-yet-valid", "contract-expired", "contract-quota-exhausted"]);
  });
});

describe("the store's quota", () => {
  it("counts jobs up to the quota and never past it", () => {
    const store = openStore(":memory:");
    const sig = "11".repeat(64);
    store.venue.putContract({ id: contract.id, productId: "acme.matching", productVersion: 1, buyer: "bank", provider: "acme", document: contract, digest: "cd".repeat(32), buyerSignature: sig, providerSignature: sig, exchangeSignature: sig, state: "active", quotaJobs: 2, notBefore: 0, notAfter: 10 });
    expect([store.venue.reserveJob(contract.id), store.venue.reserveJob(contract.id), store.venue.reserveJob(contract.id), store.venue.getContract(contract.id)?.jobsUsed]).toEqual([true, true, false, 2]);
    store.close();
  });
});

describe("which contracts a job needs (a federated-aggregate job over two providers' products)", () => {
  const store = openStore(":memory:");
  const sig = "11".repeat(64);
  for (const owner of ["acme", "beta"]) {
    const p = parseProduct({ id: `${owner}.totals`, title: "Totals", datasets: [`${owner}.d.csv`], protocols: ["federated-aggregate"], outputColumns: ["amount"], prices: { currency: "EUR", perJob: 1 } }, owner);
    store.venue.putProduct({ id: p.id, owner, document: p, digest: productDigest(p) });
    store.venue.putContract({ id: `contract-${owner}-0000000000`, productId: p.id, productVersion: 1, buyer: "bank", provider: owner, document: { owner }, digest: "cd".repeat(32), buyerSignature: sig, providerSignature: sig, exchangeSignature: sig, state: "active", quotaJobs: 5, notBefore: 0, notAfter: 10_000 });
  }
  const job = (contracts: string[]): JobRequest => ({
    protocol: "federated-aggregate" as JobRequest["protocol"],
    buyer: "bank",
    providerDatasets: ["acme.d.csv", "beta.d.csv"],
    params: { keyColumns: [], outputColumns: ["amount"] },
    ...(contracts.length > 0 ? { contracts } : {}),
  });
  const outcome = (contracts: string[], requireAll = false) => {
    try {
      return contractsForJob(store, job(contracts), ["acme.d.csv", "beta.d.csv"], 5_000, requireAll).map((r) => r.id);
    } catch (err) {
      return err instanceof ContractDeniedError ? err.rule : "other";
    }
  };

  it("one contract per product: with both it runs under both; with one, the other dataset is refused", () => {
    expect([outcome(["contract-acme-0000000000", "contract-beta-0000000000"]), outcome(["contract-acme-0000000000"]), outcome([])]).toEqual([
      ["contract-acme-0000000000", "contract-beta-0000000000"],
      "contract-required",
      "contract-required",
    ]);
  });

  it("a product withdrawn: its dataset needs a contract again only where the exchange requires one for every job", () => {
    store.venue.setProductState("beta.totals", 1, "withdrawn");
    expect([outcome(["contract-acme-0000000000"]), outcome(["contract-acme-0000000000"], true)]).toEqual([["contract-acme-0000000000"], "contract-required"]);
  });
});
