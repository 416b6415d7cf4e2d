/**
 * Red team of what issue 18 added to the nodes (F17): the party agent's job
 * list (GET /v1/jobs), key normalisation on node jobs (params.normalise),
 * key shapes in dataset descriptors, config files, the policy's "//"
 * comment, and the data errors a provider's agent logs.
 *
 * The attacks, against real agents and a real exchange on loopback: the job
 * list without the token, from a rebound Host, with hostile query values; a
 * job.start (signed by the exchange itself) that adds, drops or changes the
 * normalisation of the buyer's job; wrong normalise documents; a descriptor
 * whose keyShape smuggles a value; a policy comment beyond its bounds, and
 * one within them (never stored or shown); config files that are not files.
 * Each is refused and leaves every store and the ledger as they were, or
 * shows only what it should.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { withConfigFile } from "../../node/commands/config.js";
import { Options } from "../../node/commands/args.js";
import { sealEnvelope } from "../../node/envelope.js";
import { appendEntry, LedgerKind, requestDigest } from "../../node/ledger.js";
import { type JobRequest } from "../../node/policy.js";
import { CONTROL_STEP, ControlType } from "../../node/server/control.js";
import { Writable } from "node:stream";
import { generateIdentity } from "../../node/identity.js";
import { buildParty } from "../../node/server/party.js";
import { openStore } from "../../node/store.js";
import { api, inviteAt, partyHeaders, startNodes, startParty, waitForJob, waitUntil, type TestExchange, type TestParty, type TestNodes } from "../helpers/nodes.js";
import { descriptor, exchangeSnapshot, handJob, handParty, signedRequest, snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let x: TestExchange;
let telco: TestParty;
let bank: TestParty;
/** A psi job with --digits-only that ran. */
let job = "";

const SECRET_PHONE = "+1 (555) 010-0042";
const POLICY = { allowedProtocols: ["psi", "lookup"], outputColumns: ["spend"], keyColumns: ["phone"], allowedBuyers: ["bank"], queryBudget: 1000, budgetUnit: "jobs" };

beforeAll(async () => {
  nodes = await startNodes(pool, ["telco", "bank"]);
  x = nodes.x;
  [telco, bank] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(telco.dataDir, "subs.csv"), `phone,spend\n"${SECRET_PHONE}",10\n+1 (555) 010-0002,20\n+1 (555) 010-0003,30\n`);
  writeFileSync(join(bank.dataDir, "private-customers-q3.csv"), "phone\n15550100042\n15550100003\n19990000000\n");
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: POLICY })).status).toBe(201);
  const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "private-customers-q3.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"], normalise: { digitsOnly: true } } });
  expect(r.status).toBe(201);
  job = r.body.id;
  expect(await waitForJob(bank.url, job)).toMatchObject({ state: "succeeded" });
}, 60_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

const everything = () => [exchangeSnapshot(x), snapshot(telco.store), snapshot(bank.store)].join("\n");

