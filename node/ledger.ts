/**
 * The audit ledger: every registration, policy change, job submission,
 * refusal, step, result and failure as an append-only, hash-chained entry
 * signed with the exchange's Ed25519 key, kept in the store's `ledger` table.
 * Anyone holding the exchange's public key and the rows can check them.
 *
 * An entry is {seq, at, kind, job, body, prev_hash, hash, signature}:
 *
 * - `seq`: 1, 2, 3, … with no gap; `at`: integer ms since the epoch;
 * - `kind`: one of {@link LedgerKind}; `job`: the job id for `job.*` kinds,
 *   else null;
 * - `body`: a JSON object, stored as its canonical JSON (below). It holds
 *   only what an auditor needs: digests, counts, sizes, rule names and error
 *   codes, dataset ids and party names — never a key, a scalar, a record
 *   identifier or a cell value;
 * - `prev_hash`: the previous entry's `hash`, or 64 zeros for seq 1;
 * - `hash` = SHA-256( "umbra.v1.ledger.entry" || 0x0a || canonical ), as
 *   lowercase hex, where canonical is the RFC 8785 (JCS) canonical JSON of
 *   the object {at, body, job, kind, prev_hash, seq} — UTF-8, no whitespace,
 *   keys sorted by UTF-16 code units, numbers and strings as ECMAScript
 *   writes them. For example:
 *   {"at":1700000000000,"body":{"rows":3},"job":"j1","kind":"job.result","prev_hash":"00…00","seq":1}
 * - `signature` = Ed25519(secret key, the 32 bytes of `hash`) (RFC 8032,
 *   pure Ed25519), as lowercase hex. The signed message is 32 bytes, so it
 *   can never equal the signed bytes of an envelope (which open with a
 *   length-prefixed tag and are longer), though both use the same key.
 *
 * The ledger is also a transparency log (node/log/): entry seq is leaf
 * seq − 1 of an RFC 9162 Merkle tree ({@link entryLeafHash}), kept in the
 * store as entries are appended, in the same transaction. The exchange signs
 * tree heads over it and serves inclusion and consistency proofs; a party
 * keeps the latest head it accepted and checks every newer one is an
 * extension of it (node/log/watch.ts).
 *
 * {@link verifyLedger} recomputes every link, hash, signature and the tree and
 * names the first entry that fails. A chain alone cannot show that entries
 * were cut off its end or rewritten by the key's holder: compare it against
 * signed tree heads held elsewhere — by parties, or witnesses — with the
 * `heads` option.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../engine/errors.js";
import { verifyTreeHead } from "./log/head.js";
import { privateKey, publicKeyObject, publicKeyOf, signHex, verifyHex } from "./log/keys.js";
import { leafHash, memoryNodes, treeRoot } from "./log/merkle.js";
import { appendLeaf } from "./log/tree.js";
import { canonicalJson, type JsonValue, type LedgerRow, type Store } from "./store.js";
import { isPlainObject } from "./schemas/check.js";

export const LedgerKind = {
  PartyRegistered: "party.registered",
  DatasetRegistered: "dataset.registered",
  /** A data asset certificate's subject (node/log/certificate.ts): one per registration and policy version. */
  DatasetCertified: "dataset.certified",
  PolicyChanged: "policy.changed",
  JobSubmitted: "job.submitted",
  JobRefused: "job.refused",
  JobStep: "job.step",
  JobResult: "job.result",
  JobFailed: "job.failed",
  JobCancelled: "job.cancelled",
  // The venue (docs/venue.md): ids, versions, digests and prices, never data.
  ProductPublished: "product.published",
  ProductWithdrawn: "product.withdrawn",
  OrderCreated: "order.created",
  OrderRejected: "order.rejected",
  ContractSigned: "contract.signed",
  ContractRevoked: "contract.revoked",
  // Receipts (docs/venue.md): ids, digests, amounts, never data.
  ReceiptIssued: "receipt.issued",
  ReceiptAcknowledged: "receipt.acknowledged",
} as const;
export type LedgerKind = (typeof LedgerKind)[keyof typeof LedgerKind];

