/**
 * Finding-style attack tests of the transparency log (issue 11, item 1),
 * against real servers: an exchange whose operator rewrites a logged entry,
 * drops one, or shows two parties two different histories. Each is detected
 * by the parties' own checks (their next contact, or a head compared with
 * another party's) — evidence kept, the exchange refused from then on, the
 * party's store otherwise as it was — and by `umbra audit verify --head`
 * with a party's head. The forger holds the exchange's own key: every entry
 * re-chained, re-signed and the tree rebuilt, so the ledger alone verifies.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { auditCommand } from "../../node/commands/audit.js";
import { partyCommand } from "../../node/commands/node.js";
import { ed25519Sign, generateIdentity, type NodeIdentity } from "../../node/identity.js";
import { entryHash, GENESIS_HASH, syncLogTree, verifyLedger } from "../../node/ledger.js";
import { verifyTreeHead, type SignedTreeHead } from "../../node/log/head.js";
import { canonicalJson, openStore, type LedgerRow, type Store } from "../../node/store.js";
import { api, startExchange, startParty, tokenFileOf, waitForJob, waitUntil, type TestExchange, type TestParty } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
afterAll(() => pool.close());
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

interface Venue {
  readonly dir: string;
  readonly path: string;
  readonly identity: NodeIdentity;
  x: TestExchange;
  bank: TestParty;
  telco: TestParty;
}
const open: Venue[] = [];
afterEach(async () => {
  for (const v of open.splice(0)) {
    await v.bank.close().catch(() => undefined);
    await v.telco.close().catch(() => undefined);
    await v.x.close().catch(() => undefined);
  }
});

/** An exchange on a database file, a provider with a dataset and a buyer that ran one psi job: both hold signed heads. */
async function venue(options: { readonly publicLog?: boolean } = {}): Promise<Venue> {
  const dir = mkdtempSync(join(tmpdir(), "umbra-f18-"));
  const path = join(dir, "exchange.db");
  const identity = generateIdentity("exchange");
  const x = await startExchange(options, { store: openStore(path), identity, port: 0 });
  const telco = await startParty("telco", x.url, pool);
  const bank = await startParty("bank", x.url, pool);
  const v: Venue = { dir, path, identity, x, bank, telco };
  open.push(v);
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], minIntersection: 1 } })).status).toBe(201);
  const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
  expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
  // Both have heard from the exchange since the job's last entry.
  const size = (): number => (x.store.ledgerHead()?.seq ?? 0);
  await waitUntil(() => bank.agent.exchangeHead?.size === size() && telco.agent.exchangeHead?.size === size(), "both parties' heads at the ledger's size");
  return v;
}

