/**
 * The console's in-browser ledger verifier (web/src/shared/verify), checked
 * against the node's own ledger and log: a real ledger built with
 * node/ledger.ts and exported as the admin API lists it passes the four
 * checks of docs/console.md; a changed body, a changed signature, a dropped
 * entry and a head with a wrong root fail, naming the right seq; the RFC 9162
 * verifiers accept the node's proofs for many sizes and the RFC 6962 vectors,
 * and refuse corrupted ones.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { appendEntry, LedgerKind, listEntries, type LedgerEntry, type LedgerEntryInput } from "../node/ledger.js";
import { consistencyProofOf, currentTreeHead, inclusionProofOf, signTreeHead, type SignedTreeHead } from "../node/log/head.js";
import { consistencyProof, inclusionProof, leafHash as nodeLeafHash, memoryNodes, treeRoot } from "../node/log/merkle.js";
import { openStore, type Store } from "../node/store.js";
import { fromHex, toHex } from "../web/src/shared/verify/bytes.js";
import { canonicalJson } from "../web/src/shared/verify/jcs.js";
import {
  entryLeaf,
  LedgerChecker,
  verifyEntryInclusion,
  verifyHeadConsistency,
  verifyLedgerEntries,
  verifyRoot,
  type LedgerEntryJson,
} from "../web/src/shared/verify/ledger.js";
import { EMPTY_ROOT, leafHash, merkleRoot, verifyConsistency, verifyInclusion } from "../web/src/shared/verify/merkle.js";
import { canonicalJson as nodeCanonicalJson } from "../node/store.js";

const secretKey = new Uint8Array(32).map((_, i) => (i * 11 + 5) & 0xff);
const publicKeyHex = toHex(ed25519.getPublicKey(secretKey));
const otherKeyHex = toHex(ed25519.getPublicKey(new Uint8Array(32).fill(9)));

function clock(start = 1_700_000_000_000): () => number {
  let t = start;
  return () => t++;
}

const ENTRIES: readonly LedgerEntryInput[] = [
  { kind: LedgerKind.PartyRegistered, body: { name: "telco", role: "provider" } },
  { kind: LedgerKind.DatasetRegistered, body: { dataset: "telco.subs", rows: 1000, contentHash: "a".repeat(64), note: "é ü 中文 \u2028 😀" } },
  { kind: LedgerKind.PolicyChanged, body: { dataset: "telco.subs", version: 1, digest: "b".repeat(64), ratio: 0.1, big: 1e21, neg: -0 } },
  { kind: LedgerKind.JobSubmitted, job: "job-1", body: { protocol: "psi", datasets: ["telco.subs"], nested: { z: 1, a: [true, false, null] } } },
  { kind: LedgerKind.JobStep, job: "job-1", body: { step: "buyer-blinded", size: 32000 } },
  { kind: LedgerKind.JobResult, job: "job-1", body: { rows: 412 } },
  { kind: LedgerKind.JobRefused, job: "job-2", body: { rule: "buyer-not-allowed", code: "UMBRA_POLICY_DENIED" } },
];

/** A ledger of `n` entries and its current signed head. */
function ledger(n: number): { store: Store; entries: LedgerEntryJson[]; head: SignedTreeHead } {
  const store = openStore(":memory:", { now: clock() });
  for (let i = 0; i < n; i++) appendEntry(store, { secretKey }, ENTRIES[i % ENTRIES.length] as LedgerEntryInput);
  // As GET /v1/admin/ledger lists them: every field of every entry, through JSON.
  const entries = JSON.parse(JSON.stringify(listEntries(store))) as LedgerEntryJson[];
  return { store, entries, head: JSON.parse(JSON.stringify(currentTreeHead(store, secretKey, 1_800_000_000_000))) as SignedTreeHead };
}

function allChecks(entries: readonly unknown[], head: SignedTreeHead, key = publicKeyHex) {
  const c = verifyLedgerEntries(entries, key);
  const firstBroken = c.chain.ok ? undefined : c.chain.seq;
  return { chain: c.chain, signatures: c.signatures, root: verifyRoot(c.leaves, head, key, firstBroken), checker: c };
}