/** One request with exactly these headers (node:http: fetch would set the Host header itself). */
function raw(base: string, path: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: "GET", path, setHost: headers["host"] === undefined, headers }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("F17: GET /v1/jobs on the party agent", () => {
  it("without the token, or with another agent's: 401, no job listed", async () => {
    for (const headers of [{}, { authorization: `Bearer ${telco.agent.token}` }] as Record<string, string>[]) {
      const r = await raw(bank.url, "/v1/jobs?limit=10000", headers);
      expect(r.status).toBe(401);
      expect(r.text).not.toContain(job);
    }
  });

  it("from a rebound Host, even with the token: 403, no job listed", async () => {
    const r = await raw(bank.url, "/v1/jobs", { ...partyHeaders(bank.url), host: `evil.example:${new URL(bank.url).port}` });
    expect(r.status).toBe(403);
    expect(r.text).not.toContain(job);
  });

  it("hostile limit and state values are refused with 400 and change nothing", async () => {
    const before = everything();
    const hostile = [
      "limit=0",
      "limit=-1",
      "limit=10001",
      "limit=99999999999999999999",
      "limit=1.5",
      "limit=abc",
      "limit=1%3BDROP%20TABLE%20jobs",
      "limit=",
      "state=succeeded'%20OR%20'1'%3D'1",
      "state=%25",
      "state=",
      "state=succeeded&state=failed",
    ];
    for (const q of hostile) {
      const r = await api<{ error?: { code: string } }>(bank.url, "GET", `/v1/jobs?${q}`);
      expect(r.status, q).toBe(400);
    }
    expect(everything()).toBe(before);
  });

  it("the buyer's list names its own file and the job's counts, never a key", async () => {
    const r = await api<{ jobs: { id: string; role: string; summary: string }[] }>(bank.url, "GET", "/v1/jobs?state=succeeded&limit=10000");
    expect(r.status).toBe(200);
    const mine = r.body.jobs.find((j) => j.id === job);
    expect(mine?.role).toBe("buyer");
    expect(mine?.summary).toContain("private-customers-q3.csv with telco.subs.csv");
    const text = JSON.stringify(r.body);
    for (const key of ["15550100042", "15550100003", "19990000000", SECRET_PHONE]) expect(text).not.toContain(key);
  });

  it("the provider's list does not name the buyer's own file (only the provider's dataset)", async () => {
    const r = await api<{ jobs: { id: string; role: string; summary: string }[] }>(telco.url, "GET", "/v1/jobs");
    const theirs = r.body.jobs.find((j) => j.id === job);
    expect(theirs?.role).toBe("provider");
    expect(JSON.stringify(r.body)).not.toContain("private-customers-q3");
  });

  it("a provider's list of a multi-provider job names its own dataset, not its co-providers'", async () => {
    const request = { protocol: "federated-aggregate", buyer: "bank", providerDatasets: ["telco.subs.csv", "rival.secret-plans.csv"], params: { aggregate: { aggregates: [{ fn: "count" }] } } };
    telco.store.createJob({ id: "job-f17-fa", protocol: "federated-aggregate", buyer: "bank", providers: ["telco", "rival"], params: { request } as never });
    const r = await api<{ jobs: { id: string; summary: string }[] }>(telco.url, "GET", "/v1/jobs");
    expect(r.body.jobs.find((j) => j.id === "job-f17-fa")?.summary).toBe("provider: telco.subs.csv; submitted");
  });

  it("the provider's list shows no key, no value and no path of its data folder", async () => {
    const r = await api(telco.url, "GET", "/v1/jobs?limit=10000");
    const text = JSON.stringify(r.body);
    for (const s of [SECRET_PHONE, "010-0042", "15550100042", telco.dataDir, bank.dataDir]) expect(text).not.toContain(s);
  });
});

