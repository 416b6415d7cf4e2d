/**
 * node/store: migrations on a fresh file, every method, refusals that leave
 * the store as it was, the replay guard, and a store reopened from its file.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../engine/errors.js";
import { BudgetExceededError } from "../protocols/errors.js";
import { LATEST_SCHEMA_VERSION, migrate, MIGRATIONS, StoreVersionError, type Migration } from "../node/migrations.js";
import {
  AlreadyExistsError,
  canonicalJson,
  InvalidTransitionError,
  JOB_TRANSITIONS,
  JobState,
  NotFoundError,
  openStore,
  type JobInput,
  type Store,
} from "../node/store.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const freshPath = (): string => join(dir, `store-${++fileCount}.db`);

/** A clock that moves 1 ms per reading, from a fixed start. */
function testClock(start = 1_700_000_000_000): () => number {
  let t = start;
  return () => t++;
}

const key = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);
const hex = (fill: string): string => fill.repeat(64);

function withParties(store: Store): void {
  store.putParty({ name: "exchange", role: "exchange", signingPublicKey: key(1), boxPublicKey: key(2), endpoint: "https://exchange.example:8443" });
  store.putParty({ name: "bank", role: "buyer", signingPublicKey: key(3), boxPublicKey: key(4) });
  store.putParty({ name: "telco", role: "provider", signingPublicKey: key(5), boxPublicKey: null, endpoint: "https://telco.example" });
}

function withDataset(store: Store, id = "telco.subscribers"): void {
  store.putDataset({ id, owner: "telco", name: "Subscribers", schema: { columns: [{ name: "phone", type: "utf8" }] }, rowCount: 1000, contentHash: hex("a") });
}

const job = (id: string, over: Partial<JobInput> = {}): JobInput => ({
  id,
  protocol: "psi",
  buyer: "bank",
  providers: ["telco"],
  params: { dataset: "telco.subscribers", keys: ["phone"] },
  ...over,
});

