/**
 * Finding 23: a red team of the web consoles' routes (docs/console.md),
 * beyond f22-console.test.ts; the attacks that live in the page are
 * f23-console-browser.test.ts. Against an exchange and party agents on
 * loopback. Attacked here, each with its outcome:
 *
 *  - open redirect: `/console//evil.com`, `/console/%2F%2Fevil.com`,
 *    `/console/\evil.com`, `/console/party/..;/`, `//console` and the like
 *    at the party agent and the exchange: any redirect goes to the node's
 *    own page, `/console/party/` or `/console/exchange/`, never elsewhere;
 *  - the token anywhere but `Authorization: Bearer`: in the query string
 *    (`token`, `access_token`), in a cookie, `bearer` in lower case, two
 *    spaces, an extra character — 401, as a wrong token; at the admin API
 *    tokens one character shorter or longer, 256 and 300 characters long are
 *    refused exactly as a wrong token of the right length (same status, code
 *    and message; the check hashes both sides before a constant-time
 *    compare: no early exit on length);
 *  - CSRF-style and cross-origin requests: text/plain POSTs with a foreign
 *    Origin to /v1/datasets, /v1/datasets/check, /v1/jobs, /v1/orders and
 *    /v1/products are 401 with no Access-Control-Allow-Origin; a CORS
 *    preflight (OPTIONS with Access-Control-Request-Headers: authorization)
 *    is 401 and allows nothing; no answer of either node carries an
 *    Access-Control-Allow-* header; stores and ledgers unchanged;
 *  - the admin API's numbers: negative, fractional, huge, 1e400, repeated,
 *    empty and unknown `after`, `limit`, `seq`, `size`, `first`, `second`,
 *    `state` are 400 UMBRA_BAD_REQUEST, never 500; an inclusion proof for
 *    a seq beyond the size and a size beyond the log are 400; nothing
 *    changes;
 *  - the result routes: a preview limit of 0, 1001, -1 or text is 400; on
 *    a result of 3,000 rows limit=1000 gives 1,000 rows and the total; a job
 *    id with a quote, CR/LF or `../` in the download's path is refused before
 *    any content-disposition is written; the download's filename is the id
 *    alone;
 *  - the data folder: /v1/files in a folder of 1,500 data files lists
 *    1,000, sorted; POST /v1/datasets/check of a binary file named .csv, a
 *    garbage .parquet / .arrow / .arrows, an empty file, a FIFO, a folder
 *    named x.csv, a header line of 4 MB, and a header of 200,000 columns —
 *    each a typed 400 naming `file`, in bounded time; nothing registered;
 *  - job streams: 20 clients that open a stream and leave before its first
 *    view used to keep their slots for good, the agent then refusing every
 *    stream 429 (defect 1); now their slots are free; a burst of 40 at once
 *    gets at most 16.
 *
 * Defects found (and fixed):
 *  1. node/server/party-console.ts — a stream's client that left while the
 *     agent fetched the first view from the exchange was never heard to go
 *     (the close listener was added after), so the stream polled the
 *     exchange until the job ended and held its slot: 16 such requests shut
 *     every console's live view out (429). The listener is now added before
 *     the first view; a stream whose client is gone ends there.
 *  2. engine/columns/csv.ts — reading a CSV reserved batchSize (65,536)
 *     cells per column before the first row: a file of 200,000 columns and
 *     one row (1.5 MB) made POST /v1/datasets/check (and registration, and a
 *     job reading it) reserve ~150 GB and kill the agent. A header of more
 *     than 10,000 columns (the most a dataset descriptor holds) is now a
 *     typed UMBRA_MALFORMED_CSV before a row is read, and the builders
 *     reserve at most 2^20 cells in all, growing as rows come.
 *  3. web/src/shared/router.ts, web/src/shared/api.ts — a malformed escape
 *     in the address (`#/jobs/%E0%A4%A`, `#token=%E0`) threw in
 *     decodeURIComponent and left a blank page (f23-console-browser).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../../engine/index.js";
import { api, partyHeaders, startNodes, startParty, waitForJob, waitUntil, type TestNodes, type TestParty } from "../helpers/nodes.js";
import { exchangeSnapshot, snapshot } from "./kit.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let bank: TestParty;
let telco: TestParty;
let jobId: string;

const POLICY = { allowedProtocols: ["psi"], outputColumns: [], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 1, queryBudget: 1_000_000, budgetUnit: "keys", expiresAt: null };
const ROWS = 3000;

interface Raw {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw request (the path sent as it is), with any headers and body. */
function raw(base: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Raw> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: o.method ?? "GET", headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

const errorOf = (r: Raw): { code: string; message: string } => (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
const state = () => ({ bank: snapshot(bank.store), telco: snapshot(telco.store), x: exchangeSnapshot(nodes.x) });

beforeAll(async () => {
  nodes = await startNodes(pool, ["bank", "telco"]);
  [bank, telco] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(bank.dataDir, "customers.csv"), `id\n${Array.from({ length: ROWS }, (_, i) => `k-${i}`).join("\n")}\n`);
  writeFileSync(join(telco.dataDir, "subs.csv"), `id\n${Array.from({ length: ROWS + 500 }, (_, i) => `k-${i}`).join("\n")}\n`);
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "subs.csv", policy: POLICY })).status).toBe(201);
  const submit = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "customers.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["id"], queryCount: ROWS } });
  expect(submit.status).toBe(201);
  jobId = submit.body.id;
  expect(await waitForJob(bank.url, jobId, 120_000)).toMatchObject({ state: "succeeded" });
}, 180_000);

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("open redirect", () => {
  it("every redirect of /console… goes to the node's own page", async () => {
    const paths = [
      "/console",
      "/console/",
      "/console/party",
      "/console/exchange",
      "//console",
      "//console/",
      "/console//evil.com",
      "/console///evil.com",
      "/console/%2F%2Fevil.com",
      "/console/%2f%2fevil.com/",
      "/console/\\evil.com",
      "/console/%5C%5Cevil.com",
      "/console/party/..;/",
      "/console/party//evil.com",
      "/console/party/%2F%2Fevil.com",
      "/console/assets",
      "/console/assets/",
      "/console?next=//evil.com",
      "/console/?redirect=http://evil.com",
      "/console/party?x=//evil.com",
      "/console/.%2e/evil.com",
    ];
    for (const [base, page] of [
      [bank.url, "party"],
      [nodes.x.url, "exchange"],
    ] as const) {
      let redirects = 0;
      for (const p of paths) {
        const r = await raw(base, p, { headers: base === bank.url ? { authorization: `Bearer ${bank.agent.token}` } : {} });
        expect(r.status, `${base}${p}`).not.toBe(500);
        if (r.status >= 300 && r.status < 400) {
          redirects++;
          expect(r.headers["location"], `${base}${p}`).toBe(`/console/${page}/`);
        } else expect(r.headers["location"], `${base}${p}`).toBeUndefined();
      }
      expect(redirects).toBeGreaterThanOrEqual(3);
    }
  });
});

