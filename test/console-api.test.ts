/**
 * The party agent's routes for the web console (docs/console.md), on real
 * nodes on loopback: the data files listed, this party's own datasets, the
 * registration dry run (a good policy passes with the file's schema and row
 * count; a policy naming a missing key column is a 400 naming that field,
 * and nothing is registered here or at the exchange), a job's stream of
 * states ending in succeeded and then closing, and a psi and a
 * join-aggregate job's result as a preview, as CSV and as Arrow, each equal
 * to the plaintext answer worked out here. The exchange's admin API shows
 * the parties, catalog, jobs, ledger and log as its store holds them;
 * `umbra console url` prints each address with its token. The
 * console's pages are served
 * with their security headers, and /console/ leads to the node's own page.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CryptoPool } from "../engine/index.js";
import { consistencyProofOf, inclusionProofOf } from "../node/log/head.js";
import { consoleDir } from "../node/server/console-assets.js";
import { consoleCommand } from "../node/commands/console.js";
import { createSecretFile } from "../node/secret-file.js";
import { api, partyHeaders, startNodes, tokenFileOf, waitForJob, type TestNodes, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let nodes: TestNodes;
let bank: TestParty;
let telco: TestParty;

const SEGMENTS = ["a", "b", "c"];
const bankRows = Array.from({ length: 30 }, (_, i) => ({ id: `c-${i}`, segment: SEGMENTS[i % 3] as string }));
const telcoRows = Array.from({ length: 40 }, (_, i) => ({ id: `c-${i + 10}`, spend: (i + 10) * 3 }));
const POLICY = { allowedProtocols: ["psi", "join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: 2, queryBudget: 100_000, budgetUnit: "keys", expiresAt: null };
const DATASET = "telco.subscribers.csv";

/** Every `event: job` of a job's stream, read until the agent ends it. */
async function streamStates(party: TestParty, id: string): Promise<{ states: string[]; last: Record<string, unknown> | undefined }> {
  const res = await fetch(`${party.url}/v1/jobs/${id}/stream`, { headers: partyHeaders(party.url) });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const text = await res.text(); // resolves only once the agent closes the stream
  const events = text
    .split("\n\n")
    .filter((e) => e.startsWith("event: job\n"))
    .map((e) => JSON.parse(e.slice(e.indexOf("data: ") + 6)) as Record<string, unknown>);
  return { states: events.map((e) => String(e["state"])), last: events.at(-1) };
}

/** A CSV body's data lines (CRLF, no quoting in these files), header first. */
const csvLines = (text: string): string[] => text.split("\r\n").filter((l) => l.length > 0);

beforeAll(async () => {
  nodes = await startNodes(pool, ["bank", "telco"], { exchangePool: true });
  [bank, telco] = nodes.parties as [TestParty, TestParty];
  writeFileSync(join(bank.dataDir, "customers.csv"), `id,segment\n${bankRows.map((r) => `${r.id},${r.segment}`).join("\n")}\n`);
  writeFileSync(join(telco.dataDir, "subscribers.csv"), `id,spend\n${telcoRows.map((r) => `${r.id},${r.spend}`).join("\n")}\n`);
  writeFileSync(join(telco.dataDir, "notes.txt"), "not a data file\n");
  mkdirSync(join(telco.dataDir, ".hidden"));
  writeFileSync(join(telco.dataDir, ".hidden", "secret.csv"), "a\n1\n");
  const reg = await api(telco.url, "POST", "/v1/datasets", { file: "subscribers.csv", policy: POLICY });
  expect(reg.status).toBe(201);
});

afterAll(async () => {
  await nodes?.close();
  await pool.close();
});

