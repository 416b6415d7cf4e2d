/**
 * The RFC 9162 §2.1 Merkle tree over SHA-256, for the browser: the root of a
 * list of leaf hashes (§2.1.1), and the inclusion (§2.1.3.2) and consistency
 * (§2.1.4.2) proof verifiers, to the letter, with sizes as safe integers
 * (never 32-bit bitwise operators). Pure functions over bytes.
 *
 * Not node/log/merkle.ts: that one hashes with node:crypto (the log appends
 * and proves on the server, where it is faster), and the page must check the
 * exchange with code of its own, bundled, running in the browser.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, equalBytes } from "./bytes.js";

export const HASH_BYTES = 32;
const LEAF = new Uint8Array([0x00]);
const NODE = new Uint8Array([0x01]);

/** SHA-256 of nothing: the empty tree's root. */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(concat(LEAF, data));
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concat(NODE, left, right));
}

/** The largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** MTH(D[0:size]) over leaf hashes: the first `size` of `leaves` (size defaults to all). */
export function merkleRoot(leaves: readonly Uint8Array[], size: number = leaves.length): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0 || size > leaves.length) throw new RangeError("size must be within the leaves");
  if (size === 0) return EMPTY_ROOT;
  const range = (start: number, n: number): Uint8Array => {
    if (n === 1) return leaves[start] as Uint8Array;
    const k = splitPoint(n);
    return nodeHash(range(start, k), range(start + k, n - k));
  };
  return range(0, size);
}

function wellFormed(proof: readonly Uint8Array[]): boolean {
  return proof.every((p) => p instanceof Uint8Array && p.length === HASH_BYTES);
}

/** Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size` leaves with root `root` (RFC 9162 §2.1.3.2). */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (leaf.length !== HASH_BYTES || root.length !== HASH_BYTES || !wellFormed(proof)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

/**
 * Whether `proof` shows the tree of `first` leaves (root `firstRoot`) to be a
 * prefix of the tree of `second` leaves (root `secondRoot`) (RFC 9162
 * §2.1.4.2). Equal sizes need an empty proof and equal roots; a first size
 * of 0 needs an empty proof; a first size above the second never verifies.
 */
export function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (firstRoot.length !== HASH_BYTES || secondRoot.length !== HASH_BYTES || !wellFormed(proof)) return false;
  if (first === second) return proof.length === 0 && equalBytes(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  // Step 1: when the first size is a power of two, its root is the first hash.
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(fr, firstRoot) && equalBytes(sr, secondRoot);
}
