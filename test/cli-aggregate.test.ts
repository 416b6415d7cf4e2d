/**
 * `umbra aggregate` as a user runs it: the built CLI (`npm run build` first;
 * `npm test` does it) spawned in a temporary folder on small provider files
 * with negatives, zeros, extreme values, undeclared and null categories,
 * checked against a plaintext computation done here; suppression below k;
 * and the error paths (exit 2 with the usage text, exit 1 with a typed code
 * and no cell value on stderr).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTable } from "../engine/columns/index.js";
import { umbra, type CliRun } from "./helpers/cli.js";
import { mulberry32 } from "./helpers/data.js";

const dir = mkdtempSync(join(tmpdir(), "umbra-cli-aggregate-"));
const file = (name: string) => join(dir, name);

/** Runs the CLI in the temp folder (async, so several runs can overlap). */
const run = (...args: string[]): Promise<CliRun> => umbra(args, {}, { cwd: dir, timeoutMs: 60_000 });

// ------------------------------------------------------------------ data

interface Row {
  readonly region: string | null;
  /** Integer units (scale 0) or hundredths as an integer (scale 2: the CSV shows it /100). */
  readonly amount: number;
}

const MAX = 1_000_000;
const CATEGORIES = ["north", "south", "east", "tiny"];

/** One provider's rows: negatives, zeros, ±MAX, undeclared ("other") and null regions; "tiny" gets 1 row per provider. */
function providerRows(seed: number, n: number): Row[] {
  const rnd = mulberry32(seed);
  const rows: Row[] = [{ region: "north", amount: MAX }, { region: "south", amount: -MAX }, { region: "east", amount: 0 }, { region: "tiny", amount: 42 }];
  for (let i = rows.length; i < n; i++) {
    const r = rnd();
    const region = r < 0.3 ? "north" : r < 0.6 ? "south" : r < 0.85 ? "east" : r < 0.95 ? "other" : null;
    const kind = rnd();
    const amount = kind < 0.15 ? 0 : kind < 0.25 ? Math.floor((rnd() * 2 - 1) * MAX) : Math.floor((rnd() * 2 - 1) * 500);
    rows.push({ region, amount });
  }
  return rows;
}

function writeProvider(name: string, rows: readonly Row[], decimals: boolean): void {
  const lines = ["id,region,amount"];
  rows.forEach((r, i) => lines.push(`${i},${r.region ?? ""},${decimals ? (r.amount / 100).toFixed(2) : String(r.amount)}`));
  writeFileSync(file(name), `${lines.join("\n")}\n`);
}

interface Expected {
  readonly count: number;
  /** Exact, in the file's units (hundredths for decimals). */
  readonly sum: bigint;
  readonly avg: number;
  readonly var: number | null;
  readonly hist: number[];
}

/** The plaintext computation: per category, count, exact sum, avg, sample variance, histogram counts. */
function plaintext(rows: readonly Row[], categories: readonly (string | null)[], edges: readonly number[]): Map<string | null, Expected> {
  const out = new Map<string | null, Expected>();
  for (const cat of categories) {
    const xs = rows.filter((r) => cat === null || r.region === cat).map((r) => r.amount);
    const n = xs.length;
    const sum = xs.reduce((s, x) => s + BigInt(x), 0n);
    const mean = xs.reduce((s, x) => s + x, 0) / n;
    const v = n > 1 ? xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : null;
    const hist = edges.slice(1).map(() => 0);
    for (const x of edges.length < 2 ? [] : xs) {
      const last = edges.length - 1;
      if (x < (edges[0] as number) || x > (edges[last] as number)) continue;
      let b = 0;
      while (b < last - 1 && x >= (edges[b + 1] as number)) b++;
      hist[b] = (hist[b] as number) + 1;
    }
    out.set(cat, { count: n, sum, avg: mean, var: v, hist });
  }
  return out;
}

/**
 * The plaintext computation with k per provider: a provider's cell with 1 … k−1 rows is left out and,
 * with a histogram (`edges`; [] for none), its rows of a cell's bin, or below the first or above the last
 * edge, where it has 1 … k−1 rows (from the cell's count and sums too); then the providers' cells are added.
 */
function plaintextPerProvider(byProvider: readonly (readonly Row[])[], categories: readonly (string | null)[], edges: readonly number[], k: number): Map<string | null, Expected> {
  const last = edges.length - 1;
  const rangeOf = (x: number): number => {
    if (x < (edges[0] as number)) return last;
    if (x > (edges[last] as number)) return last + 1;
    let b = 0;
    while (b < last - 1 && x >= (edges[b + 1] as number)) b++;
    return b;
  };
  const out = new Map<string | null, Expected>();
  for (const cat of categories) {
    const xs = byProvider.flatMap((rows) => {
      const mine = rows.filter((r) => cat === null || r.region === cat);
      if (edges.length < 2) return mine.length >= k ? mine : [];
      const n = new Map<number, number>();
      for (const r of mine) n.set(rangeOf(r.amount), (n.get(rangeOf(r.amount)) ?? 0) + 1);
      return mine.filter((r) => (n.get(rangeOf(r.amount)) as number) >= k);
    });
    out.set(cat, plaintext(xs, [cat], edges).get(cat) as Expected);
  }
  return out;
}