describe("the party's data and datasets", () => {
  it("GET /v1/files lists the data files by name, size and time (no hidden file, no other kind)", async () => {
    const r = await api<{ files: { name: string; bytes: number; modifiedAt: string }[] }>(telco.url, "GET", "/v1/files");
    expect(r.status).toBe(200);
    expect(r.body.files.map((f) => f.name)).toEqual(["subscribers.csv"]);
    expect(r.body.files[0]?.bytes).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(r.body.files[0]?.modifiedAt ?? ""))).toBe(false);
  });

  it("GET /v1/datasets/mine shows this party's registered dataset with its policy and certificate", async () => {
    const r = await api<{ datasets: Record<string, unknown>[] }>(telco.url, "GET", "/v1/datasets/mine");
    expect(r.status).toBe(200);
    expect(r.body.datasets).toHaveLength(1);
    const d = r.body.datasets[0] as Record<string, unknown>;
    expect(d).toMatchObject({ id: DATASET, name: "subscribers.csv", rowCount: 40, policyVersion: 1, schema: [{ name: "id" }, { name: "spend" }] });
    expect((d["policy"] as { keyColumns: unknown }).keyColumns).toEqual(["id"]);
    expect(typeof d["certificateSeq"]).toBe("number");
    expect(Array.isArray(d["budgets"])).toBe(true);
    expect((await api<{ datasets: unknown[] }>(bank.url, "GET", "/v1/datasets/mine")).body.datasets).toEqual([]);
  });

  it("POST /v1/datasets/check: a good policy passes with the schema and row count; a missing key column is a 400 naming the field; nothing is registered", async () => {
    const ledgerBefore = [...nodes.x.store.ledgerRows()].length;
    const ok = await api<{ ok: boolean; schema: { name: string; type: string }[]; rowCount: number }>(bank.url, "POST", "/v1/datasets/check", { file: "customers.csv", policy: { ...POLICY, outputColumns: ["segment"] } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true, rowCount: 30 });
    expect(ok.body.schema.map((f) => f.name)).toEqual(["id", "segment"]);
    const bad = await api<{ error: { code: string; message: string; field: string } }>(bank.url, "POST", "/v1/datasets/check", { file: "customers.csv", policy: { ...POLICY, outputColumns: [], keyColumns: ["phone"] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("UMBRA_INVALID_POLICY");
    expect(bad.body.error.field).toBe("policy.keyColumns[0]");
    const missing = await api<{ error: { code: string; field: string } }>(bank.url, "POST", "/v1/datasets/check", { file: "nope.csv", policy: POLICY });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({ code: "UMBRA_NOT_FOUND", field: "file" });
    // Nothing registered: not in the bank's store, not at the exchange, no ledger entry.
    expect(bank.store.listDatasets()).toEqual([]);
    expect(nodes.x.store.getDataset("bank.customers.csv")).toBeUndefined();
    expect([...nodes.x.store.ledgerRows()].length).toBe(ledgerBefore);
  });
});

describe("a job's stream and its result", () => {
  it("psi: the stream ends in succeeded and closes; preview, CSV and Arrow equal the plaintext intersection", async () => {
    const submit = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", { protocol: "psi", buyerDataset: "customers.csv", providerDataset: DATASET, params: { keyColumns: ["id"], queryCount: 30 } });
    expect(submit.status).toBe(201);
    const { states, last } = await streamStates(bank, submit.body.id);
    expect(states.at(-1)).toBe("succeeded");
    expect(new Set(states).size).toBe(states.length); // sent on change only (states never go back)
    expect(last?.["id"]).toBe(submit.body.id);

    // psi gives the buyer its own rows whose key the provider holds.
    const telcoIds = new Set(telcoRows.map((r) => r.id));
    const expected = bankRows.filter((r) => telcoIds.has(r.id));
    const preview = await api<{ kind: string; columns: { name: string }[]; rows: unknown[][]; total: number }>(bank.url, "GET", `/v1/jobs/${submit.body.id}/result/preview?limit=1000`);
    expect(preview.status).toBe(200);
    expect(preview.body.kind).toBe("table");
    expect(preview.body.total).toBe(expected.length);
    const names = preview.body.columns.map((c) => c.name);
    const idAt = names.indexOf("id");
    const segmentAt = names.indexOf("segment");
    expect(idAt).toBeGreaterThanOrEqual(0);
    expect(segmentAt).toBeGreaterThanOrEqual(0);
    const got = preview.body.rows.map((r) => `${String(r[idAt])}:${String(r[segmentAt])}`).sort();
    expect(got).toEqual(expected.map((r) => `${r.id}:${r.segment}`).sort());
    const few = await api<{ rows: unknown[][]; total: number }>(bank.url, "GET", `/v1/jobs/${submit.body.id}/result/preview?limit=3`);
    expect(few.body.rows).toHaveLength(3);
    expect(few.body.total).toBe(expected.length);

    const csv = await fetch(`${bank.url}/v1/jobs/${submit.body.id}/result?format=csv`, { headers: partyHeaders(bank.url) });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(csv.headers.get("content-disposition")).toMatch(/^attachment; filename=".+\.csv"$/);
    const lines = csvLines(await csv.text());
    const header = (lines[0] as string).split(",");
    expect(header).toEqual(names);
    expect(
      lines
        .slice(1)
        .map((l) => l.split(","))
        .map((c) => `${c[header.indexOf("id")]}:${c[header.indexOf("segment")]}`)
        .sort(),
    ).toEqual(got);

    const arrow = await fetch(`${bank.url}/v1/jobs/${submit.body.id}/result?format=arrow`, { headers: partyHeaders(bank.url) });
    expect(arrow.status).toBe(200);
    expect(tableFromIPC(new Uint8Array(await arrow.arrayBuffer())).numRows).toBe(expected.length);
    // The CLI's form is as it was: the stored bytes with the digest to open them.
    const raw = await fetch(`${bank.url}/v1/jobs/${submit.body.id}/result`, { headers: partyHeaders(bank.url) });
    expect(raw.headers.get("content-type")).toBe("application/octet-stream");
    expect(raw.headers.get("x-umbra-digest")).toMatch(/^[0-9a-f]{64}$/);

    // The provider holds no result; an unknown job is a 404 too.
    expect((await api(telco.url, "GET", `/v1/jobs/${submit.body.id}/result/preview`)).status).toBe(404);
    expect((await api(bank.url, "GET", `/v1/jobs/no-such-job/result?format=csv`)).status).toBe(404);
    expect((await api(bank.url, "GET", `/v1/jobs/${submit.body.id}/result?format=xml`)).status).toBe(400);
    expect((await api(bank.url, "GET", `/v1/jobs/${submit.body.id}/result/preview?limit=1001`)).status).toBe(400);
  });

  it("join-aggregate: preview and CSV equal COUNT and SUM per segment over the join, worked out here", async () => {
    const submit = await api<{ id: string }>(bank.url, "POST", "/v1/jobs", {
      protocol: "join-aggregate",
      buyerDataset: "customers.csv",
      providerDataset: DATASET,
      params: { keyColumns: ["id"], minGroupSize: 2, queryCount: 30, aggregate: { aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }], groupBy: { column: "segment" } } },
    });
    expect(submit.status).toBe(201);
    expect(await waitForJob(bank.url, submit.body.id)).toMatchObject({ state: "succeeded" });
    // A stream of a final job: its one view, then the end.
    const { states } = await streamStates(bank, submit.body.id);
    expect(states).toEqual(["succeeded"]);

    const spend = new Map(telcoRows.map((r) => [r.id, r.spend]));
    const want = new Map<string, { count: number; sum: number }>();
    for (const b of bankRows) {
      const s = spend.get(b.id);
      if (s === undefined) continue;
      const g = want.get(b.segment) ?? { count: 0, sum: 0 };
      want.set(b.segment, { count: g.count + 1, sum: g.sum + s });
    }
    const expected = [...want].map(([seg, g]) => `${seg}:${g.count}:${g.sum}`).sort();

    const preview = await api<{ kind: string; columns: { name: string }[]; rows: unknown[][] }>(bank.url, "GET", `/v1/jobs/${submit.body.id}/result/preview`);
    expect(preview.body.kind).toBe("table");
    const names = preview.body.columns.map((c) => c.name);
    const at = (n: string) => names.indexOf(n);
    expect(preview.body.rows.map((r) => `${String(r[at("segment")])}:${Number(r[at("count")])}:${Number(r[at("sum_spend")])}`).sort()).toEqual(expected);

    const csv = await fetch(`${bank.url}/v1/jobs/${submit.body.id}/result?format=csv`, { headers: partyHeaders(bank.url) });
    const lines = csvLines(await csv.text());
    const header = (lines[0] as string).split(",");
    const col = (c: string[], n: string) => c[header.indexOf(n)];
    expect(
      lines
        .slice(1)
        .map((l) => l.split(","))
        .map((c) => `${col(c, "segment")}:${Number(col(c, "count"))}:${Number(col(c, "sum_spend"))}`)
        .sort(),
    ).toEqual(expected);
  });
});