export type LedgerBody = { readonly [key: string]: JsonValue };

export interface LedgerEntry {
  readonly seq: number;
  readonly at: number;
  readonly kind: LedgerKind;
  readonly job: string | null;
  readonly body: LedgerBody;
  /** Hex of the previous entry's hash, or 64 zeros for the first. */
  readonly prevHash: string;
  /** Hex SHA-256 of the entry's canonical encoding. */
  readonly hash: string;
  /** Hex Ed25519 signature of the hash's 32 bytes. */
  readonly signature: string;
}

export interface LedgerEntryInput {
  readonly kind: LedgerKind;
  /** The job id: required for `job.*` kinds, absent for the others. */
  readonly job?: string;
  /** A plain JSON object (see the header for what belongs in it). */
  readonly body: object;
}

/** Signs entries: the exchange's Ed25519 secret key (the 32-byte seed of RFC 8032). */
export interface LedgerSigner {
  readonly secretKey: Uint8Array;
}

export const LedgerProblem = {
  /** An entry is missing or out of place: no entry with this seq where one must be. */
  Gap: "gap",
  /** A column that is not of its form (types, hex, a body that is not canonical JSON of an object). */
  Malformed: "malformed",
  /** prev_hash is not the previous entry's hash. */
  PrevHash: "prev_hash",
  /** hash is not the hash of the entry's fields. */
  Hash: "hash",
  /** signature does not verify under the public key. */
  Signature: "signature",
  /** The ledger ends before a head that was signed for it: entries were cut off its end. */
  Truncated: "truncated",
  /** A head signed for the ledger has another root than its first `size` entries: the history it vouched for was rewritten, or shown to someone else. */
  Head: "head",
  /** A head that is not a signed tree head of this exchange's key. */
  HeadSignature: "head_signature",
  /** The Merkle tree kept beside the entries does not hash to their root. */
  Tree: "tree",
} as const;
export type LedgerProblem = (typeof LedgerProblem)[keyof typeof LedgerProblem];

export interface LedgerHead {
  readonly seq: number;
  readonly hash: string;
}

export type LedgerVerification =
  | {
      readonly ok: true;
      /** How many entries were checked. */
      readonly entries: number;
      /** The last entry's seq and hash. */
      readonly head: LedgerHead | null;
      /** Hex root of the log's Merkle tree over every entry. */
      readonly root: string;
      /** How many signed tree heads were checked against it. */
      readonly heads: number;
    }
  | {
      readonly ok: false;
      /** The first entry that fails (for a head: its size). */
      readonly seq: number;
      readonly problem: LedgerProblem;
      /** For a head's problem: which of the heads given (0-based). */
      readonly headIndex?: number;
    };

export const GENESIS_HASH = "0".repeat(64);
const HASH_TAG = Buffer.from("umbra.v1.ledger.entry\n", "utf8");
const MAX_BODY_BYTES = 16 * 1024;
const KINDS = new Set<string>(Object.values(LedgerKind));
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
/** The Ed25519 public key of a ledger secret key (32 bytes). */
export function ledgerPublicKey(secretKey: Uint8Array): Uint8Array {
  return publicKeyOf(secretKey);
}

/** The canonical encoding of an entry's fields, the bytes its hash covers after the tag. */
export function canonicalEntry(e: { seq: number; at: number; kind: string; job: string | null; body: LedgerBody; prevHash: string }): string {
  return canonicalJson({ at: e.at, body: e.body, job: e.job, kind: e.kind, prev_hash: e.prevHash, seq: e.seq });
}

/** The hex hash of an entry's fields. */
export function entryHash(e: { seq: number; at: number; kind: string; job: string | null; body: LedgerBody; prevHash: string }): string {
  return createHash("sha256").update(HASH_TAG).update(canonicalEntry(e), "utf8").digest("hex");
}

