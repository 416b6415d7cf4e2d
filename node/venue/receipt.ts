/**
 * Receipts (docs/venue.md, "Receipts and statements"): what one job that ran
 * under contracts cost. The exchange issues exactly one per succeeded job, in
 * the transaction of its success:
 *
 *     { v, id, job, buyer, currency,
 *       lines:  [{ contract, contractDigest, product: {id, version}, provider, prices, units, amount }],
 *       amount: Σ lines' amounts,
 *       shares: [{ provider, amount }]   (add up to amount exactly),
 *       at }
 *
 * It signs "umbra.v1.receipt\n" || JCS(receipt) (Ed25519, RFC 8785) and logs
 * `receipt.issued` {receipt, job, digest, amount, currency}, the digest being
 * SHA-256 of the same bytes. The buyer's agent checks it against what it
 * knows, signs "umbra.v1.receipt.ack\n" || JCS({digest, receipt}) and posts
 * the ack; the exchange logs `receipt.acknowledged`.
 *
 * A receipt exported with its ledger entry, a signed tree head and the
 * entry's inclusion proof ({@link ReceiptBundle}) verifies offline with only
 * the exchange's public key ({@link verifyReceiptBundle}).
 */
import { createHash } from "node:crypto";
import { Type, type Static } from "typebox";
import { UmbraError } from "../../engine/errors.js";
import { ed25519Sign, ed25519Verify } from "../identity.js";
import { entryLeafHash, LedgerKind, verifiedEntry, type LedgerEntry } from "../ledger.js";
import { parseProof, verifyTreeHead, type SignedTreeHead } from "../log/head.js";
import { verifyInclusion } from "../log/merkle.js";
import { isPlainObject, schemaIssues } from "../schemas/check.js";
import { Identifier, IsoDateTime } from "../schemas/common.js";
import { PartyName, ProductId } from "../schemas/venue.js";
import { canonicalJson } from "../store.js";
import { lineAmount, mergeShares, splitAmount, sumAmounts, UNITS, type ShareInput, type Units } from "./metering.js";
import type { Prices } from "./product.js";
import type { ShareRule } from "../schemas/venue.js";

const Amount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Hex64 = Type.String({ pattern: "^[0-9a-f]{64}$" });
/** Most lines of one receipt (one per cited contract) and most shares (one per provider). */
export const MAX_RECEIPT_LINES = 64;

export const ReceiptSchema = Type.Object(
  {
    v: Type.Literal(1),
    id: Identifier,
    job: Identifier,
    buyer: PartyName,
    currency: Type.String({ pattern: "^[A-Z]{3}$" }),
    lines: Type.Array(
      Type.Object(
        {
          contract: Identifier,
          contractDigest: Hex64,
          product: Type.Object({ id: ProductId, version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }, { additionalProperties: false }),
          provider: PartyName,
          prices: Type.Object({ currency: Type.String({ pattern: "^[A-Z]{3}$" }), perJob: Amount, perKey: Amount, perMatchedRow: Amount, perCell: Amount }, { additionalProperties: false }),
          units: Type.Object({ jobs: Amount, keys: Type.Optional(Amount), matchedRows: Type.Optional(Amount), cells: Type.Optional(Amount) }, { additionalProperties: false }),
          amount: Amount,
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: MAX_RECEIPT_LINES },
    ),
    amount: Amount,
    shares: Type.Array(Type.Object({ provider: PartyName, amount: Amount }, { additionalProperties: false }), { minItems: 1, maxItems: MAX_RECEIPT_LINES }),
    at: IsoDateTime,
  },
  { additionalProperties: false },
);
export type Receipt = Static<typeof ReceiptSchema>;
export type ReceiptLine = Receipt["lines"][number];

/** The stable names of the receipts' refusals. */
export const ReceiptRule = {
  /** A receipt (or bundle) not of the receipt's form. */
  Malformed: "receipt-malformed",
  /** The exchange's signature does not verify. */
  Signature: "receipt-signature-invalid",
  /** Amounts or shares that do not add up (a line's amount is not its prices × units, the total not the lines', the shares not the total). */
  Arithmetic: "receipt-arithmetic",
  /** The receipt is not of the job asked for, or not this buyer's. */
  WrongJob: "receipt-wrong-job",
  /** Its units are not what the buyer's agent reported and knows. */
  Units: "receipt-units-mismatch",
  /** The ack does not verify under the buyer's registered key, or is not of this receipt. */
  AckSignature: "receipt-ack-invalid",
  /** The acknowledging party is not the receipt's buyer. */
  NotBuyer: "receipt-not-buyer",
  /** The bundle's entry, head or inclusion proof do not show this receipt in the log. */
  NotLogged: "receipt-not-logged",
} as const;
export type ReceiptRule = (typeof ReceiptRule)[keyof typeof ReceiptRule];

/** A receipt refused (code UMBRA_RECEIPT_REFUSED), naming the rule; never an id or an amount. */
export class ReceiptRefusedError extends UmbraError {
  constructor(
    readonly rule: ReceiptRule,
    reason: string,
  ) {
    super("UMBRA_RECEIPT_REFUSED", `receipt refused (${rule}): ${reason}`);
  }
}

const RECEIPT_TAG = "umbra.v1.receipt\n";
const ACK_TAG = "umbra.v1.receipt.ack\n";
const SIG = /^[0-9a-f]{128}$/;
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytesOf = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, "hex"));