describe("the token anywhere but Authorization: Bearer", () => {
  it("the party agent refuses it in the query, a cookie or a malformed header: 401", async () => {
    const t = bank.agent.token;
    const tries: [string, Record<string, string>][] = [
      [`/v1/status?token=${t}`, {}],
      [`/v1/status?access_token=${t}`, {}],
      [`/v1/files?token=${t}`, {}],
      ["/v1/status", { cookie: `token=${t}; umbra.console.token=${t}` }],
      ["/v1/status", { authorization: `bearer ${t}` }],
      ["/v1/status", { authorization: `Bearer  ${t}` }],
      ["/v1/status", { authorization: `Bearer ${t}x` }],
      ["/v1/status", { authorization: t }],
      ["/v1/status", { "x-umbra-token": t }],
    ];
    for (const [p, h] of tries) {
      const r = await raw(bank.url, p, { headers: h });
      expect(r.status, `${p} ${Object.keys(h).join()}`).toBe(401);
      expect(errorOf(r).code).toBe("UMBRA_UNAUTHENTICATED");
    }
    expect((await raw(bank.url, "/v1/status", { headers: { authorization: `Bearer ${t}` } })).status).toBe(200);
  });

  it("the admin API refuses a token of any other length exactly as a wrong token of the right length", async () => {
    const admin = nodes.x.app.adminToken;
    const wrongSameLength = (admin[0] === "A" ? "B" : "A") + admin.slice(1);
    const reference = await raw(nodes.x.url, "/v1/admin/overview", { headers: { authorization: `Bearer ${wrongSameLength}` } });
    expect(reference.status).toBe(401);
    for (const token of [admin.slice(0, -1), `${admin}A`, admin.slice(0, 1), "A".repeat(256), "A".repeat(300), `${admin}${admin}`]) {
      const r = await raw(nodes.x.url, "/v1/admin/overview", { headers: { authorization: `Bearer ${token}` } });
      expect(r.status, `length ${token.length}`).toBe(401);
      expect(r.body, `length ${token.length}`).toBe(reference.body);
      expect(r.headers["www-authenticate"]).toBe(reference.headers["www-authenticate"]);
    }
    for (const p of [`/v1/admin/overview?token=${admin}`, `/v1/admin/ledger?access_token=${admin}`]) expect((await raw(nodes.x.url, p)).status).toBe(401);
    expect((await raw(nodes.x.url, "/v1/admin/overview", { headers: { cookie: `token=${admin}` } })).status).toBe(401);
  });
});

