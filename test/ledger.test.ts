/**
 * node/ledger: append and verify; the hash and signature as the header
 * defines them, checked with an independent Ed25519 (noble) and SHA-256;
 * tampering with any stored column of any entry, deleting, reordering or
 * truncating entries is caught at the first bad seq.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../engine/errors.js";
import {
  appendEntry,
  canonicalEntry,
  GENESIS_HASH,
  LedgerKind,
  ledgerHead,
  entryHash,
  ledgerPublicKey,
  listEntries,
  syncLogTree,
  verifyLedger,
  type LedgerEntryInput,
} from "../node/ledger.js";
import { openStore, type Store } from "../node/store.js";
import { currentTreeHead, rootAt, signTreeHead } from "../node/log/head.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-ledger-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const freshPath = (): string => join(dir, `ledger-${++fileCount}.db`);

const secretKey = new Uint8Array(32).map((_, i) => (i * 7 + 3) & 0xff);
const signer = { secretKey };
const publicKey = ed25519.getPublicKey(secretKey);
const ed25519Hex = (hash: string): string => Buffer.from(ed25519.sign(Buffer.from(hash, "hex"), secretKey)).toString("hex");

function testClock(start = 1_700_000_000_000): () => number {
  let t = start;
  return () => t++;
}

const d = (c: string): string => c.repeat(64);

/** The entries of a small exchange's day, seq 1..8. */
const DAY: readonly LedgerEntryInput[] = [
  { kind: LedgerKind.PartyRegistered, body: { party: "telco", role: "provider" } },
  { kind: LedgerKind.DatasetRegistered, body: { dataset: "telco.subscribers", rows: 1000, contentHash: d("a") } },
  { kind: LedgerKind.PolicyChanged, body: { dataset: "telco.subscribers", version: 1, policyHash: d("b") } },
  { kind: LedgerKind.JobSubmitted, job: "job-1", body: { protocol: "psi", dataset: "telco.subscribers" } },
  { kind: LedgerKind.JobStep, job: "job-1", body: { step: "buyer-blinded", size: 32000, digest: d("c") } },
  { kind: LedgerKind.JobResult, job: "job-1", body: { digest: d("d"), rows: 412 } },
  { kind: LedgerKind.JobSubmitted, job: "job-2", body: { protocol: "lookup", dataset: "telco.subscribers" } },
  { kind: LedgerKind.JobRefused, job: "job-2", body: { rule: "buyer-not-allowed", code: "UMBRA_POLICY_DENIED" } },
];

function filledLedger(path = freshPath()): { store: Store; path: string } {
  const store = openStore(path, { now: testClock() });
  for (const e of DAY) appendEntry(store, signer, e);
  return { store, path };
}

/** A second connection on the file, to tamper with it behind the store's back. */
function tamper(path: string, sql: string, ...args: unknown[]): void {
  const db = new Database(path);
  try {
    const info = db.prepare(sql).run(...args);
    expect(info.changes).toBeGreaterThan(0);
  } finally {
    db.close();
  }
}

