/**
 * Contracts (docs/venue.md): a buyer's order of one product version — its
 * purpose, a quota of jobs, the price schedule copied from the product, a
 * validity window — as one JSON document that three parties sign:
 *
 * - the buyer's agent and the provider's agent each sign
 *   "umbra.v1.contract\n" || JCS(contract) with their registered Ed25519
 *   identity key (JCS: RFC 8785 canonical JSON);
 * - the exchange, once it has checked both against the keys the parties
 *   registered, countersigns
 *   "umbra.v1.contract.countersign\n" || JCS({buyer, contract, provider}),
 *   where contract is the contract's digest and buyer and provider their
 *   signatures (hex).
 *
 * A contract's digest is hex SHA-256 of the bytes the parties sign. Nothing
 * here names a value of any dataset.
 */
import { createHash } from "node:crypto";
import { UmbraError } from "../../engine/errors.js";
import { ed25519Sign, ed25519Verify } from "../identity.js";
import { inDocumentOrder, InvalidDocumentError, isPlainObject, schemaIssues, type FieldIssue } from "../schemas/check.js";
import { isRealDateTime } from "../schemas/common.js";
import { CONTRACT_FIELDS, ContractSchema, type ContractDocument } from "../schemas/venue.js";
import { canonicalJson, type ContractRow } from "../store.js";

export type { ContractDocument };

/** A contract document that is not well formed (code UMBRA_INVALID_CONTRACT). */
export class InvalidContractError extends InvalidDocumentError {
  constructor(issues: readonly FieldIssue[]) {
    super("contract", issues, "UMBRA_INVALID_CONTRACT");
  }
}

/** The stable names of the venue's refusals: an order, or a job's contract, refused. */
export const ContractRule = {
  /** The job touches a dataset of an active product (or the exchange requires contracts) and cites no contract covering it. */
  Required: "contract-required",
  /** The job cites a contract that does not exist (here: at the provider, one it never signed). */
  Unknown: "contract-unknown",
  /** The contract is not (yet) signed by every party: pending or rejected. */
  NotActive: "contract-not-active",
  Revoked: "contract-revoked",
  Expired: "contract-expired",
  NotYetValid: "contract-not-yet-valid",
  /** The job's buyer is not the contract's. */
  BuyerMismatch: "contract-buyer-mismatch",
  /** The contract covers none of the job's datasets. */
  NotApplicable: "contract-not-applicable",
  /** The job's protocol or output columns are outside the contract's product. */
  Terms: "contract-terms",
  QuotaExhausted: "contract-quota-exhausted",
  /** A signature does not verify under the key its party registered. */
  Signature: "contract-signature-invalid",
  /** The contract relayed is not the one this party holds (or not of its product version). */
  Mismatch: "contract-mismatch",
  /** A job citing contracts priced in more than one currency: its one receipt has one currency. */
  Currency: "contract-currency-mismatch",
  /** An order of a product that does not exist, is withdrawn, or whose version, digest, provider or prices it does not copy. */
  ProductMismatch: "order-product-mismatch",
  /** An order whose validity window is not a window that ends in the future. */
  Window: "order-window-invalid",
} as const;
export type ContractRule = (typeof ContractRule)[keyof typeof ContractRule];

/** A refusal by a contract rule (code UMBRA_CONTRACT_DENIED): nothing is recorded. The message names the rule, never an id or a value. */
export class ContractDeniedError extends UmbraError {
  constructor(
    readonly rule: ContractRule,
    reason: string,
  ) {
    super("UMBRA_CONTRACT_DENIED", `contract denied (${rule}): ${reason}`);
  }
}

/**
 * A contract document, checked: its form (every problem at once), real
 * dates, and a window that ends after it starts.
 *
 * @throws InvalidContractError listing every problem found.
 */
export function parseContract(json: unknown): ContractDocument {
  if (!isPlainObject(json)) throw new InvalidContractError([{ field: "contract", problem: "must be an object" }]);
  const issues = schemaIssues(ContractSchema, json, "contract");
  const failed = (f: string) => issues.some((i) => i.field === f);
  const doc = json as ContractDocument;
  for (const f of ["notBefore", "notAfter"] as const) {
    if (!failed(f) && typeof doc[f] === "string" && !isRealDateTime(doc[f])) issues.push({ field: f, problem: "is not a valid date-time" });
  }
  if (issues.length === 0 && Date.parse(doc.notAfter) <= Date.parse(doc.notBefore)) issues.push({ field: "notAfter", problem: "must be after notBefore" });
  if (issues.length > 0) throw new InvalidContractError(inDocumentOrder(issues, CONTRACT_FIELDS));
  return doc;
}

const CONTRACT_TAG = "umbra.v1.contract\n";
const COUNTERSIGN_TAG = "umbra.v1.contract.countersign\n";

/** The bytes the buyer and the provider sign: the domain tag, then the contract's RFC 8785 canonical JSON. */
export function contractBytes(c: ContractDocument): Uint8Array {
  return new TextEncoder().encode(CONTRACT_TAG + canonicalJson(c));
}

