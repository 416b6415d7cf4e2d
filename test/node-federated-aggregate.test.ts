/**
 * federated-aggregate as a job through the node, in one process: an exchange
 * (which plays the aggregator), a buyer and three provider agents on
 * loopback. A SUM / AVG / VAR / COUNT per declared category with a histogram
 * equals the same computation in plaintext on the providers' rows, k
 * applied per provider per cell and bin and then to the totals; the CLI submits one and
 * writes its result file. A dataset whose policy refuses a column, a provider
 * whose own copy of its policy refuses, and a provider that is gone each end
 * the job cleanly: a typed state and reason, a ledger entry, and no result for
 * the buyer. The ledger verifies throughout.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tableFromIPC, type Table } from "apache-arrow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";
import { CryptoPool } from "../engine/index.js";
import { jobCommand } from "../node/commands/jobs.js";
import { resultCommitment, verifyLedger } from "../node/ledger.js";
import { api, partyHeaders, tokenFileOf, waitUntil, startExchange, startParty, waitForJob, type TestExchange, type TestParty } from "./helpers/nodes.js";
import { rng } from "./helpers/data.js";

const pool = new CryptoPool({ threads: 1 });
let x: TestExchange;
let bank: TestParty;
let providers: TestParty[] = [];

const NAMES = ["telco", "retailer", "insurer"] as const;
const CATEGORIES = ["north", "south", "east", "west"];
const EDGES = [18, 30, 45, 65, 90];
const K = 5;

interface Row {
  region: string;
  spend: number;
  age: number;
}

/** Each provider's rows: north/south/east, some of an undeclared region, and `west` rows of west (3 in all: under k). */
function rowsOf(seed: number, n: number, west: number): Row[] {
  const r = rng(seed);
  const out: Row[] = [];
  for (let i = 0; i < n; i++) {
    const region = i < west ? "west" : r() < 0.04 ? "elsewhere" : (["north", "south", "east"][Math.floor(r() * 3)] as string);
    out.push({ region, spend: Math.floor(r() * 1001), age: 18 + Math.floor(r() * 73) });
  }
  return out;
}

const data: Row[][] = [rowsOf(11, 420, 1), rowsOf(22, 310, 2), rowsOf(33, 275, 0)];
const POLICY = { allowedProtocols: ["federated-aggregate"], outputColumns: ["region", "spend", "age"], allowedBuyers: ["bank"], minGroupSize: K, queryBudget: 100, budgetUnit: "jobs", expiresAt: null };
const datasetIds = NAMES.map((n) => `${n}.households.csv`);

const aggregateParams = {
  aggregates: [{ fn: "count" }, { fn: "sum", column: "spend" }, { fn: "avg", column: "spend" }, { fn: "var", column: "spend" }],
  groupBy: { column: "region", categories: CATEGORIES },
  histogram: { column: "age", edges: EDGES },
  maxAbsValue: "1000",
};

/**
 * The plaintext answer on every provider's rows with k per provider (a provider's rows of a region's age
 * bin, or below the first or above the last edge, where it has 1 … k−1 rows are left out of the region
 * altogether: count, sums and bins; without the histogram, its region with 1 … k−1 rows), then k applied to
 * the totals as the buyer's runner applies it.
 */
function oracle(providers: readonly (readonly Row[])[], histogram = true) {
  const binOf = (r: Row, b: number): boolean => r.age >= (EDGES[b] as number) && (b === EDGES.length - 2 ? r.age <= (EDGES[b + 1] as number) : r.age < (EDGES[b + 1] as number));
  const rangeOf = (r: Row): number => {
    if (!histogram) return 0;
    const b = EDGES.slice(0, -1).findIndex((_, i) => binOf(r, i));
    return b >= 0 ? b : r.age < (EDGES[0] as number) ? -1 : -2;
  };
  return CATEGORIES.map((category) => {
    const mine = providers.flatMap((rows) => {
      const own = rows.filter((r) => r.region === category);
      const n = new Map<number, number>();
      for (const r of own) n.set(rangeOf(r), (n.get(rangeOf(r)) ?? 0) + 1);
      return own.filter((r) => (n.get(rangeOf(r)) as number) >= K);
    });
    const n = BigInt(mine.length);
    const sum = mine.reduce((s, r) => s + BigInt(r.spend), 0n);
    const sumsq = mine.reduce((s, r) => s + BigInt(r.spend) ** 2n, 0n);
    const hist = EDGES.slice(0, -1).map((_, b) => mine.filter((r) => binOf(r, b)).length);
    const suppressed = mine.length < K;
    return {
      category,
      suppressed,
      count: suppressed ? null : mine.length,
      sum: suppressed ? null : Number(sum),
      avg: suppressed || n === 0n ? null : Number(sum) / Number(n),
      var: suppressed || n < 2n ? null : Number(n * sumsq - sum * sum) / Number(n * (n - 1n)),
      hist: hist.map((h) => (suppressed || h < K ? null : h)),
    };
  });
}

