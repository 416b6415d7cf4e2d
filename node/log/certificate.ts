/**
 * Data asset certificates (数据资产证书): what registering a dataset yields.
 *
 * When a provider registers a dataset (or a new policy version of it), the
 * exchange logs a `dataset.certified` entry whose body is the certificate's
 * subject — the owner, the dataset id and file name, the schema (column names
 * and Arrow types, never values), the row count, the content hash
 * (node/catalog.ts), the policy version and the digest of that policy — and
 * answers with a certificate:
 *
 *     {
 *       "certificate": "umbra.v1.dataset-certificate",
 *       "entry":     the signed ledger entry (seq, at, kind, job, body, prevHash, hash, signature),
 *       "head":      a signed tree head of the log that contains it,
 *       "inclusion": the entry's audit path in that head (hex hashes)
 *     }
 *
 * The exchange's signatures are the entry's (over its hash) and the head's.
 * Anyone holding only the exchange's public key verifies one offline
 * ({@link verifyCertificate}): the entry well formed, its hash and signature,
 * its kind and subject, the head's signature, and the inclusion proof — so
 * the subject is in the log every party's head extends, and can never be
 * changed there. `umbra certificate verify --data FILE` also checks a file
 * against the subject's schema, rows and content hash.
 */
import { UmbraError } from "../../engine/errors.js";
import { entryLeafHash, LedgerKind, verifiedEntry, type LedgerEntry } from "../ledger.js";
import type { Store } from "../store.js";
import { currentTreeHead, inclusionProofOf, parseProof, verifyTreeHead, type SignedTreeHead } from "./head.js";
import { verifyInclusion } from "./merkle.js";
import { isPlainObject } from "../schemas/check.js";

export const CERTIFICATE_TYPE = "umbra.v1.dataset-certificate";

/** What a certificate certifies: the body of its dataset.certified entry. */
export interface CertificateSubject {
  readonly dataset: string;
  readonly owner: string;
  /** The file's name in the owner's data folder. */
  readonly name: string;
  readonly schema: readonly { readonly name: string; readonly type: string }[];
  readonly rows: number;
  readonly contentHash: string;
  readonly policyVersion: number;
  /** Hex SHA-256 of the policy version's canonical JSON. */
  readonly policyDigest: string;
}

export interface DatasetCertificate {
  readonly certificate: typeof CERTIFICATE_TYPE;
  readonly entry: LedgerEntry;
  readonly head: SignedTreeHead;
  readonly inclusion: readonly string[];
}

/** A certificate that verified: its subject, where it is in the log, and the head that shows it. */
export interface VerifiedCertificate {
  readonly subject: CertificateSubject;
  readonly seq: number;
  readonly loggedAt: number;
  readonly head: SignedTreeHead;
}

/** A certificate that does not verify (code UMBRA_INVALID_CERTIFICATE), naming the check that failed. */
export class InvalidCertificateError extends UmbraError {
  constructor(check: string) {
    super("UMBRA_INVALID_CERTIFICATE", `the certificate does not verify: ${check}`);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;


/** The subject of a dataset.certified body, or undefined when it is not of that form. */
export function certificateSubject(body: unknown): CertificateSubject | undefined {
  if (!isPlainObject(body)) return undefined;
  const keys = Object.keys(body).sort().join(",");
  if (keys !== "contentHash,dataset,name,owner,policyDigest,policyVersion,rows,schema") return undefined;
  const b = body as Record<string, unknown>;
  const str = (k: string): boolean => typeof b[k] === "string" && (b[k] as string).length > 0 && (b[k] as string).length <= 1024;
  if (!str("dataset") || !str("owner") || !str("name")) return undefined;
  if (typeof b["contentHash"] !== "string" || !HEX64.test(b["contentHash"]) || typeof b["policyDigest"] !== "string" || !HEX64.test(b["policyDigest"])) return undefined;
  if (!Number.isSafeInteger(b["rows"]) || (b["rows"] as number) < 0 || !Number.isSafeInteger(b["policyVersion"]) || (b["policyVersion"] as number) < 1) return undefined;
  const schema = b["schema"];
  if (!Array.isArray(schema) || schema.length > 4096) return undefined;
  for (const f of schema) {
    if (!isPlainObject(f) || Object.keys(f).sort().join(",") !== "name,type" || typeof f["name"] !== "string" || typeof f["type"] !== "string") return undefined;
  }
  return b as unknown as CertificateSubject;
}

/** Issues the certificate of a logged dataset.certified entry: a head signed now and the entry's audit path in it. */
export function issueCertificate(store: Store, secretKey: Uint8Array, entry: LedgerEntry, at: number): DatasetCertificate {
  const head = currentTreeHead(store, secretKey, at);
  return { certificate: CERTIFICATE_TYPE, entry, head, inclusion: inclusionProofOf(store, entry.seq, head.size) };
}

/**
 * Verifies a certificate (a parsed JSON value) with only the exchange's
 * public key. Returns its subject and place in the log; throws
 * InvalidCertificateError naming the first check that fails.
 */
export function verifyCertificate(value: unknown, exchangeKey: Uint8Array): VerifiedCertificate {
  if (!isPlainObject(value) || Object.keys(value).sort().join(",") !== "certificate,entry,head,inclusion") throw new InvalidCertificateError("it is not a certificate (it needs exactly certificate, entry, head and inclusion)");
  if (value["certificate"] !== CERTIFICATE_TYPE) throw new InvalidCertificateError(`its type is not ${CERTIFICATE_TYPE}`);
  const entry = verifiedEntry(value["entry"], exchangeKey);
  if (entry === undefined) throw new InvalidCertificateError("its ledger entry is malformed, or its hash or the exchange's signature on it is wrong");
  if (entry.kind !== LedgerKind.DatasetCertified) throw new InvalidCertificateError("its ledger entry does not certify a dataset");
  const subject = certificateSubject(entry.body);
  if (subject === undefined) throw new InvalidCertificateError("its ledger entry's subject is not of the certificate's form");
  const head = verifyTreeHead(value["head"], exchangeKey);
  if (head === undefined) throw new InvalidCertificateError("its tree head is malformed or not signed by the exchange's key");
  const proof = parseProof(value["inclusion"]);
  if (proof === undefined) throw new InvalidCertificateError("its inclusion proof is malformed");
  if (!verifyInclusion(entryLeafHash(entry), entry.seq - 1, head.size, proof, new Uint8Array(Buffer.from(head.root, "hex")))) {
    throw new InvalidCertificateError("its entry is not in the log its tree head signs (the inclusion proof fails)");
  }
  return { subject, seq: entry.seq, loggedAt: entry.at, head };
}
