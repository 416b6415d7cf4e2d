/**
 * Finding 1 (critical): the party's local API had no authentication — any
 * local user read the buyer's result rows and replaced a provider's policy
 * with one releasing every column; the Host header was not checked (DNS
 * rebinding from a browser).
 *
 * The attacks, against real agents on loopback: every route without the
 * token, with a wrong token, and with the token but a rebound Host; a policy
 * change without --update. Each is refused and leaves both agents' stores and
 * the exchange's store and ledger exactly as they were. Also: an agent does not
 * listen beyond loopback without TLS, and refuses a token file others can read.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { SecretFileError } from "../../node/secret-file.js";
import { startPartyNode } from "../../node/server/start.js";
import { api, inviteAt, partyHeaders, startNodes, waitForJob, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
let job = "";

const POLICY = { allowedProtocols: ["psi", "lookup"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100, budgetUnit: "jobs" };

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone,spend,diagnosis\n1,10,a\n2,20,b\n3,30,c\n");
  writeFileSync(join(telco.dataDir, "cust-copy.csv"), "phone,spend\n9,9\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: POLICY })).status).toBe(201);
  const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
  job = r.body.id;
  expect(await waitForJob(bank.url, job)).toMatchObject({ state: "succeeded" });
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const everything = () => [snapshot(x.store), snapshot(telco.store), snapshot(bank.store)].join("\n");

/** Every route of the local API, as an attacker would try it. */
const routes = (): [string, string, unknown?][] => [
  ["GET", `/v1/jobs/${job}/result`],
  ["GET", `/v1/jobs/${job}`],
  ["POST", `/v1/jobs/${job}/cancel`],
  ["GET", "/v1/status"],
  ["GET", "/v1/datasets"],
  ["GET", "/v1/datasets/telco.subs.csv/privacy-budget"],
  ["POST", "/v1/datasets", { file: "subs.csv", policy: { ...POLICY, outputColumns: ["spend", "diagnosis"], allowedBuyers: "any" }, update: true }],
  ["POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } }],
  ["GET", "/documentation/json"],
  ["GET", "/v1/exchange/head"],
];

/** One request with exactly these headers (node:http: fetch would set the Host header itself). */
function raw(base: string, method: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method, path, setHost: headers["host"] === undefined, headers: { ...headers, ...(bytes ? { "content-type": "application/json", "content-length": String(bytes.length) } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString("utf8")));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    req.end(bytes);
  });
}

