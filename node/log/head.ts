/**
 * Signed tree heads and the proofs a log serves (RFC 9162 §4.10 in spirit, in
 * Umbra's own encoding).
 *
 * A signed tree head is {size, root, at, signature}: the number of ledger
 * entries the tree holds, its root (hex, RFC 9162 §2.1 over the entries'
 * leaves), the time it was signed (ms since the epoch) and the exchange's
 * Ed25519 signature (hex) of
 *
 *     "umbra.v1.log.head" || 0x0a || JCS({"at":…,"root":"…","size":…})
 *
 * (RFC 8785 canonical JSON). Proofs are arrays of hex hashes: an inclusion
 * proof for entry seq s is the audit path of leaf s − 1.
 */
import { InvalidArgumentError } from "../../engine/errors.js";
import { canonicalJson, type Store } from "../store.js";
import { signHex, verifyHex } from "./keys.js";
import { consistencyProof, EMPTY_ROOT, inclusionProof, treeRoot, verifyConsistency } from "./merkle.js";
import { storeNodes } from "./tree.js";
import { isPlainObject } from "../schemas/check.js";

export interface SignedTreeHead {
  readonly size: number;
  /** Hex of the tree's root. */
  readonly root: string;
  /** When the exchange signed it, ms since the epoch. */
  readonly at: number;
  /** Hex Ed25519 signature of the head's signed bytes. */
  readonly signature: string;
}

const HEAD_TAG = "umbra.v1.log.head\n";
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
/** The most hashes a proof may hold: a tree of 2^63 leaves needs 63 (consistency up to 2·63). */
export const MAX_PROOF_HASHES = 128;

/** The bytes a head's signature covers. */
export function treeHeadBytes(h: { readonly size: number; readonly root: string; readonly at: number }): Uint8Array {
  return new TextEncoder().encode(HEAD_TAG + canonicalJson({ at: h.at, root: h.root, size: h.size }));
}

export function signTreeHead(secretKey: Uint8Array, h: { readonly size: number; readonly root: string; readonly at: number }): SignedTreeHead {
  if (!Number.isSafeInteger(h.size) || h.size < 0 || !Number.isSafeInteger(h.at) || h.at < 0 || !HEX64.test(h.root)) throw new InvalidArgumentError("a tree head needs a size, a 64-hex-digit root and a time");
  return { size: h.size, root: h.root, at: h.at, signature: signHex(secretKey, treeHeadBytes(h)) };
}


const EMPTY_ROOT_HEX = Buffer.from(EMPTY_ROOT).toString("hex");

/**
 * A value of exactly the form of a signed tree head (four fields, their types
 * and encodings), or undefined. Its signature is not checked. A head of the
 * empty log must carry the empty tree's root: the consistency check from size
 * 0 (RFC 9162) looks at no root, so any other would pass as consistent.
 */
export function parseTreeHead(value: unknown): SignedTreeHead | undefined {
  if (!isPlainObject(value)) return undefined;
  const keys = Object.keys(value).sort();
  if (keys.join(",") !== "at,root,signature,size") return undefined;
  const { size, root, at, signature } = value as Record<string, unknown>;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) return undefined;
  if (typeof at !== "number" || !Number.isSafeInteger(at) || at < 0) return undefined;
  if (typeof root !== "string" || !HEX64.test(root) || typeof signature !== "string" || !HEX128.test(signature)) return undefined;
  if (size === 0 && root !== EMPTY_ROOT_HEX) return undefined;
  return { size, root, at, signature };
}

/** A signed tree head whose signature verifies under `publicKey`, or undefined. */
export function verifyTreeHead(value: unknown, publicKey: Uint8Array): SignedTreeHead | undefined {
  const h = parseTreeHead(value);
  return h !== undefined && verifyHex(publicKey, treeHeadBytes(h), h.signature) ? h : undefined;
}

/** A proof as received: an array of at most MAX_PROOF_HASHES hex hashes, or undefined. */
export function parseProof(value: unknown): Uint8Array[] | undefined {
  if (!Array.isArray(value) || value.length > MAX_PROOF_HASHES) return undefined;
  if (!value.every((h) => typeof h === "string" && HEX64.test(h))) return undefined;
  return (value as string[]).map((h) => new Uint8Array(Buffer.from(h, "hex")));
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));

/** How many entries the store's tree holds. */
export function treeSize(store: Store): number {
  return store.log.leafCount();
}

/** The hex root of the store's tree at `size` (at most its size). */
export function rootAt(store: Store, size: number): string {
  if (size > treeSize(store)) throw new InvalidArgumentError("the tree is not that large");
  return hex(treeRoot(storeNodes(store), size));
}

/** The store's tree head now, signed. */
export function currentTreeHead(store: Store, secretKey: Uint8Array, at: number): SignedTreeHead {
  const size = treeSize(store);
  return signTreeHead(secretKey, { size, root: rootAt(store, size), at });
}

/** The audit path (hex) of entry `seq` in the tree of `size` entries. */
export function inclusionProofOf(store: Store, seq: number, size: number): string[] {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > size) throw new InvalidArgumentError("the entry must be within the tree");
  if (size > treeSize(store)) throw new InvalidArgumentError("the tree is not that large");
  return inclusionProof(storeNodes(store), seq - 1, size).map(hex);
}

/** The consistency proof (hex) from the tree of `first` entries to that of `second`. */
export function consistencyProofOf(store: Store, first: number, second: number): string[] {
  if (!Number.isSafeInteger(first) || first < 0 || first > second) throw new InvalidArgumentError("the first size must be at most the second");
  if (second > treeSize(store)) throw new InvalidArgumentError("the tree is not that large");
  return consistencyProof(storeNodes(store), first, second).map(hex);
}

/** Whether `proof` shows head `older` to be a prefix of head `newer` (sizes in either order given; equal sizes need equal roots). */
export function headsConsistent(a: SignedTreeHead, b: SignedTreeHead, proof: readonly Uint8Array[]): boolean {
  const [older, newer] = a.size <= b.size ? [a, b] : [b, a];
  return verifyConsistency(older.size, newer.size, unhex(older.root), unhex(newer.root), proof);
}
