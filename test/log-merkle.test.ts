/**
 * The RFC 9162 §2.1 Merkle tree (node/log/merkle.ts): the published RFC 6962
 * audit-path and consistency vectors, the corruptions a verifier must refuse,
 * and properties over random trees (every proof the builder makes verifies;
 * roots equal the recursive definition; the nodes a store keeps as leaves are
 * appended give the same answers as a tree built in memory).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  appendedNodes,
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  memoryNodes,
  nodeHash,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
  type NodeSource,
} from "../node/log/merkle.js";

interface Vectors {
  leaves: string[];
  roots: string[];
  emptyRoot: string;
  inclusion: { leaf: number; size: number; proof: string[] }[];
  consistency: { first: number; second: number; proof: string[] }[];
}
const V = JSON.parse(readFileSync(new URL("./vectors/rfc6962-merkle.json", import.meta.url), "utf8")) as Vectors;
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));
const leaves = V.leaves.map((l) => leafHash(unhex(l)));
const nodes = memoryNodes(leaves);
const SOME = unhex("abacaba000000000000000000000000000000000000000000060061e00123456");

/** MTH by the definition, over leaf hashes. */
function mth(ls: readonly Uint8Array[]): Uint8Array {
  if (ls.length === 0) return EMPTY_ROOT;
  if (ls.length === 1) return ls[0] as Uint8Array;
  let k = 1;
  while (k * 2 < ls.length) k *= 2;
  return nodeHash(mth(ls.slice(0, k)), mth(ls.slice(k)));
}

function flip(proof: readonly Uint8Array[], i: number, bit: number): Uint8Array[] {
  return proof.map((p, j) => {
    if (j !== i) return p;
    const c = new Uint8Array(p);
    c[0] = (c[0] as number) ^ bit;
    return c;
  });
}

describe("RFC 6962 / 9162 known answers", () => {
  it("the root of every prefix of the eight leaves, and of the empty tree", () => {
    expect(hex(treeRoot(nodes, 0))).toBe(V.emptyRoot);
    expect(hex(createHash("sha256").digest())).toBe(V.emptyRoot);
    for (let n = 1; n <= 8; n++) expect(hex(treeRoot(nodes, n))).toBe(V.roots[n - 1]);
  });

  it("builds each published audit path and verifies it", () => {
    for (const t of V.inclusion) {
      const proof = inclusionProof(nodes, t.leaf - 1, t.size);
      expect(proof.map(hex)).toEqual(t.proof);
      expect(verifyInclusion(leaves[t.leaf - 1] as Uint8Array, t.leaf - 1, t.size, proof, unhex(V.roots[t.size - 1] as string))).toBe(true);
    }
  });

  it("builds each published consistency proof and verifies it", () => {
    for (const t of V.consistency) {
      const proof = consistencyProof(nodes, t.first, t.second);
      expect(proof.map(hex)).toEqual(t.proof);
      expect(verifyConsistency(t.first, t.second, unhex(V.roots[t.first - 1] as string), unhex(V.roots[t.second - 1] as string), proof)).toBe(true);
    }
  });

  it("refuses every corruption of a published audit path (the reference implementation's probes)", () => {
    for (const t of V.inclusion.filter((x) => x.size > 1)) {
      const i = t.leaf - 1;
      const root = unhex(V.roots[t.size - 1] as string);
      const leaf = leaves[i] as Uint8Array;
      const proof = t.proof.map(unhex);
      const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        [i - 1, t.size, root, leaf, proof],
        [i + 1, t.size, root, leaf, proof],
        [i ^ 2, t.size, root, leaf, proof],
        [i, t.size * 2, root, leaf, proof],
        [i, Math.floor(t.size / 2), root, leaf, proof],
        [i, t.size, root, new TextEncoder().encode("WrongLeaf"), proof],
        [i, t.size, EMPTY_ROOT, leaf, proof],
        [i, t.size, SOME, leaf, proof],
        [i, t.size, root, leaf, [...proof, new Uint8Array(0)]],
        [i, t.size, root, leaf, [...proof, root]],
        [i, t.size, root, leaf, [new Uint8Array(0), ...proof]],
        [i, t.size, root, leaf, [root, ...proof]],
        [i, t.size, root, leaf, proof.slice(0, -1)],
        ...proof.map((_, j): [number, number, Uint8Array, Uint8Array, Uint8Array[]] => [i, t.size, root, leaf, flip(proof, j, 8)]),
        ...(proof.length > 1 ? [[i, t.size, root, leaf, [proof[0] as Uint8Array, SOME, ...proof.slice(1)]] as [number, number, Uint8Array, Uint8Array, Uint8Array[]]] : []),
      ];
      for (const [idx, size, r, l, p] of probes) expect(verifyInclusion(l, idx, size, p, r)).toBe(false);
    }
  });

  it("refuses every corruption of a published consistency proof (the reference implementation's probes)", () => {
    for (const t of V.consistency.filter((x) => x.proof.length > 0)) {
      const r1 = unhex(V.roots[t.first - 1] as string);
      const r2 = unhex(V.roots[t.second - 1] as string);
      const proof = t.proof.map(unhex);
      const wrong = new TextEncoder().encode("WrongRoot");
      const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        [t.first - 1, t.second, r1, r2, proof],
        [t.first + 1, t.second, r1, r2, proof],
        [t.first ^ 2, t.second, r1, r2, proof],
        [t.first, t.second * 2, r1, r2, proof],
        [t.first, Math.floor(t.second / 2), r1, r2, proof],
        [t.first, t.second, wrong, r2, proof],
        [t.first, t.second, r1, wrong, proof],
        [t.first, t.second, r2, r1, proof],
        [t.first, t.second, r1, r2, []],
        [t.first, t.second, r1, r2, [...proof, new Uint8Array(0)]],
        [t.first, t.second, r1, r2, [...proof, r1]],
        [t.first, t.second, r1, r2, [...proof, r2]],
        [t.first, t.second, r1, r2, [new Uint8Array(0), ...proof]],
        [t.first, t.second, r1, r2, [r1, ...proof]],
        [t.first, t.second, r1, r2, [r2, ...proof]],
        [t.first, t.second, r1, r2, [proof[0] as Uint8Array, ...proof]],
        [t.first, t.second, r1, r2, proof.slice(0, -1)],
        ...proof.map((_, j): [number, number, Uint8Array, Uint8Array, Uint8Array[]] => [t.first, t.second, r1, r2, flip(proof, j, 16)]),
      ];
      for (const [a, b, x, y, p] of probes) expect(verifyConsistency(a, b, x, y, p)).toBe(false);
    }
  });

  it("the edge cases of the reference implementation: equal sizes, size 0, time travel, empty proofs", () => {
    const r1 = new Uint8Array(32).fill(1);
    const r2 = new Uint8Array(32).fill(2);
    expect(verifyConsistency(0, 0, r1, r1, [])).toBe(true);
    expect(verifyConsistency(0, 1, r1, r2, [])).toBe(true);
    expect(verifyConsistency(1, 1, r2, r2, [])).toBe(true);
    expect(verifyConsistency(1, 1, r1, r2, [])).toBe(false);
    expect(verifyConsistency(1, 0, r1, r2, [])).toBe(false);
    expect(verifyConsistency(2, 1, r1, r2, [])).toBe(false);
    expect(verifyConsistency(1, 2, r1, r2, [])).toBe(false);
    expect(verifyConsistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])).toBe(false);
    expect(verifyConsistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])).toBe(false);
    for (const [i, n] of [[0, 0], [1, 0], [2, 1]] as const) expect(verifyInclusion(SOME, i, n, [], EMPTY_ROOT)).toBe(false);
    const one = leafHash(new TextEncoder().encode("data"));
    expect(verifyInclusion(one, 0, 1, [], one)).toBe(true);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], one)).toBe(false);
  });
});