describe("F17: params.normalise as a buyer sends it", () => {
  const submit = (params: Record<string, unknown>, protocol = "psi") =>
    api<{ error?: { code: string; message: string } }>(bank.url, "POST", "/v1/jobs", { protocol, buyerDataset: "private-customers-q3.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["phone"], ...params } });

  for (const [what, normalise] of [
    ["a string for a flag", { digitsOnly: "yes" }],
    ["an unknown field", { stripPlus: true }],
    ["an array", [true]],
    ["null", null],
    ["a prototype key", JSON.parse('{"__proto__": {"digitsOnly": true}}') as unknown],
  ] as const) {
    it(`normalise with ${what} is refused with 400, nothing stored or sent`, async () => {
      const before = everything();
      const r = await submit({ normalise });
      expect(r.status).toBe(400);
      expect(everything()).toBe(before);
    });
  }

  it("normalise on federated-aggregate (no keys joined) is refused with 400 at the exchange, nothing stored", async () => {
    const before = everything();
    const r = await api(bank.url, "POST", "/v1/jobs", { protocol: "federated-aggregate", providerDatasets: ["telco.subs.csv", "telco.subs.csv"], params: { aggregate: { aggregates: [{ fn: "count" }] }, normalise: { caseFold: true } } });
    expect(r.status).toBe(400);
    expect(everything()).toBe(before);
  });
});

describe("F17: normalisation that merges a provider's keys", () => {
  it("lookup with digitsOnly on letters-and-digits keys (US100, UK100, DE100 would be one key, one charged) is refused: normalise-merges-keys, nothing stored, no budget spent", async () => {
    writeFileSync(join(telco.dataDir, "acc.csv"), "acct,spend\nUS100,10\nUK100,20\nDE100,30\nFR200,40\n");
    writeFileSync(join(bank.dataDir, "probe.csv"), "acct\n100\n");
    const policy = { allowedProtocols: ["lookup", "psi"], outputColumns: ["spend"], keyColumns: ["acct"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 1, budgetUnit: "keys" };
    expect((await api(telco.url, "POST", "/v1/datasets", { file: "acc.csv", policy })).status).toBe(201);
    // The exchange records the refusal; nothing reaches the provider and no budget moves.
    const before = [snapshot(telco.store), JSON.stringify(x.store.listBudgets("telco.acc.csv"))].join("\n");
    const r = await api<{ error?: { code: string; rule?: string } }>(bank.url, "POST", "/v1/jobs", {
      protocol: "lookup",
      buyerDataset: "probe.csv",
      providerDataset: "telco.acc.csv",
      params: { keyColumns: ["acct"], outputColumns: ["spend"], queryCount: 1, normalise: { digitsOnly: true } },
    });
    expect([r.status, r.body.error?.rule]).toEqual([403, "normalise-merges-keys"]);
    expect([snapshot(telco.store), JSON.stringify(x.store.listBudgets("telco.acc.csv"))].join("\n")).toBe(before);
  });
});

describe("F17: key shapes in dataset descriptors", () => {
  it("the catalog shows the provider's key column as a class, never a value", async () => {
    const r = await signedRequest<{ datasets: { id: string; schema: { name: string; keyShape?: string }[] }[] }>(x.url, bank.identity, "GET", "/v1/datasets");
    const d = r.body.datasets.find((e) => e.id === "telco.subs.csv");
    expect(d?.schema.find((f) => f.name === "phone")).toEqual({ name: "phone", type: "Utf8", keyShape: "formatted-digits" });
  });

  it("a party outside the dataset's allowed buyers does not see its key shape (nor the dataset) in the catalog", async () => {
    const mallory = await startParty("mallory", x.url, pool);
    const r = await signedRequest(x.url, mallory.identity, "GET", "/v1/datasets");
    await mallory.close();
    expect(JSON.stringify(r.body)).not.toContain("telco.subs.csv");
  });

  it("a descriptor whose keyShape is a value (not one of the classes) is refused with 400, nothing stored", async () => {
    const before = everything();
    const d = descriptor("telco", "smuggle.csv");
    const bad = { ...d, schema: [{ name: "k", type: "Utf8", keyShape: SECRET_PHONE }] };
    const r = await signedRequest(x.url, telco.identity, "POST", "/v1/datasets", { body: { descriptor: bad, policy: { ...POLICY, keyColumns: ["k"], outputColumns: [] } } });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).not.toContain(SECRET_PHONE);
    expect(everything()).toBe(before);
  });
});

describe('F17: the policy\'s "//" comment', () => {
  it("a comment beyond its bounds (201 lines, or a line of 1001 characters) is refused with 400, nothing stored", async () => {
    const before = everything();
    for (const comment of [Array.from({ length: 201 }, () => "x"), "y".repeat(1001), { nested: "object" }]) {
      const r = await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", update: true, policy: { ...POLICY, "//": comment } });
      expect(r.status).toBe(400);
    }
    expect(everything()).toBe(before);
  });

  it("a comment within its bounds is not stored by the exchange, nor shown to buyers in the catalog", async () => {
    const marker = "COMMENT-MARKER-do-not-store";
    const r = await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", update: true, policy: { ...POLICY, "//": [marker, "z".repeat(900)] } });
    expect(r.status).toBe(200);
    const stored = [x.store, telco.store].flatMap((st) => st.listPolicies("telco.subs.csv").map((p) => JSON.stringify(p.policy))).join("\n");
    const catalog = await signedRequest(x.url, bank.identity, "GET", "/v1/datasets");
    const ledger = [...x.store.ledgerRows()].map((row) => JSON.stringify(row)).join("\n");
    expect([stored, JSON.stringify(catalog.body), ledger].some((s) => s.includes(marker))).toBe(false);
  });
});

describe("F17: --config files", () => {
  const spec = { "--config": "string", "--port": "string", "--data": "string" } as const;
  const load = (file: string) => withConfigFile(new Options(new Map([["--config", file]]), new Set(), "usage"), spec, "usage");
  const dir = mkdtempSync(join(tmpdir(), "umbra-f17-config-"));
  const messageOf = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return "(no error)";
  };

  it("a config file that is a FIFO is refused at once, not waited on: UMBRA_INVALID_CONFIG", () => {
    const fifo = join(dir, "pipe.toml");
    execFileSync("mkfifo", [fifo]);
    expect(() => load(fifo)).toThrow('config file "pipe.toml": is not a regular file (a pipe, a device or a folder): name a .toml or .json file');
  });

  it("a config file that is a symlink to /dev/zero is refused, not read into memory", () => {
    const link = join(dir, "zero.toml");
    symlinkSync("/dev/zero", link);
    expect(() => load(link)).toThrow('config file "zero.toml": is not a regular file (a pipe, a device or a folder): name a .toml or .json file');
  });

  it("a world-writable config file (anyone could set its data folder or allowed hosts) is refused", () => {
    const f = join(dir, "open.toml");
    writeFileSync(f, `data = "/"\n`);
    chmodSync(f, 0o666);
    expect(() => load(f)).toThrow('config file "open.toml": anyone on this machine may write it: run chmod o-w on it');
  });

  it("a config file over 1 MiB is refused before it is parsed", () => {
    const big = join(dir, "big.toml");
    writeFileSync(big, `# ${"x".repeat(1 << 20)}\nport = 1\n`);
    expect(() => load(big)).toThrow(/config file "big\.toml": is larger than 1048576 bytes/);
  });

  it("a TOML nesting bomb (200,000 nested arrays, under 1 MiB) is a typed config error, not a crash", () => {
    const f = join(dir, "bomb.toml");
    writeFileSync(f, `port = ${"[".repeat(200_000)}${"]".repeat(200_000)}\n`);
    expect(() => load(f)).toThrow(/^config file "bomb\.toml": /);
  });

  it("a JSON nesting bomb is a typed config error, not a crash", () => {
    const f = join(dir, "bomb.json");
    writeFileSync(f, `{"port": ${"[".repeat(200_000)}${"]".repeat(200_000)}}`);
    expect(() => load(f)).toThrow(/^config file "bomb\.json": /);
  });

  it("a TOML error never quotes the file's contents (a secret on the broken line)", () => {
    const f = join(dir, "leak.toml");
    writeFileSync(f, `port = "hunter2-secret-value\n`);
    expect(messageOf(() => load(f))).toMatch(/^config file "leak\.toml": not valid TOML at line 1, column \d+: [^"]*$/);
    expect(messageOf(() => load(f))).not.toContain("hunter2");
  });

  it("a JSON error never quotes the file's contents", () => {
    const f = join(dir, "leak.json");
    writeFileSync(f, `{"port": hunter2-secret-value}`);
    expect(messageOf(() => load(f))).toMatch(/^config file "leak\.json": not valid JSON/);
    expect(messageOf(() => load(f))).not.toContain("hunter2");
  });

  it("a wrong-kind value is refused without quoting it", () => {
    const f = join(dir, "kind.json");
    writeFileSync(f, JSON.stringify({ port: { secret: "hunter2-secret-value" } }));
    expect(() => load(f)).toThrow('config file "kind.json": port needs a value (a string or a number)');
  });
});

describe("F17: what a provider's agent logs of a data error", () => {
  it("a provider whose file went bad logs where and the code, never a key or a cell of the file", async () => {
    const lines: string[] = [];
    const stream = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString("utf8")), done()) });
    const store = openStore(":memory:");
    const dataDir = mkdtempSync(join(tmpdir(), "umbra-f17-carrier-"));
    const agent = await buildParty({ store, identity: generateIdentity("carrier"), exchangeUrl: x.url, dataDir, pool, invite: inviteAt(x.url, "carrier") as string, logger: { level: "debug", stream } });
    const url = await agent.app.listen({ host: "127.0.0.1", port: 0 });
    await agent.start();
    try {
      writeFileSync(join(dataDir, "c.csv"), "phone,spend\n+1 555 010 0001,1\n");
      const reg = await fetch(`${url}/v1/datasets`, { method: "POST", headers: { authorization: `Bearer ${agent.token}`, "content-type": "application/json" }, body: JSON.stringify({ file: "c.csv", policy: { ...POLICY, outputColumns: [] } }) });
      expect(reg.status).toBe(201);
      // The file changes under the agent: a row with a field too many, each cell a secret.
      writeFileSync(join(dataDir, "c.csv"), `phone,spend\n"${SECRET_PHONE}",SPEND-SECRET-77,EXTRA-SECRET-99\n`);
      const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "private-customers-q3.csv", providerDataset: "carrier.c.csv", params: { keyColumns: ["phone"] } });
      expect(r.status).toBe(201);
      await waitForJob(bank.url, r.body.id);
      await waitUntil(() => lines.some((l) => l.includes("job step failed")), "the provider's log line");
    } finally {
      await agent.stop();
      store.close();
    }
    const log = lines.join("");
    for (const secret of [SECRET_PHONE, "010-0042", "SPEND-SECRET-77", "EXTRA-SECRET-99"]) expect(log).not.toContain(secret);
  });
});

