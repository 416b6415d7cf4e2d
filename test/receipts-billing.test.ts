/**
 * Billing against an independent computation (docs/venue.md, "Receipts and
 * statements"): over random price schedules, units, 1 to 5 providers, row
 * counts and share rules, a receipt's amount is Σ price × units exactly, its
 * shares add up to the amount exactly, and each share is within one minor
 * unit of its exact pro-rata value (computed here with rationals in BigInt).
 * Plus the refusals of the pure checks, each naming its rule.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateIdentity } from "../node/identity.js";
import { AmountOverflowError, checkBuyerUnits, lineUnits, MeteringRefusedError, splitAmount, type Prices, type Units } from "../node/venue/metering.js";
import { buildReceipt, parseReceipt, receiptDigest, ReceiptRefusedError, signReceipt, verifyReceiptSignature, type BilledContract } from "../node/venue/receipt.js";
import { InvalidProductError, parseProduct } from "../node/venue/product.js";
import { checkAgainstJob } from "../node/venue/party-receipts.js";
import { openStore } from "../node/store.js";
import type { JobRequest } from "../node/job-request.js";

const price = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10_000 }));
const prices = fc.record({ currency: fc.constant("EUR"), perJob: price, perKey: price, perMatchedRow: price, perCell: price });
const names = ["p1", "p2", "p3", "p4", "p5"];

/** |a/b - c| ≤ 1, exactly. */
const withinOne = (share: bigint, num: bigint, den: bigint): boolean => {
  const diff = share * den - num;
  return (diff < 0n ? -diff : diff) <= den;
};