/** A contract's digest: hex SHA-256 of {@link contractBytes}. */
export function contractDigest(c: ContractDocument): string {
  return createHash("sha256").update(contractBytes(c)).digest("hex");
}

/** The bytes the exchange countersigns: the tag, then JCS({buyer, contract: digest, provider}). */
export function countersignBytes(digest: string, buyerSignature: string, providerSignature: string): Uint8Array {
  return new TextEncoder().encode(COUNTERSIGN_TAG + canonicalJson({ buyer: buyerSignature, contract: digest, provider: providerSignature }));
}

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytesOf = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, "hex"));
const SIG = /^[0-9a-f]{128}$/;

/** A party's signature of a contract (hex), with its identity's secret signing key. */
export function signContract(secretKey: Uint8Array, c: ContractDocument): string {
  return hexOf(ed25519Sign(secretKey, contractBytes(c)));
}

/** Whether `signature` (hex) is a signature of the contract under `publicKey`. */
export function verifyContractSignature(publicKey: Uint8Array, c: ContractDocument, signature: string): boolean {
  return typeof signature === "string" && SIG.test(signature) && ed25519Verify(publicKey, contractBytes(c), bytesOf(signature));
}

/** The exchange's countersignature (hex) of a contract its buyer and provider signed. */
export function countersign(secretKey: Uint8Array, digest: string, buyerSignature: string, providerSignature: string): string {
  return hexOf(ed25519Sign(secretKey, countersignBytes(digest, buyerSignature, providerSignature)));
}

export function verifyCountersignature(publicKey: Uint8Array, digest: string, buyerSignature: string, providerSignature: string, signature: string): boolean {
  return typeof signature === "string" && SIG.test(signature) && ed25519Verify(publicKey, countersignBytes(digest, buyerSignature, providerSignature), bytesOf(signature));
}

/** A contract with its three signatures, as the exchange relays it (in job.start) and answers it. */
export interface SignedContract {
  readonly contract: ContractDocument;
  readonly signatures: { readonly buyer: string; readonly provider: string; readonly exchange: string };
}

/** The signed contract of an active row. */
export function signedContractOf(row: ContractRow): SignedContract {
  return { contract: row.document as unknown as ContractDocument, signatures: { buyer: row.buyerSignature, provider: row.providerSignature ?? "", exchange: row.exchangeSignature ?? "" } };
}

/** A signed contract as received (parsed, every signature of its form), or undefined. */
export function parseSignedContract(v: unknown): SignedContract | undefined {
  if (!isPlainObject(v) || !isPlainObject(v["signatures"])) return undefined;
  const s = v["signatures"];
  if (![s["buyer"], s["provider"], s["exchange"]].every((x) => typeof x === "string" && SIG.test(x))) return undefined;
  try {
    return { contract: parseContract(v["contract"]), signatures: { buyer: s["buyer"] as string, provider: s["provider"] as string, exchange: s["exchange"] as string } };
  } catch {
    return undefined;
  }
}

/** The registered keys a signed contract is checked against. */
export interface ContractKeys {
  readonly buyer: Uint8Array;
  readonly provider: Uint8Array;
  readonly exchange: Uint8Array;
}

/** Whether all three signatures of a contract verify: the buyer's and the provider's of its bytes, the exchange's of both. */
export function verifySignedContract(sc: SignedContract, keys: ContractKeys): boolean {
  const { buyer, provider, exchange } = sc.signatures;
  return (
    verifyContractSignature(keys.buyer, sc.contract, buyer) &&
    verifyContractSignature(keys.provider, sc.contract, provider) &&
    verifyCountersignature(keys.exchange, contractDigest(sc.contract), buyer, provider, exchange)
  );
}

/** What a contract's checks read of it: its state, window, buyer and quota (a row of the store). */
export type ContractStatus = Pick<ContractRow, "state" | "notBefore" | "notAfter" | "buyer" | "jobsUsed" | "quotaJobs">;

/**
 * Checks that a contract lets `buyer` run one more job at `now`: it is
 * active (signed and countersigned), not revoked, within its window, the
 * buyer's, and has a job left of its quota.
 *
 * @throws ContractDeniedError naming the first rule that fails.
 */
export function checkContractStatus(c: ContractStatus, buyer: string, now: number): void {
  if (c.state === "revoked") throw new ContractDeniedError(ContractRule.Revoked, "the contract is revoked");
  if (c.state !== "active") throw new ContractDeniedError(ContractRule.NotActive, "the contract is not signed by every party");
  if (c.buyer !== buyer) throw new ContractDeniedError(ContractRule.BuyerMismatch, "the contract is another buyer's");
  if (now < c.notBefore) throw new ContractDeniedError(ContractRule.NotYetValid, "the contract is not valid yet");
  if (now >= c.notAfter) throw new ContractDeniedError(ContractRule.Expired, "the contract has expired");
  if (c.jobsUsed >= c.quotaJobs) throw new ContractDeniedError(ContractRule.QuotaExhausted, "the contract's quota of jobs is used up");
}