describe("appendEntry", () => {
  it("chains, hashes and signs entries as the header defines", () => {
    const store = openStore(":memory:", { now: testClock() });
    expect(ledgerHead(store)).toBeNull();
    const entries = DAY.map((e) => appendEntry(store, signer, e));
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(entries[0]?.prevHash).toBe(GENESIS_HASH);
    entries.forEach((e, i) => {
      if (i > 0) expect(e.prevHash).toBe(entries[i - 1]?.hash);
      // The canonical encoding, written out by hand for this shape of entry.
      const manual = `{"at":${e.at},"body":${canonicalBody(e.body)},"job":${e.job === null ? "null" : JSON.stringify(e.job)},"kind":"${e.kind}","prev_hash":"${e.prevHash}","seq":${e.seq}}`;
      expect(canonicalEntry(e)).toBe(manual);
      const hash = createHash("sha256").update("umbra.v1.ledger.entry\n").update(manual).digest("hex");
      expect(e.hash).toBe(hash);
      // An independent Ed25519 implementation accepts the signature over the hash's bytes.
      expect(ed25519.verify(Buffer.from(e.signature, "hex"), Buffer.from(e.hash, "hex"), publicKey)).toBe(true);
    });
    expect(entries[3]).toMatchObject({ kind: "job.submitted", job: "job-1", body: { protocol: "psi", dataset: "telco.subscribers" } });
    expect(entries[0]?.job).toBeNull();
    expect(ledgerHead(store)).toEqual({ seq: 8, hash: entries[7]?.hash });
    expect(ledgerPublicKey(secretKey)).toEqual(publicKey);
    store.close();
  });

  it("refuses bad entries and writes nothing", () => {
    const store = openStore(":memory:");
    const bad: unknown[] = [
      { kind: "job.exploded", job: "j", body: {} },
      { kind: LedgerKind.JobStep, body: {} }, // a job kind without a job
      { kind: LedgerKind.JobStep, job: "bad job id", body: {} },
      { kind: LedgerKind.PolicyChanged, job: "j", body: {} }, // a job on a non-job kind
      { kind: LedgerKind.JobStep, job: "j", body: [1, 2] },
      { kind: LedgerKind.JobStep, job: "j", body: null },
      { kind: LedgerKind.JobStep, job: "j", body: { n: Number.POSITIVE_INFINITY } },
      { kind: LedgerKind.JobStep, job: "j", body: { u: undefined } },
      { kind: LedgerKind.JobStep, job: "j", body: { b: new Uint8Array(4) } },
      { kind: LedgerKind.JobStep, job: "j", body: { big: "x".repeat(20_000) } },
    ];
    for (const e of bad) expect(() => appendEntry(store, signer, e as LedgerEntryInput)).toThrow(InvalidArgumentError);
    expect(() => appendEntry(store, { secretKey: new Uint8Array(31) }, DAY[0] as LedgerEntryInput)).toThrow(InvalidArgumentError);
    expect(listEntries(store)).toEqual([]);
    store.close();
  });

  it("commits together with the change it records, or not at all", () => {
    const store = openStore(":memory:");
    expect(() =>
      store.transaction(() => {
        store.createJob({ id: "j", protocol: "psi", buyer: "bank", providers: ["telco"], params: {} });
        appendEntry(store, signer, { kind: LedgerKind.JobSubmitted, job: "j", body: { protocol: "psi" } });
        store.transitionJob("j", ["submitted"], "succeeded"); // off the graph
      }),
    ).toThrow();
    expect(store.getJob("j")).toBeUndefined();
    expect(listEntries(store)).toEqual([]);
    store.transaction(() => {
      store.createJob({ id: "j", protocol: "psi", buyer: "bank", providers: ["telco"], params: {} });
      appendEntry(store, signer, { kind: LedgerKind.JobSubmitted, job: "j", body: { protocol: "psi" } });
    });
    expect(listEntries(store).map((e) => e.seq)).toEqual([1]);
    expect(verifyLedger(store, publicKey)).toMatchObject({ ok: true, entries: 1 });
    store.close();
  });
});