describe("metering and shares (property)", () => {
  it("amount = Σ price × units; shares sum to it exactly; each within 1 minor unit of its pro-rata value", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 5, maxLength: 5 }),
        fc.array(fc.record({ prices, share: fc.constantFrom("equal" as const, "rows" as const), by: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 4 }),
        fc.record({ keys: fc.integer({ min: 0, max: 100_000 }), matchedRows: fc.integer({ min: 0, max: 100_000 }), cells: fc.integer({ min: 0, max: 100_000 }) }),
        (n, rows, lines, measured) => {
          const providers = names.slice(0, n).map((provider, i) => ({ provider, rows: rows[i] as number }));
          const contracts: BilledContract[] = lines.map((l, i) => ({
            contract: `c${i}`,
            contractDigest: "0".repeat(64),
            product: { id: `${providers[l.by % n]!.provider}.x`, version: 1 },
            provider: providers[l.by % n]!.provider,
            prices: l.prices,
            share: l.share,
            units: lineUnits(l.prices, measured),
          }));
          const r = buildReceipt({ id: "receipt-1", job: "job-1", buyer: "bank", at: 0, contracts, providers: n > 1 ? providers : [] });
          // Independently: Σ over lines of Σ price × units, in BigInt.
          let expected = 0n;
          const exactShares = new Map<string, [bigint, bigint][]>();
          for (const l of lines) {
            const p = l.prices;
            const line = BigInt(p.perJob) + BigInt(p.perKey) * BigInt(p.perKey > 0 ? measured.keys : 0) + BigInt(p.perMatchedRow) * BigInt(p.perMatchedRow > 0 ? measured.matchedRows : 0) + BigInt(p.perCell) * BigInt(p.perCell > 0 ? measured.cells : 0);
            expected += line;
            const owner = providers[l.by % n]!.provider;
            const totalRows = providers.reduce((s, x) => s + BigInt(x.rows), 0n);
            for (const x of providers) {
              const part: [bigint, bigint] = n === 1 ? (x.provider === owner ? [line, 1n] : [0n, 1n]) : l.share === "rows" && totalRows > 0n ? [line * BigInt(x.rows), totalRows] : [line, BigInt(n)];
              exactShares.set(x.provider, [...(exactShares.get(x.provider) ?? []), part]);
            }
          }
          expect(BigInt(r.amount)).toBe(expected);
          expect(r.shares.reduce((s, x) => s + BigInt(x.amount), 0n)).toBe(expected);
          // Each line's split is within 1 of exact; so a provider's share is within (lines) units of its exact total, and per line we check within 1.
          for (const [i, l] of lines.entries()) {
            const line = BigInt(r.lines[i]!.amount);
            const split = splitAmount(Number(line), n > 1 ? providers : [{ provider: providers[l.by % n]!.provider, rows: 0 }], l.share);
            expect(split.reduce((s, x) => s + BigInt(x.amount), 0n)).toBe(line);
            const totalRows = providers.reduce((s, x) => s + BigInt(x.rows), 0n);
            for (const s of split) {
              const x = providers.find((p) => p.provider === s.provider)!;
              const [num, den] = n === 1 ? [line, 1n] : l.share === "rows" && totalRows > 0n ? [line * BigInt(x.rows), totalRows] : [line, BigInt(n)];
              expect(withinOne(BigInt(s.amount), num, den)).toBe(true);
            }
          }
          // A provider's whole share is within one unit per line of its exact sum.
          for (const s of r.shares) {
            const parts = exactShares.get(s.provider) ?? [];
            const den = parts.reduce((d, [, b]) => d * b, 1n);
            const num = parts.reduce((acc, [a, b]) => acc + (a * den) / b, 0n);
            const diff = BigInt(s.amount) * den - num;
            expect((diff < 0n ? -diff : diff) <= den * BigInt(lines.length)).toBe(true);
          }
          expect(parseReceipt(JSON.parse(JSON.stringify(r)))).toEqual(r);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("splits 3 providers' 100 by rows 1:1:1 as 34, 33, 33 (the remainder to the name first in order)", () => {
    expect(splitAmount(100, [{ provider: "c", rows: 5 }, { provider: "a", rows: 5 }, { provider: "b", rows: 5 }], "rows")).toEqual([
      { provider: "a", amount: 34 },
      { provider: "b", amount: 33 },
      { provider: "c", amount: 33 },
    ]);
  });

  it("splits 1000 by rows 100:200:400 as 143, 286, 571 (largest remainders first)", () => {
    // exact: 142.857…, 285.714…, 571.428… → floors 142, 285, 571 (998); the 2 left go to the largest remainders .857 and .714.
    expect(splitAmount(1000, [{ provider: "acme", rows: 100 }, { provider: "beta", rows: 200 }, { provider: "gamma", rows: 400 }], "rows").map((s) => s.amount)).toEqual([143, 286, 571]);
  });

  it("an amount above the largest safe integer is a typed error, not a rounded number", () => {
    const p: Prices = { currency: "EUR", perJob: Number.MAX_SAFE_INTEGER, perKey: 2, perMatchedRow: 0, perCell: 0 };
    expect(() => buildReceipt({ id: "r", job: "j", buyer: "b", at: 0, providers: [], contracts: [{ contract: "c", contractDigest: "0".repeat(64), product: { id: "a.x", version: 1 }, provider: "a", prices: p, share: "equal", units: { jobs: 1, keys: 5 } }] })).toThrow(AmountOverflowError);
  });

  it("the buyer's units: present exactly when priced, within bounds; each refusal names its rule", () => {
    const priced: Prices = { currency: "EUR", perJob: 1, perKey: 0, perMatchedRow: 3, perCell: 0 };
    expect(checkBuyerUnits([priced], { matchedRows: 4 })).toEqual({ matchedRows: 4 });
    const rule = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as MeteringRefusedError).rule;
      }
      return undefined;
    };
    expect(rule(() => checkBuyerUnits([priced], { matchedRows: 4, cells: 1 }))).toBe("metering-unit-not-priced");
    expect(rule(() => checkBuyerUnits([priced], {}))).toBe("metering-unit-missing");
    expect(rule(() => checkBuyerUnits([priced], { matchedRows: 2_000_000_000 }))).toBe("metering-out-of-bounds");
  });

  it("an edited receipt: its arithmetic or the exchange's signature refuses it", () => {
    const x = generateIdentity("exchange");
    const p: Prices = { currency: "EUR", perJob: 500, perKey: 2, perMatchedRow: 0, perCell: 0 };
    const r = buildReceipt({ id: "r", job: "j", buyer: "bank", at: 0, providers: [], contracts: [{ contract: "c", contractDigest: "0".repeat(64), product: { id: "acme.x", version: 1 }, provider: "acme", prices: p, share: "equal", units: { jobs: 1, keys: 10 } }] });
    const sig = signReceipt(x.signing.secretKey, r);
    expect(verifyReceiptSignature(x.signing.publicKey, r, sig)).toBe(true);
    const cheaper = { ...r, amount: 1, lines: [{ ...r.lines[0]!, amount: 1 }] };
    expect(() => parseReceipt(cheaper)).toThrow(ReceiptRefusedError);
    const fewerKeys = { ...r, amount: 510, shares: [{ provider: "acme", amount: 510 }], lines: [{ ...r.lines[0]!, units: { jobs: 1, keys: 5 }, amount: 510 }] };
    expect(parseReceipt(fewerKeys).amount).toBe(510); // adds up: only the signature can tell
    expect(verifyReceiptSignature(x.signing.publicKey, fewerKeys, sig)).toBe(false);
    expect(receiptDigest(fewerKeys)).not.toBe(receiptDigest(r));
  });

  it("refuses a product priced per matched row whose protocols include psi-cardinality, naming the rule", () => {
    const doc = { id: "acme.count", title: "t", datasets: ["acme.d.csv"], protocols: ["psi-cardinality"], prices: { currency: "EUR", perJob: 1, perMatchedRow: 1 } };
    expect(() => parseProduct(doc, "acme")).toThrow(InvalidProductError);
    expect(() => parseProduct(doc, "acme")).toThrow(/product-matched-rows-reveal-cardinality/);
    expect(parseProduct({ ...doc, prices: { currency: "EUR", perJob: 1 } }, "acme").prices.perMatchedRow).toBe(0);
  });
});