/**
 * The entry's leaf in the log's Merkle tree: SHA-256(0x00 || the bytes its
 * hash covers), that is of 0x00 || "umbra.v1.ledger.entry" || 0x0a ||
 * canonical (RFC 9162 §2.1.1). Leaf seq − 1 of the tree is entry seq.
 */
export function entryLeafHash(e: { seq: number; at: number; kind: string; job: string | null; body: LedgerBody; prevHash: string }): Uint8Array {
  return leafHash(Buffer.concat([HASH_TAG, Buffer.from(canonicalEntry(e), "utf8")]));
}

/**
 * Brings the log's tree level with the ledger: adds the leaves of entries
 * written before the tree was kept (a store from before schema 6), in one
 * transaction. Returns the tree's size.
 */
export function syncLogTree(store: Store): number {
  return store.transaction(() => {
    let size = store.log.leafCount();
    // In pages read whole before their leaves are written (a statement being iterated holds the connection).
    for (;;) {
      const page = [...store.ledgerRows({ afterSeq: size, limit: 1000 })];
      if (page.length === 0) return size;
      for (const row of page) {
        if (row.seq !== size + 1) throw new InvalidArgumentError("the ledger has a gap: run umbra audit verify");
        appendLeaf(store, size, entryLeafHash({ seq: row.seq, at: row.at, kind: row.kind, job: row.job, body: JSON.parse(row.body) as LedgerBody, prevHash: row.prev_hash }));
        size += 1;
      }
    }
  });
}


function entryFromRow(r: LedgerRow, body: LedgerBody): LedgerEntry {
  return { seq: r.seq, at: r.at, kind: r.kind as LedgerKind, job: r.job, body, prevHash: r.prev_hash, hash: r.hash, signature: r.signature };
}

/**
 * Appends an entry after the ledger's head and returns it. Runs in one
 * transaction (inside the caller's, when called in `store.transaction`, so an
 * entry and the change it records commit together).
 */
export function appendEntry(store: Store, signer: LedgerSigner, entry: LedgerEntryInput): LedgerEntry {
  if (typeof entry.kind !== "string" || !KINDS.has(entry.kind)) throw new InvalidArgumentError("unknown ledger entry kind");
  const isJobKind = entry.kind.startsWith("job.");
  if (isJobKind && (typeof entry.job !== "string" || !JOB_ID.test(entry.job))) throw new InvalidArgumentError("a job entry needs a valid job id");
  if (!isJobKind && entry.job !== undefined) throw new InvalidArgumentError("only job entries carry a job id");
  if (!isPlainObject(entry.body)) throw new InvalidArgumentError("a ledger body must be a plain JSON object");
  const bodyText = canonicalJson(entry.body);
  if (Buffer.byteLength(bodyText) > MAX_BODY_BYTES) throw new InvalidArgumentError(`a ledger body must be at most ${MAX_BODY_BYTES} bytes of JSON`);
  const body = JSON.parse(bodyText) as LedgerBody;
  const key = privateKey(signer.secretKey);
  const job = entry.job ?? null;
  return store.transaction(() => {
    const head = store.ledgerHead();
    const seq = head === undefined ? 1 : head.seq + 1;
    const prevHash = head === undefined ? GENESIS_HASH : head.hash;
    const at = store.now();
    const fields = { seq, at, kind: entry.kind, job, body, prevHash };
    const hash = entryHash(fields);
    const signature = signHex(key, Buffer.from(hash, "hex"));
    const row: LedgerRow = { seq, at, kind: entry.kind, job, body: bodyText, prev_hash: prevHash, hash, signature };
    store.insertLedgerRow(row);
    // Its leaf in the log's tree, in the same transaction (after any the tree lacks from before it was kept).
    const kept = store.log.leafCount();
    if (kept === seq - 1) appendLeaf(store, seq - 1, entryLeafHash(fields));
    else if (syncLogTree(store) !== seq) throw new InvalidArgumentError("the log's tree does not match the ledger: run umbra audit verify");
    return entryFromRow(row, body);
  });
}

