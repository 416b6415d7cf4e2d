/**
 * Finding 11 (medium): whoever holds the exchange's database could truncate
 * or rewrite the ledger undetectably — delete the last 10 entries, or rewrite
 * and re-sign with the key kept in the same database — and `audit verify`
 * still said OK. (Finding 15's "identity secret keys in plaintext in the DB"
 * is the same key.)
 *
 * Shown here: the signing key lives in a 0600 key file, not in the database
 * (an older database is migrated and scrubbed); a rewritten entry re-signed
 * with any key the attacker has fails verification under the exchange's key;
 * a truncated ledger fails verification against the head a party kept; a
 * database whose identity record was swapped for the attacker's key no longer
 * starts with the exchange's key file.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { ed25519Sign, generateIdentity, identityToJSON, publicIdentity, storedIdentityJSON } from "../../node/identity.js";
import { entryHash, ledgerHead, requestDigest, verifyLedger } from "../../node/ledger.js";
import { exchangeCommand, partyCommand } from "../../node/commands/node.js";
import { sealEnvelope } from "../../node/envelope.js";
import { parseJobRequest } from "../../node/policy.js";
import { CONTROL_STEP, ControlType } from "../../node/server/control.js";
import { startExchangeNode } from "../../node/server/start.js";
import { openStore } from "../../node/store.js";
import { rootAt, verifyTreeHead, type SignedTreeHead } from "../../node/log/head.js";
import { api, startNodes, tokenFileOf, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
const quiet = { port: 0, handleSignals: false, logger: false, say: () => undefined } as const;
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Every byte of a SQLite database on disk (file, WAL, shared memory) as hex. */
function bytesOnDisk(db: string): string {
  return [db, `${db}-wal`, `${db}-shm`].filter((f) => existsSync(f)).map((f) => readFileSync(f).toString("hex")).join("");
}

describe("finding 11: the ledger's key is outside the database", () => {
  it("a new exchange keeps its secret keys in a 0600 key file; the database holds only the public identity", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f11-"));
    const db = join(dir, "exchange.db");
    const node = await startExchangeNode({ ...quiet, db });
    const key = JSON.parse(readFileSync(join(dir, "exchange.key"), "utf8")) as { secret: { signing: string } };
    expect(statSync(join(dir, "exchange.key")).mode & 0o777).toBe(0o600);
    expect(key.secret.signing).toBe(hexOf(node.identity.signing.secretKey));
    expect(JSON.parse(node.store.getIdentity() ?? "{}")).toEqual({ format: "umbra.public-identity.v1", name: "exchange", signingPublicKey: hexOf(node.identity.signing.publicKey), boxPublicKey: hexOf(node.identity.box.publicKey) });
    await node.close();
    // Neither as raw bytes nor as the hex text an identity record would hold.
    expect(bytesOnDisk(db)).not.toContain(hexOf(node.identity.signing.secretKey));
    expect(bytesOnDisk(db)).not.toContain(Buffer.from(hexOf(node.identity.signing.secretKey)).toString("hex"));
  });

  it("an older database holding the secret keys: they move into a new key file and are scrubbed from the database file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f11-"));
    const db = join(dir, "exchange.db");
    const old = generateIdentity("exchange");
    const store = openStore(db);
    store.putIdentity(JSON.stringify(identityToJSON(old)));
    store.close();
    const secretText = Buffer.from(hexOf(old.signing.secretKey)).toString("hex");
    expect(bytesOnDisk(db)).toContain(secretText);
    const node = await startExchangeNode({ ...quiet, db });
    expect(node.identity.signing.publicKey).toEqual(old.signing.publicKey);
    await node.close();
    expect(statSync(join(dir, "exchange.key")).mode & 0o777).toBe(0o600);
    expect(bytesOnDisk(db)).not.toContain(secretText);
    expect(bytesOnDisk(db)).not.toContain(Buffer.from(hexOf(old.box.secretKey)).toString("hex"));
  });

  it("a passphrase file other users can read is refused, like the key it opens (red-team F11)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f11-"));
    const file = join(dir, "passphrase");
    writeFileSync(file, "correct horse battery staple\n");
    chmodSync(file, 0o644);
    const err = await exchangeCommand(["start", "--port", "0", "--db", join(dir, "exchange.db"), "--key-passphrase-file", file], { out: () => undefined, err: () => undefined }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "UMBRA_SECRET_FILE_PERMISSIONS" });
    expect((err as Error).message).not.toContain("horse");
    expect(existsSync(join(dir, "exchange.key"))).toBe(false);
  });

  it("a database whose identity record was swapped for another key does not start with the exchange's key file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f11-"));
    const db = join(dir, "exchange.db");
    await (await startExchangeNode({ ...quiet, db })).close();
    const s = openStore(db);
    s.replaceIdentity(storedIdentityJSON(publicIdentity(generateIdentity("exchange"))));
    s.close();
    await expect(startExchangeNode({ ...quiet, db })).rejects.toMatchObject({ code: "UMBRA_IDENTITY_MISMATCH" });
  });
});