type OutRow = Record<string, string | null>;

async function readOut(name: string): Promise<OutRow[]> {
  const t = await readTable(file(name));
  const names = t.schema.fields.map((f) => f.name);
  const rows: OutRow[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const row: OutRow = {};
    for (const c of names) {
      const v: unknown = t.getChild(c)?.get(i);
      row[c] = v === null || v === undefined ? null : String(v);
    }
    rows.push(row);
  }
  return rows;
}

function close(actual: string | null, expected: number | null): void {
  if (expected === null) {
    expect(actual).toBeNull();
    return;
  }
  expect(actual).not.toBeNull();
  const a = Number(actual);
  const tol = 1e-9 * Math.max(1, Math.abs(expected));
  expect(Math.abs(a - expected)).toBeLessThanOrEqual(tol);
}

// ------------------------------------------------------------------ setup

const providers: Row[][] = [];
const EDGES = [-MAX, -100, 0, 100, MAX];
/** Distinctive input values that must never reach stderr. */
const secrets = ["999999", "1000000"];

beforeAll(() => {
  providers.push(providerRows(1, 120), providerRows(2, 95), providerRows(3, 140));
  providers.forEach((rows, i) => writeProvider(`p${i}.csv`, rows, false));
  providers.forEach((rows, i) => writeProvider(`d${i}.csv`, rows, true));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const AGG = "count,sum(amount),avg(amount),var(amount),stddev(amount)";

describe("umbra aggregate", () => {
  it("group-by with declared categories and a histogram equals the plaintext computation; small cells suppressed", async () => {
    const r = await run(
      "aggregate",
      ...["--provider", "p0.csv", "--provider", "p1.csv", "--provider", "p2.csv"],
      ...["--agg", AGG, "--group-by", "region", "--categories", CATEGORIES.join(","), "--histogram", `amount:${EDGES.join(",")}`],
      ...["--min-group-size", "5", "--max-abs-value", String(MAX), "--out", "grouped.csv", "--quiet"],
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/cells written: 4 \(suppressed: 1, k = 5\)/);
    expect(r.stdout).toMatch(/providers: 3, rows per provider: 120 \/ 95 \/ 140/);
    expect(r.stdout).toMatch(/bytes: [\d,]+/);
    const out = await readOut("grouped.csv");
    expect(out.map((o) => o["category"])).toEqual(CATEGORIES);
    const expected = plaintextPerProvider(providers, CATEGORIES, EDGES, 5);
    // The rule matters here: some bin differs from the plaintext on the union.
    const union = plaintext(providers.flat(), CATEGORIES, EDGES);
    expect(CATEGORIES.some((c) => union.get(c)?.hist.some((h, b) => h >= 5 && h !== expected.get(c)?.hist[b]))).toBe(true);
    for (const row of out) {
      const e = expected.get(row["category"] as string) as Expected;
      if (row["category"] === "tiny") {
        // 1 row at each provider, under k = 5 at each: left out, suppressed, every value null.
        expect(union.get("tiny")?.count).toBe(3);
        expect(e.count).toBe(0);
        expect(row["suppressed"]).toBe("true");
        for (const [k, v] of Object.entries(row)) if (k !== "category" && k !== "suppressed") expect(v).toBeNull();
        continue;
      }
      expect(row["suppressed"]).toBe("false");
      expect(row["count"]).toBe(String(e.count));
      expect(row["sum_amount"]).toBe(e.sum.toString());
      close(row["avg_amount"] ?? null, e.avg);
      close(row["var_amount"] ?? null, e.var);
      close(row["stddev_amount"] ?? null, e.var === null ? null : Math.sqrt(e.var));
      e.hist.forEach((h, b) => expect(row[`hist_amount_${b}`]).toBe(h < 5 ? null : String(h)));
    }
  });

  it("without group-by, fixed point (--scale 2) on two providers: one cell; sums exact to the cent; Arrow output", async () => {
    const r = await run("aggregate", "--provider", "d0.csv", "--provider=d1.csv", "--agg", "COUNT, sum(amount), avg(amount), var(amount)", "--scale", "2", "--max-abs-value", "10000", "--out", "fixed.arrow", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/cells written: 1 \(suppressed: 0, k = 10\)/);
    const out = await readOut("fixed.arrow");
    expect(out).toHaveLength(1);
    const row = out[0] as OutRow;
    expect(Object.keys(row)).toEqual(["suppressed", "count", "sum_amount", "avg_amount", "var_amount"]);
    const e = plaintextPerProvider([providers[0] as Row[], providers[1] as Row[]], [null], [], 10).get(null) as Expected;
    expect(row["count"]).toBe(String(e.count));
    // The sum in hundredths is exact: round(sum · 100) recovers it.
    expect(BigInt(Math.round(Number(row["sum_amount"]) * 100))).toBe(e.sum);
    close(row["avg_amount"] ?? null, e.avg / 100);
    close(row["var_amount"] ?? null, (e.var as number) / 10_000);
  });

  it("default k = 10 suppresses a cell below it; the note about --max-abs-value goes to stderr", async () => {
    const r = await run("aggregate", "--provider", "p0.csv", "--provider", "p1.csv", "--agg", "count,sum(amount)", "--group-by", "region", "--categories", "north,tiny", "--out", "k10.csv");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/--max-abs-value not given/);
    for (const s of secrets) expect(r.stderr).not.toContain(s);
    const out = await readOut("k10.csv");
    const north = plaintextPerProvider([providers[0] as Row[], providers[1] as Row[]], ["north"], [], 10).get("north") as Expected;
    expect(out).toEqual([
      { category: "north", suppressed: "false", count: String(north.count), sum_amount: north.sum.toString() },
      { category: "tiny", suppressed: "true", count: null, sum_amount: null },
    ]);
  });

  it("usage errors exit 2 with the usage text", async () => {
    const base = ["--provider", "p0.csv", "--provider", "p1.csv", "--out", "u.csv"];
    const cases: string[][] = [
      ["aggregate", "--provider", "p0.csv", "--agg", "count", "--out", "u.csv"],
      ["aggregate", ...base],
      ["aggregate", ...base, "--agg", "median(amount)"],
      ["aggregate", ...base, "--agg", "sum()"],
      ["aggregate", ...base, "--agg", "sum(amount"],
      ["aggregate", ...base, "--agg", "count,,sum(amount)"],
      ["aggregate", ...base, "--agg", "count(amount)"],
      ["aggregate", ...base, "--agg", "sum(amount),sum(amount)"],
      ["aggregate", ...base, "--agg", "count", "--categories", "a,b"],
      ["aggregate", ...base, "--agg", "count", "--group-by", "region"],
      ["aggregate", ...base, "--agg", "count", "--group-by", "region", "--categories", "a,a"],
      ["aggregate", ...base, "--agg", "count", "--histogram", "amount:5,1"],
      ["aggregate", ...base, "--agg", "count", "--histogram", "amount"],
      ["aggregate", ...base, "--agg", "count", "--min-group-size", "0"],
      ["aggregate", ...base, "--agg", "count", "--min-providers", "3"],
      ["aggregate", ...base, "--agg", "count", "--max-abs-value", "-4"],
      ["aggregate", ...base, "--agg", "count", "--scale", "19"],
      ["aggregate", ...base, "--agg", "count", "--frobnicate"],
      ["aggregate", "--provider", "p0.csv", "--provider", "p1.csv", "--agg", "count", "--out", "p0.csv"],
    ];
    const runs = await Promise.all(cases.map((c) => run(...c)));
    runs.forEach((r, i) => {
      expect({ i, status: r.status }).toEqual({ i, status: 2 });
      expect(r.stderr).toMatch(/^umbra: /);
      expect(r.stderr).toContain("Usage:");
      expect(r.stderr).toContain("aggregate --provider FILE");
    });
  });

  it("typed errors exit 1 with the code and no value: a missing column, a value out of range", async () => {
    const [missing, range, group] = await Promise.all([
      run("aggregate", "--provider", "p0.csv", "--provider", "p1.csv", "--agg", "count,sum(nope)", "--out", "m.csv", "--quiet"),
      run("aggregate", "--provider", "p0.csv", "--provider", "p1.csv", "--agg", "sum(amount)", "--max-abs-value", "999", "--out", "m.csv", "--quiet"),
      run("aggregate", "--provider", "p0.csv", "--provider", "p1.csv", "--agg", "count", "--group-by", "nope", "--categories", "a", "--out", "m.csv", "--quiet"),
    ]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^umbra: UMBRA_MISSING_COLUMN: column "nope" not found/);
    expect(group.status).toBe(1);
    expect(group.stderr).toMatch(/^umbra: UMBRA_MISSING_COLUMN: /);
    expect(range.status).toBe(1);
    expect(range.stderr).toMatch(/^umbra: UMBRA_VALUE_OUT_OF_RANGE: /);
    for (const r of [missing, range, group]) {
      expect(r.stderr).not.toContain("Usage:");
      for (const s of secrets) expect(r.stderr).not.toContain(s);
    }
  });
});