/** Every table's rows, to check that a refused call changed nothing. */
function snapshot(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    return Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT * FROM "${t}"`).all()]));
  } finally {
    db.close();
  }
}

describe("migrations", () => {
  it("create every table on a fresh file, in WAL mode with foreign keys on, owner-only", () => {
    const path = freshPath();
    const store = openStore(path);
    const db = new Database(path, { readonly: true });
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(["budgets", "certificates", "contracts", "datasets", "identity", "inbound", "invitations", "job_runs", "jobs", "ledger", "log_evidence", "log_heads", "log_nodes", "nonces", "outbox", "parties", "policies", "privacy_spent", "products", "protocol_state", "receipt_shares", "receipts", "relay", "relay_taken", "results", "schema_version", "sequences", "sqlite_sequence", "state_pages", "steps"]);
    expect(db.prepare("SELECT version, name FROM schema_version").all()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    store.close();
    expect(store.open).toBe(false);
    store.close(); // twice is fine
  });

  it("set synchronous=NORMAL and foreign_keys=ON on the store's own connection", () => {
    const store = openStore(freshPath());
    expect(store.status()).toEqual({ schemaVersion: LATEST_SCHEMA_VERSION, journalMode: "wal", synchronous: "normal", foreignKeys: true });
    store.close();
    const mem = openStore(":memory:");
    expect(mem.status()).toMatchObject({ journalMode: "memory", foreignKeys: true });
    mem.close();
  });

  it("apply only the pending ones, forward only, and leave a reopened store's versions alone", () => {
    const db = new Database(":memory:");
    const first: Migration[] = [{ version: 1, name: "one", sql: "CREATE TABLE a (x INTEGER) STRICT;" }];
    expect(migrate(db, () => 1, first)).toEqual([1]);
    expect(migrate(db, () => 2, first)).toEqual([]);
    const second = [...first, { version: 2, name: "two", sql: "ALTER TABLE a ADD COLUMN y TEXT;" }];
    expect(migrate(db, () => 3, second)).toEqual([2]);
    expect(db.prepare("SELECT version, applied_at FROM schema_version ORDER BY version").all()).toEqual([
      { version: 1, applied_at: 1 },
      { version: 2, applied_at: 3 },
    ]);
    expect(() => migrate(db, () => 4, [{ version: 2, name: "gap", sql: "" }])).toThrow(/numbered/);
    db.close();
  });

  it("roll a failing migration back entirely", () => {
    const db = new Database(":memory:");
    const bad: Migration[] = [{ version: 1, name: "bad", sql: "CREATE TABLE a (x INTEGER); CREATE TABLE a (y INTEGER);" }];
    expect(() => migrate(db, () => 1, bad)).toThrow();
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'a'").get()).toEqual({ n: 0 });
    expect(db.prepare("SELECT count(*) AS n FROM schema_version").get()).toEqual({ n: 0 });
    db.close();
  });

  it("refuse a store written by a newer Umbra, changing nothing", () => {
    const path = freshPath();
    openStore(path).close();
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'future', 0)").run(LATEST_SCHEMA_VERSION + 1);
    raw.close();
    const before = snapshot(path);
    expect(() => openStore(path)).toThrow(StoreVersionError);
    expect(snapshot(path)).toEqual(before);
  });

  it("refuse a file that is not a database, and a path that cannot be opened", () => {
    const path = freshPath();
    writeFileSync(path, "this is not sqlite, just some text that is long enough to look like a header.......");
    expect(() => openStore(path)).toThrow(/not a usable SQLite database/);
    expect(() => openStore(join(dir, "no", "such", "dir", "x.db"))).toThrow(/cannot open the store file/);
  });
});


describe("identity and parties", () => {
  it("store this node's identity, replacing the previous one", () => {
    const store = openStore(":memory:");
    expect(store.getIdentity()).toBeUndefined();
    store.putIdentity('{"name":"exchange","v":1}');
    store.putIdentity('{"name":"exchange","v":2}');
    expect(store.getIdentity()).toBe('{"name":"exchange","v":2}');
    expect(() => store.putIdentity("{not json")).toThrow(InvalidArgumentError);
    expect(store.getIdentity()).toBe('{"name":"exchange","v":2}');
    store.close();
  });

  it("register, update (keeping registeredAt), get and list parties", () => {
    const store = openStore(":memory:", { now: testClock() });
    withParties(store);
    const bank = store.getParty("bank");
    expect(bank).toMatchObject({ name: "bank", role: "buyer", endpoint: null });
    expect(bank?.signingPublicKey).toEqual(key(3));
    expect(bank?.signingPublicKey).toBeInstanceOf(Uint8Array);
    expect(store.getParty("telco")?.boxPublicKey).toBeNull();
    const updated = store.putParty({ name: "bank", role: "buyer", signingPublicKey: key(9), endpoint: "https://bank.example" });
    expect(updated.registeredAt).toBe(bank?.registeredAt);
    expect(updated.updatedAt).toBeGreaterThan(bank?.updatedAt ?? Infinity);
    expect(updated.signingPublicKey).toEqual(key(9));
    expect(updated.boxPublicKey).toBeNull();
    expect(store.listParties().map((p) => p.name)).toEqual(["bank", "exchange", "telco"]);
    expect(store.listParties({ role: "provider" }).map((p) => p.name)).toEqual(["telco"]);
    expect(store.getParty("nobody")).toBeUndefined();
    store.close();
  });

  it("keep invitations by their code's hash: each used once, for its name, before it expires", () => {
    let t = 1_700_000_000_000;
    const store = openStore(":memory:", { now: () => t });
    const hash = (n: number) => n.toString(16).padStart(64, "0");
    expect(store.putInvitation({ codeHash: hash(1), name: "telco", expiresInMs: 1_000 })).toEqual({ name: "telco", createdAt: t, expiresAt: t + 1_000, usedAt: null, usedBy: null });
    store.putInvitation({ codeHash: hash(2), name: "bank", expiresInMs: 1_000 });
    expect(() => store.putInvitation({ codeHash: hash(1), name: "bank", expiresInMs: 1_000 })).toThrow(AlreadyExistsError);
    expect(() => store.putInvitation({ codeHash: "XY", name: "bank", expiresInMs: 1_000 })).toThrow(InvalidArgumentError);
    expect(() => store.putInvitation({ codeHash: hash(3), name: "bank", expiresInMs: 0 })).toThrow(InvalidArgumentError);
    expect(store.consumeInvitation("bank", hash(1), key(1), t)).toBe(false); // another name's
    expect(store.consumeInvitation("telco", hash(1), key(1), t + 1)).toBe(true);
    expect(store.consumeInvitation("telco", hash(1), key(2), t + 2)).toBe(false); // used
    t += 1_000;
    expect(store.consumeInvitation("bank", hash(2), key(2), t)).toBe(false); // expired
    const listed = store.listInvitations();
    expect(listed.map((i) => [i.name, i.usedAt])).toEqual([["bank", null], ["telco", 1_700_000_000_001]]);
    expect(listed[1]?.usedBy).toEqual(key(1));
    expect(JSON.stringify(listed)).not.toContain(hash(1));
    store.close();
  });

  it("refuse bad party input", () => {
    const store = openStore(":memory:");
    expect(() => store.putParty({ name: "bank", role: "buyer", signingPublicKey: new Uint8Array(31) })).toThrow(InvalidArgumentError);
    expect(() => store.putParty({ name: "bank", role: "buyer", signingPublicKey: key(1), boxPublicKey: new Uint8Array(33) })).toThrow(InvalidArgumentError);
    expect(() => store.putParty({ name: "bad name", role: "buyer", signingPublicKey: key(1) })).toThrow(InvalidArgumentError);
    expect(() => store.putParty({ name: "bank", role: "king" as "buyer", signingPublicKey: key(1) })).toThrow(InvalidArgumentError);
    expect(() => store.putParty({ name: "bank", role: "buyer", signingPublicKey: key(1), endpoint: "http://x\n" })).toThrow(InvalidArgumentError);
    expect(store.listParties()).toEqual([]);
    store.close();
  });

  it("never quote the offending value in an error message", () => {
    const store = openStore(":memory:");
    const secretish = "s3cr3t-identifier-value";
    for (const f of [
      () => store.putParty({ name: `${secretish} `, role: "buyer", signingPublicKey: key(1) }),
      () => store.createJob(job(`${secretish}/`)),
      () => store.transitionJob(secretish, ["submitted"], "running"),
      () => store.putPolicy(secretish, {}),
    ]) {
      expect(f).toThrow();
      try {
        f();
      } catch (err) {
        expect((err as Error).message).not.toContain(secretish);
        expect((err as { code?: string }).code).toMatch(/^UMBRA_/);
      }
    }
    store.close();
  });
});

describe("datasets and policies", () => {
  it("register, update (keeping createdAt), get and list datasets", () => {
    const store = openStore(":memory:", { now: testClock() });
    withParties(store);
    withDataset(store);
    store.putDataset({ id: "bank.customers", owner: "bank", name: "Customers", schema: { columns: [] }, rowCount: 0, contentHash: hex("b") });
    const d = store.getDataset("telco.subscribers");
    expect(d).toMatchObject({ owner: "telco", name: "Subscribers", rowCount: 1000, contentHash: hex("a"), schema: { columns: [{ name: "phone", type: "utf8" }] } });
    const u = store.putDataset({ id: "telco.subscribers", owner: "telco", name: "Subscribers v2", schema: { columns: [] }, rowCount: 1200, contentHash: hex("c") });
    expect(u.createdAt).toBe(d?.createdAt);
    expect(u).toMatchObject({ name: "Subscribers v2", rowCount: 1200, contentHash: hex("c") });
    expect(store.listDatasets().map((x) => x.id)).toEqual(["bank.customers", "telco.subscribers"]);
    expect(store.listDatasets({ owner: "bank" }).map((x) => x.id)).toEqual(["bank.customers"]);
    expect(store.getDataset("nope")).toBeUndefined();
    store.close();
  });

  it("refuse another owner's dataset id and bad metadata, changing nothing", () => {
    const path = freshPath();
    const store = openStore(path);
    withParties(store);
    withDataset(store);
    const before = snapshot(path);
    expect(() => withDatasetOwnedBy(store, "bank")).toThrow(AlreadyExistsError);
    const base = { id: "x", owner: "telco", name: "X", schema: {}, rowCount: 1, contentHash: hex("a") };
    expect(() => store.putDataset({ ...base, rowCount: -1 })).toThrow(InvalidArgumentError);
    expect(() => store.putDataset({ ...base, rowCount: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => store.putDataset({ ...base, contentHash: "ABC" })).toThrow(InvalidArgumentError);
    expect(() => store.putDataset({ ...base, schema: { when: new Date(0) } })).toThrow(InvalidArgumentError);
    expect(() => store.putDataset({ ...base, schema: { n: Number.NaN } })).toThrow(InvalidArgumentError);
    expect(() => store.putDataset({ ...base, schema: { big: "x".repeat(70_000) } })).toThrow(InvalidArgumentError);
    expect(snapshot(path)).toEqual(before);
    store.close();
  });

  it("version policies, the latest winning", () => {
    const store = openStore(":memory:", { now: testClock() });
    withParties(store);
    withDataset(store);
    expect(store.latestPolicy("telco.subscribers")).toBeUndefined();
    const p1 = store.putPolicy("telco.subscribers", { protocols: ["psi"], buyers: ["bank"], k: 10 });
    const p2 = store.putPolicy("telco.subscribers", { protocols: ["psi", "lookup"], buyers: ["bank"], k: 20 });
    expect([p1.version, p2.version]).toEqual([1, 2]);
    expect(store.latestPolicy("telco.subscribers")).toEqual(p2);
    expect(store.getPolicy("telco.subscribers", 1)).toEqual(p1);
    expect(store.getPolicy("telco.subscribers", 3)).toBeUndefined();
    expect(store.listPolicies("telco.subscribers").map((p) => p.version)).toEqual([1, 2]);
    expect(() => store.putPolicy("unknown.dataset", {})).toThrow(NotFoundError);
    expect(() => store.putPolicy("telco.subscribers", { f: () => 1 })).toThrow(InvalidArgumentError);
    expect(() => store.putPolicy("telco.subscribers", { u: undefined })).toThrow(InvalidArgumentError);
    expect(store.listPolicies("telco.subscribers")).toHaveLength(2);
    store.close();
  });
});

function withDatasetOwnedBy(store: Store, owner: string): void {
  store.putDataset({ id: "telco.subscribers", owner, name: "Mine now", schema: {}, rowCount: 1, contentHash: hex("f") });
}

describe("jobs", () => {
  it("create, get and list jobs with filters", () => {
    const store = openStore(":memory:", { now: testClock() });
    const a = store.createJob(job("job-a"));
    expect(a).toMatchObject({ id: "job-a", protocol: "psi", buyer: "bank", providers: ["telco"], state: "submitted", reason: null, progress: null });
    expect(a.params).toEqual({ dataset: "telco.subscribers", keys: ["phone"] });
    store.createJob(job("job-b", { buyer: "insurer", protocol: "lookup" }));
    store.createJob(job("job-c", { providers: ["telco", "utility"] }));
    store.transitionJob("job-b", ["submitted"], "running");
    expect(store.listJobs().map((j) => j.id)).toEqual(["job-a", "job-b", "job-c"]);
    expect(store.listJobs({ state: "submitted" }).map((j) => j.id)).toEqual(["job-a", "job-c"]);
    expect(store.listJobs({ state: ["running", "succeeded"] }).map((j) => j.id)).toEqual(["job-b"]);
    expect(store.listJobs({ state: [] })).toEqual([]);
    expect(store.listJobs({ buyer: "bank", limit: 1 }).map((j) => j.id)).toEqual(["job-a"]);
    expect(store.getJob("job-c")?.providers).toEqual(["telco", "utility"]);
    expect(store.getJob("nope")).toBeUndefined();
    expect(() => store.createJob(job("job-a"))).toThrow(AlreadyExistsError);
    expect(() => store.createJob(job("bad id"))).toThrow(InvalidArgumentError);
    expect(() => store.createJob(job("job-d", { providers: [] }))).toThrow(InvalidArgumentError);
    expect(() => store.createJob(job("job-d", { buyer: "" }))).toThrow(InvalidArgumentError);
    expect(() => store.listJobs({ state: "done" as JobState })).toThrow(InvalidArgumentError);
    expect(store.listJobs()).toHaveLength(3);
    store.close();
  });

  it("move along every edge of the job graph, with reason and progress", () => {
    const store = openStore(":memory:", { now: testClock() });
    let n = 0;
    for (const [from, tos] of Object.entries(JOB_TRANSITIONS) as [JobState, readonly JobState[]][]) {
      for (const to of tos) {
        const id = `edge-${++n}`;
        store.createJob(job(id));
        if (from === "running") store.transitionJob(id, ["submitted"], "running");
        const before = store.getJob(id);
        const after = store.transitionJob(id, [from], to, to === "refused" ? "UMBRA_POLICY_DENIED" : null, { done: 1 });
        expect(after.state).toBe(to);
        expect(after.progress).toEqual({ done: 1 });
        expect(after.reason).toBe(to === "refused" ? "UMBRA_POLICY_DENIED" : null);
        expect(after.updatedAt).toBeGreaterThan(before?.updatedAt ?? Infinity);
        expect(after.createdAt).toBe(before?.createdAt);
      }
    }
    expect(n).toBe(7);
    store.close();
  });

  it("refuse every transition off the graph, leaving the job as it was", () => {
    const path = freshPath();
    const store = openStore(path, { now: testClock() });
    const states = Object.values(JobState);
    // One job parked in each state.
    const route: Record<JobState, JobState[]> = {
      submitted: [],
      running: ["running"],
      succeeded: ["running", "succeeded"],
      failed: ["running", "failed"],
      refused: ["refused"],
      cancelled: ["cancelled"],
    };
    for (const s of states) {
      store.createJob(job(`at-${s}`));
      let cur: JobState = "submitted";
      for (const next of route[s]) cur = store.transitionJob(`at-${s}`, [cur], next).state;
    }
    let refused = 0;
    for (const from of states) {
      for (const to of states) {
        if (JOB_TRANSITIONS[from].includes(to)) continue;
        const before = snapshot(path);
        const err = captureError(() => store.transitionJob(`at-${from}`, [from], to, "nope"));
        expect(err).toBeInstanceOf(InvalidTransitionError);
        expect(err).toMatchObject({ code: "UMBRA_INVALID_TRANSITION", from, to });
        expect(snapshot(path)).toEqual(before);
        refused++;
      }
    }
    expect(refused).toBe(36 - 7);
    // Allowed edge, but the job is not in the state the caller expected.
    const before = snapshot(path);
    expect(() => store.transitionJob("at-running", ["submitted"], "running")).toThrow(InvalidTransitionError);
    expect(() => store.transitionJob("at-running", ["submitted"], "cancelled")).toThrow(/is running, not submitted/);
    expect(() => store.transitionJob("missing", ["submitted"], "running")).toThrow(NotFoundError);
    expect(() => store.transitionJob("at-running", [], "failed")).toThrow(InvalidArgumentError);
    expect(() => store.transitionJob("at-running", ["running"], "exploded" as JobState)).toThrow(InvalidArgumentError);
    expect(() => store.transitionJob("at-running", ["running"], "failed", "bad\nreason")).toThrow(InvalidArgumentError);
    expect(snapshot(path)).toEqual(before);
    store.close();
  });

  it("set progress on live jobs only", () => {
    const store = openStore(":memory:", { now: testClock() });
    store.createJob(job("j"));
    expect(store.setJobProgress("j", { sent: 10, of: 100 }).progress).toEqual({ sent: 10, of: 100 });
    expect(store.setJobProgress("j", null).progress).toBeNull();
    store.transitionJob("j", ["submitted"], "cancelled", "buyer cancelled");
    expect(() => store.setJobProgress("j", { sent: 11 })).toThrow(InvalidTransitionError);
    expect(() => store.setJobProgress("nope", {})).toThrow(NotFoundError);
    expect(store.getJob("j")).toMatchObject({ state: "cancelled", reason: "buyer cancelled", progress: null });
    store.close();
  });

  it("record steps with a per-job seq", () => {
    const store = openStore(":memory:", { now: testClock(5) });
    store.createJob(job("j1"));
    store.createJob(job("j2"));
    const s1 = store.recordStep("j1", { step: "buyer-blinded", direction: "out", size: 3200, digest: hex("1") });
    store.recordStep("j2", { step: "buyer-blinded", direction: "out", size: 10, digest: hex("2") });
    const s2 = store.recordStep("j1", { step: "provider-blinded", direction: "in", size: 6400, digest: hex("3") });
    expect([s1.seq, s2.seq]).toEqual([1, 2]);
    expect(store.listSteps("j1")).toEqual([s1, s2]);
    expect(store.listSteps("j2").map((s) => s.seq)).toEqual([1]);
    expect(() => store.recordStep("nope", { step: "x", direction: "in", size: 1, digest: hex("4") })).toThrow(NotFoundError);
    expect(() => store.recordStep("j1", { step: "x", direction: "sideways" as "in", size: 1, digest: hex("4") })).toThrow(InvalidArgumentError);
    expect(() => store.recordStep("j1", { step: "x", direction: "in", size: -1, digest: hex("4") })).toThrow(InvalidArgumentError);
    expect(() => store.recordStep("j1", { step: "x", direction: "in", size: 1, digest: "xyz" })).toThrow(InvalidArgumentError);
    expect(store.listSteps("j1")).toHaveLength(2);
    store.close();
  });
});

describe("protocol states and results", () => {
  it("save, overwrite, load and delete protocol states", () => {
    const store = openStore(":memory:");
    store.createJob(job("j"));
    const s = new Uint8Array([0x55, 0x4d, 0x53, 0x31, 1, 2, 3]);
    store.saveState("j", "buyer", s);
    store.saveState("j", "provider", new Uint8Array([9]));
    expect(store.loadState("j", "buyer")).toEqual(s);
    store.saveState("j", "buyer", new Uint8Array([7, 7]));
    expect(store.loadState("j", "buyer")).toEqual(new Uint8Array([7, 7]));
    expect(store.loadState("j", "exchange")).toBeUndefined();
    expect(() => store.saveState("nope", "buyer", s)).toThrow(NotFoundError);
    expect(() => store.saveState("j", "buyer", new Uint8Array(0))).toThrow(InvalidArgumentError);
    expect(store.deleteState("j", "buyer")).toBe(1);
    expect(store.loadState("j", "buyer")).toBeUndefined();
    expect(store.deleteState("j")).toBe(1);
    expect(store.loadState("j", "provider")).toBeUndefined();
    store.close();
  });

  it("store a result once, inline or as a path, and release it once", () => {
    const store = openStore(":memory:", { now: testClock(100) });
    store.createJob(job("inline"));
    store.createJob(job("file"));
    const bytes = new Uint8Array(1000).map((_, i) => i & 0xff);
    const r = store.putResult("inline", { digest: hex("d"), bytes });
    expect(r).toMatchObject({ jobId: "inline", digest: hex("d"), path: null, size: 1000, releasedAt: null });
    expect(store.getResult("inline")?.bytes).toEqual(bytes);
    const f = store.putResult("file", { digest: hex("e"), path: "/var/lib/umbra/results/file.arrow", size: 123456 });
    expect(f).toMatchObject({ bytes: null, path: "/var/lib/umbra/results/file.arrow", size: 123456 });
    expect(() => store.putResult("inline", { digest: hex("0"), bytes: new Uint8Array(1) })).toThrow(AlreadyExistsError);
    expect(() => store.putResult("nope", { digest: hex("0"), bytes: new Uint8Array(1) })).toThrow(NotFoundError);
    expect(() => store.putResult("file", { digest: "not hex", bytes: new Uint8Array(1) })).toThrow(InvalidArgumentError);
    expect(store.getResult("inline")?.digest).toBe(hex("d"));
    const released = store.releaseResult("inline");
    expect(released.releasedAt).toBeGreaterThan(r.createdAt);
    expect(store.releaseResult("inline").releasedAt).toBe(released.releasedAt);
    expect(() => store.releaseResult("nope")).toThrow(NotFoundError);
    expect(store.getResult("nope")).toBeUndefined();
    store.close();
  });
});

describe("replay guard", () => {
  it("remembers nonces per sender and prunes them by age", () => {
    const store = openStore(":memory:");
    const guard = store.replayGuard;
    const n1 = new Uint8Array(16).fill(1);
    const n2 = new Uint8Array(16).fill(2);
    expect(guard.seen("bank", n1)).toBe(false);
    guard.remember("bank", n1, 1_000);
    expect(guard.seen("bank", n1)).toBe(true);
    expect(guard.seen("telco", n1)).toBe(false);
    expect(guard.seen("bank", n2)).toBe(false);
    // A view into a larger buffer with the same bytes is the same nonce.
    const big = new Uint8Array(64).fill(1);
    expect(guard.seen("bank", big.subarray(8, 24))).toBe(true);
    guard.remember("bank", n1, 5_000); // again: no error, still one row
    expect(store.checkAndRememberNonce("bank", n1, 6_000)).toBe(false);
    expect(store.checkAndRememberNonce("bank", n2, 9_000)).toBe(true);
    expect(store.nonceSeen("bank", n2)).toBe(true);
    expect(store.pruneNonces(5_000, 8_000)).toBe(1); // n1 at 1000 < 3000
    expect(guard.seen("bank", n1)).toBe(false);
    expect(guard.seen("bank", n2)).toBe(true);
    expect(store.pruneNonces(0, 9_001)).toBe(1);
    expect(guard.seen("bank", n2)).toBe(false);
    expect(() => guard.remember("bank", new Uint8Array(0), 1)).toThrow(InvalidArgumentError);
    expect(() => guard.remember("bank", n1, -1)).toThrow(InvalidArgumentError);
    store.close();
  });
});

describe("budgets", () => {
  it("set, get and consume, refusing to go below zero with the budget unchanged", () => {
    const path = freshPath();
    const store = openStore(path, { now: testClock() });
    withParties(store);
    withDataset(store);
    expect(store.getBudget("telco.subscribers", "bank")).toBeUndefined();
    store.setBudget("telco.subscribers", "bank", 100);
    expect(store.consumeBudget("telco.subscribers", "bank", 30).remaining).toBe(70);
    const before = snapshot(path);
    const err = captureError(() => store.consumeBudget("telco.subscribers", "bank", 71));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ code: "UMBRA_BUDGET_EXCEEDED" });
    expect(snapshot(path)).toEqual(before);
    expect(store.getBudget("telco.subscribers", "bank")?.remaining).toBe(70);
    // Never set: refused, nothing created.
    expect(() => store.consumeBudget("telco.subscribers", "insurer", 1)).toThrow(BudgetExceededError);
    expect(store.getBudget("telco.subscribers", "insurer")).toBeUndefined();
    expect(() => store.consumeBudget("telco.subscribers", "bank", -5)).toThrow(InvalidArgumentError);
    expect(() => store.consumeBudget("telco.subscribers", "bank", Number.NaN)).toThrow(InvalidArgumentError);
    expect(snapshot(path)).toEqual(before);
    expect(store.consumeBudget("telco.subscribers", "bank", 70).remaining).toBe(0);
    expect(() => store.consumeBudget("telco.subscribers", "bank", 1)).toThrow(BudgetExceededError);
    expect(store.consumeBudget("telco.subscribers", "bank", 0).remaining).toBe(0);
    // Fractional budgets (a privacy budget in epsilon).
    store.setBudget("telco.subscribers", "bank", 1.5);
    expect(store.consumeBudget("telco.subscribers", "bank", 0.5).remaining).toBe(1);
    expect(() => store.setBudget("telco.subscribers", "bank", -1)).toThrow(InvalidArgumentError);
    expect(() => store.setBudget("unknown", "bank", 1)).toThrow(NotFoundError);
    store.close();
  });

  it("refunds give back a reservation; every buyer's row of a dataset is listed", () => {
    const store = openStore(":memory:", { now: testClock() });
    withParties(store);
    withDataset(store);
    store.setBudget("telco.subscribers", "bank", 100);
    store.setBudget("telco.subscribers", "insurer", 7);
    store.consumeBudget("telco.subscribers", "bank", 40);
    expect(store.refundBudget("telco.subscribers", "bank", 25).remaining).toBe(85);
    expect(store.listBudgets("telco.subscribers").map((b) => [b.buyer, b.remaining])).toEqual([["bank", 85], ["insurer", 7]]);
    expect(() => store.refundBudget("telco.subscribers", "retailer", 1)).toThrow(NotFoundError);
    expect(() => store.refundBudget("telco.subscribers", "bank", -1)).toThrow(InvalidArgumentError);
    store.close();
  });
});

describe("the exchange's log as a party keeps it", () => {
  it("keeps one head per size, the first of each; gives the latest and any size; bounds the evidence", () => {
    const store = openStore(":memory:", { now: testClock() });
    const sig = "ab".repeat(64);
    expect(store.log.latestHead()).toBeUndefined();
    store.log.putHead({ size: 5, root: "11".repeat(32), at: 1, signature: sig });
    store.log.putHead({ size: 3, root: "22".repeat(32), at: 2, signature: sig });
    store.log.putHead({ size: 5, root: "33".repeat(32), at: 3, signature: sig });
    expect(store.log.latestHead()).toEqual({ size: 5, root: "11".repeat(32), at: 1, signature: sig });
    expect(store.log.headAt(3)).toEqual({ size: 3, root: "22".repeat(32), at: 2, signature: sig });
    expect(store.log.headAt(4)).toBeUndefined();
    expect(() => store.log.putHead({ size: -1, root: "11".repeat(32), at: 1, signature: sig })).toThrow(InvalidArgumentError);
    expect(() => store.log.putHead({ size: 6, root: "xyz", at: 1, signature: sig })).toThrow(InvalidArgumentError);
    for (let i = 0; i < 120; i++) store.log.recordEvidence({ held: "{}", offered: "{}", reason: "fork" });
    expect(store.log.evidence()).toHaveLength(100);
    store.close();
  });
});

describe("transactions", () => {
  it("commit all or nothing, nested as savepoints", () => {
    const path = freshPath();
    const store = openStore(path);
    withParties(store);
    const before = snapshot(path);
    expect(() =>
      store.transaction(() => {
        store.createJob(job("t1"));
        store.recordStep("t1", { step: "hello", direction: "out", size: 1, digest: hex("1") });
        store.transitionJob("t1", ["submitted"], "succeeded"); // off the graph: everything rolls back
      }),
    ).toThrow(InvalidTransitionError);
    expect(snapshot(path)).toEqual(before);

    const out = store.transaction(() => {
      store.createJob(job("t2"));
      try {
        store.transaction(() => {
          store.recordStep("t2", { step: "hello", direction: "out", size: 1, digest: hex("1") });
          throw new Error("inner fails");
        });
      } catch {
        // the inner savepoint is rolled back, the outer transaction goes on
      }
      return store.getJob("t2")?.state;
    });
    expect(out).toBe("submitted");
    expect(store.listSteps("t2")).toEqual([]);

    // An async function would commit before its awaits run: refused and rolled back.
    expect(() => store.transaction(async () => store.createJob(job("t3")))).toThrow(/synchronous/);
    expect(store.getJob("t3")).toBeUndefined();
    store.close();
  });
});

describe("a store reopened from its file", () => {
  it("keeps everything", () => {
    const path = freshPath();
    let store = openStore(path, { now: testClock() });
    store.putIdentity('{"name":"exchange"}');
    withParties(store);
    withDataset(store);
    store.putPolicy("telco.subscribers", { k: 10 });
    store.createJob(job("j"));
    store.transitionJob("j", ["submitted"], "running", null, { sent: 1 });
    store.recordStep("j", { step: "hello", direction: "out", size: 12, digest: hex("1") });
    store.saveState("j", "buyer", new Uint8Array([1, 2, 3]));
    store.putResult("j", { digest: hex("2"), bytes: new Uint8Array([4, 5]) });
    store.rememberNonce("bank", new Uint8Array(16).fill(7), 1234);
    store.setBudget("telco.subscribers", "bank", 10);
    store.consumeBudget("telco.subscribers", "bank", 3);
    const dump = (s: Store) => ({
      identity: s.getIdentity(),
      parties: s.listParties(),
      datasets: s.listDatasets(),
      policy: s.latestPolicy("telco.subscribers"),
      jobs: s.listJobs(),
      steps: s.listSteps("j"),
      state: s.loadState("j", "buyer"),
      result: s.getResult("j"),
      nonce: s.nonceSeen("bank", new Uint8Array(16).fill(7)),
      budget: s.getBudget("telco.subscribers", "bank"),
    });
    const before = dump(store);
    store.close();
    store = openStore(path);
    expect(dump(store)).toEqual(before);
    expect(before.budget?.remaining).toBe(7);
    expect(before.nonce).toBe(true);
    store.close();
  });
});

describe("canonicalJson", () => {
  it("writes RFC 8785 canonical JSON", () => {
    // RFC 8785 section 3.2.2 example (numbers parsed by JS first, as a JCS implementation does).
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
    // Keys sorted by UTF-16 code units (RFC 8785 section 3.2.3).
    expect(canonicalJson({ "\u20ac": 1, "\r": 2, "\ud83d\ude00": 3, "1": 4, "\u0080": 5, "\u00f6": 6, "\ufb33": 7 })).toBe(
      '{"\\r":2,"1":4,"\u0080":5,"\u00f6":6,"\u20ac":1,"\ud83d\ude00":3,"\ufb33":7}',
    );
    expect(canonicalJson({ z: -0, a: [1, { c: 2, b: null }] })).toBe('{"a":[1,{"b":null,"c":2}],"z":0}');
    expect(() => canonicalJson({ s: "\ud800" })).toThrow(InvalidArgumentError);
    expect(() => canonicalJson(10n)).toThrow(InvalidArgumentError);
    expect(() => canonicalJson(new Uint8Array(1))).toThrow(InvalidArgumentError);
  });
});

function captureError(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}
