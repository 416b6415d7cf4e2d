/**
 * join-aggregate as a job through the node, in one process: an exchange
 * (which plays the matcher and aggregator), a buyer and a provider agent on
 * loopback. COUNT / SUM / AVG / VAR of the provider's column over the join,
 * per value of the buyer's group-by column, equals a plain JS join + GROUP BY
 * + HAVING COUNT(DISTINCT id) >= k AND COUNT(*) >= k on the same random
 * files (duplicate keys on both sides, null keys, null values, a null group,
 * a group of k joined rows but one key); the CLI
 * submits one and writes its result file; the older request form (`mode`)
 * runs as the same computation. A dataset whose policy does not allow the
 * column, a provider whose own copy of its policy refuses, and a provider
 * that is gone each end the job cleanly: a typed state and reason, a ledger
 * entry, and no result for the buyer. The ledger verifies throughout.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC, type Table } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";
import { CryptoPool } from "../engine/index.js";
import { jobCommand } from "../node/commands/jobs.js";
import { resultCommitment, verifyLedger } from "../node/ledger.js";
import { rng } from "./helpers/data.js";
import { api, partyHeaders, tokenFileOf, waitUntil, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";

const pool = new CryptoPool({ threads: 2 });
let x: TestExchange;
let bank: TestParty;
let telco: TestParty;

const K = 5;
const SEGMENTS = ["gold", "silver", "bronze"];
const DATASET = "telco.usage.csv";
const POLICY = { allowedProtocols: ["join-aggregate"], outputColumns: ["spend"], keyColumns: ["id"], allowedBuyers: ["bank"], minGroupSize: K, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };

interface BuyerRow {
  id: string | null;
  segment: string | null;
}
interface ProviderRow {
  id: string | null;
  spend: number | null;
  minutes: number;
}

/** Keys c-0 … c-79 on both sides (so each repeats), 5% null; a null segment now and then, one segment per key; "vip": 3 × 2 joined rows of one key (k rows, one key: not released). */
function generate(): { buyer: BuyerRow[]; provider: ProviderRow[] } {
  const r = rng(2026);
  const key = () => (r() < 0.05 ? null : `c-${Math.floor(r() * 80)}`);
  const buyer: BuyerRow[] = [];
  const segmentOf = new Map<string, string | null>();
  for (let i = 0; i < 160; i++) {
    const id = key();
    const pick = r() < 0.12 ? null : (SEGMENTS[Math.floor(r() * 3)] as string);
    if (id !== null && !segmentOf.has(id)) segmentOf.set(id, pick);
    buyer.push({ id, segment: id === null ? pick : (segmentOf.get(id) as string | null) });
  }
  buyer.push({ id: "c-500", segment: "vip" }, { id: "c-500", segment: "vip" }, { id: "c-500", segment: "vip" }, { id: "c-999", segment: "vip" });
  const provider: ProviderRow[] = [];
  for (let i = 0; i < 140; i++) provider.push({ id: key(), spend: r() < 0.1 ? null : Math.floor(r() * 2001) - 1000, minutes: Math.floor(r() * 500) });
  provider.push({ id: "c-500", spend: 7, minutes: 1 }, { id: "c-500", spend: null, minutes: 2 });
  return { buyer, provider };
}

const data = generate();
const cell = (v: string | number | null): string => (v === null ? "" : String(v));

interface Group {
  label: string | null;
  count: number;
  sum: bigint | null;
  avg: number | null;
  var: number | null;
}

/**
 * SELECT segment, COUNT(*), SUM(spend), AVG(spend), VAR_SAMP(spend) FROM buyer JOIN provider USING (id) GROUP BY segment
 * HAVING COUNT(DISTINCT id) >= k AND COUNT(*) >= k, NULL last; every other buyer segment (one without a match too) is suppressed.
 */