describe("jcs", () => {
  it("writes what node/store's canonicalJson writes", () => {
    const values: unknown[] = [
      null, true, 0, -0, 1.5, 1e21, 1e-7, 123456789012345, "", "a\"b\\c\n\u0001", "é😀", [], {},
      { b: 1, a: 2, A: 3, "\u00e9": 4, "\ud83d\ude00": 5, "\uff61": 6 }, { x: [1, { z: null, y: "s" }] },
    ];
    for (const v of values) expect(canonicalJson(v)).toBe(nodeCanonicalJson(v));
    for (const e of ENTRIES) expect(canonicalJson(e.body)).toBe(nodeCanonicalJson(e.body));
  });
  it("refuses what is not JSON", () => {
    for (const v of [undefined, NaN, Infinity, "\ud800", new Date(0), () => 1, 1n]) expect(() => canonicalJson(v)).toThrow();
  });
});

describe("the ledger checks over a real ledger", () => {
  it("pass an untouched ledger and its head, page by page or at once", () => {
    const { entries, head, store } = ledger(23);
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: true });
    expect(r.signatures).toEqual({ ok: true });
    expect(r.root).toEqual({ ok: true });
    expect(toHex(merkleRoot(r.checker.leaves))).toBe(head.root);
    const paged = new LedgerChecker(publicKeyHex);
    for (let i = 0; i < entries.length; i += 5) paged.add(entries.slice(i, i + 5));
    expect(paged.chain.ok && paged.signatures.ok && paged.count === 23).toBe(true);
    // Check 4: the last entry's inclusion proof, and consistency from an earlier head.
    const last = entries[entries.length - 1] as LedgerEntryJson;
    expect(verifyEntryInclusion(entryLeaf(last), last.seq, head, inclusionProofOf(store, last.seq, head.size))).toEqual({ ok: true });
    const earlier = signTreeHead(secretKey, { size: 9, root: toHex(merkleRoot(r.checker.leaves, 9)), at: 1 });
    expect(verifyHeadConsistency(earlier, head, consistencyProofOf(store, 9, head.size), publicKeyHex)).toEqual({ ok: true });
    expect(verifyHeadConsistency(head, head, [], publicKeyHex)).toEqual({ ok: true });
  });

  it("each leaf is the node's own leaf of the entry", () => {
    const { entries, store } = ledger(7);
    const nodeEntries: LedgerEntry[] = listEntries(store);
    entries.forEach((e, i) => {
      const n = nodeEntries[i] as LedgerEntry;
      const bytes = Buffer.concat([Buffer.from("umbra.v1.ledger.entry\n"), Buffer.from(nodeCanonicalJson({ at: n.at, body: n.body, job: n.job, kind: n.kind, prev_hash: n.prevHash, seq: n.seq }))]);
      expect(toHex(entryLeaf(e))).toBe(Buffer.from(nodeLeafHash(bytes)).toString("hex"));
    });
  });

  it("an empty ledger passes against the empty head", () => {
    const { entries, head } = ledger(0);
    const r = allChecks(entries, head);
    expect([r.chain.ok, r.signatures.ok, r.root.ok]).toEqual([true, true, true]);
    expect(head.root).toBe(toHex(EMPTY_ROOT));
  });

  it.each([1, 5, 12, 20])("a changed body of entry %i fails the chain and the root there, not the signatures", (seq) => {
    const { entries, head } = ledger(20);
    const e = entries[seq - 1] as LedgerEntryJson & { body: Record<string, unknown> };
    entries[seq - 1] = { ...e, body: { ...e.body, tampered: 1 } };
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: false, seq, problem: "hash" });
    expect(r.signatures).toEqual({ ok: true });
    expect(r.root).toMatchObject({ ok: false, seq, problem: "root" });
  });

  it("a changed kind, time or job is caught as well", () => {
    for (const change of [{ at: 5 }, { kind: "job.failed" }, { job: "job-9" }]) {
      const { entries, head } = ledger(10);
      entries[3] = { ...(entries[3] as LedgerEntryJson), ...change };
      expect(allChecks(entries, head).chain).toMatchObject({ ok: false, seq: 4 });
    }
  });

  it("an entry rehashed to fit its changed body breaks the link to the next, and its signature", () => {
    const { entries, head } = ledger(10);
    const e = entries[5] as LedgerEntryJson;
    const changed = { ...e, body: { rows: 1 } };
    const hash = toHex(new Uint8Array(Buffer.from(entrySha256(changed))));
    entries[5] = { ...changed, hash };
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: false, seq: 7, problem: "prev_hash" });
    expect(r.signatures).toEqual({ ok: false, seq: 6, problem: "signature" });
  });

  it.each([1, 8, 15])("a changed signature of entry %i fails the signatures there", (seq) => {
    const { entries, head } = ledger(15);
    const e = entries[seq - 1] as LedgerEntryJson;
    const flipped = (parseInt(e.signature.slice(0, 2), 16) ^ 1).toString(16).padStart(2, "0") + e.signature.slice(2);
    entries[seq - 1] = { ...e, signature: flipped };
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: true });
    expect(r.signatures).toEqual({ ok: false, seq, problem: "signature" });
    expect(r.root).toEqual({ ok: true });
  });

  it("signatures under another key fail at the first entry", () => {
    const { entries, head } = ledger(4);
    const r = allChecks(entries, head, otherKeyHex);
    expect(r.signatures).toEqual({ ok: false, seq: 1, problem: "signature" });
    expect(r.root).toEqual({ ok: false, seq: 4, problem: "head_signature" });
  });

  it.each([1, 6, 11])("a dropped entry %i fails the chain at its seq", (seq) => {
    const { entries, head } = ledger(12);
    entries.splice(seq - 1, 1);
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: false, seq, problem: "gap" });
    expect(r.root.ok).toBe(false);
  });

  it("the last entry dropped: the head counts more entries than are shown", () => {
    const { entries, head } = ledger(12);
    entries.pop();
    const r = allChecks(entries, head);
    expect(r.chain).toEqual({ ok: true });
    expect(r.root).toEqual({ ok: false, seq: 12, problem: "truncated" });
  });

  it("a head with a wrong root fails check 3 (and re-signed by another key, still fails)", () => {
    const { entries, head } = ledger(9);
    const wrong = { ...head, root: "f".repeat(64) };
    expect(allChecks(entries, wrong).root).toEqual({ ok: false, seq: 9, problem: "root" });
    const resigned = signTreeHead(secretKey, { size: 9, root: "f".repeat(64), at: head.at });
    expect(allChecks(entries, resigned).root).toEqual({ ok: false, seq: 9, problem: "root" });
    const badSig = { ...head, signature: "0".repeat(128) };
    expect(allChecks(entries, badSig).root).toEqual({ ok: false, seq: 9, problem: "head_signature" });
    expect(allChecks(entries, { ...head, size: "9" } as never).root).toMatchObject({ ok: false, problem: "malformed_head" });
  });

  it("check 4 fails on a wrong inclusion proof, a forked or shrunk previous head", () => {
    const { entries, head, store } = ledger(13);
    const last = entries[12] as LedgerEntryJson;
    const proof = inclusionProofOf(store, 13, 13);
    const bad = [...proof];
    bad[0] = "0".repeat(64);
    expect(verifyEntryInclusion(entryLeaf(last), 13, head, bad)).toEqual({ ok: false, seq: 13, problem: "inclusion" });
    expect(verifyEntryInclusion(entryLeaf(entries[11] as LedgerEntryJson), 13, head, proof)).toMatchObject({ ok: false });
    const forked = signTreeHead(secretKey, { size: 5, root: "1".repeat(64), at: 1 });
    expect(verifyHeadConsistency(forked, head, consistencyProofOf(store, 5, 13), publicKeyHex)).toEqual({ ok: false, seq: 5, problem: "consistency" });
    const bigger = signTreeHead(secretKey, { size: 20, root: "1".repeat(64), at: 1 });
    expect(verifyHeadConsistency(bigger, head, [], publicKeyHex)).toEqual({ ok: false, seq: 14, problem: "shrunk" });
    const unsigned = { ...signTreeHead(secretKey, { size: 5, root: "1".repeat(64), at: 1 }), signature: "0".repeat(128) };
    expect(verifyHeadConsistency(unsigned, head, [], publicKeyHex)).toMatchObject({ ok: false, problem: "previous_head" });
  });
});