describe("F17: what the buyer's terminal prints of a refusal (job status, job list)", () => {
  it("a provider's refusal whose rule is a terminal escape sequence is refused with 400: the job stays as it was, nothing for the buyer's terminal", async () => {
    const buyer = await handParty(x, "buyer2");
    const provider = await handParty(x, "prov2");
    const id = await handJob(x, buyer, provider, { accept: false, file: "esc.csv" });
    const rule = "\u001b]0;owned\u0007\u001b[2K\rjob succeeded: count 990";
    const r = await signedRequest(x.url, provider, "POST", `/v1/jobs/${id}/events`, { body: { kind: "refused", rule } });
    expect([r.status, x.store.getJob(id)?.state, x.store.getJob(id)?.reason]).toEqual([400, "submitted", null]);
  });
});

/** Puts a job.start signed by the exchange into the bank's mailbox, as a malicious exchange would send it. */
function injectStart(id: string, request: JobRequest): void {
  const record = appendEntry(x.store, x.identity.signing, { kind: LedgerKind.JobSubmitted, job: id, body: { protocol: request.protocol, buyer: "bank", dataset: "telco.subs.csv", cost: 1, request: requestDigest(request) } });
  const start = { type: ControlType.Start, job: id, role: "buyer", request, counterpart: "telco", record };
  x.app.mailboxes.put("bank", sealEnvelope({ job: id, step: CONTROL_STEP, sender: x.identity, recipient: "bank", sequence: 3_000_000 + Math.floor(Math.random() * 1e6), payload: new TextEncoder().encode(JSON.stringify(start)) }));
}

