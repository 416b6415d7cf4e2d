/**
 * The exchange's side of metering and receipts (docs/venue.md, "Receipts and
 * statements"): which units a job's contracts price, the units its parties
 * measured (the providers' `charged` entries, the buyer's `succeeded`
 * report), and the receipt it issues — built, signed, stored and logged in
 * the caller's transaction (the job's success), exactly once per job.
 */
import { randomUUID } from "node:crypto";
import { protocolDescription } from "../../protocols/index.js";
import type { NodeIdentity } from "../identity.js";
import { appendEntry, LedgerKind, listEntries } from "../ledger.js";
import type { JobRequest } from "../job-request.js";
import type { ContractRow, JobRecord, ReceiptRow, Store } from "../store.js";
import type { ContractDocument } from "./contract.js";
import { productOf } from "./job-contracts.js";
import { checkBuyerUnits, lineUnits, MAX_METERED_ROWS, MeteringRefusedError, MeteringRule, type ShareInput } from "./metering.js";
import { buildReceipt, issuedBody, receiptDigest, signReceipt } from "./receipt.js";
import { ShareRule } from "../schemas/venue.js";

/** The contracts a job cites, as the exchange holds them (in the request's order). */
export function citedContracts(store: Store, request: JobRequest): ContractRow[] {
  return (request.contracts ?? []).flatMap((id) => {
    const row = store.venue.getContract(id);
    return row ? [row] : [];
  });
}

const docOf = (row: ContractRow): ContractDocument => row.document as unknown as ContractDocument;

/** Whether a provider of the job meters the buyer's keys for a price: one of its cited contracts prices perKey and the protocol has buyer keys. */
export function metersKeys(store: Store, request: JobRequest, provider: string): boolean {
  if (!protocolDescription(request.protocol).buyerKeys) return false;
  return citedContracts(store, request).some((c) => c.provider === provider && (docOf(c).prices.perKey ?? 0) > 0);
}

/**
 * Checks a provider's reported key count: an integer no more than the job
 * declared (its queryCount; undeclared, the metering cap).
 * @throws MeteringRefusedError (metering-keys-over-declared)
 */
export function checkReportedKeys(request: JobRequest, units: number): number {
  const declared = request.params.queryCount ?? MAX_METERED_ROWS;
  if (!Number.isSafeInteger(units) || units < 0 || units > declared) throw new MeteringRefusedError(MeteringRule.KeysOverDeclared, "a provider reported more distinct keys than the job declared");
  return units;
}

/** The buyer's reported units checked against what the job's contracts price. @throws MeteringRefusedError */
export function checkSucceededUnits(store: Store, request: JobRequest, reported: { readonly matchedRows?: number | undefined; readonly cells?: number | undefined }): { matchedRows?: number; cells?: number } {
  return checkBuyerUnits(citedContracts(store, request).map((c) => docOf(c).prices as never), reported);
}

/** The keys each provider reported (its `charged` entry), by provider. */
function reportedKeys(store: Store, job: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of listEntries(store, { job })) if (e.kind === LedgerKind.JobStep && e.body["step"] === "charged" && typeof e.body["by"] === "string") out.set(e.body["by"], Number(e.body["units"]));
  return out;
}

/**
 * Issues the receipt of a job that succeeded under contracts (none without):
 * inside the caller's transaction — the job's success — builds it from each
 * cited contract's prices and the measured units, signs it, stores it with
 * its shares and logs receipt.issued. A job with a receipt already gets none
 * (the store refuses a second: `job` is unique).
 */
export function issueJobReceipt(store: Store, signing: NodeIdentity["signing"], j: JobRecord, request: JobRequest, buyerUnits: { readonly matchedRows?: number; readonly cells?: number }, now: number): ReceiptRow | undefined {
  const rows = citedContracts(store, request);
  if (rows.length === 0) return undefined;
  const existing = store.receipts.byJob(j.id);
  if (existing !== undefined) return existing;
  const keys = reportedKeys(store, j.id);
  const datasets = j.providers.length > 1 ? (request.providerDatasets ?? []) : [];
  const providers: ShareInput[] = j.providers.map((provider, i) => ({ provider, rows: datasets[i] !== undefined ? (store.getDataset(datasets[i] as string)?.rowCount ?? 0) : 0 }));
  const contracts = rows.map((row) => {
    const doc = docOf(row);
    const product = productOf(store, row.productId, row.productVersion);
    // A provider that never reported (it should have, before its answer reached the buyer) is billed the keys the buyer declared.
    const k = keys.get(row.provider) ?? request.params.queryCount ?? 0;
    const prices = { currency: doc.prices.currency, perJob: doc.prices.perJob, perKey: doc.prices.perKey ?? 0, perMatchedRow: doc.prices.perMatchedRow ?? 0, perCell: doc.prices.perCell ?? 0 };
    return {
      contract: row.id,
      contractDigest: row.digest,
      product: { id: row.productId, version: row.productVersion },
      provider: row.provider,
      prices,
      share: product?.share ?? doc.share ?? ShareRule.Equal,
      units: lineUnits(prices, { keys: protocolDescription(request.protocol).buyerKeys ? k : 0, ...buyerUnits }),
    };
  });
  const receipt = buildReceipt({ id: `receipt-${randomUUID()}`, job: j.id, buyer: j.buyer, at: now, contracts, providers: j.providers.length > 1 ? providers : [] });
  const digest = receiptDigest(receipt);
  store.receipts.put({ id: receipt.id, job: j.id, buyer: j.buyer, currency: receipt.currency, amount: receipt.amount, document: receipt, digest, signature: signReceipt(signing.secretKey, receipt), shares: receipt.shares, issuedAt: now });
  const e = appendEntry(store, signing, { kind: LedgerKind.ReceiptIssued, body: issuedBody(receipt) });
  store.receipts.setIssuedSeq(receipt.id, e.seq);
  return store.receipts.get(receipt.id);
}