describe("CSRF-style and cross-origin requests", () => {
  it("text/plain POSTs from another origin and CORS preflights are 401, allow nothing, change nothing", async () => {
    const before = state();
    const origin = "http://127.0.0.1:1";
    const bodies: [string, string][] = [
      ["/v1/datasets", JSON.stringify({ file: "customers.csv", policy: { ...POLICY, allowedBuyers: "any" } })],
      ["/v1/datasets/check", JSON.stringify({ file: "customers.csv", policy: POLICY })],
      ["/v1/jobs", JSON.stringify({ protocol: "psi", buyerDataset: "customers.csv", providerDataset: "telco.subs.csv", params: { keyColumns: ["id"], queryCount: 1 } })],
      ["/v1/orders", JSON.stringify({ product: "telco.p", purpose: "p", quotaJobs: 1 })],
      ["/v1/products", JSON.stringify({ product: { id: "bank.p", title: "p", datasets: ["bank.customers.csv"], protocols: ["psi"], outputColumns: [], prices: { currency: "CNY", perJob: 1 } } })],
      [`/v1/jobs/${jobId}/cancel`, "{}"],
    ];
    for (const [p, body] of bodies) {
      for (const ct of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
        const r = await raw(bank.url, p, { method: "POST", headers: { origin, "content-type": ct }, body });
        expect(r.status, `${p} ${ct}`).toBe(401);
        expect(r.headers["access-control-allow-origin"], p).toBeUndefined();
      }
    }
    const preflight = { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" };
    for (const [base, p] of [
      [bank.url, "/v1/jobs"],
      [bank.url, "/v1/status"],
      [nodes.x.url, "/v1/admin/overview"],
      [nodes.x.url, "/v1/admin/ledger"],
    ] as const) {
      const r = await raw(base, p, { method: "OPTIONS", headers: preflight });
      expect([401, 404], `${base}${p}`).toContain(r.status);
      for (const h of Object.keys(r.headers)) expect(h, `${base}${p}`).not.toMatch(/^access-control-allow/);
    }
    // Not even an authenticated answer lets another origin read it.
    const ok = await raw(bank.url, "/v1/status", { headers: { origin, authorization: `Bearer ${bank.agent.token}` } });
    expect(ok.status).toBe(200);
    for (const h of Object.keys(ok.headers)) expect(h).not.toMatch(/^access-control-allow/);
    const adm = await raw(nodes.x.url, "/v1/admin/overview", { headers: { origin, authorization: `Bearer ${nodes.x.app.adminToken}` } });
    expect(adm.status).toBe(200);
    for (const h of Object.keys(adm.headers)) expect(h).not.toMatch(/^access-control-allow/);
    expect(state()).toEqual(before);
  });
});

describe("the admin API's numbers", () => {
  it("negative, fractional, huge, repeated, empty and unknown values are 400 UMBRA_BAD_REQUEST, never 500; nothing changes", async () => {
    const before = exchangeSnapshot(nodes.x);
    const auth = { authorization: `Bearer ${nodes.x.app.adminToken}` };
    const head = (JSON.parse((await raw(nodes.x.url, "/v1/admin/log/head", { headers: auth })).body) as { size: number }).size;
    const bad = [
      "ledger?after=-1",
      "ledger?after=1.5",
      "ledger?after=1e400",
      "ledger?after=99999999999999999999",
      "ledger?after=abc",
      "ledger?after=",
      "ledger?after=1&after=2",
      "ledger?limit=0",
      "ledger?limit=1001",
      "ledger?limit=-5",
      "ledger?limit=NaN",
      "ledger?limit=Infinity",
      "ledger?after[]=1",
      "ledger?seq=1",
      "jobs?limit=0",
      "jobs?limit=100000",
      "jobs?state=unknown",
      "jobs?state=succeeded&state=failed",
      "log/inclusion",
      "log/inclusion?seq=0",
      "log/inclusion?seq=-1",
      "log/inclusion?seq=1.5",
      `log/inclusion?seq=${head + 1}`,
      `log/inclusion?seq=1&size=${head + 1}`,
      "log/inclusion?seq=2&size=1",
      "log/inclusion?seq=1&size=0",
      "log/inclusion?seq=9007199254740992",
      "log/consistency",
      "log/consistency?first=-1",
      `log/consistency?first=${head + 1}`,
      `log/consistency?first=1&second=${head + 1}`,
      "log/consistency?first=2&second=1",
      "log/consistency?first=1e400",
      "overview?x=1",
      "log/head?size=1",
    ];
    for (const q of bad) {
      const r = await raw(nodes.x.url, `/v1/admin/${q}`, { headers: auth });
      expect(r.status, q).toBe(400);
      expect(errorOf(r).code, q).toBe("UMBRA_BAD_REQUEST");
    }
    for (const q of ["ledger?after=9007199254740991", "ledger?limit=1000", "log/consistency?first=0&second=0", `log/inclusion?seq=${head}&size=${head}`, `log/consistency?first=1&second=${head}`]) {
      expect((await raw(nodes.x.url, `/v1/admin/${q}`, { headers: auth })).status, q).toBe(200);
    }
    expect(exchangeSnapshot(nodes.x)).toBe(before);
  });
});

describe("the result routes", () => {
  it("a preview's limit is bounded; limit=1000 of 3,000 rows gives 1,000 and the total", async () => {
    for (const l of ["0", "1001", "-1", "abc", "1.5", "1e9"]) {
      const r = await raw(bank.url, `/v1/jobs/${jobId}/result/preview?limit=${l}`, { headers: partyHeaders(bank.url) });
      expect(r.status, l).toBe(400);
    }
    const r = await api<{ kind: string; rows: unknown[][]; total: number }>(bank.url, "GET", `/v1/jobs/${jobId}/result/preview?limit=1000`);
    expect(r.status).toBe(200);
    expect(r.body.kind).toBe("table");
    expect(r.body.rows).toHaveLength(1000);
    expect(r.body.total).toBe(ROWS);
  });

  it("a job id with a quote, CR/LF or ../ never reaches content-disposition; the filename is the id alone", async () => {
    for (const id of ['a"b', "a%22b", "a%0d%0aSet-Cookie:%20x=1", "..%2f..%2fetc", "a%20b", "a;b", `${"a".repeat(129)}`]) {
      const r = await raw(bank.url, `/v1/jobs/${id}/result?format=csv`, { headers: partyHeaders(bank.url) });
      expect([400, 404, 414], id).toContain(r.status);
      expect(r.headers["content-disposition"], id).toBeUndefined();
      expect(r.headers["set-cookie"], id).toBeUndefined();
    }
    for (const f of ["csv", "arrow"]) {
      const r = await raw(bank.url, `/v1/jobs/${jobId}/result?format=${f}`, { headers: partyHeaders(bank.url) });
      expect(r.status).toBe(200);
      expect(r.headers["content-disposition"]).toMatch(/^attachment; filename="[A-Za-z0-9._-]+\.(csv|arrows)"$/);
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
    }
  });
});

describe("the data folder", () => {
  it("/v1/files lists at most 1,000 of 1,500 data files, sorted", async () => {
    const dir = join(bank.dataDir, "many");
    mkdirSync(dir);
    for (let i = 0; i < 1500; i++) writeFileSync(join(dir, `f${String(i).padStart(4, "0")}.csv`), "id\n1\n");
    const r = await api<{ files: { name: string }[] }>(bank.url, "GET", "/v1/files");
    expect(r.status).toBe(200);
    expect(r.body.files).toHaveLength(1000);
    const names = r.body.files.map((f) => f.name);
    expect(names).toEqual([...names].sort());
  });

  it("the check of files that are not CSV, or too wide, is a typed 400 naming the file, in bounded time; nothing registered", async () => {
    const d = telco.dataDir;
    const noise = (n: number, k: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * k + 7) % 256));
    writeFileSync(join(d, "bin.csv"), noise(5000, 7919));
    writeFileSync(join(d, "bin.parquet"), noise(5000, 31));
    writeFileSync(join(d, "bin.arrow"), noise(5000, 13));
    writeFileSync(join(d, "bin.arrows"), noise(5000, 17));
    writeFileSync(join(d, "empty.csv"), "");
    writeFileSync(join(d, "long-header.csv"), `id${"x".repeat(4_000_000)}\n1\n`);
    writeFileSync(join(d, "wide.csv"), `${Array.from({ length: 200_000 }, (_, i) => `c${i}`).join(",")}\n${"1,".repeat(199_999)}1\n`);
    execFileSync("mkfifo", [join(d, "fifo.csv")]);
    mkdirSync(join(d, "folder.csv"));
    const before = state();
    const policy = { ...POLICY, allowedBuyers: "any" };
    const cases: [string, string][] = [
      ["bin.csv", "UMBRA_MALFORMED_CSV"],
      ["bin.parquet", "UMBRA_UNREADABLE_FILE"],
      ["bin.arrow", "UMBRA_UNREADABLE_FILE"],
      ["bin.arrows", "UMBRA_UNREADABLE_FILE"],
      ["empty.csv", "UMBRA_MALFORMED_CSV"],
      ["wide.csv", "UMBRA_MALFORMED_CSV"],
      ["fifo.csv", "UMBRA_FORBIDDEN"],
      ["folder.csv", "UMBRA_FORBIDDEN"],
    ];
    for (const [file, code] of cases) {
      const r = await api<{ error: { code: string; field: string } }>(telco.url, "POST", "/v1/datasets/check", { file, policy }); // a fifo or a huge header must not hang it: the test's timeout would fail
      expect(r.status, file).toBe(400);
      expect(r.body.error, file).toMatchObject({ code, field: "file" });
    }
    // A header of one 4 MB column name: refused (a column name is at most 1,024 characters), not a crash.
    const long = await api<{ error: { code: string; field: string } }>(telco.url, "POST", "/v1/datasets/check", { file: "long-header.csv", policy: { ...policy, keyColumns: [`id${"x".repeat(10)}`] } });
    expect(long.status).toBe(400);
    expect(long.body.error.field).toMatch(/^(file|policy)/);
    // The agent still answers, and registered nothing.
    expect((await api(telco.url, "GET", "/v1/status")).status).toBe(200);
    expect(state()).toEqual(before);
  });
});