describe("F17: a malicious exchange and the job's normalisation", () => {
  /** A job the bank submitted that the provider never takes (telco's agent is told nothing: a job whose start the exchange holds back). */
  async function heldJob(normalise?: Record<string, boolean>): Promise<{ id: string; asked: JobRequest }> {
    const params = { keyColumns: ["phone"], ...(normalise ? { normalise } : {}) };
    const r = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "private-customers-q3.csv", providerDataset: "telco.subs.csv", params });
    expect(r.status).toBe(201);
    const asked = (x.store.getJob(r.body.id)?.params as unknown as { request: JobRequest }).request;
    return { id: r.body.id, asked };
  }

  for (const [what, asked, forged] of [
    ["adds caseFold to a job asked without normalisation", undefined, { caseFold: true }],
    ["drops digitsOnly from a job asked with it", { digitsOnly: true }, undefined],
    ["changes digitsOnly to caseFold", { digitsOnly: true }, { caseFold: true }],
  ] as const) {
    it(`a job.start that ${what} is refused by the buyer: UMBRA_NOT_SUBMITTED, nothing sent`, async () => {
      const { id, asked: request } = await heldJob(asked);
      const { normalise: _n, ...rest } = request.params;
      injectStart(id, { ...request, params: { ...rest, ...(forged ? { normalise: forged } : {}) } });
      await waitUntil(() => bank.store.getJob(id)?.state === "failed", "the buyer's refusal");
      expect(bank.store.getJob(id)?.reason).toBe("UMBRA_NOT_SUBMITTED");
      expect(x.store.listSteps(id)).toEqual([]);
    });
  }
});