describe("the exchange's admin API", () => {
  const admin = async <T>(path: string): Promise<T> => {
    const r = await fetch(nodes.x.url + path, { headers: { authorization: `Bearer ${nodes.x.app.adminToken}` } });
    expect(r.status, path).toBe(200);
    return (await r.json()) as T;
  };

  it("shows the overview, parties, catalog, jobs, ledger and log as the store holds them", async () => {
    const x = nodes.x;
    const o = await admin<{ exchange: { name: string; fingerprint: string }; counts: { parties: number; datasets: number; jobs: Record<string, number> }; health: { pool: { threads: number; utilization: number } | null; inMemory: unknown; queuedBytes: number }; head: { size: number } }>("/v1/admin/overview");
    expect(o.exchange.name).toBe("exchange");
    expect(o.counts).toMatchObject({ parties: 2, datasets: 1 });
    expect(o.counts.jobs["succeeded"]).toBe(2);
    expect(o.health.pool).toMatchObject({ threads: 2 }); // the exchange runs on the shared pool here
    expect(o.health.queuedBytes).toBeGreaterThanOrEqual(0);
    expect(o.head.size).toBe([...x.store.ledgerRows()].length);

    const parties = await admin<{ parties: { name: string; fingerprint: string; lastSeenAt: number | null; online: boolean; boxPublicKey: string | null }[] }>("/v1/admin/parties");
    expect(parties.parties.map((p) => p.name).sort()).toEqual(["bank", "telco"]);
    for (const p of parties.parties) {
      expect(p.online).toBe(true);
      expect(typeof p.lastSeenAt).toBe("number");
      expect(p.boxPublicKey).toMatch(/^[0-9a-f]{64}$/);
    }

    const catalog = await admin<{ datasets: { id: string; owner: string; policyVersion: number; policy: { keyColumns: string[] } }[]; products: unknown[] }>("/v1/admin/catalog");
    expect(catalog.datasets).toHaveLength(1);
    expect(catalog.datasets[0]).toMatchObject({ id: DATASET, owner: "telco", policyVersion: 1, policy: { keyColumns: ["id"] } });
    expect(catalog.products).toEqual([]);

    const jobs = await admin<{ jobs: { id: string; protocol: string; state: string; createdAt: number }[] }>("/v1/admin/jobs");
    expect(jobs.jobs.map((j) => j.protocol)).toEqual(["join-aggregate", "psi"]); // newest first
    expect((await admin<{ jobs: unknown[] }>("/v1/admin/jobs?state=failed&limit=5")).jobs).toEqual([]);
    expect((await admin<{ jobs: unknown[] }>("/v1/admin/jobs?limit=1")).jobs).toHaveLength(1);

    const all = [...x.store.ledgerRows()];
    const page = await admin<{ publicKey: string; entries: { seq: number; hash: string; body: unknown }[]; next?: number }>("/v1/admin/ledger?limit=2");
    expect(page.entries.map((e) => e.hash)).toEqual(all.slice(0, 2).map((r) => r.hash));
    expect(page.next).toBe(2);
    expect(page.publicKey).toBe(Buffer.from(x.publicKey).toString("hex"));
    const rest = await admin<{ entries: { seq: number; body: unknown }[]; next?: number }>(`/v1/admin/ledger?after=${page.next as number}`);
    expect(rest.entries.map((e) => e.seq)).toEqual(all.slice(2).map((r) => r.seq));
    expect(rest.next).toBeUndefined();
    expect(rest.entries.every((e) => typeof e.body === "object" && e.body !== null)).toBe(true);

    const head = await admin<{ size: number; root: string; signature: string }>("/v1/admin/log/head");
    expect(head.size).toBe(all.length);
    const inclusion = await admin<{ proof: string[] }>(`/v1/admin/log/inclusion?seq=1&size=${head.size}`);
    expect(inclusion.proof).toEqual(inclusionProofOf(x.store, 1, head.size));
    const consistency = await admin<{ proof: string[] }>(`/v1/admin/log/consistency?first=1&second=${head.size}`);
    expect(consistency.proof).toEqual(consistencyProofOf(x.store, 1, head.size));
    for (const bad of ["/v1/admin/jobs?limit=1001", "/v1/admin/ledger?limit=0", "/v1/admin/log/inclusion?seq=0", `/v1/admin/log/consistency?first=${head.size + 1}`, "/v1/admin/parties?x=1"]) {
      expect((await fetch(x.url + bad, { headers: { authorization: `Bearer ${x.app.adminToken}` } })).status, bad).toBe(400);
    }
  });
});

