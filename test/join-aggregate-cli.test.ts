/**
 * `umbra join-aggregate` as a user runs it: the built CLI (`npm run build`
 * first; `npm test` does it) spawned in a temporary folder on small CSV files
 * — duplicate keys on both sides, null and padded keys, null values, a null
 * group, a composite key named differently on each side, fixed point, a
 * group under k — checked against DuckDB running the same SQL on the same
 * files (`SELECT g, COUNT(*), SUM(v), AVG(v), VAR_SAMP(v), STDDEV_SAMP(v)
 * FROM buyer JOIN provider ON key GROUP BY g HAVING COUNT(*) >= k AND
 * COUNT(DISTINCT key) >= k`); the
 * error paths (exit 2 with the usage text, exit 1 with a typed code and no
 * cell value on stderr); and the two examples, run from dist, reporting a
 * match.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";
import { mulberry32 } from "./helpers/data.js";

const cli = fileURLToPath(new URL("../dist/node/cli.js", import.meta.url));
const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "umbra-cli-join-aggregate-"));
const file = (name: string) => join(dir, name);

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node SCRIPT ARGS` in the temp folder (async, so several runs can overlap). */
function spawnNode(script: string, args: readonly string[], timeoutMs = 90_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const run = (...args: string[]): Promise<Run> => spawnNode(cli, ["join-aggregate", ...args]);

// ------------------------------------------------------------------ data



const MAX = 100_000;
/** Distinctive values that must never reach stderr. */
const SECRET_VALUE = "99999";
const SECRET_KEY = "cust-7777";

/** One CSV field as written (null → empty field). */
const field = (v: string | number | null): string => (v === null ? "" : String(v));

function writeCsv(name: string, header: readonly string[], rows: readonly (readonly (string | number | null)[])[]): void {
  writeFileSync(file(name), `${[header.join(","), ...rows.map((r) => r.map(field).join(","))].join("\n")}\n`);
}

/**
 * buyer.csv: id (duplicates, nulls, padded), branch (1..3), segment (with nulls; "private" rare; one segment per id, as join-aggregate requires), note.
 * provider.csv: customer (duplicates, nulls), branch_no, balance (integers, ±MAX present, some null), spend (2 decimals, some null).
 */
function writeData(): void {
  const rnd = mulberry32(2024);
  const segments = ["retail", "retail", "sme", "corporate", null];
  const buyer: (string | number | null)[][] = [];
  const segmentOf = new Map<number, string | null>();
  for (let i = 0; i < 400; i++) {
    const n = Math.floor(rnd() * 220);
    const r = rnd();
    const id = r < 0.04 ? null : r < 0.1 ? `  cust-${n} ` : `cust-${n}`;
    const pick = i % 50 === 7 ? "private" : (segments[Math.floor(rnd() * segments.length)] ?? null);
    if (id !== null && !segmentOf.has(n)) segmentOf.set(n, pick);
    const segment = id === null ? pick : (segmentOf.get(n) as string | null);
    buyer.push([id, 1 + Math.floor(rnd() * 3), segment, `row ${i}`]);
  }
  buyer.push([SECRET_KEY, 1, "retail", "x"]);
  const provider: (string | number | null)[][] = [];
  for (let i = 0; i < 350; i++) {
    const n = 100 + Math.floor(rnd() * 220);
    const id = rnd() < 0.04 ? null : `cust-${n}`;
    const k = rnd();
    const balance = i === 0 ? MAX : i === 1 ? -MAX : k < 0.05 ? null : k < 0.15 ? 0 : Math.floor((rnd() * 2 - 1) * (k < 0.3 ? MAX : 5000));
    const spend = rnd() < 0.03 ? null : ((Math.floor(rnd() * 2_000_000) - 1_000_000) / 100).toFixed(2);
    provider.push([id, 1 + Math.floor(rnd() * 3), balance, spend]);
  }
  provider.push([`cust-${100}`, 2, SECRET_VALUE, "1.00"]);
  writeCsv("buyer.csv", ["id", "branch", "segment", "note"], buyer);
  writeCsv("provider.csv", ["customer", "branch_no", "balance", "spend"], provider);
  // The same key in two segments (the second time padded): refused.
  writeCsv("overlap.csv", ["id", "branch", "segment", "note"], [["cust-1", 1, "retail", "a"], [SECRET_KEY, 1, "retail", "b"], ["cust-2", 1, "sme", "c"], [` ${SECRET_KEY}`, 2, "sme", "d"]]);
  writeCsv("bad-provider.csv", ["customer", "branch_no", "balance", "spend"], [["cust-1", 1, "12", "1.00"], ["cust-2", 1, `x${SECRET_VALUE}`, "2.00"]]);
  writeCsv("big-provider.csv", ["customer", "branch_no", "balance", "spend"], [["cust-150", 1, "5", "1.00"], ["cust-151", 1, `${SECRET_VALUE}1`, "2.00"]]);
}

// ------------------------------------------------------------------ the oracle

let db: DuckDBInstance;
let duck: DuckDBConnection;

type Value = string | number | bigint | null;
type OutRow = Record<string, Value>;

const sqlPath = (name: string): string => `'${file(name).replace(/'/g, "''")}'`;

/**
 * DuckDB's answer on the same files, one row per group (label → row), with
 * the engine's key normalisation spelled in SQL: trimmed, empty = null.
 */
async function oracle(opts: { buyerKey: readonly string[]; providerKey: readonly string[]; value: string; valueType: string; groupBy?: string; k: number }): Promise<Map<string | null, OutRow>> {
  const on = opts.buyerKey.map((b, i) => `nullif(trim(b."${b}"), '') = nullif(trim(p."${opts.providerKey[i] as string}"), '')`).join(" AND ");
  const key = `ROW(${opts.buyerKey.map((b) => `nullif(trim(b."${b}"), '')`).join(", ")})`;
  const v = `CAST(p."${opts.value}" AS ${opts.valueType})`;
  const g = opts.groupBy !== undefined ? `b."${opts.groupBy}"` : "NULL";
  const sql = `
    SELECT ${g} AS g, COUNT(*)::BIGINT AS n, SUM(${v})::DOUBLE AS s, AVG(${v})::DOUBLE AS a, VAR_SAMP(${v})::DOUBLE AS var, STDDEV_SAMP(${v})::DOUBLE AS sd
    FROM read_csv(${sqlPath("buyer.csv")}, header = true, all_varchar = true) b
    JOIN read_csv(${sqlPath("provider.csv")}, header = true, all_varchar = true) p ON ${on}
    ${opts.groupBy !== undefined ? "GROUP BY g" : ""} HAVING COUNT(*) >= ${opts.k} AND COUNT(DISTINCT ${key}) >= ${opts.k}`;
  const rows = (await duck.runAndReadAll(sql)).getRowObjectsJS() as Record<string, Value>[];
  return new Map(rows.map((r) => [r["g"] === null ? null : String(r["g"]), r]));
}

/** The buyer's groups, the NULL group included (every one not released is reported as suppressed, one without a match too). */
async function groupCount(groupBy: string): Promise<number> {
  const sql = `SELECT COUNT(DISTINCT coalesce(b."${groupBy}", '<null>'))::BIGINT AS c
    FROM read_csv(${sqlPath("buyer.csv")}, header = true, all_varchar = true) b`;
  const r = (await duck.runAndReadAll(sql)).getRowObjectsJS()[0] as { c: bigint };
  return Number(r.c);
}

async function readOut(name: string): Promise<{ columns: string[]; rows: OutRow[] }> {
  const t = await readTable(file(name));
  const columns = t.schema.fields.map((f) => f.name);
  const rows: OutRow[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const row: OutRow = {};
    for (const c of columns) {
      const v: unknown = t.getChild(c)?.get(i);
      row[c] = v === null || v === undefined ? null : typeof v === "bigint" || typeof v === "number" ? v : String(v);
    }
    rows.push(row);
  }
  return { columns, rows };
}

function close(actual: Value, expected: Value, rel = 1e-9): void {
  if (expected === null) {
    expect(actual).toBeNull();
    return;
  }
  expect(actual).not.toBeNull();
  const a = Number(actual);
  const e = Number(expected);
  expect(Math.abs(a - e)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(e)));
}

