/**
 * The ledger checks of docs/console.md ("Verify in the browser"), as pure
 * functions over the JSON the exchange's admin API returns — never its word:
 *
 * 1. chain: seqs 1, 2, 3, … without a gap; each entry's hash is
 *    SHA-256("umbra.v1.ledger.entry\n" ‖ JCS{at, body, job, kind, prev_hash, seq})
 *    and its prevHash the previous entry's hash (64 zeros for the first);
 * 2. signatures: each entry's Ed25519 signature over its hash's 32 bytes,
 *    under the exchange's key;
 * 3. root: the RFC 9162 root over the entries' leaves
 *    (SHA-256(0x00 ‖ tag ‖ canonical)) equals the signed tree head's, and the
 *    head's signature ("umbra.v1.log.head\n" ‖ JCS{at, root, size}) verifies;
 * 4. proofs: the last entry's inclusion proof in the head, and a consistency
 *    proof from a head seen before to this one.
 *
 * Each check reports the first entry (seq) that fails it. {@link LedgerChecker}
 * takes entries page by page (a page can be checked while the next is
 * fetched, and progress shown); {@link verifyLedgerEntries} is it in one call.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { equalBytes, fromHex, toHex, utf8 } from "./bytes.js";
import { canonicalJson } from "./jcs.js";
import { leafHash, merkleRoot, verifyConsistency, verifyInclusion } from "./merkle.js";

export const GENESIS_HASH = "0".repeat(64);
const ENTRY_TAG = "umbra.v1.ledger.entry\n";
const HEAD_TAG = "umbra.v1.log.head\n";

/** A ledger entry as GET /v1/admin/ledger lists it. */
export interface LedgerEntryJson {
  readonly seq: number;
  readonly at: number;
  readonly kind: string;
  readonly job: string | null;
  readonly body: unknown;
  readonly prevHash: string;
  readonly hash: string;
  readonly signature: string;
}

/** A signed tree head as GET /v1/admin/log/head returns it. */
export interface TreeHeadJson {
  readonly size: number;
  readonly root: string;
  readonly at: number;
  readonly signature: string;
}

/** Why a check failed: the first seq it fails at (for a head: its size), a problem code, and for the page a short detail. */
export interface CheckFailure {
  readonly seq: number;
  readonly problem: string;
}

export type CheckOutcome = { readonly ok: true } | ({ readonly ok: false } & CheckFailure);

const PASSED: CheckOutcome = { ok: true };
const fail = (seq: number, problem: string): CheckOutcome => ({ ok: false, seq, problem });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The bytes an entry's hash covers: the tag, then the canonical JSON of its fields. */
export function entryBytes(e: LedgerEntryJson): Uint8Array {
  return utf8(ENTRY_TAG + canonicalJson({ at: e.at, body: e.body, job: e.job, kind: e.kind, prev_hash: e.prevHash, seq: e.seq }));
}

/** The entry's hash (hex) recomputed from its fields. */
export function entryHash(e: LedgerEntryJson): string {
  return toHex(sha256(entryBytes(e)));
}

/** The entry's leaf in the log's tree: SHA-256(0x00 ‖ the bytes its hash covers). */
export function entryLeaf(e: LedgerEntryJson): Uint8Array {
  return leafHash(entryBytes(e));
}

/** The bytes a tree head's signature covers. */
export function treeHeadBytes(h: { readonly size: number; readonly root: string; readonly at: number }): Uint8Array {
  return utf8(HEAD_TAG + canonicalJson({ at: h.at, root: h.root, size: h.size }));
}

function verifyEd25519(signatureHex: string, message: Uint8Array, publicKey: Uint8Array): boolean {
  const sig = fromHex(signatureHex);
  if (sig === undefined || sig.length !== 64) return false;
  try {
    return ed25519.verify(sig, message, publicKey);
  } catch {
    return false;
  }
}

/** Whether `v` has the form of an entry (types and hex); its hashes are not checked. */
function wellFormedEntry(v: unknown): v is LedgerEntryJson {
  if (!isPlainObject(v)) return false;
  const e = v as Record<string, unknown>;
  const hex64 = (x: unknown) => typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
  return (
    typeof e["seq"] === "number" && Number.isSafeInteger(e["seq"]) &&
    typeof e["at"] === "number" && Number.isSafeInteger(e["at"]) &&
    typeof e["kind"] === "string" &&
    (e["job"] === null || typeof e["job"] === "string") &&
    isPlainObject(e["body"]) &&
    hex64(e["prevHash"]) && hex64(e["hash"]) &&
    typeof e["signature"] === "string" && /^[0-9a-f]{128}$/.test(e["signature"])
  );
}

/** Whether `v` has the form of a signed tree head. */
export function wellFormedHead(v: unknown): v is TreeHeadJson {
  if (!isPlainObject(v)) return false;
  const h = v as Record<string, unknown>;
  return (
    typeof h["size"] === "number" && Number.isSafeInteger(h["size"]) && h["size"] >= 0 &&
    typeof h["at"] === "number" && Number.isSafeInteger(h["at"]) &&
    typeof h["root"] === "string" && /^[0-9a-f]{64}$/.test(h["root"]) &&
    typeof h["signature"] === "string" && /^[0-9a-f]{128}$/.test(h["signature"])
  );
}

/** Whether the head's signature verifies under the exchange's key (hex). */
export function verifyHeadSignature(head: TreeHeadJson, publicKeyHex: string): boolean {
  const key = fromHex(publicKeyHex);
  return key !== undefined && key.length === 32 && wellFormedHead(head) && verifyEd25519(head.signature, treeHeadBytes(head), key);
}