/** The result table's cells in the oracle's shape. */
function cellsOf(t: Table) {
  const num = (name: string, i: number): number | null => {
    const v: unknown = t.getChild(name)?.get(i);
    return v === null || v === undefined ? null : Number(v);
  };
  return Array.from({ length: t.numRows }, (_, i) => ({
    category: t.getChild("category")?.get(i) as string,
    suppressed: String(t.getChild("suppressed")?.get(i)) === "true", // Bool from Arrow, "true" from CSV
    count: num("count", i),
    sum: num("sum_spend", i),
    avg: num("avg_spend", i),
    var: num("var_spend", i),
    hist: EDGES.slice(0, -1).map((_, b) => num(`hist_age_${b}`, i)),
  }));
}

function expectEqualToOracle(t: Table): void {
  const got = cellsOf(t);
  const want = oracle(data);
  expect(got.map((c) => [c.category, c.suppressed, c.count, c.sum, c.hist])).toEqual(want.map((c) => [c.category, c.suppressed, c.count, c.sum, c.hist]));
  got.forEach((c, i) => {
    const w = want[i] as (typeof want)[number];
    if (w.avg === null) expect(c.avg).toBeNull();
    else expect(c.avg).toBeCloseTo(w.avg, 9);
    if (w.var === null) expect(c.var).toBeNull();
    else expect(c.var).toBeCloseTo(w.var, 6);
  });
  // The fixture exercises suppression: west is under k.
  expect(want.find((c) => c.category === "west")?.suppressed).toBe(true);
  expect(want.filter((c) => !c.suppressed).length).toBe(3);
}

const csv = (rows: readonly Row[]) => "region,spend,age\n" + rows.map((r) => `${r.region},${r.spend},${r.age}`).join("\n") + "\n";

const submit = (body: Record<string, unknown>) => api<{ id: string; state: string; error?: { code: string; rule?: string; message: string } }>(bank.url, "POST", "/v1/jobs", body);
const jobBody = (datasets: readonly string[] = datasetIds, aggregate: Record<string, unknown> = aggregateParams) => ({ protocol: "federated-aggregate", providerDatasets: datasets, params: { aggregate } });

/** What a buyer gets for a job that did not succeed: nothing. */
async function expectNoResult(id: string): Promise<void> {
  expect((await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) })).status).toBe(404);
  expect(bank.store.getResult(id)).toBeUndefined();
}

