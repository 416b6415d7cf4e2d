/**
 * The Merkle tree of RFC 9162 §2.1 (the hashing of RFC 6962), over SHA-256:
 *
 * - a leaf's hash is SHA-256(0x00 || leaf data), an interior node's
 *   SHA-256(0x01 || left || right);
 * - the tree over n leaves splits at k, the largest power of two below n:
 *   MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])); the empty
 *   tree's hash is SHA-256 of nothing;
 * - an inclusion proof (§2.1.3) is the audit path PATH(m, D[0:n]); a
 *   consistency proof (§2.1.4) between sizes m < n is PROOF(m, D[0:n]).
 *
 * The proofs are built from {@link NodeSource}: the hashes of perfect,
 * aligned subtrees (2^level leaves starting at index · 2^level), which a store
 * keeps as leaves are appended ({@link appendedNodes}), so that a proof or a
 * root costs O(log n) lookups, not a pass over the log. The verifiers are
 * §2.1.3.2 and §2.1.4.2 to the letter, with sizes as safe integers
 * (arithmetic, never 32-bit bitwise operators).
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../../engine/errors.js";

export const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** The hash of a perfect aligned subtree: leaves [index · 2^level, (index + 1) · 2^level). */
export type NodeSource = (level: number, index: number) => Uint8Array;

export function leafHash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(LEAF_PREFIX).update(data).digest());
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest());
}

/** SHA-256 of the empty string: the root of the empty tree. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(createHash("sha256").digest());

function checkSize(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative safe integer`);
}

/** The largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n >= 1 && Number.isInteger(Math.log2(n)) && 2 ** Math.log2(n) === n;
}

/** MTH(D[start : start + n]) for n ≥ 1, from perfect aligned subtrees. */
function rangeHash(nodes: NodeSource, start: number, n: number): Uint8Array {
  if (isPowerOfTwo(n) && start % n === 0) return nodes(Math.log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(rangeHash(nodes, start, k), rangeHash(nodes, start + k, n - k));
}

/** The root of the tree of the first `size` leaves. */
export function treeRoot(nodes: NodeSource, size: number): Uint8Array {
  checkSize("size", size);
  return size === 0 ? EMPTY_ROOT : rangeHash(nodes, 0, size);
}

/** The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), deepest node first. */
export function inclusionProof(nodes: NodeSource, index: number, size: number): Uint8Array[] {
  checkSize("size", size);
  checkSize("index", index);
  if (index >= size) throw new InvalidArgumentError("the leaf index must be below the tree size");
  const path: Uint8Array[] = [];
  // PATH(m, D[start : start + n]), unrolled from the top: the siblings are collected top-down, then reversed.
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      path.push(rangeHash(nodes, start + k, n - k));
      n = k;
    } else {
      path.push(rangeHash(nodes, start, k));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return path.reverse();
}

/** The consistency proof from the tree of `first` leaves to that of `second` (RFC 9162 §2.1.4.1). */
export function consistencyProof(nodes: NodeSource, first: number, second: number): Uint8Array[] {
  checkSize("first", first);
  checkSize("second", second);
  if (first > second) throw new InvalidArgumentError("the first size must not exceed the second");
  if (first === 0 || first === second) return [];
  const proof: Uint8Array[] = [];
  // SUBPROOF(m, D[start : start + n], b), unrolled from the top as above.
  let start = 0;
  let n = second;
  let m = first;
  let b = true;
  while (m !== n) {
    const k = splitPoint(n);
    if (m <= k) {
      proof.push(rangeHash(nodes, start + k, n - k));
      n = k;
    } else {
      proof.push(rangeHash(nodes, start, k));
      start += k;
      m -= k;
      n -= k;
      b = false;
    }
  }
  if (!b) proof.push(rangeHash(nodes, start, n));
  return proof.reverse();
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function wellFormed(proof: readonly Uint8Array[]): boolean {
  return proof.every((p) => p instanceof Uint8Array && p.length === HASH_BYTES);
}

/** Whether `proof` shows the leaf with hash `leaf` at `index` in the tree of `size` leaves with root `root` (RFC 9162 §2.1.3.2). */
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
  return sn === 0 && equal(r, root);
}

/**
 * Whether `proof` shows the tree of `first` leaves with root `firstRoot` to be
 * a prefix of the tree of `second` leaves with root `secondRoot` (RFC 9162
 * §2.1.4.2). Equal sizes need an empty proof and equal roots; a first size of
 * 0 needs an empty proof; a first size above the second never verifies.
 */
export function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (firstRoot.length !== HASH_BYTES || secondRoot.length !== HASH_BYTES || !wellFormed(proof)) return false;
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0;
  if (proof.length === 0) return false;
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
  return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
}

/**
 * The perfect subtrees that appending leaf `index` (with hash `leaf`)
 * completes: the leaf itself at level 0, then each parent whose right child
 * it is. `nodes` gives the existing left siblings.
 */
export function appendedNodes(nodes: NodeSource, index: number, leaf: Uint8Array): { level: number; index: number; hash: Uint8Array }[] {
  checkSize("index", index);
  const out = [{ level: 0, index, hash: leaf }];
  let level = 0;
  let i = index;
  let h = leaf;
  while (i % 2 === 1) {
    h = nodeHash(nodes(level, i - 1), h);
    level += 1;
    i = (i - 1) / 2;
    out.push({ level, index: i, hash: h });
  }
  return out;
}

/** A NodeSource over leaf hashes held in memory (tests, a verifier rebuilding a tree), memoising each node it computes. */
export function memoryNodes(leaves: readonly Uint8Array[]): NodeSource {
  const memo = new Map<string, Uint8Array>();
  const get: NodeSource = (level, index) => {
    if (level === 0) {
      const l = leaves[index];
      if (l === undefined) throw new InvalidArgumentError("no such leaf");
      return l;
    }
    const key = `${level}:${index}`;
    let h = memo.get(key);
    if (h === undefined) {
      h = nodeHash(get(level - 1, index * 2), get(level - 1, index * 2 + 1));
      memo.set(key, h);
    }
    return h;
  };
  return get;
}