describe("umbra console url", () => {
  it("prints each console's address with its token after #, read from the token file", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: () => undefined };
    expect(await consoleCommand(["url", "--party", bank.url, "--token-file", tokenFileOf(bank)], io)).toBe(0);
    expect(lines.pop()).toBe(`${bank.url}/console/party/#token=${bank.agent.token}`);
    const adminFile = join(mkdtempSync(join(tmpdir(), "umbra-admin-")), "exchange.admin-token");
    createSecretFile(adminFile, `${nodes.x.app.adminToken}\n`, "admin token file");
    expect(await consoleCommand(["url", "--exchange", nodes.x.url, "--admin-token-file", adminFile, "--json"], io)).toBe(0);
    expect(JSON.parse(lines.pop() as string)).toEqual({ console: "exchange", url: `${nodes.x.url}/console/exchange/#token=${nodes.x.app.adminToken}` });
    await expect(consoleCommand(["url"], io)).rejects.toThrow(/--party or --exchange/);
  });
});

describe("the console's pages", () => {
  it.runIf(consoleDir() !== undefined)("serve the party's page with its security headers and no token; /console/ leads to it", async () => {
    const page = await fetch(`${bank.url}/console/party/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect(page.headers.get("content-security-policy")).toMatch(/connect-src 'self'/);
    expect(page.headers.get("content-security-policy")).not.toMatch(/unsafe-inline/);
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${bank.url}${asset as string}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    for (const p of ["/console", "/console/", "/console/party"]) {
      const r = await fetch(`${bank.url}${p}`, { redirect: "manual" });
      expect(r.status).toBe(302);
      expect(r.headers.get("location")).toBe("/console/party/");
    }
    // Not the exchange's page, and the API still needs the token.
    expect((await fetch(`${bank.url}/console/exchange/`)).status).toBe(404);
    expect((await fetch(`${bank.url}/v1/files`)).status).toBe(401);
  });

  it.runIf(consoleDir() !== undefined)("the exchange serves its own page, not the party's", async () => {
    const page = await fetch(`${nodes.x.url}/console/exchange/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self'/);
    expect((await fetch(`${nodes.x.url}/console/party/`)).status).toBe(404);
    const r = await fetch(`${nodes.x.url}/console/`, { redirect: "manual" });
    expect(r.headers.get("location")).toBe("/console/exchange/");
  });
});