export function receiptBytes(r: Receipt): Uint8Array {
  return new TextEncoder().encode(RECEIPT_TAG + canonicalJson(r));
}

/** A receipt's digest: hex SHA-256 of {@link receiptBytes}. */
export function receiptDigest(r: Receipt): string {
  return createHash("sha256").update(receiptBytes(r)).digest("hex");
}

export function signReceipt(secretKey: Uint8Array, r: Receipt): string {
  return hexOf(ed25519Sign(secretKey, receiptBytes(r)));
}

export function verifyReceiptSignature(publicKey: Uint8Array, r: Receipt, signature: unknown): boolean {
  return typeof signature === "string" && SIG.test(signature) && ed25519Verify(publicKey, receiptBytes(r), bytesOf(signature));
}

export function ackBytes(receiptId: string, digest: string): Uint8Array {
  return new TextEncoder().encode(ACK_TAG + canonicalJson({ digest, receipt: receiptId }));
}

/** The buyer's acknowledgement (hex) of a receipt. */
export function signAck(secretKey: Uint8Array, receiptId: string, digest: string): string {
  return hexOf(ed25519Sign(secretKey, ackBytes(receiptId, digest)));
}

export function verifyAck(publicKey: Uint8Array, receiptId: string, digest: string, signature: unknown): boolean {
  return typeof signature === "string" && SIG.test(signature) && ed25519Verify(publicKey, ackBytes(receiptId, digest), bytesOf(signature));
}

/** What the exchange knows of one cited contract when the job succeeds. */
export interface BilledContract {
  readonly contract: string;
  readonly contractDigest: string;
  readonly product: { readonly id: string; readonly version: number };
  readonly provider: string;
  readonly prices: Prices;
  readonly share: ShareRule;
  readonly units: Units;
}

/**
 * A receipt's lines, amount and shares: each line's amount is its prices ×
 * units; a single-provider job's share is the whole amount; a
 * multi-provider job's lines are each split among all its providers by the
 * line's share rule ({@link splitAmount}).
 * @throws AmountOverflowError
 */
export function buildReceipt(o: { readonly id: string; readonly job: string; readonly buyer: string; readonly at: number; readonly contracts: readonly BilledContract[]; readonly providers: readonly ShareInput[] }): Receipt {
  const lines = o.contracts.map((c) => ({ contract: c.contract, contractDigest: c.contractDigest, product: { id: c.product.id, version: c.product.version }, provider: c.provider, prices: { ...c.prices }, units: { ...c.units }, amount: lineAmount(c.prices, c.units) }));
  const amount = sumAmounts(lines.map((l) => l.amount));
  const shares = mergeShares(o.contracts.map((c, i) => splitAmount(lines[i]!.amount, o.providers.length > 0 ? o.providers : [{ provider: c.provider, rows: 0 }], c.share)));
  return { v: 1, id: o.id, job: o.job, buyer: o.buyer, currency: o.contracts[0]!.prices.currency, lines, amount, shares, at: new Date(o.at).toISOString() };
}