/** Labels sorted as the result is: by label, the null group last. */
function sortedLabels(labels: Iterable<string | null>): (string | null)[] {
  return [...labels].sort((a, b) => (a === null ? 1 : b === null ? -1 : a < b ? -1 : a > b ? 1 : 0));
}

function expectSameAsOracle(out: { columns: string[]; rows: OutRow[] }, expected: Map<string | null, OutRow>, value: string, groupBy: string | undefined, exactSums: boolean): void {
  const labelOf = (r: OutRow): string | null => (groupBy === undefined ? null : r[groupBy] === null ? null : String(r[groupBy]));
  expect(out.rows.map(labelOf)).toEqual(sortedLabels(expected.keys()));
  for (const row of out.rows) {
    const e = expected.get(labelOf(row)) as OutRow;
    expect(Number(row["count"])).toBe(Number(e["n"]));
    if (exactSums) expect(Number(row[`sum_${value}`])).toBe(Number(e["s"]));
    else close(row[`sum_${value}`] ?? null, e["s"] ?? null, 1e-12);
    close(row[`avg_${value}`] ?? null, e["a"] ?? null);
    close(row[`var_${value}`] ?? null, e["var"] ?? null);
    close(row[`stddev_${value}`] ?? null, e["sd"] ?? null);
  }
}