describe("RFC 9162 verifiers against node/log/merkle's proofs", () => {
  const leaves = Array.from({ length: 70 }, (_, i) => leafHash(new Uint8Array([i, i * 3, 7])));
  const nodes = memoryNodes(leaves);

  it("the root equals the node's for every size up to 70", () => {
    for (let n = 0; n <= 70; n++) expect(toHex(merkleRoot(leaves, n))).toBe(Buffer.from(treeRoot(nodes, n)).toString("hex"));
  });

  it("inclusion proofs verify for every leaf of sizes 1..40 and 64..70, and not for a neighbour or a flipped bit", () => {
    for (const size of [...Array.from({ length: 40 }, (_, i) => i + 1), 64, 65, 69, 70]) {
      const root = treeRoot(nodes, size);
      for (let i = 0; i < size; i++) {
        const proof = inclusionProof(nodes, i, size);
        expect(verifyInclusion(leaves[i] as Uint8Array, i, size, proof, root)).toBe(true);
        if (size > 1) expect(verifyInclusion(leaves[(i + 1) % size] as Uint8Array, i, size, proof, root)).toBe(false);
        if (proof.length > 0) {
          const bad = proof.map((p) => p.slice());
          flip(bad[0] as Uint8Array, 0);
          expect(verifyInclusion(leaves[i] as Uint8Array, i, size, bad, root)).toBe(false);
          expect(verifyInclusion(leaves[i] as Uint8Array, i, size, proof.slice(0, -1), root)).toBe(false);
        }
        expect(verifyInclusion(leaves[i] as Uint8Array, i + size, size, proof, root)).toBe(false);
      }
    }
  });

  it("consistency proofs verify for every pair of sizes up to 40, and not when corrupted", () => {
    for (let second = 1; second <= 40; second++) {
      const r2 = treeRoot(nodes, second);
      for (let first = 1; first <= second; first++) {
        const r1 = treeRoot(nodes, first);
        const proof = consistencyProof(nodes, first, second);
        expect(verifyConsistency(first, second, r1, r2, proof)).toBe(true);
        if (proof.length > 0) {
          const bad = proof.map((p) => p.slice());
          flip(bad[bad.length - 1] as Uint8Array, 31);
          expect(verifyConsistency(first, second, r1, r2, bad)).toBe(false);
        }
        if (first < second) expect(verifyConsistency(first, second, r2, r1, proof)).toBe(false);
      }
    }
    expect(verifyConsistency(0, 5, EMPTY_ROOT, treeRoot(nodes, 5), [])).toBe(true);
    expect(verifyConsistency(6, 5, treeRoot(nodes, 6), treeRoot(nodes, 5), [])).toBe(false);
  });
});