describe("the buyer's agent's check of a receipt against what it knows", () => {
  const store = openStore(":memory:");
  const prices: Prices = { currency: "EUR", perJob: 100, perKey: 2, perMatchedRow: 5, perCell: 0 };
  const contract = { v: 1, id: "contract-1", product: { id: "acme.m", version: 1, digest: "cd".repeat(32) }, buyer: "bank", provider: "acme", purpose: "p", quota: { jobs: 3 }, prices, share: "equal", notBefore: "2026-01-01T00:00:00Z", notAfter: "2027-01-01T00:00:00Z" };
  store.venue.putContract({ id: "contract-1", productId: "acme.m", productVersion: 1, buyer: "bank", provider: "acme", document: contract, digest: "ab".repeat(32), buyerSignature: "11".repeat(64), state: "pending", quotaJobs: 3, notBefore: 0, notAfter: 10 });
  const request = { protocol: "psi", buyer: "bank", buyerDataset: "c.csv", providerDataset: "acme.d.csv", params: { keyColumns: ["k"], queryCount: 50 }, contracts: ["contract-1"] } as unknown as JobRequest;
  const receipt = (units: Units, job = "job-1", digest = "ab".repeat(32)) =>
    buildReceipt({ id: "r", job, buyer: "bank", at: 0, providers: [], contracts: [{ contract: "contract-1", contractDigest: digest, product: { id: "acme.m", version: 1 }, provider: "acme", prices, share: "equal", units }] });
  const rule = (r: ReturnType<typeof receipt>) => {
    try {
      checkAgainstJob(store, "bank", "job-1", request, { rows: 7 }, r);
    } catch (err) {
      return (err as ReceiptRefusedError).rule;
    }
    return "ok";
  };

  it("accepts the units it reported; refuses other matched rows, more keys than declared, another job's or another contract's", () => {
    expect(rule(receipt({ jobs: 1, keys: 40, matchedRows: 7 }))).toBe("ok");
    expect(rule(receipt({ jobs: 1, keys: 40, matchedRows: 8 }))).toBe("receipt-units-mismatch");
    expect(rule(receipt({ jobs: 1, keys: 51, matchedRows: 7 }))).toBe("receipt-units-mismatch");
    expect(rule(receipt({ jobs: 1, keys: 40, matchedRows: 7 }, "job-2"))).toBe("receipt-wrong-job");
    expect(rule(receipt({ jobs: 1, keys: 40, matchedRows: 7 }, "job-1", "ee".repeat(32)))).toBe("receipt-units-mismatch");
  });
});