describe("listEntries", () => {
  it("lists all entries, one job's, or those after a seq", () => {
    const { store } = filledLedger();
    expect(listEntries(store).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(listEntries(store, { job: "job-1" }).map((e) => e.kind)).toEqual(["job.submitted", "job.step", "job.result"]);
    expect(listEntries(store, { job: "job-2" }).map((e) => e.seq)).toEqual([7, 8]);
    expect(listEntries(store, { job: "nope" })).toEqual([]);
    expect(listEntries(store, { afterSeq: 6, limit: 1 }).map((e) => e.seq)).toEqual([7]);
    store.close();
  });
});

describe("verifyLedger", () => {
  it("accepts an intact ledger, an empty one, and one reopened from its file", () => {
    const empty = openStore(":memory:");
    expect(verifyLedger(empty, publicKey)).toEqual({ ok: true, entries: 0, head: null, root: rootAt(empty, 0), heads: 0 });
    empty.close();
    const { store, path } = filledLedger();
    const head = ledgerHead(store);
    const root = rootAt(store, 8);
    const signed = currentTreeHead(store, signer.secretKey, 1);
    expect(verifyLedger(store, publicKey)).toEqual({ ok: true, entries: 8, head, root, heads: 0 });
    store.close();
    const reopened = openStore(path);
    expect(verifyLedger(reopened, publicKey, { heads: [signed] })).toEqual({ ok: true, entries: 8, head, root, heads: 1 });
    appendEntry(reopened, signer, { kind: LedgerKind.JobCancelled, job: "job-3", body: {} });
    expect(verifyLedger(reopened, publicKey)).toMatchObject({ ok: true, entries: 9 });
    reopened.close();
  });

  it("fails every entry's signature under another key", () => {
    const { store } = filledLedger();
    const other = ed25519.getPublicKey(new Uint8Array(32).fill(9));
    expect(verifyLedger(store, other)).toEqual({ ok: false, seq: 1, problem: "signature" });
    expect(() => verifyLedger(store, new Uint8Array(31))).toThrow(InvalidArgumentError);
    store.close();
  });

  // Every stored column of every entry, changed behind the store's back.
  const columnTampers: readonly { column: string; sql: string; problem: string; args?: (seq: number) => unknown[] }[] = [
    { column: "at", sql: "UPDATE ledger SET at = at + 1 WHERE seq = ?", problem: "hash" },
    { column: "kind", sql: "UPDATE ledger SET kind = CASE WHEN kind LIKE 'job.%' THEN 'job.failed' ELSE 'policy.changed' END WHERE seq = ? AND kind NOT IN ('job.failed', 'policy.changed')", problem: "hash" },
    { column: "kind (to an unknown kind)", sql: "UPDATE ledger SET kind = 'job.whatever' WHERE seq = ?", problem: "malformed" },
    { column: "job", sql: "UPDATE ledger SET job = 'job-9' WHERE seq = ? AND job IS NOT NULL", problem: "hash" },
    { column: "job (set on a non-job entry)", sql: "UPDATE ledger SET job = 'job-9' WHERE seq = ? AND job IS NULL", problem: "malformed" },
    { column: "body", sql: "UPDATE ledger SET body = ? WHERE seq = ?", problem: "hash", args: (seq) => [canonicalBody({ ...bodyOf(seq), tampered: 1 }), seq] },
    { column: "body (whitespace only)", sql: "UPDATE ledger SET body = ' ' || body WHERE seq = ?", problem: "malformed" },
    { column: "prev_hash", sql: "UPDATE ledger SET prev_hash = ? WHERE seq = ?", problem: "prev_hash", args: (seq) => [d("e"), seq] },
    { column: "hash", sql: "UPDATE ledger SET hash = ? WHERE seq = ?", problem: "hash", args: (seq) => [d("f"), seq] },
    { column: "hash (not hex)", sql: "UPDATE ledger SET hash = upper(hash) WHERE seq = ?", problem: "malformed" },
    {
      column: "signature",
      sql: "UPDATE ledger SET signature = substr(signature, 1, 10) || CASE substr(signature, 11, 1) WHEN '0' THEN '1' ELSE '0' END || substr(signature, 12) WHERE seq = ?",
      problem: "signature",
    },
    { column: "signature (truncated)", sql: "UPDATE ledger SET signature = substr(signature, 3) WHERE seq = ?", problem: "malformed" },
  ];

  for (const t of columnTampers) {
    it(`catches a changed ${t.column} at the first bad seq, for every entry`, () => {
      const { store: template } = filledLedger();
      const n = listEntries(template).length;
      template.close();
      let caught = 0;
      for (let seq = 1; seq <= n; seq++) {
        const path = freshPath();
        const { store } = filledLedger(path);
        const db = new Database(path);
        const changes = db.prepare(t.sql).run(...(t.args ? t.args(seq) : [seq])).changes;
        db.close();
        if (changes === 0) {
          store.close(); // this tamper does not apply to this entry's shape (e.g. a job on a non-job entry)
          continue;
        }
        expect({ seq, result: verifyLedger(store, publicKey) }).toEqual({ seq, result: { ok: false, seq, problem: t.problem } });
        caught++;
        store.close();
      }
      expect(caught).toBeGreaterThanOrEqual(2);
    });
  }

  it("catches a re-hashed entry that cannot be re-signed, even with the chain after it rebuilt", () => {
    const { store, path } = filledLedger();
    const entries = listEntries(store);
    const db = new Database(path);
    // Change entry 5's body and recompute hashes and links from there on, without the key.
    let prev = entries[3]?.hash ?? "";
    for (const e of entries.slice(4)) {
      const body = e.seq === 5 ? { ...e.body, size: 1 } : e.body;
      const text = canonicalBody(body);
      const hash = createHash("sha256")
        .update("umbra.v1.ledger.entry\n")
        .update(canonicalEntry({ ...e, body, prevHash: prev }))
        .digest("hex");
      db.prepare("UPDATE ledger SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?").run(text, prev, hash, e.seq);
      prev = hash;
    }
    db.close();
    expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq: 5, problem: "signature" });
    store.close();
  });

  it("catches a deleted entry, first, middle or last-but-one", () => {
    for (const seq of [1, 4, 7]) {
      const { store, path } = filledLedger();
      tamper(path, "DELETE FROM ledger WHERE seq = ?", seq);
      expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq, problem: "gap" });
      store.close();
    }
  });

  it("catches renumbered and reordered entries", () => {
    {
      // Swap entries 3 and 4 (each row keeps its own columns, under the other's seq).
      const { store, path } = filledLedger();
      const db = new Database(path);
      db.transaction(() => {
        db.prepare("UPDATE ledger SET seq = -3 WHERE seq = 3").run();
        db.prepare("UPDATE ledger SET seq = 3 WHERE seq = 4").run();
        db.prepare("UPDATE ledger SET seq = 4 WHERE seq = -3").run();
      })();
      db.close();
      expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq: 3, problem: "prev_hash" });
      store.close();
    }
    {
      // Swap the contents of 3 and 4 but keep the chain fields in place: the hash covers the content.
      const { store, path } = filledLedger();
      const db = new Database(path);
      db.transaction(() => {
        const r3 = db.prepare("SELECT kind, job, body FROM ledger WHERE seq = 3").get() as { kind: string; job: string | null; body: string };
        const r4 = db.prepare("SELECT kind, job, body FROM ledger WHERE seq = 4").get() as { kind: string; job: string | null; body: string };
        db.prepare("UPDATE ledger SET kind = ?, job = ?, body = ? WHERE seq = 3").run(r4.kind, r4.job, r4.body);
        db.prepare("UPDATE ledger SET kind = ?, job = ?, body = ? WHERE seq = 4").run(r3.kind, r3.job, r3.body);
      })();
      db.close();
      expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq: 3, problem: "hash" });
      store.close();
    }
    {
      // Shift everything up by one: no entry 1.
      const { store, path } = filledLedger();
      tamper(path, "UPDATE ledger SET seq = seq + 100");
      expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq: 1, problem: "gap" });
      store.close();
    }
  });

  it("catches entries cut off the end only against a signed head kept elsewhere", () => {
    const { store, path } = filledLedger();
    const at8 = currentTreeHead(store, signer.secretKey, 1);
    const at6 = signTreeHead(signer.secretKey, { size: 6, root: rootAt(store, 6), at: 1 });
    // The entries and their leaves cut off together, as a careful forger would: the chain alone cannot tell.
    tamper(path, "DELETE FROM ledger WHERE seq >= 7");
    tamper(path, "DELETE FROM log_nodes WHERE (idx + 1) * (1 << level) > 6");
    expect(verifyLedger(store, publicKey)).toMatchObject({ ok: true, entries: 6 });
    expect(verifyLedger(store, publicKey, { heads: [at6, at8] })).toEqual({ ok: false, seq: 7, problem: "truncated", headIndex: 1 });
    // A head of another size-6 history (signed by the key, vouching for another root) is a fork.
    const forked = signTreeHead(signer.secretKey, { size: 6, root: "ab".repeat(32), at: 1 });
    expect(verifyLedger(store, publicKey, { heads: [forked] })).toEqual({ ok: false, seq: 6, problem: "head", headIndex: 0 });
    // A head not signed by the exchange's key says nothing.
    expect(verifyLedger(store, publicKey, { heads: [{ ...at6, signature: "00".repeat(64) }] })).toEqual({ ok: false, seq: 0, problem: "head_signature", headIndex: 0 });
    store.close();
  });

  it("an entry rewritten and everything after it re-chained and re-signed with the exchange's own key: only a head held elsewhere shows it", () => {
    const { store, path } = filledLedger();
    const held = currentTreeHead(store, signer.secretKey, 1);
    const rows = [...store.ledgerRows()];
    const copy = openStore(join(dirname(path), "rewritten.db"));
    let prev = "0".repeat(64);
    for (const r of rows) {
      const body = r.seq === 3 ? JSON.stringify({ rewritten: true }) : r.body;
      const hash = entryHash({ seq: r.seq, at: r.at, kind: r.kind, job: r.job, body: JSON.parse(body), prevHash: prev });
      copy.insertLedgerRow({ ...r, body, prev_hash: prev, hash, signature: ed25519Hex(hash) });
      prev = hash;
    }
    syncLogTree(copy);
    expect(verifyLedger(copy, publicKey)).toMatchObject({ ok: true, entries: 8 });
    expect(verifyLedger(copy, publicKey, { heads: [held] })).toEqual({ ok: false, seq: 8, problem: "head", headIndex: 0 });
    copy.close();
    store.close();
  });

  it("a tree kept beside the entries that does not hash to them is found", () => {
    const { store, path } = filledLedger();
    tamper(path, "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 2");
    expect(verifyLedger(store, publicKey)).toEqual({ ok: false, seq: 3, problem: "tree" });
    store.close();
  });
});

/** The body of entry `seq` of {@link DAY}. */
function bodyOf(seq: number): object {
  return DAY[seq - 1]?.body ?? {};
}

function canonicalBody(body: object): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sortKeys) : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, sortKeys(x)])) : v;
  return JSON.stringify(sortKeys(body));
}