/**
 * Checks 1 and 2 over entries given in pages, in seq order. Keeps each
 * entry's leaf for check 3. After the first failure of a check it goes on
 * (following the entries' own hashes) so that the other check still runs,
 * but reports only the first.
 */
export class LedgerChecker {
  private readonly key: Uint8Array | undefined;
  private expected = 1;
  private prevHash = GENESIS_HASH;
  chain: CheckOutcome = PASSED;
  signatures: CheckOutcome = PASSED;
  readonly leaves: Uint8Array[] = [];
  /** The entries checked so far (the last one kept for its inclusion proof). */
  count = 0;
  last: LedgerEntryJson | undefined;

  constructor(publicKeyHex: string) {
    const key = fromHex(publicKeyHex);
    this.key = key !== undefined && key.length === 32 ? key : undefined;
  }

  add(entries: readonly unknown[]): void {
    for (const v of entries) this.addOne(v);
  }

  private addOne(v: unknown): void {
    const seq = this.expected;
    this.expected += 1;
    this.count += 1;
    if (!wellFormedEntry(v)) {
      if (this.chain.ok) this.chain = fail(seq, "malformed");
      if (this.signatures.ok) this.signatures = fail(seq, "malformed");
      this.leaves.push(new Uint8Array(32));
      return;
    }
    this.last = v;
    if (this.chain.ok) {
      // An entry missing (or out of place): the first seq not where it must be.
      if (v.seq !== seq) this.chain = fail(seq, "gap");
      else if (v.prevHash !== this.prevHash) this.chain = fail(seq, "prev_hash");
    }
    let leaf: Uint8Array;
    try {
      const bytes = entryBytes(v);
      leaf = leafHash(bytes);
      if (this.chain.ok && toHex(sha256(bytes)) !== v.hash) this.chain = fail(v.seq, "hash");
    } catch {
      if (this.chain.ok) this.chain = fail(v.seq, "malformed");
      leaf = new Uint8Array(32);
    }
    this.leaves.push(leaf);
    if (this.signatures.ok) {
      const hash = fromHex(v.hash) as Uint8Array;
      if (this.key === undefined || !verifyEd25519(v.signature, hash, this.key)) this.signatures = fail(v.seq, "signature");
    }
    this.prevHash = v.hash;
  }
}

/** Checks 1 and 2 over every entry at once. */
export function verifyLedgerEntries(entries: readonly unknown[], publicKeyHex: string): LedgerChecker {
  const c = new LedgerChecker(publicKeyHex);
  c.add(entries);
  return c;
}

/**
 * Check 3: the root over the first `head.size` leaves is the head's, and the
 * head is signed by the exchange's key. Fewer leaves than the head counts:
 * entries were cut off (fails at the first missing seq); another root: fails
 * at the head's size (or at the first entry the chain check found broken,
 * when it found one: that entry is why the roots differ).
 */
export function verifyRoot(leaves: readonly Uint8Array[], head: unknown, publicKeyHex: string, firstBroken?: number): CheckOutcome {
  if (!wellFormedHead(head)) return fail(0, "malformed_head");
  if (head.size > leaves.length) return fail(leaves.length + 1, "truncated");
  const root = merkleRoot(leaves, head.size);
  if (toHex(root) !== head.root) return fail(firstBroken !== undefined && firstBroken <= head.size ? firstBroken : Math.max(1, head.size), "root");
  if (!verifyHeadSignature(head, publicKeyHex)) return fail(head.size, "head_signature");
  return PASSED;
}

function proofOf(v: unknown): Uint8Array[] | undefined {
  if (!Array.isArray(v) || v.length > 128) return undefined;
  const out: Uint8Array[] = [];
  for (const h of v) {
    const b = fromHex(h);
    if (b === undefined || b.length !== 32) return undefined;
    out.push(b);
  }
  return out;
}

/** Check 4a: `proof` (hex hashes) shows the entry with leaf `leaf` at `seq` in the tree of `head`. */
export function verifyEntryInclusion(leaf: Uint8Array, seq: number, head: TreeHeadJson, proof: unknown): CheckOutcome {
  const p = proofOf(proof);
  const root = fromHex(head.root);
  if (p === undefined || root === undefined) return fail(seq, "malformed_proof");
  return verifyInclusion(leaf, seq - 1, head.size, p, root) ? PASSED : fail(seq, "inclusion");
}

/**
 * Check 4b: `proof` shows `previous` (a head seen before, its signature
 * checked here too) to be a prefix of `head`. A previous head larger than the
 * current one means the log shrank; fails at the previous head's size.
 */
export function verifyHeadConsistency(previous: unknown, head: TreeHeadJson, proof: unknown, publicKeyHex: string): CheckOutcome {
  if (!wellFormedHead(previous) || !verifyHeadSignature(previous, publicKeyHex)) return fail(0, "previous_head");
  if (previous.size > head.size) return fail(head.size + 1, "shrunk");
  const p = proofOf(proof);
  const a = fromHex(previous.root);
  const b = fromHex(head.root);
  if (p === undefined || a === undefined || b === undefined) return fail(previous.size, "malformed_proof");
  return verifyConsistency(previous.size, head.size, a, b, p) ? PASSED : fail(Math.max(1, previous.size), "consistency");
}

/** Whether two roots (hex) are the same: a helper for callers comparing heads. */
export function sameRoot(a: string, b: string): boolean {
  const x = fromHex(a);
  const y = fromHex(b);
  return x !== undefined && y !== undefined && equalBytes(x, y);
}