/** The last entry's seq and hash (to publish as an anchor), or null for an empty ledger. */
export function ledgerHead(store: Store): LedgerHead | null {
  const head = store.ledgerHead();
  return head === undefined ? null : { seq: head.seq, hash: head.hash };
}

/** Entries in seq order: all, one job's, or those after a seq. */
export function listEntries(store: Store, filter: { readonly job?: string; readonly afterSeq?: number; readonly limit?: number } = {}): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (const row of store.ledgerRows(filter)) out.push(entryFromRow(row, JSON.parse(row.body) as LedgerBody));
  return out;
}

/** The body of a well-formed row, or undefined when any column is not of its form. */
function wellFormedBody(r: LedgerRow): LedgerBody | undefined {
  if (!Number.isSafeInteger(r.at) || r.at < 0) return undefined;
  if (typeof r.kind !== "string" || !KINDS.has(r.kind)) return undefined;
  if (r.kind.startsWith("job.") ? typeof r.job !== "string" || !JOB_ID.test(r.job) : r.job !== null) return undefined;
  if (typeof r.prev_hash !== "string" || !HEX64.test(r.prev_hash)) return undefined;
  if (typeof r.hash !== "string" || !HEX64.test(r.hash)) return undefined;
  if (typeof r.signature !== "string" || !HEX128.test(r.signature)) return undefined;
  if (typeof r.body !== "string") return undefined;
  let body: unknown;
  try {
    body = JSON.parse(r.body);
    // The stored text must be the one canonical encoding: no other bytes verify.
    if (!isPlainObject(body) || canonicalJson(body) !== r.body) return undefined;
  } catch {
    return undefined;
  }
  return body as LedgerBody;
}

/**
 * Checks the whole ledger: seqs 1, 2, 3, … without a gap, each entry well
 * formed, linked to the previous one's hash, hashing to its `hash`, and
 * signed by `publicKey`; the Merkle tree kept beside it (when it is kept)
 * hashing to the root of the entries' leaves; and each of `heads` — signed
 * tree heads a party or a witness was given — signed by `publicKey` and the
 * root of the first `size` entries. A head the ledger cannot reach means
 * entries were cut off its end; a head with another root means the history
 * it vouched for was rewritten, or is not the one shown to others. Returns the
 * first problem.
 */