describe("finding 11: rewritten or truncated ledgers are detected", () => {
  let nodes: TestNodes;
  let x: TestExchange;
  let telco: TestParty;
  let bank: TestParty;

  beforeAll(async () => {
    nodes = await startNodes(pool, ["telco", "bank"]);
    x = nodes.x;
    [telco, bank] = nodes.parties as [TestParty, TestParty];
    writeFileSync(join(telco.dataDir, "subs.csv"), "phone\n1\n2\n3\n");
    writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] } })).status).toBe(201);
    for (let i = 0; i < 3; i++) {
      const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
      expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    }
  }, 60_000);

  afterAll(async () => {
  await nodes?.close();
    await pool.close();
  });

  it("the parties hold signed tree heads of the exchange's log that reach the last job's submission", () => {
    const last = [...x.store.ledgerRows()].filter((r) => r.kind === "job.submitted").at(-1);
    for (const p of [telco, bank]) {
      const head = p.agent.exchangeHead as SignedTreeHead;
      expect(verifyTreeHead(head, x.publicKey)).toEqual(head);
      expect(head.size).toBeGreaterThanOrEqual(last?.seq ?? Infinity);
      expect(head.root).toBe(rootAt(x.store, head.size));
    }
  });

  it("an entry rewritten and re-signed with the attacker's own key fails verification under the exchange's key", () => {
    const attacker = generateIdentity("exchange");
    // The attacker rewrites seq 3 and re-chains and re-signs the whole ledger with a key it holds.
    const rows = [...x.store.ledgerRows()];
    const copy = openStore(":memory:");
    let prev = "0".repeat(64);
    for (const r of rows) {
      const body = r.seq === 3 ? JSON.stringify({ edited: true }) : r.body;
      const hash = entryHash({ seq: r.seq, at: r.at, kind: r.kind, job: r.job, body: JSON.parse(body), prevHash: prev });
      const signature = hexOf(ed25519Sign(attacker.signing.secretKey, Buffer.from(hash, "hex")));
      copy.insertLedgerRow({ ...r, body, prev_hash: prev, hash, signature });
      prev = hash;
    }
    expect(verifyLedger(copy, attacker.signing.publicKey)).toMatchObject({ ok: true }); // consistent under the attacker's key…
    expect(verifyLedger(copy, x.publicKey)).toEqual({ ok: false, seq: 1, problem: "signature" }); // …not under the exchange's
    copy.close();
  });

  it("the head is kept in the party's store and served to its owner (umbra party head)", async () => {
    const lines: string[] = [];
    expect(await partyCommand(["head", "--party", telco.url, "--token-file", tokenFileOf(telco)], { out: (l) => void lines.push(l), err: () => undefined })).toBe(0);
    const printed = JSON.parse(lines[0] as string) as SignedTreeHead;
    // The agent may have moved on between the two reads (every answer moves it): the printed one is one it kept.
    expect(telco.store.log.headAt(printed.size)).toEqual(printed);
    expect(lines).toHaveLength(1);
  });

  it("an exchange showing a party a signed job record that is not in the log the party holds (a fork) gets no further job from it", async () => {
    const seen = { seq: (telco.agent.exchangeHead as SignedTreeHead).size };
    const id = "job-forked";
    const request = parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    x.store.createJob({ id, protocol: "psi", buyer: "bank", providers: ["telco"], params: { request } as never });
    // The same seq, another body: signed with the exchange's own key, as a forking exchange would.
    const prev = [...x.store.ledgerRows()].find((r) => r.seq === seen.seq - 1)?.hash ?? "0".repeat(64);
    const body = { protocol: "psi", buyer: "bank", dataset: "telco.subs.csv", cost: 1, request: requestDigest(request) };
    const at = Date.now();
    const hash = entryHash({ seq: seen.seq, at, kind: "job.submitted", job: id, body, prevHash: prev });
    const record = { seq: seen.seq, at, kind: "job.submitted", job: id, body, prevHash: prev, hash, signature: hexOf(ed25519Sign(x.identity.signing.secretKey, Buffer.from(hash, "hex"))) };
    const start = { type: ControlType.Start, job: id, role: "provider", request, counterpart: "bank", record };
    x.app.mailboxes.put("telco", sealEnvelope({ job: id, step: CONTROL_STEP, sender: x.identity, recipient: "telco", sequence: 9_000_000, payload: new TextEncoder().encode(JSON.stringify(start)) }));
    await waitUntil(() => telco.store.log.evidence().length > 0, "the provider's evidence");
    expect(telco.store.log.evidence().map((e) => e.reason)).toEqual(["not-included"]);
    expect(telco.store.getJob(id)).toBeUndefined();
  });

  it("the last 10 entries deleted: the chain alone still verifies, the party's head does not", () => {
    const head = bank.agent.exchangeHead as SignedTreeHead;
    const all = [...x.store.ledgerRows()];
    const copy = openStore(":memory:");
    const kept = all.slice(0, Math.max(0, head.size - 10));
    for (const r of kept) copy.insertLedgerRow(r);
    expect(verifyLedger(copy, x.publicKey)).toMatchObject({ ok: true, entries: kept.length });
    expect(verifyLedger(copy, x.publicKey, { heads: [head] })).toEqual({ ok: false, seq: kept.length + 1, problem: "truncated", headIndex: 0 });
    expect(ledgerHead(x.store)?.seq).toBeGreaterThanOrEqual(head.size);
    copy.close();
  });
});