describe("RFC 6962 vectors", () => {
  interface Vectors {
    leaves: string[];
    roots: string[];
    emptyRoot: string;
    inclusion: { leaf: number; size: number; proof: string[] }[];
    consistency: { first: number; second: number; proof: string[] }[];
  }
  const V = JSON.parse(readFileSync(new URL("./vectors/rfc6962-merkle.json", import.meta.url), "utf8")) as Vectors;
  const leaves = V.leaves.map((h) => leafHash(fromHex(h) as Uint8Array));
  const hashes = (p: string[]) => p.map((h) => fromHex(h) as Uint8Array);

  it("roots", () => {
    expect(toHex(EMPTY_ROOT)).toBe(V.emptyRoot);
    V.roots.forEach((r, i) => expect(toHex(merkleRoot(leaves, i + 1))).toBe(r));
  });
  it("inclusion", () => {
    for (const t of V.inclusion) {
      expect(verifyInclusion(leaves[t.leaf - 1] as Uint8Array, t.leaf - 1, t.size, hashes(t.proof), fromHex(V.roots[t.size - 1]) as Uint8Array)).toBe(true);
    }
  });
  it("consistency", () => {
    for (const t of V.consistency) {
      expect(verifyConsistency(t.first, t.second, fromHex(V.roots[t.first - 1]) as Uint8Array, fromHex(V.roots[t.second - 1]) as Uint8Array, hashes(t.proof))).toBe(true);
    }
  });
});

/** SHA-256 of an entry's fields as the node hashes them (to forge a self-consistent entry). */
function entrySha256(e: LedgerEntryJson): Buffer {
  return createHash("sha256").update("umbra.v1.ledger.entry\n").update(nodeCanonicalJson({ at: e.at, body: e.body, job: e.job, kind: e.kind, prev_hash: e.prevHash, seq: e.seq })).digest();
}

function flip(b: Uint8Array, i: number): void {
  b[i] = (b[i] as number) ^ 1;
}