describe("properties over random trees", () => {
  const arbLeaves = fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 70 }).map((ds) => ds.map(leafHash));

  it("the root from stored nodes equals the recursive definition for every prefix", () => {
    fc.assert(
      fc.property(arbLeaves, (ls) => {
        const ns = memoryNodes(ls);
        for (let n = 0; n <= ls.length; n++) expect(hex(treeRoot(ns, n))).toBe(hex(mth(ls.slice(0, n))));
      }),
      { numRuns: 60 },
    );
  });

  it("every audit path verifies, and not for another leaf or a taller tree", () => {
    fc.assert(
      fc.property(arbLeaves, fc.nat(), fc.nat(), (ls, a, b) => {
        const ns = memoryNodes(ls);
        const size = 1 + (a % ls.length);
        const index = b % size;
        const root = treeRoot(ns, size);
        const proof = inclusionProof(ns, index, size);
        expect(verifyInclusion(ls[index] as Uint8Array, index, size, proof, root)).toBe(true);
        const other = (index + 1) % size;
        if (other !== index && hex(ls[other] as Uint8Array) !== hex(ls[index] as Uint8Array)) expect(verifyInclusion(ls[other] as Uint8Array, index, size, proof, root)).toBe(false);
        // A tree twice as large is a level taller: the path is a node short.
        expect(verifyInclusion(ls[index] as Uint8Array, index, size * 2, proof, root)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("every consistency proof verifies, and a changed leaf in the older tree breaks it", () => {
    fc.assert(
      fc.property(arbLeaves, fc.nat(), fc.nat(), fc.nat(), (ls, a, b, c) => {
        const ns = memoryNodes(ls);
        const second = 1 + (a % ls.length);
        const first = 1 + (b % second);
        const proof = consistencyProof(ns, first, second);
        expect(verifyConsistency(first, second, treeRoot(ns, first), treeRoot(ns, second), proof)).toBe(true);
        // A history rewritten: one leaf of the first tree changed, the second tree kept.
        const changed = [...ls];
        const at = c % first;
        changed[at] = leafHash(new TextEncoder().encode(`rewritten ${hex(ls[at] as Uint8Array)}`));
        const forged = memoryNodes(changed);
        if (first < second) expect(verifyConsistency(first, second, treeRoot(forged, first), treeRoot(ns, second), proof)).toBe(false);
        expect(verifyConsistency(first, second, treeRoot(forged, first), treeRoot(ns, second), consistencyProof(forged, first, second))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("the nodes kept as leaves are appended are the tree's perfect subtrees", () => {
    fc.assert(
      fc.property(arbLeaves, (ls) => {
        const kept = new Map<string, Uint8Array>();
        const source: NodeSource = (level, index) => {
          const h = kept.get(`${level}:${index}`);
          if (h === undefined) throw new Error(`node ${level}:${index} not kept`);
          return h;
        };
        ls.forEach((l, i) => {
          for (const n of appendedNodes(source, i, l)) kept.set(`${n.level}:${n.index}`, n.hash);
        });
        const ns = memoryNodes(ls);
        for (let n = 1; n <= ls.length; n++) {
          expect(hex(treeRoot(source, n))).toBe(hex(treeRoot(ns, n)));
          for (let m = 1; m <= n; m++) expect(consistencyProof(source, m, n).map(hex)).toEqual(consistencyProof(ns, m, n).map(hex));
        }
      }),
      { numRuns: 40 },
    );
  });
});
