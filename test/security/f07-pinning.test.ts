/**
 * Finding 7 (high over plain http): no key pinning. A MITM proxy between a
 * party and the exchange served a rogue /v1/identity; the party accepted it,
 * ran an injected job.start it never submitted (reading a file the attacker
 * named), and sealed messages to the attacker's key.
 *
 * The attacks: a proxy serving a rogue identity to a party that pinned the
 * exchange's key, and to a new party given the key's fingerprint — each
 * refuses before sending anything else; a job.start (even one the exchange
 * itself signed) for a job the buyer never submitted, or for its job with
 * another file; a job.start whose signed ledger record is not its request.
 * Each is refused with nothing read, sent or spent.
 */
import { createServer, type Server } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { sealEnvelope } from "../../node/envelope.js";
import { fingerprint, generateIdentity } from "../../node/identity.js";
import { appendEntry, LedgerKind, requestDigest } from "../../node/ledger.js";
import { parseJobRequest, type JobRequest } from "../../node/policy.js";
import { CONTROL_STEP, ControlType } from "../../node/server/control.js";
import { buildParty, ExchangeKeyMismatchError } from "../../node/server/party.js";
import { openStore } from "../../node/store.js";
import { api, inviteAt, startNodes, startParty, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
let proxy: { url: string; seen: string[]; server: Server };

/** A man in the middle: forwards everything to the exchange, but answers /v1/identity with the attacker's keys. */
async function startProxy(target: string): Promise<{ url: string; seen: string[]; server: Server }> {
  const rogue = generateIdentity("exchange");
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === "/v1/identity") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ name: "exchange", signingPublicKey: Buffer.from(rogue.signing.publicKey).toString("hex"), boxPublicKey: Buffer.from(rogue.box.publicKey).toString("hex") }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== "host" && k !== "connection")) as Record<string, string>;
      void fetch(target + (req.url ?? ""), { method: req.method ?? "GET", headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) }).then(async (r) => {
        res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/octet-stream" });
        res.end(Buffer.from(await r.arrayBuffer()));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, seen, server };
}

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), "phone,spend\n1,10\n2,20\n3,30\n");
  writeFileSync(join(bank.dataDir, "cust.csv"), "phone\n2\n3\n4\n");
  writeFileSync(join(bank.dataDir, "secret.csv"), "phone\n999\n");
  const policy = { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 100, budgetUnit: "jobs" };
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy })).status).toBe(201);
  proxy = await startProxy(x.url);
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await new Promise((r) => proxy?.server.close(r));
  await pool.close();
});

/** Puts a job.start signed by the exchange into a party's mailbox, as the exchange would send it. */
function inject(to: string, job: string, role: "buyer" | "provider", request: JobRequest, recordFor: JobRequest = request): void {
  if (!x.store.getJob(job)) x.store.createJob({ id: job, protocol: request.protocol, buyer: "bank", providers: ["telco"], params: { request } as never });
  const record = appendEntry(x.store, x.identity.signing, { kind: LedgerKind.JobSubmitted, job, body: { protocol: request.protocol, buyer: "bank", dataset: "telco.subs.csv", cost: 1, request: requestDigest(recordFor) } });
  const start = { type: ControlType.Start, job, role, request, counterpart: role === "buyer" ? "telco" : "bank", record };
  x.app.mailboxes.put(to, sealEnvelope({ job, step: CONTROL_STEP, sender: x.identity, recipient: to, sequence: 2_000_000 + Math.floor(Math.random() * 1e6), payload: new TextEncoder().encode(JSON.stringify(start)) }));
}