beforeAll(async () => {
  x = await startExchange({ jobTimeoutMs: 6_000 });
  bank = await startParty("bank", x.url, pool);
  providers = await Promise.all(NAMES.map((n) => startParty(n, x.url, pool)));
  for (const [i, p] of providers.entries()) {
    writeFileSync(join(p.dataDir, "households.csv"), csv(data[i] as Row[]));
    const reg = await api(p.url, "POST", "/v1/datasets", { file: "households.csv", policy: POLICY });
    expect(reg.status).toBe(201);
  }
  // The insurer's second dataset does not allow its age column out.
  const ins = providers[2] as TestParty;
  writeFileSync(join(ins.dataDir, "claims.csv"), csv(data[2] as Row[]));
  expect((await api(ins.url, "POST", "/v1/datasets", { file: "claims.csv", policy: { ...POLICY, outputColumns: ["region", "spend"] } })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  for (const p of [bank, ...providers]) await p?.close().catch(() => undefined);
  await x?.close();
  await pool.close();
});

describe("federated-aggregate through the node", () => {
  it("every party registered its mask key", () => {
    for (const n of [...NAMES, "bank"]) expect(x.store.getParty(n)?.maskPublicKey?.length).toBe(32);
  });

  it("SUM / AVG / VAR / COUNT per region and an age histogram equal the plaintext answer on the union", async () => {
    const r = await submit(jobBody());
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const id = r.body.id;
    const done = await waitForJob(bank.url, id);
    expect(done).toMatchObject({ state: "succeeded" });
    const res = await fetch(`${bank.url}/v1/jobs/${id}/result`, { headers: partyHeaders(bank.url) });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const t = tableFromIPC(bytes);
    expect(t.schema.fields.map((f) => f.name)).toEqual(["category", "suppressed", "count", "sum_spend", "avg_spend", "var_spend", "hist_age_0", "hist_age_1", "hist_age_2", "hist_age_3"]);
    expectEqualToOracle(t);

    // The ledger: the filled parameters, each provider's acceptance, every step through the exchange, the result digest.
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
    const entries = [...x.store.ledgerRows({ job: id })].map((e) => ({ kind: e.kind, body: JSON.parse(e.body) as Record<string, unknown> }));
    const submitted = entries.find((e) => e.kind === "job.submitted")?.body as Record<string, unknown>;
    expect(submitted).toMatchObject({ protocol: "federated-aggregate", datasets: datasetIds, providers: [...NAMES] });
    expect(submitted["params"]).toMatchObject({ providers: 3, minGroupSize: K, minProviders: 2, maxAbsValue: "1000", scale: 0, maxRowsPerProvider: 420, groupBy: { column: "region", categories: 4 }, histogram: { column: "age", bins: 4 } });
    expect(entries.filter((e) => e.body["step"] === "accepted").map((e) => e.body["by"]).sort()).toEqual([...NAMES].sort());
    const steps = entries.filter((e) => e.kind === "job.step" && typeof e.body["size"] === "number").map((e) => `${String(e.body["from"])}>${String(e.body["to"])}:${String(e.body["step"])}`);
    expect(steps.sort()).toEqual(["bank>exchange:1", "exchange>bank:3", ...NAMES.map((n) => `exchange>${n}:1`), ...NAMES.map((n) => `${n}>exchange:2`)].sort());
    const result = entries.find((e) => e.kind === "job.result")?.body;
    // A salted commitment to the bytes the buyer fetched, opened with the salt its agent gives it.
    expect(result?.["digest"]).toBe(resultCommitment(Buffer.from(res.headers.get("x-umbra-digest-salt") ?? "", "hex"), bytes));
    // The ledger records the result's digest only; its summary stays with the buyer, whose agent shows it.
    expect(Object.keys(result ?? {})).toEqual(["digest"]);
    expect((await api<{ progress: unknown }>(bank.url, "GET", `/v1/jobs/${id}`)).body.progress).toEqual({ cells: 4, suppressed: 1 });
    // Every party's view of the job has ended.
    for (const p of providers) expect(p.store.getJob(id)?.state).toBe("succeeded");
  }, 60_000);

  it("a job that declares approximate arithmetic runs under CKKS: every result lies within its reported bound", async () => {
    const r = await submit(jobBody(datasetIds, { ...aggregateParams, histogram: undefined, approximate: true }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(await waitForJob(bank.url, r.body.id)).toMatchObject({ state: "succeeded" });
    const t = tableFromIPC(new Uint8Array(await (await fetch(`${bank.url}/v1/jobs/${r.body.id}/result`, { headers: partyHeaders(bank.url) })).arrayBuffer()));
    const names = t.schema.fields.map((f) => f.name);
    for (const n of ["bound_sum_spend", "bound_avg_spend", "bound_var_spend"]) expect(names).toContain(n);
    const want = oracle(data, false);
    let checked = 0;
    for (let i = 0; i < t.numRows; i++) {
      const row = t.get(i)?.toJSON() as Record<string, unknown>;
      const w = want.find((c) => c.category === row["category"]) as (typeof want)[number];
      if (row["suppressed"] === true) continue;
      for (const [name, exact] of [["sum_spend", w.sum], ["avg_spend", w.avg], ["var_spend", w.var]] as const) {
        const got = Number(row[name]);
        const bound = Number(row[`bound_${name}`]);
        expect(Math.abs(got - (exact as number)), `${name} of ${String(row["category"])}`).toBeLessThanOrEqual(bound);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
    const submitted = [...x.store.ledgerRows({ job: r.body.id })].find((e) => e.kind === "job.submitted");
    expect((JSON.parse(submitted?.body ?? "{}") as { params: Record<string, unknown> }).params["approximate"]).toBe(true);
  }, 60_000);

  it("the CLI submits a job with several --provider-dataset entries and writes the result file", async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => void lines.push(l), err: () => undefined };
    const code = await jobCommand(
      ["submit", "--party", bank.url, "--token-file", tokenFileOf(bank), "--protocol", "federated-aggregate", ...datasetIds.flatMap((d) => ["--provider-dataset", d]),
        "--agg", "count,sum(spend),avg(spend),var(spend)", "--group-by", "region", "--categories", CATEGORIES.join(","),
        "--histogram", `age:${EDGES.join(",")}`, "--max-abs-value", "1000", "--wait"],
      io,
    );
    expect(code, lines.join("\n")).toBe(0);
    const id = /job (job-\S+) submitted/.exec(lines.join("\n"))?.[1] as string;
    expect(lines.join("\n")).toMatch(new RegExp(`job ${id} succeeded: cells 4, suppressed 1`));
    const out = join(bank.dataDir, "federated.csv");
    expect(await jobCommand(["result", id, "--party", bank.url, "--token-file", tokenFileOf(bank), "--out", out], io)).toBe(0);
    const t = await readTable(out);
    expectEqualToOracle(t);
  }, 60_000);

  it("a dataset whose policy does not allow a column: the exchange refuses with the rule, names the dataset in the ledger, starts nothing", async () => {
    const before = x.store.listJobs().length;
    const r = await submit(jobBody([datasetIds[0] as string, datasetIds[1] as string, "insurer.claims.csv"]));
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: "UMBRA_POLICY_DENIED", rule: "column-not-allowed" });
    const jobs = x.store.listJobs();
    expect(jobs.length).toBe(before + 1);
    const refused = jobs.find((j) => j.state === "refused" && j.reason === "column-not-allowed") as { id: string };
    const entries = [...x.store.ledgerRows({ job: refused.id })];
    expect(entries.map((e) => e.kind)).toEqual(["job.refused"]);
    expect(JSON.parse((entries[0] as { body: string }).body)).toMatchObject({ rule: "column-not-allowed", by: "exchange", dataset: "insurer.claims.csv" });
    for (const p of providers) expect(p.store.getJob(refused.id)).toBeUndefined();
  });

  it("malformed jobs are refused before anything starts (400): one dataset, an unknown computation field, too few rows allowed", async () => {
    const one = await submit(jobBody([datasetIds[0] as string]));
    expect(one.status).toBe(400);
    expect(one.body.error?.code).toBe("UMBRA_INVALID_JOB_REQUEST");
    const bad = await submit(jobBody(datasetIds, { ...aggregateParams, where: "spend > 3" }));
    expect(bad.status).toBe(400);
    const rows = await submit(jobBody(datasetIds, { ...aggregateParams, maxRowsPerProvider: 10 }));
    expect(rows.status).toBe(400);
    expect(rows.body.error?.message).toContain("maxRowsPerProvider");
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
  });

  it("a provider whose own policy refuses: the job is refused with its rule, the others stop, the buyer gets nothing", async () => {
    const retailer = providers[1] as TestParty;
    // The retailer's own copy of its policy no longer allows the protocol (the exchange's copy still does).
    retailer.store.putPolicy(datasetIds[1] as string, { ...POLICY, allowedProtocols: ["psi"] });
    try {
      const r = await submit(jobBody());
      expect(r.status).toBe(201);
      const done = await waitForJob(bank.url, r.body.id);
      expect(done).toMatchObject({ state: "refused", reason: "protocol-not-allowed" });
      await expectNoResult(r.body.id);
      const refusal = [...x.store.ledgerRows({ job: r.body.id })].find((e) => e.kind === "job.refused");
      expect(JSON.parse(refusal?.body ?? "{}")).toMatchObject({ rule: "protocol-not-allowed", by: "provider", party: "retailer" });
      // The buyer was never started, and no provider still runs the job.
      // The buyer's agent recorded the job when it submitted it; the exchange tells it the job was refused, and it never ran.
      await waitUntil(() => bank.store.getJob(r.body.id)?.state === "refused", "the buyer's record of the refused job");
      expect(bank.store.getResult(r.body.id)).toBeUndefined();
      // No provider still runs it: each either never took its job.start (the exchange released it) or ended the job.
      await waitUntil(() => providers.every((p) => !["submitted", "running"].includes(p.store.getJob(r.body.id)?.state ?? "")), "every provider's end of the refused job");
      expect(providers.some((p) => p.store.getResult(r.body.id) !== undefined)).toBe(false);
    } finally {
      retailer.store.putPolicy(datasetIds[1] as string, POLICY);
    }
  }, 60_000);

  it("a provider that is gone: the job fails naming it, nothing is released, `job status` shows the reason", async () => {
    const insurer = providers[2] as TestParty;
    await insurer.agent.stop();
    const r = await submit(jobBody());
    expect(r.status).toBe(201);
    const done = await waitForJob(bank.url, r.body.id, 30_000);
    expect(done).toMatchObject({ state: "failed", reason: "UMBRA_MISSING_PARTY" });
    await expectNoResult(r.body.id);
    const failed = [...x.store.ledgerRows({ job: r.body.id })].find((e) => e.kind === "job.failed");
    expect(JSON.parse(failed?.body ?? "{}")).toMatchObject({ reason: "UMBRA_MISSING_PARTY", missing: ["insurer"] });
    const lines: string[] = [];
    expect(await jobCommand(["status", r.body.id, "--party", bank.url, "--token-file", tokenFileOf(bank)], { out: (l) => void lines.push(l), err: () => undefined })).toBe(0);
    expect(lines.join("\n")).toMatch(/state: failed\n\s+reason: UMBRA_MISSING_PARTY/);
    expect(verifyLedger(x.store, x.publicKey).ok).toBe(true);
  }, 60_000);
});