describe("finding 1: the party's local API", () => {
  it("without the token: every route answers 401 and nothing changes (no result read, no policy replaced)", async () => {
    const before = everything();
    for (const party of [bank, telco]) {
      for (const [method, path, body] of routes()) {
        const r = await raw(party.url, method, path, body, {});
        expect(r.status, `${method} ${path}`).toBe(401);
        expect(JSON.parse(r.text)).toMatchObject({ error: { code: "UMBRA_UNAUTHENTICATED" } });
      }
    }
    expect(everything()).toBe(before);
  });

  it("with a wrong token (or a token of another agent): 401, nothing changes", async () => {
    const before = everything();
    const telcoToken = telco.agent.token;
    // One character off (always a different one), a made-up token, and another agent's.
    const t = bank.agent.token;
    const offByOne = `${t.slice(0, -1)}${t.endsWith("A") ? "B" : "A"}`;
    for (const token of ["x".repeat(43), offByOne, telcoToken]) {
      for (const [method, path, body] of routes()) {
        const r = await raw(bank.url, method, path, body, { authorization: `Bearer ${token}` });
        expect(r.status, `${method} ${path}`).toBe(401);
      }
    }
    expect(everything()).toBe(before);
  });

  it("DNS rebinding: a page whose own name resolves to 127.0.0.1 sends its own Host, and is refused even with the token", async () => {
    const before = everything();
    const port = new URL(bank.url).port;
    for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`, ""]) {
      for (const [method, path, body] of routes()) {
        const r = await raw(bank.url, method, path, body, { ...partyHeaders(bank.url), host });
        expect(r.status, `${host} ${method} ${path}`).toBe(403);
        expect(JSON.parse(r.text)).toMatchObject({ error: { code: "UMBRA_FORBIDDEN_HOST" } });
      }
    }
    expect(everything()).toBe(before);
    // The loopback names are served.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) expect((await raw(bank.url, "GET", "/v1/status", undefined, { ...partyHeaders(bank.url), host })).status).toBe(200);
  });

  it("a policy change needs update: without it 409 and the policy keeps its version; with it a new version in both stores and the exchange's ledger", async () => {
    const before = everything();
    const again = await api<{ error: { code: string; message: string } }>(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { ...POLICY, outputColumns: ["spend", "diagnosis"] } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("UMBRA_ALREADY_EXISTS");
    expect(again.body.error.message).toMatch(/--update/);
    expect(everything()).toBe(before);

    // update for a file never registered: refused, nothing registered.
    const unknown = await api<{ error: { code: string } }>(telco.url, "POST", "/v1/datasets", { file: "cust-copy.csv", policy: POLICY, update: true });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "UMBRA_NOT_FOUND"]);
    expect(everything()).toBe(before);

    const ledger = [...x.store.ledgerRows()].length;
    const update = await api<{ policyVersion: number; updated: boolean }>(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: { ...POLICY, minGroupSize: 20 }, update: true });
    expect(update.status).toBe(200);
    expect(update.body).toMatchObject({ policyVersion: 2, updated: true });
    expect(telco.store.latestPolicy("telco.subs.csv")?.version).toBe(2);
    expect(x.store.latestPolicy("telco.subs.csv")?.version).toBe(2);
    const added = [...x.store.ledgerRows()].slice(ledger);
    expect(added.map((r) => r.kind)).toEqual(["policy.changed", "dataset.certified"]);
    expect(JSON.parse(added[0]?.body ?? "{}")).toMatchObject({ dataset: "telco.subs.csv", version: 2 });
  });

  it("an agent does not listen beyond loopback without TLS (its token would cross the network in clear); nothing is created", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f01-"));
    const db = join(dir, "p.db");
    await expect(startPartyNode({ name: "p", host: "0.0.0.0", port: 0, db, data: dir, handleSignals: false, logger: false, say: () => undefined })).rejects.toMatchObject({ code: "UMBRA_INSECURE_LISTEN" });
    expect(existsSync(db)).toBe(false);
    expect(existsSync(join(dir, "p.token"))).toBe(false);
  });

  it("beyond loopback over TLS: it answers the names it was given (--allowed-host), never the wildcard address (red-team F10)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f01-tls-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "2", "-subj", "/CN=agent.test"], { stdio: "ignore" });
    const invite = inviteAt(x.url, "wide");
    const node = await startPartyNode({ name: "wide", host: "0.0.0.0", port: 0, db: join(dir, "wide.db"), data: dir, exchange: x.url, tls: { certFile: join(dir, "c.pem"), keyFile: join(dir, "k.pem") }, allowedHosts: ["agent.test"], handleSignals: false, logger: false, say: () => undefined, ...(invite ? { invite } : {}) });
    try {
      const port = new URL(node.url).port;
      const token = readFileSync(join(dir, "wide.token"), "utf8").trim();
      const ask = (host: string) =>
        new Promise<number>((resolve, reject) => {
          const req = httpsRequest({ host: "127.0.0.1", port, path: "/v1/status", headers: { host, authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on("error", reject);
          req.end();
        });
      expect([await ask(`agent.test:${port}`), await ask(`127.0.0.1:${port}`), await ask(`0.0.0.0:${port}`), await ask(`other.test:${port}`)]).toEqual([200, 200, 403, 403]);
    } finally {
      await node.close();
    }
  });

  it("a token file other users can read is refused at start, naming the fix", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umbra-f01-"));
    const tokenFile = join(dir, "p.token");
    writeFileSync(tokenFile, `${"a".repeat(43)}\n`);
    chmodSync(tokenFile, 0o644);
    const err = await startPartyNode({ name: "p", port: 0, db: join(dir, "p.db"), data: dir, exchange: x.url, tokenFile, handleSignals: false, logger: false, say: () => undefined }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretFileError);
    expect((err as SecretFileError).code).toBe("UMBRA_SECRET_FILE_PERMISSIONS");
    expect((err as Error).message).toContain(`chmod 600 "${tokenFile}"`);
    expect((err as Error).message).not.toContain("a".repeat(43));
  });
});