function oracle(grouped: boolean, k: number): { groups: Group[]; suppressed: number } {
  const acc = new Map<string | null, { count: number; keys: Set<string>; values: number[] }>();
  for (const b of data.buyer) {
    if (b.id === null) continue;
    for (const p of data.provider) {
      if (p.id !== b.id) continue;
      const label = grouped ? b.segment : "";
      const a = acc.get(label) ?? { count: 0, keys: new Set<string>(), values: [] };
      a.count++;
      a.keys.add(b.id);
      if (p.spend !== null) a.values.push(p.spend);
      acc.set(label, a);
    }
  }
  const groups: Group[] = [];
  for (const [label, a] of acc) {
    if (a.keys.size < k || a.count < k) continue;
    const n = a.values.length;
    const sum = a.values.reduce((s, v) => s + BigInt(v), 0n);
    const sumsq = a.values.reduce((s, v) => s + BigInt(v) ** 2n, 0n);
    groups.push({
      label,
      count: a.count,
      sum: n > 0 ? sum : null,
      avg: n > 0 ? Number(sum) / n : null,
      var: n > 1 ? Number(BigInt(n) * sumsq - sum * sum) / (n * (n - 1)) : null,
    });
  }
  groups.sort((a, b) => (a.label === null ? 1 : b.label === null ? -1 : a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  const buyerGroups = grouped ? new Set(data.buyer.map((b) => b.segment)).size : 1;
  return { groups, suppressed: buyerGroups - groups.length };
}

/** The result table's rows in the oracle's shape (Arrow from the API, or CSV as the CLI writes it). */
function groupsOf(t: Table, groupColumn: string | undefined): Group[] {
  const num = (name: string, i: number): number | null => {
    const v: unknown = t.getChild(name)?.get(i);
    return v === null || v === undefined ? null : Number(v);
  };
  return Array.from({ length: t.numRows }, (_, i) => {
    const label: unknown = groupColumn === undefined ? "" : t.getChild(groupColumn)?.get(i);
    const sum: unknown = t.getChild("sum_spend")?.get(i);
    return {
      label: label === null || label === undefined ? null : String(label),
      count: num("count", i) as number,
      sum: sum === null || sum === undefined ? null : BigInt(sum as bigint | number),
      avg: num("avg_spend", i),
      var: num("var_spend", i),
    };
  });
}

function expectOracle(got: readonly Group[], want: readonly Group[]): void {
  expect(got.map((g) => [g.label, g.count, g.sum])).toEqual(want.map((g) => [g.label, g.count, g.sum]));
  got.forEach((g, i) => {
    const w = want[i] as Group;
    if (w.avg === null) expect(g.avg).toBeNull();
    else expect(g.avg).toBeCloseTo(w.avg, 9);
    if (w.var === null) expect(g.var).toBeNull();
    else expect(g.var).toBeCloseTo(w.var, 6);
  });
}

const AGGREGATES = [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "avg", column: "spend" }, { fn: "var", column: "spend" }];

const submit = (body: Record<string, unknown>) => api<{ id: string; state: string; error?: { code: string; rule?: string; message: string } }>(bank.url, "POST", "/v1/jobs", body);
const jobBody = (dataset = DATASET, aggregate: Record<string, unknown> = { aggregates: AGGREGATES, groupBy: { column: "segment" }, maxAbsValue: "1000" }) => ({
  protocol: "join-aggregate",
  buyerDataset: "customers.csv",
  providerDataset: dataset,
  params: { keyColumns: ["id"], aggregate },
});

/** What a buyer gets for a job that did not succeed: nothing. */
async function expectNoResult(id: string): Promise<void> {
  expect((await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
  expect(bank.store.getResult(id)).toBeUndefined();
}

const ledgerOf = (id: string) => [...x.store.ledgerRows({ job: id })].map((e) => ({ kind: e.kind, body: JSON.parse(e.body) as Record<string, unknown> }));

beforeAll(async () => {
  // The exchange plays a role here: it gets the test's pool (no second pool of its own).
  x = await startExchange({ jobTimeoutMs: 10_000, pool });
  bank = await startParty("bank", x.url, pool);
  telco = await startParty("telco", x.url, pool);
  writeFileSync(join(bank.dataDir, "customers.csv"), "id,segment\n" + data.buyer.map((b) => `${cell(b.id)},${cell(b.segment)}`).join("\n") + "\n");
  const usage = "id,spend,minutes\n" + data.provider.map((p) => `${cell(p.id)},${cell(p.spend)},${p.minutes}`).join("\n") + "\n";
  writeFileSync(join(telco.dataDir, "usage.csv"), usage);
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "usage.csv", policy: POLICY })).status).toBe(201);
  // The same file under a policy that lets only minutes out.
  writeFileSync(join(telco.dataDir, "minutes.csv"), usage);
  expect((await api(telco.url, "POST", "/v1/datasets", { file: "minutes.csv", policy: { ...POLICY, outputColumns: ["minutes"] } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  for (const p of [bank, telco]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("join-aggregate through the node", () => {
  it("the fixture has duplicates, nulls, a null group and a group under k", () => {
    const want = oracle(true, K);
    expect(want.suppressed).toBeGreaterThanOrEqual(1); // vip: 6 joined rows (≥ k) but one key
    expect(data.buyer.filter((b) => b.id === "c-500").length * data.provider.filter((p) => p.id === "c-500").length).toBeGreaterThanOrEqual(K + 1);
    expect(want.groups.some((g) => g.label === null)).toBe(true);
    expect(want.groups.length).toBe(4);
    const ids = data.provider.map((p) => p.id).filter((id) => id !== null);
    expect(new Set(ids).size).toBeLessThan(ids.length);
  });

  it("COUNT / SUM / AVG / VAR per buyer segment equal the plaintext join + GROUP BY; the ledger records every step", async () => {
    const r = await submit(jobBody());
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const id = r.body.id;
    const done = await waitForJob(bank.url, id);
    expect(done.state, done.reason ?? "").toBe("succeeded");
    const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const t = tableFromIPC(bytes);
    expect(t.schema.fields.map((f) => f.name)).toEqual(["segment", "count", "sum_spend", "avg_spend", "var_spend"]);
    const want = oracle(true, K);
    expectOracle(groupsOf(t, "segment"), want.groups);
    expect(groupsOf(t, "segment").some((g) => g.label === "vip")).toBe(false);

    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
    const entries = ledgerOf(id);
    const submitted = entries.find((e) => e.kind === "job.submitted")?.body as Record<string, unknown>;
    expect(submitted).toMatchObject({ protocol: "join-aggregate", datasets: [DATASET], providers: ["telco"] });
    expect(submitted["params"]).toMatchObject({ keyColumns: ["id"], aggregates: ["count", "sum(spend)", "avg(spend)", "var(spend)"], groupBy: "segment", minGroupSize: K, maxAbsValue: "1000", scale: 0, maxJoinRows: 2 ** 32, group: "x25519" });
    expect(String((submitted["params"] as Record<string, unknown>)["digest"])).toMatch(/^[0-9a-f]{64}$/);
    expect(entries.filter((e) => e.body["step"] === "accepted").map((e) => e.body["by"])).toEqual(["telco"]);
    // Every relayed or sent step, by route: the buyer and the provider talk straight (relayed as is), each to the exchange, the exchange to the buyer.
    const routes = new Set(entries.filter((e) => e.kind === "job.step" && typeof e.body["size"] === "number").map((e) => `${String(e.body["from"])}>${String(e.body["to"])}:${String(e.body["step"])}`));
    expect([...routes].sort()).toEqual(
      ["bank>telco:1", "bank>telco:2", "bank>telco:3", "telco>bank:4", "telco>bank:5", "bank>exchange:1", "bank>exchange:10", "bank>exchange:11", "bank>exchange:12", "telco>exchange:6", "telco>exchange:7", "telco>exchange:8", "telco>exchange:9", "exchange>bank:13", "exchange>bank:14"].sort(),
    );
    const result = entries.find((e) => e.kind === "job.result")?.body;
    // A salted commitment to the bytes the buyer fetched, opened with the salt its agent gives it.
    expect(result?.["digest"]).toBe(resultCommitment(Buffer.from(res.headers.get("x-umbra-digest-salt") ?? "", "hex"), bytes));
    // The ledger records the result's digest only; its summary stays with the buyer, whose agent shows it.
    expect(Object.keys(result ?? {})).toEqual(["digest"]);
    expect((await api<{ progress: unknown }>(bank.url, "GET", `/v1/jobs/${id}`)).body.progress).toEqual({ groups: want.groups.length, suppressed: want.suppressed });
    expect(telco.store.getJob(id)?.state).toBe("succeeded");
  }, 90_000);

  it("the CLI submits one (--input, --provider-dataset, --key, --group-by, --agg) and writes the result file", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: () => undefined };
    const code = await jobCommand(
      ["submit", "--party", bank.url, "--token-file", tokenFileOf(bank), "--protocol", "join-aggregate", "--provider-dataset", DATASET, "--input", "customers.csv", "--key", "id", "--group-by", "segment",
        "--agg", "count,sum(spend),avg(spend),var(spend)", "--min-group-size", String(K + 1), "--max-abs-value", "1000", "--wait"],
      io,
    );
    expect(code, lines.join("\n")).toBe(0);
    const id = /job (job-\S+) submitted/.exec(lines.join("\n"))?.[1] as string;
    const want = oracle(true, K + 1);
    expect(lines.join("\n")).toContain(`job ${id} succeeded: groups ${want.groups.length}, suppressed ${want.suppressed}`);
    const out = join(bank.dataDir, "by-segment.csv");
    expect(await jobCommand(["result", id, "--party", bank.url, "--token-file", tokenFileOf(bank), "--out", out], io)).toBe(0);
    expectOracle(groupsOf(await readTable(out), "segment"), want.groups);
  }, 90_000);

  it("the older request form (mode over outputColumns) runs as the same computation, ungrouped", async () => {
    const r = await submit({ protocol: "join-aggregate", buyerDataset: "customers.csv", providerDataset: DATASET, params: { keyColumns: ["id"], outputColumns: ["spend"], mode: "avg" } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const done = await waitForJob(bank.url, r.body.id);
    expect(done.state, done.reason ?? "").toBe("succeeded");
    const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${r.body.id}/result`, { headers: partyHeaders(bank.url) })).arrayBuffer()));
    expect(t.schema.fields.map((f) => f.name)).toEqual(["avg_spend"]);
    const want = oracle(false, K).groups[0] as Group;
    expect(t.numRows).toBe(1);
    expect(Number(t.getChild("avg_spend")?.get(0))).toBeCloseTo(want.avg as number, 9);
    const submitted = ledgerOf(r.body.id).find((e) => e.kind === "job.submitted")?.body as Record<string, unknown>;
    expect(submitted["params"]).toMatchObject({ aggregates: ["avg(spend)"], groupBy: null, minGroupSize: K });
  }, 90_000);

  it("a column the dataset's policy does not allow: the exchange refuses with the rule, records it, starts nothing", async () => {
    const r = await submit(jobBody("telco.minutes.csv"));
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "column-not-allowed" });
    const refused = x.store.listJobs().find((j) => j.state === "refused" && j.reason === "column-not-allowed") as { id: string };
    const entries = ledgerOf(refused.id);
    expect(entries.map((e) => e.kind)).toEqual(["job.refused"]);
    expect(entries[0]?.body).toMatchObject({ rule: "column-not-allowed", by: "exchange", dataset: "telco.minutes.csv" });
    expect(telco.store.getJob(refused.id)).toBeUndefined();
    expect(bank.store.getJob(refused.id)).toBeUndefined();
    // A k below the policy's is refused too; a malformed computation is a 400 before anything is recorded.
    const low = await submit({ ...jobBody(), params: { ...jobBody().params, minGroupSize: K - 1 } });
    expect(low.body.error).toMatchObject({ rule: "group-size-below-minimum" });
    const before = x.store.listJobs().length;
    const bad = await submit(jobBody(DATASET, { aggregates: AGGREGATES, groupBy: { column: "segment", categories: ["gold"] } }));
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe("UMBRA_INVALID_JOB_REQUEST");
    expect(x.store.listJobs().length).toBe(before);
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
  });

  it("a provider whose own policy refuses: the job is refused with its rule, the buyer gets nothing", async () => {
    telco.store.putPolicy(DATASET, { ...POLICY, outputColumns: ["minutes"] });
    try {
      const r = await submit(jobBody());
      expect(r.status).toBe(201);
      expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "refused", reason: "column-not-allowed" });
      await expectNoResult(r.body.id);
      expect(ledgerOf(r.body.id).find((e) => e.kind === "job.refused")?.body).toMatchObject({ rule: "column-not-allowed", by: "provider", party: "telco" });
      // The buyer's agent recorded the job when it submitted it; the exchange tells it the job was refused, and it never ran.
      await waitUntil(() => bank.store.getJob(r.body.id)?.state === "refused", "the buyer's record of the refused job");
      expect(bank.store.getResult(r.body.id)).toBeUndefined();
    } finally {
      telco.store.putPolicy(DATASET, POLICY);
    }
  }, 60_000);

  it("a provider that is gone: the job fails naming it, nothing is released, the ledger verifies", async () => {
    await telco.agent.stop();
    const r = await submit(jobBody());
    expect(r.status).toBe(201);
    expect(await waitForJob(bank.url, r.body.id, 30_000)).toMatchObject({ state: "failed", reason: "UMBRA_MISSING_PARTY" });
    await expectNoResult(r.body.id);
    expect(ledgerOf(r.body.id).find((e) => e.kind === "job.failed")?.body).toMatchObject({ reason: "UMBRA_MISSING_PARTY", missing: ["telco"] });
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
  }, 60_000);
});