describe("finding 7: the exchange's key is pinned; a party runs only the jobs it should", () => {
  it("parties pin the exchange's key on first contact", () => {
    expect(bank.agent.exchangePin).toEqual({ name: "exchange", fingerprint: fingerprint(x.publicKey), how: "first-use" });
    expect(bank.store.getParty("exchange")?.signingPublicKey).toEqual(x.publicKey);
  });

  it("a MITM's rogue identity, to a party that pinned the real key: it refuses to start and sends nothing else", async () => {
    const store = openStore(":memory:");
    const identity = generateIdentity("carol");
    // First contact with the real exchange pins its key.
    const first = await buildParty({ store, identity, exchangeUrl: x.url, dataDir: bank.dataDir, pool, invite: inviteAt(x.url, "carol") as string });
    await first.start();
    await first.stop();
    const before = snapshot(store);
    proxy.seen.length = 0;
    const again = await buildParty({ store, identity, exchangeUrl: proxy.url, dataDir: bank.dataDir, pool });
    const err = await again.start().catch((e: unknown) => e);
    await again.app.close();
    expect(err).toBeInstanceOf(ExchangeKeyMismatchError);
    expect((err as Error).message).toContain(fingerprint(x.publicKey));
    expect(proxy.seen).toEqual(["GET /v1/identity"]);
    expect(snapshot(store)).toBe(before);
    store.close();
  });

  it("a new party given the exchange's fingerprint refuses the rogue on first contact", async () => {
    const store = openStore(":memory:");
    proxy.seen.length = 0;
    const agent = await buildParty({ store, identity: generateIdentity("dave"), exchangeUrl: proxy.url, dataDir: bank.dataDir, pool, exchangeKey: fingerprint(x.publicKey) });
    await expect(agent.start()).rejects.toBeInstanceOf(ExchangeKeyMismatchError);
    await agent.app.close();
    expect(proxy.seen).toEqual(["GET /v1/identity"]);
    expect(store.listParties()).toEqual([]);
    store.close();
  });

  it("a job.start for a job the buyer never submitted, naming another file, is refused even signed by the exchange: nothing read or sent", async () => {
    const id = "job-injected";
    const request = parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "secret.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    inject("bank", id, "buyer", request);
    await waitUntil(() => x.store.getJob(id)?.state === "failed", "the buyer's refusal");
    expect(x.store.getJob(id)?.reason).toBe("UMBRA_NOT_SUBMITTED");
    expect(bank.store.getJob(id)).toBeUndefined();
    expect(x.store.listSteps(id)).toEqual([]);
  });

  it("a job.start for the buyer's own job but another file is refused: the job fails, nothing is sent", async () => {
    // A provider that never answers keeps the real job waiting; the forged start names another file.
    const ghost = await startParty("ghost", x.url, pool);
    writeFileSync(join(ghost.dataDir, "g.csv"), "phone\n1\n");
    expect((await api(ghost.url, "POST", "/v1/datasets", { file: "g.csv", policy: { allowedProtocols: ["psi"], keyColumns: ["phone"], allowedBuyers: ["bank"] } })).status).toBe(201);
    await ghost.close();
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "cust.csv", providerDataset: "ghost.g.csv", params: { keyColumns: ["phone"] } });
    expect(r.status).toBe(201);
    const asked = x.store.getJob(r.body.id)?.params as unknown as { request: JobRequest };
    inject("bank", r.body.id, "buyer", { ...asked.request, buyerDataset: "secret.csv" });
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "failed", reason: "UMBRA_NOT_SUBMITTED" });
    expect(bank.store.getJob(r.body.id)?.state).toBe("failed");
    expect(x.store.listSteps(r.body.id)).toEqual([]);
  });

  it("a job.start whose signed ledger record names another request is refused by the provider before it spends or sends anything", async () => {
    const id = "job-bad-record";
    const request = parseJobRequest({ protocol: "psi", buyer: "bank", buyerDataset: "cust.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"] } });
    const recorded = { ...request, params: { ...request.params, keyColumns: ["spend"] } };
    const before = JSON.parse(snapshot(telco.store)) as { budgets: unknown; jobs: unknown };
    inject("telco", id, "provider", request, recorded);
    await waitUntil(() => x.store.getJob(id)?.state === "failed", "the provider's refusal");
    expect(x.store.getJob(id)?.reason).toBe("UMBRA_BAD_RECORD");
    const after = JSON.parse(snapshot(telco.store)) as { budgets: unknown; jobs: unknown };
    expect([after.budgets, after.jobs]).toEqual([before.budgets, before.jobs]);
    expect(x.store.listSteps(id)).toEqual([]);
  });
});