/**
 * A receipt as received, checked: its form, one currency, and its
 * arithmetic (each line's prices × units, the total, the shares adding up).
 * @throws ReceiptRefusedError naming the rule
 */
export function parseReceipt(v: unknown): Receipt {
  if (!isPlainObject(v) || schemaIssues(ReceiptSchema, v, "receipt").length > 0) throw new ReceiptRefusedError(ReceiptRule.Malformed, "it is not of the receipt's form");
  const r = v as Receipt;
  try {
    if (r.lines.some((l) => l.prices.currency !== r.currency || l.amount !== lineAmount(l.prices, l.units as Units))) throw new Error();
    for (const l of r.lines) for (const u of UNITS) if (u !== "jobs" && (l.units[u] !== undefined) !== l.prices[u === "keys" ? "perKey" : u === "matchedRows" ? "perMatchedRow" : "perCell"] > 0) throw new Error();
    if (r.amount !== sumAmounts(r.lines.map((l) => l.amount)) || r.amount !== sumAmounts(r.shares.map((s) => s.amount))) throw new Error();
    if (new Set(r.shares.map((s) => s.provider)).size !== r.shares.length) throw new Error();
  } catch {
    throw new ReceiptRefusedError(ReceiptRule.Arithmetic, "its amounts do not add up to its prices × units, or its shares to its amount");
  }
  return r;
}

export const BUNDLE_TYPE = "umbra.v1.receipt-bundle";

/** A receipt with what shows it in the exchange's log: its signature, its receipt.issued entry, a signed tree head and the entry's inclusion proof. */
export interface ReceiptBundle {
  readonly type: typeof BUNDLE_TYPE;
  readonly receipt: Receipt;
  readonly signature: string;
  readonly entry: LedgerEntry;
  readonly head: SignedTreeHead;
  readonly inclusion: readonly string[];
}

/** The body of a receipt's receipt.issued entry. */
export function issuedBody(r: Receipt): { receipt: string; job: string; digest: string; amount: number; currency: string } {
  return { receipt: r.id, job: r.job, digest: receiptDigest(r), amount: r.amount, currency: r.currency };
}

/**
 * Verifies a receipt bundle with only the exchange's public key: the
 * receipt's form and arithmetic, the exchange's signature, its
 * receipt.issued entry (signed, naming this receipt's id, job, digest,
 * amount and currency), the tree head's signature and the inclusion proof.
 * @throws ReceiptRefusedError naming the first check that fails
 */
export function verifyReceiptBundle(value: unknown, exchangeKey: Uint8Array): { receipt: Receipt; digest: string; seq: number; head: SignedTreeHead } {
  if (!isPlainObject(value) || Object.keys(value).sort().join(",") !== "entry,head,inclusion,receipt,signature,type" || value["type"] !== BUNDLE_TYPE) {
    throw new ReceiptRefusedError(ReceiptRule.Malformed, "it is not a receipt bundle (type, receipt, signature, entry, head, inclusion)");
  }
  const receipt = parseReceipt(value["receipt"]);
  if (!verifyReceiptSignature(exchangeKey, receipt, value["signature"])) throw new ReceiptRefusedError(ReceiptRule.Signature, "the exchange's signature does not verify");
  const entry = verifiedEntry(value["entry"], exchangeKey);
  const body = issuedBody(receipt);
  if (entry === undefined || entry.kind !== LedgerKind.ReceiptIssued || canonicalJson(entry.body) !== canonicalJson(body)) {
    throw new ReceiptRefusedError(ReceiptRule.NotLogged, "its ledger entry is malformed, not signed by the exchange, or not this receipt's");
  }
  const head = verifyTreeHead(value["head"], exchangeKey);
  const proof = parseProof(value["inclusion"]);
  if (head === undefined || proof === undefined || !verifyInclusion(entryLeafHash(entry), entry.seq - 1, head.size, proof, bytesOf(head.root))) {
    throw new ReceiptRefusedError(ReceiptRule.NotLogged, "its tree head is not signed by the exchange, or its entry is not in the log the head signs");
  }
  return { receipt, digest: body.digest, seq: entry.seq, head };
}