/** Rewrites the exchange's database as its key's holder could: `edit` gives the new entries; all re-chained, re-signed, the tree rebuilt. */
function forge(path: string, identity: NodeIdentity, edit: (rows: LedgerRow[]) => { at: number; kind: string; job: string | null; body: string }[]): void {
  const db = new Database(path);
  const rows = db.prepare("SELECT * FROM ledger ORDER BY seq").all() as LedgerRow[];
  const next = edit(rows);
  db.transaction(() => {
    db.prepare("DELETE FROM ledger").run();
    db.prepare("DELETE FROM log_nodes").run();
    let prev = GENESIS_HASH;
    next.forEach((e, i) => {
      const seq = i + 1;
      const hash = entryHash({ seq, at: e.at, kind: e.kind, job: e.job, body: JSON.parse(e.body), prevHash: prev });
      const signature = hex(ed25519Sign(identity.signing.secretKey, Buffer.from(hash, "hex")));
      db.prepare("INSERT INTO ledger (seq, at, kind, job, body, prev_hash, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(seq, e.at, e.kind, e.job, e.body, prev, hash, signature);
      prev = hash;
    });
  })();
  db.close();
  const store = openStore(path);
  syncLogTree(store);
  // The forgery is whole: the ledger alone verifies under the exchange's key.
  expect(verifyLedger(store, identity.signing.publicKey)).toMatchObject({ ok: true });
  store.close();
}

/** Stops the exchange, forges its database, and starts it again on the same port. */
async function tamper(v: Venue, edit: Parameters<typeof forge>[2], options: { readonly publicLog?: boolean } = {}): Promise<void> {
  const port = Number(new URL(v.x.url).port);
  await v.x.app.close();
  v.x.store.close();
  forge(v.path, v.identity, edit);
  v.x = await startExchange(options, { store: openStore(v.path), identity: v.identity, port });
}

const rewrite = (seq: number) => (rows: LedgerRow[]) => rows.map((r) => ({ ...r, body: r.seq === seq ? canonicalJson({ ...(JSON.parse(r.body) as object), rewritten: true }) : r.body }));
const extra = (n: number) => Array.from({ length: n }, (_, i) => ({ at: Date.now(), kind: "party.registered", job: null, body: canonicalJson({ name: `ghost${i}` }) }));

function headFile(v: Venue, head: SignedTreeHead | undefined, name: string): string {
  const file = join(v.dir, name);
  writeFileSync(file, JSON.stringify(head));
  return file;
}

/** umbra audit verify, under the exchange's key as the parties pinned it. */
async function audit(v: Venue, args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await auditCommand([...args, "--exchange-key", hex(v.identity.signing.publicKey)], { out: (l) => void out.push(l), err: (l) => void err.push(l) });
  return { code, out, err };
}

/** The party's next contact with the exchange (any request its agent makes): refused, the log found inconsistent. */
async function contact(p: TestParty): Promise<void> {
  const r = await api<{ error: { code: string } }>(p.url, "GET", "/v1/datasets");
  expect([r.status, r.body.error.code]).toEqual([502, "UMBRA_LOG_INCONSISTENT"]);
}

/** After the exchange was caught: the party sends nothing more (a job refused with the code, locally) and its store is as it was. */
async function refusesFromNowOn(p: TestParty, x: TestExchange): Promise<void> {
  const before = snapshot(p.store);
  const jobsAtExchange = x.store.listJobs().length;
  const r = await api<{ error: { code: string } }>(p.url, "GET", "/v1/datasets");
  expect(r.status).toBe(502);
  expect(r.body.error.code).toBe("UMBRA_LOG_INCONSISTENT");
  const j = await api<{ error: { code: string } }>(p.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
  expect(j.body.error.code).toBe("UMBRA_LOG_INCONSISTENT");
  expect(snapshot(p.store)).toBe(before);
  expect(x.store.listJobs()).toHaveLength(jobsAtExchange);
}

describe("finding 18: a rewritten, cut or forked log is caught by the parties and by audit verify", () => {
  it("an entry rewritten (same size): both parties find a fork on their next contact, and audit verify with a party's head fails", async () => {
    const v = await venue();
    const held = v.bank.agent.exchangeHead;
    const heldFile = headFile(v, held, "bank-head.json");
    expect((await audit(v, ["verify", "--db", v.path, "--head", heldFile])).code).toBe(0);
    await tamper(v, rewrite(3));
    await contact(v.bank);
    await contact(v.telco);
    expect(v.bank.store.log.evidence().map((e) => e.reason)).toEqual(["fork"]);
    expect(v.telco.store.log.evidence().map((e) => e.reason)).toEqual(["fork"]);
    expect(JSON.parse(v.bank.store.log.evidence()[0]?.held ?? "")).toEqual(held);
    const a = await audit(v, ["verify", "--db", v.path, "--head", heldFile]);
    expect(a.code).toBe(1);
    expect(a.err.join("\n")).toContain("UMBRA_LOG_INCONSISTENT");
    expect(a.err.join("\n")).toContain(`head 1 (size ${held?.size})`);
    await refusesFromNowOn(v.bank, v.x);
  }, 90_000);

  it("an entry rewritten and the log grown past it: the consistency proof fails (rewritten)", async () => {
    const v = await venue();
    const heldFile = headFile(v, v.telco.agent.exchangeHead, "telco-head.json");
    await tamper(v, (rows) => [...rewrite(2)(rows), ...extra(3)]);
    await contact(v.telco);
    expect(v.telco.store.log.evidence().map((e) => e.reason)).toEqual(["rewritten"]);
    expect((await audit(v, ["verify", "--db", v.path, "--head", heldFile])).code).toBe(1);
    await refusesFromNowOn(v.telco, v.x);
  }, 90_000);

  it("an entry dropped (the rest renumbered): the log shrank under the head held", async () => {
    const v = await venue();
    const held = v.bank.agent.exchangeHead as SignedTreeHead;
    const heldFile = headFile(v, held, "bank-head.json");
    await tamper(v, (rows) => rows.filter((r) => r.seq !== 4));
    await contact(v.bank);
    expect(v.bank.store.log.evidence().map((e) => e.reason)).toEqual(["shrunk"]);
    const a = await audit(v, ["verify", "--db", v.path, "--head", heldFile, "--json"]);
    expect(a.code).toBe(1);
    expect(JSON.parse(a.out[0] as string)).toEqual({ ok: false, seq: held.size, problem: "truncated", headIndex: 0 });
    await refusesFromNowOn(v.bank, v.x);
  }, 90_000);

  it("an entry dropped and one forged in its place at the end (same size): a fork", async () => {
    const v = await venue();
    await tamper(v, (rows) => [...rows.filter((r) => r.seq !== 4), ...extra(1)]);
    await contact(v.bank);
    expect(v.bank.store.log.evidence().map((e) => e.reason)).toEqual(["fork"]);
  }, 90_000);

  it("two histories shown to two parties: each party's own view extends, the heads compared (party check-head) expose the fork, and audit verify fails the other's head", async () => {
    const v = await venue();
    // The operator runs a second exchange from a copy of the database, with the same key, and sends the provider there.
    const port = Number(new URL(v.x.url).port);
    await v.x.app.close();
    v.x.store.close();
    const forkPath = join(v.dir, "fork.db");
    copyFileSync(v.path, forkPath);
    v.x = await startExchange({}, { store: openStore(v.path), identity: v.identity, port });
    const fork = await startExchange({}, { store: openStore(forkPath), identity: v.identity, port: 0 });
    await v.telco.agent.stop();
    v.telco = await startParty("telco", fork.url, pool, { store: v.telco.store, identity: v.telco.identity, dataDir: v.telco.dataDir });
    // The histories part: the provider registers a dataset at the fork, the buyer two at the real one.
    writeFileSync(join(v.telco.dataDir, "more.csv"), "phone\n9\n");
    writeFileSync(join(v.bank.dataDir, "a.csv"), "phone\n7\n");
    writeFileSync(join(v.bank.dataDir, "b.csv"), "phone\n8\n");
    const policy = { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] };
    expect((await api(v.telco.url, "POST", "/v1/datasets", { file: "more.csv", policy })).status).toBe(201);
    expect((await api(v.bank.url, "POST", "/v1/datasets", { file: "a.csv", policy: { ...policy, allowedBuyers: ["telco"] } })).status).toBe(201);
    expect((await api(v.bank.url, "POST", "/v1/datasets", { file: "b.csv", policy: { ...policy, allowedBuyers: ["telco"] } })).status).toBe(201);
    await waitUntil(() => v.bank.agent.exchangeHead?.size === v.x.store.ledgerHead()?.seq && v.telco.agent.exchangeHead?.size === fork.store.ledgerHead()?.seq, "both parties at their exchange's size");
    // Alone, each party sees a history that only grows.
    expect(v.bank.store.log.evidence()).toEqual([]);
    expect(v.telco.store.log.evidence()).toEqual([]);
    const telcoHead = v.telco.agent.exchangeHead as SignedTreeHead;
    const bankHead = v.bank.agent.exchangeHead as SignedTreeHead;
    expect(verifyTreeHead(telcoHead, v.identity.signing.publicKey)).toEqual(telcoHead);
    expect(telcoHead.size).toBeLessThan(bankHead.size);
    const telcoFile = headFile(v, telcoHead, "telco-head.json");
    const bankFile = headFile(v, bankHead, "bank-head.json");
    // The buyer is given the provider's head: its exchange cannot prove the two one history.
    const before = snapshot(v.bank.store);
    await expect(partyCommand(["check-head", "--party", v.bank.url, "--token-file", tokenFileOf(v.bank), "--head", telcoFile], { out: () => undefined, err: () => undefined })).rejects.toMatchObject({ code: "UMBRA_LOG_INCONSISTENT" });
    expect(v.bank.store.log.evidence().map((e) => [e.reason, JSON.parse(e.offered)])).toEqual([["fork", telcoHead]]);
    expect(snapshot(v.bank.store)).toBe(before);
    // The provider, given the buyer's head: its exchange (the fork) cannot reach it.
    await expect(partyCommand(["check-head", "--party", v.telco.url, "--token-file", tokenFileOf(v.telco), "--head", bankFile], { out: () => undefined, err: () => undefined })).rejects.toMatchObject({ code: "UMBRA_LOG_INCONSISTENT" });
    expect(v.telco.store.log.evidence().map((e) => e.reason)).toEqual(["no-proof"]);
    // Either database against both heads: each fails the other's.
    const both = join(v.dir, "heads.json");
    writeFileSync(both, JSON.stringify([bankHead, telcoHead]));
    expect(JSON.parse((await audit(v, ["verify", "--db", v.path, "--head", both, "--json"])).out[0] as string)).toEqual({ ok: false, seq: telcoHead.size, problem: "head", headIndex: 1 });
    expect(JSON.parse((await audit(v, ["verify", "--db", forkPath, "--head", bankFile, "--json"])).out[0] as string)).toEqual({ ok: false, seq: fork.store.ledgerHead()?.seq as number + 1, problem: "truncated", headIndex: 0 });
    expect((await audit(v, ["verify", "--db", v.path, "--head", bankFile])).code).toBe(0);
    await fork.close();
  }, 120_000);

  it("a head the exchange shows a party consistently: check-head of another honest party's passes, and nothing is kept", async () => {
    const v = await venue();
    const telcoFile = headFile(v, v.telco.agent.exchangeHead, "telco-head.json");
    const out: string[] = [];
    expect(await partyCommand(["check-head", "--party", v.bank.url, "--token-file", tokenFileOf(v.bank), "--head", telcoFile], { out: (l) => void out.push(l), err: () => undefined })).toBe(0);
    expect(out[0]).toMatch(/^consistent: /);
    expect(v.bank.store.log.evidence()).toEqual([]);
  }, 60_000);
});

describe("an outside witness (umbra audit witness), with only the exchange's public key", () => {
  it("follows a public log as it grows, from a certificate's head, and catches it rewritten", async () => {
    const v = await venue({ publicLog: true });
    const key = hex(v.identity.signing.publicKey);
    const cert = join(v.dir, "cert.json");
    writeFileSync(join(v.telco.dataDir, "more.csv"), "phone\n5\n");
    const reg = await api<{ certificate: unknown }>(v.telco.url, "POST", "/v1/datasets", { file: "more.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] } });
    writeFileSync(cert, JSON.stringify(reg.body.certificate));
    const kept = join(v.dir, "witness-head.json");
    const witness = async (head: string) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await auditCommand(["witness", "--exchange", v.x.url, "--exchange-key", key, "--head", head, "--out", kept], { out: (l) => void out.push(l), err: (l) => void err.push(l) });
      return { code, out, err };
    };
    // The log grows (another job); the witness, from the certificate's head, finds it only grew.
    const r = await api<{ id: string }>(v.bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    expect(await waitForJob(v.bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    const grew = await witness(cert);
    expect(grew.code).toBe(0);
    expect(grew.out[0]).toMatch(/^consistent: the exchange's log grew from \d+ to \d+ entries without changing one/);
    // Rewritten under the head the witness kept: refused.
    await tamper(v, rewrite(3), { publicLog: true });
    const caught = await witness(kept);
    expect(caught.code).toBe(1);
    expect(caught.err[0]).toMatch(/^UMBRA_LOG_INCONSISTENT: /);
  }, 90_000);
});

describe("the log's endpoints", () => {
  let x: TestExchange;
  let pub: TestExchange;
  beforeAll(async () => {
    x = await startExchange();
    pub = await startExchange({ publicLog: true });
  });
  afterAll(async () => {
    await x.close();
    await pub.close();
  });

  it("serve heads and proofs to registered parties only, unless the exchange's log is public", async () => {
    expect((await fetch(`${x.url}/v1/log/head`)).status).toBe(401);
    expect((await fetch(`${x.url}/v1/log/consistency?first=0`)).status).toBe(401);
    const r = await fetch(`${pub.url}/v1/log/head`);
    expect(r.status).toBe(200);
    const head = (await r.json()) as SignedTreeHead;
    expect(verifyTreeHead(head, pub.publicKey)).toEqual(head);
    expect((await fetch(`${pub.url}/v1/log/consistency?first=${head.size + 1}`)).status).toBe(400);
  });
});

export type { Store };