beforeAll(async () => {
  writeData();
  db = await DuckDBInstance.create(":memory:");
  duck = await db.connect();
});

afterAll(() => {
  duck?.closeSync();
  db?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

const AGG = (c: string): string => `count,sum(${c}),avg(${c}),var(${c}),stddev(${c})`;

// ------------------------------------------------------------------ tests

describe("umbra join-aggregate", () => {
  it("group-by on a single key with duplicates and nulls equals DuckDB; a group under k is left out", async () => {
    const k = 8;
    const r = await run("--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--provider-key", "customer", "--group-by", "segment", "--agg", AGG("balance"), "--min-group-size", String(k), "--max-abs-value", String(MAX), "--out", "grouped.csv", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const expected = await oracle({ buyerKey: ["id"], providerKey: ["customer"], value: "balance", valueType: "BIGINT", groupBy: "segment", k });
    const all = await groupCount("segment");
    expect(expected.has(null)).toBe(true); // the NULL group is big enough to be kept, and comes last
    expect(expected.has("private")).toBe(false); // and "private" is not
    expect(all - expected.size).toBeGreaterThanOrEqual(1);
    expect(r.stdout).toContain(`groups written: ${expected.size} (suppressed: ${all - expected.size}, k = ${k}) to grouped.csv`);
    expect(r.stdout).toMatch(/rows: buyer 401, provider 351; bytes: [\d,]+ \(buyer [\d,]+, provider [\d,]+, exchange [\d,]+\)/);
    const out = await readOut("grouped.csv");
    expect(out.columns).toEqual(["segment", "count", "sum_balance", "avg_balance", "var_balance", "stddev_balance"]);
    expectSameAsOracle(out, expected, "balance", "segment", true);
  });

  it("a composite key named differently on each side, fixed point (--scale 2), Arrow output, ristretto255: equals DuckDB", async () => {
    const k = 3;
    const r = await run(
      ...["--buyer", "buyer.csv", "--provider", "provider.csv", "--buyer-key", "id,branch", "--provider-key", "customer,branch_no"],
      ...["--group-by", "segment", "--agg", "count, AVG(spend), sum(spend), var(spend), stddev(spend)", "--min-group-size", String(k)],
      ...["--max-abs-value", "10000", "--scale", "2", "--group", "ristretto255", "--out", "composite.arrow", "--quiet"],
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const expected = await oracle({ buyerKey: ["id", "branch"], providerKey: ["customer", "branch_no"], value: "spend", valueType: "DECIMAL(18,2)", groupBy: "segment", k });
    expect(expected.size).toBeGreaterThanOrEqual(3);
    const out = await readOut("composite.arrow");
    expect(out.columns).toEqual(["segment", "count", "avg_spend", "sum_spend", "var_spend", "stddev_spend"]);
    expectSameAsOracle(out, expected, "spend", "segment", false);
    // Sums of cents are exact: sum · 100 is an integer equal to DuckDB's.
    for (const row of out.rows) {
      const e = expected.get(row["segment"] === null ? null : String(row["segment"])) as OutRow;
      expect(Math.round(Number(row["sum_spend"]) * 100)).toBe(Math.round(Number(e["s"]) * 100));
    }
  });

  it("without --group-by: one row equal to DuckDB's; none when the join is smaller than k (default k = 10)", async () => {
    const r = await run("--buyer", "buyer.csv", "--provider", "provider.csv", "--buyer-key", "id", "--provider-key", "customer", "--agg", AGG("balance"), "--max-abs-value", String(MAX), "--out", "total.arrow", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("groups written: 1 (suppressed: 0, k = 10) to total.arrow");
    const expected = await oracle({ buyerKey: ["id"], providerKey: ["customer"], value: "balance", valueType: "BIGINT", k: 10 });
    const out = await readOut("total.arrow");
    expect(out.columns).toEqual(["count", "sum_balance", "avg_balance", "var_balance", "stddev_balance"]);
    // At scale 0 the sums are written exact, as Int64.
    expect(typeof out.rows[0]?.["sum_balance"]).toBe("bigint");
    expectSameAsOracle(out, expected, "balance", undefined, true);

    const huge = (await oracle({ buyerKey: ["id"], providerKey: ["customer"], value: "balance", valueType: "BIGINT", k: 1 })).get(null) as OutRow;
    const k = Number(huge["n"]) + 1;
    const none = await run("--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--provider-key", "customer", "--agg", "count", "--min-group-size", String(k), "--out", "none.csv", "--quiet");
    expect(none.status).toBe(0);
    expect(none.stdout).toContain(`groups written: 0 (suppressed: 1, k = ${k})`);
    expect((await readOut("none.csv")).rows).toEqual([]);
  });

  it("progress and the --max-abs-value note go to stderr, never a key or a value", async () => {
    const r = await run("--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--provider-key", "customer", "--group-by", "segment", "--agg", "count,sum(balance)", "--out", "progress.csv");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/--max-abs-value not given/);
    expect(r.stderr).toMatch(/100%/);
    for (const s of [SECRET_KEY, SECRET_VALUE, "cust-1"]) {
      expect(r.stderr).not.toContain(s);
      expect(r.stdout).not.toContain(s);
    }
  });

  it("--help prints the usage and exits 0", async () => {
    const r = await run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("join-aggregate --buyer FILE --provider FILE --key COL");
    const top = await spawnNode(cli, ["help"]);
    expect(top.stdout).toContain("join-aggregate --buyer FILE");
  });

  it("usage errors exit 2 with the usage text", async () => {
    const base = ["--buyer", "buyer.csv", "--provider", "provider.csv", "--out", "u.csv"];
    const cases: string[][] = [
      [...base, "--key", "id"],
      [...base, "--agg", "count"],
      [...base, "--buyer-key", "id", "--agg", "count"],
      [...base, "--buyer-key", "id,branch", "--provider-key", "customer", "--agg", "count"],
      [...base, "--key", "id,id", "--agg", "count"],
      [...base, "--key", "id", "--agg", "median(balance)"],
      [...base, "--key", "id", "--agg", "count(balance)"],
      [...base, "--key", "id", "--agg", "count", "--group", "p256"],
      [...base, "--key", "id", "--agg", "count", "--min-group-size", "0"],
      [...base, "--key", "id", "--agg", "count", "--min-group-size", "-2"],
      [...base, "--key", "id", "--agg", "count", "--max-abs-value", "-4"],
      [...base, "--key", "id", "--agg", "count", "--scale", "19"],
      [...base, "--key", "id", "--agg", "count", "--group-by", ""],
      [...base, "--key", "id", "--agg", "count", "--frobnicate"],
      ["--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--agg", "count"],
      ["--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--agg", "count", "--out", "buyer.csv"],
    ];
    const runs = await Promise.all(cases.map((c) => run(...c)));
    runs.forEach((r, i) => {
      expect({ i, status: r.status }).toEqual({ i, status: 2 });
      expect(r.stderr).toMatch(/^umbra: /);
      expect(r.stderr).toContain("Usage:");
      expect(r.stderr).toContain("join-aggregate --buyer FILE");
    });
  });

  it("a buyer file with one key in two groups exits 1 with UMBRA_OVERLAPPING_GROUPS, the column and the rows, no key", async () => {
    const r = await run("--buyer", "overlap.csv", "--provider", "provider.csv", "--key", "id", "--provider-key", "customer", "--group-by", "segment", "--agg", "count", "--out", "o.csv", "--quiet");
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim()).toBe('umbra: UMBRA_OVERLAPPING_GROUPS: group column "segment": data rows 2 and 4 have the same key in different groups; each key must fall in one group; de-duplicate or fix the group column');
  });

  it("bad inputs exit 1 with a typed code and no value on stderr", async () => {
    const base = ["--buyer", "buyer.csv", "--key", "id", "--provider-key", "customer", "--out", "e.csv", "--quiet"];
    const [missingGroup, missingValue, notNumeric, tooBig, noFile, parquetOut] = await Promise.all([
      run(...base, "--provider", "provider.csv", "--agg", "count", "--group-by", "region"),
      run(...base, "--provider", "provider.csv", "--agg", "sum(amount)"),
      run(...base, "--provider", "bad-provider.csv", "--agg", "sum(balance)"),
      run(...base, "--provider", "big-provider.csv", "--agg", "sum(balance)", "--max-abs-value", "1000", "--min-group-size", "1"),
      run(...base, "--provider", "absent.csv", "--agg", "count"),
      run("--buyer", "buyer.csv", "--provider", "provider.csv", "--key", "id", "--agg", "count", "--out", "x.xlsx"),
    ]);
    expect(missingGroup.stderr).toMatch(/^umbra: UMBRA_MISSING_COLUMN: .*region.*buyer\.csv/);
    expect(missingValue.stderr).toMatch(/^umbra: UMBRA_MISSING_COLUMN: .*amount/);
    expect(notNumeric.stderr).toMatch(/^umbra: UMBRA_MALFORMED_CSV: /);
    expect(tooBig.stderr).toMatch(/^umbra: UMBRA_[A-Z_]+: /);
    expect(noFile.stderr).toMatch(/^umbra: UMBRA_UNREADABLE_FILE: .*absent\.csv/);
    expect(parquetOut.stderr).toMatch(/^umbra: UMBRA_UNSUPPORTED_FORMAT: /);
    for (const r of [missingGroup, missingValue, notNumeric, tooBig, noFile, parquetOut]) {
      expect(r.status).toBe(1);
      expect(r.stdout).toBe("");
      for (const s of [SECRET_KEY, SECRET_VALUE, "cust-1"]) expect(r.stderr).not.toContain(s);
    }
  });
});

describe("examples", () => {
  it.each(["credit-risk", "ad-conversion"])("%s runs and its secure result matches the plaintext answer", async (name) => {
    const r = await spawnNode(join(dist, "examples", name, "main.js"), [], 110_000);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^match: yes/m);
  });
});