export function verifyLedger(store: Store, publicKey: Uint8Array, options: { readonly heads?: readonly unknown[] } = {}): LedgerVerification {
  const key = publicKeyObject(publicKey);
  let expected = 1;
  let prevHash = GENESIS_HASH;
  const leaves: Uint8Array[] = [];
  for (const row of store.ledgerRows()) {
    const fail = (problem: LedgerProblem): LedgerVerification => ({ ok: false, seq: expected, problem });
    if (row.seq !== expected) return fail(LedgerProblem.Gap);
    const body = wellFormedBody(row);
    if (body === undefined) return fail(LedgerProblem.Malformed);
    if (row.prev_hash !== prevHash) return fail(LedgerProblem.PrevHash);
    const fields = { seq: row.seq, at: row.at, kind: row.kind, job: row.job, body, prevHash: row.prev_hash };
    if (entryHash(fields) !== row.hash) return fail(LedgerProblem.Hash);
    if (!verifyHex(key, Buffer.from(row.hash, "hex"), row.signature)) return fail(LedgerProblem.Signature);
    leaves.push(entryLeafHash(fields));
    prevHash = row.hash;
    expected += 1;
  }
  const count = expected - 1;
  const nodes = memoryNodes(leaves);
  const root = Buffer.from(treeRoot(nodes, count)).toString("hex");
  // The stored tree: absent in a store from before it was kept (built on the next append), else every node that of the entries.
  const kept = store.log.leafCount();
  if (kept !== 0) {
    if (kept !== count) return { ok: false, seq: Math.min(kept, count) + 1, problem: LedgerProblem.Tree };
    let stored = 0;
    for (const n of store.log.nodes()) {
      const span = 2 ** n.level;
      const first = n.idx * span + 1;
      if ((n.idx + 1) * span > count || !Buffer.from(nodes(n.level, n.idx)).equals(n.hash)) return { ok: false, seq: first, problem: LedgerProblem.Tree };
      stored += 1;
    }
    let expectedNodes = 0;
    for (let span = 1; span <= count; span *= 2) expectedNodes += Math.floor(count / span);
    if (stored !== expectedNodes) return { ok: false, seq: 1, problem: LedgerProblem.Tree };
  }
  const heads = options.heads ?? [];
  for (const [i, value] of heads.entries()) {
    const h = verifyTreeHead(value, publicKey);
    if (h === undefined) return { ok: false, seq: 0, problem: LedgerProblem.HeadSignature, headIndex: i };
    if (h.size > count) return { ok: false, seq: count + 1, problem: LedgerProblem.Truncated, headIndex: i };
    if (Buffer.from(treeRoot(nodes, h.size)).toString("hex") !== h.root) return { ok: false, seq: h.size, problem: LedgerProblem.Head, headIndex: i };
  }
  return { ok: true, entries: count, head: count === 0 ? null : { seq: count, hash: prevHash }, root, heads: heads.length };
}

/**
 * One entry, as a party receives it from the exchange (in job.start, or from
 * GET /v1/audit), checked on its own: well formed, its hash that of its
 * fields, and its signature valid under `publicKey` (the exchange's pinned
 * key). Returns the entry, or undefined when any check fails.
 */
export function verifiedEntry(value: unknown, publicKey: Uint8Array): LedgerEntry | undefined {
  if (!isPlainObject(value)) return undefined;
  const v = value as Record<string, unknown>;
  const seq = v["seq"];
  const body = v["body"];
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || !isPlainObject(body)) return undefined;
  let bodyText: string;
  try {
    bodyText = canonicalJson(body as JsonValue);
  } catch {
    return undefined;
  }
  const row = { seq, at: v["at"], kind: v["kind"], job: v["job"] ?? null, body: bodyText, prev_hash: v["prevHash"], hash: v["hash"], signature: v["signature"] } as LedgerRow;
  const parsed = wellFormedBody(row);
  if (parsed === undefined) return undefined;
  if (entryHash({ seq, at: row.at, kind: row.kind, job: row.job, body: parsed, prevHash: row.prev_hash }) !== row.hash) return undefined;
  if (!verifyHex(publicKey, Buffer.from(row.hash, "hex"), row.signature)) return undefined;
  return entryFromRow(row, parsed);
}

/** The digest a job.submitted entry records of the job's request: hex SHA-256 of its canonical JSON. */
export function requestDigest(request: object): string {
  return createHash("sha256").update(canonicalJson(request as JsonValue), "utf8").digest("hex");
}

const RESULT_TAG = Buffer.from("umbra.v1.result\n", "utf8");

/**
 * The digest a buyer reports of its result: a salted commitment,
 * hex SHA-256("umbra.v1.result\n" || salt || bytes) with a fresh 32-byte salt
 * the buyer keeps. A plain hash of a result from a small domain (a
 * psi-cardinality count, a withheld marker) would tell whoever sees the ledger
 * the result itself; the salted one says nothing until the buyer opens it
 * (shows the salt and the bytes).
 */
export function resultCommitment(salt: Uint8Array, bytes: Uint8Array): string {
  if (!(salt instanceof Uint8Array) || salt.length !== 32) throw new InvalidArgumentError("a result salt is 32 bytes");
  return createHash("sha256").update(RESULT_TAG).update(salt).update(bytes).digest("hex");
}