describe("job streams", () => {
  it("clients gone before the first view free their slots; a burst of 40 gets exactly 16, the rest 429", async () => {
    // A job that stays submitted: its provider is gone.
    const idle = await startParty("idle", nodes.x.url, pool);
    writeFileSync(join(idle.dataDir, "d.csv"), "id\nk-1\n");
    expect((await api(idle.url, "POST", "/v1/datasets", { file: "d.csv", policy: POLICY })).status).toBe(201);
    await idle.close();
    const sub = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "customers.csv", providerDataset: "idle.d.csv", params: { keyColumns: ["id"], queryCount: 20 } });
    expect(sub.status).toBe(201);
    const id = sub.body.id;
    const u = new URL(bank.url);
    // 20 clients that leave while the agent asks the exchange for the job's first view.
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const req = request({ host: u.hostname, port: u.port, path: `/v1/jobs/${id}/stream`, headers: partyHeaders(bank.url) });
        req.on("error", () => resolve());
        req.on("response", () => (req.destroy(), resolve()));
        req.end();
        setTimeout(() => (req.destroy(), resolve()), 3);
      });
    }
    await waitUntil(() => bank.agent.openStreams() === 0, "every slot of the clients gone to be freed");
    const one = await fetch(`${bank.url}/v1/jobs/${id}/stream`, { headers: partyHeaders(bank.url) });
    expect(one.status).toBe(200);
    await one.body?.cancel();

    // 40 at once: 16 open (no slot frees before they are aborted), the rest 429 UMBRA_BUSY.
    await waitUntil(() => bank.agent.openStreams() === 0, "the probe's slot to be freed");
    const acs = Array.from({ length: 40 }, () => new AbortController());
    const answers = await Promise.all(acs.map((ac) => fetch(`${bank.url}/v1/jobs/${id}/stream`, { headers: partyHeaders(bank.url), signal: ac.signal })));
    const open = answers.filter((r) => r.status === 200).length;
    expect(open).toBe(16);
    for (const r of answers) if (r.status !== 200) expect(r.status).toBe(429);
    for (const ac of acs) ac.abort();
    await Promise.all(answers.map((r) => r.text().catch(() => "")));
    // All freed again.
    await waitUntil(() => bank.agent.openStreams() === 0, "every aborted stream's slot to be freed");
    const again = await fetch(`${bank.url}/v1/jobs/${id}/stream`, { headers: partyHeaders(bank.url) });
    expect(again.status).toBe(200);
    await again.body?.cancel();
    expect((await api(bank.url, "POST", `/v1/jobs/${id}/cancel`)).status).toBe(200);
  });
});
