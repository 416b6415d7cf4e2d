/**
 * One join-aggregate benchmark case, run in its own process so its peak RSS
 * is its own (`node dist/bench/join-aggregate-case.js ja|psi|duckdb N`).
 * Prints one line of JSON.
 *
 * The data is the same for every case: the buyer holds keys "customer-<i>"
 * for i in [0, N) with group "g<i mod 10>"; the provider holds keys for i in
 * [N/2, 3N/2) with v(i) = (i · 2654435761 mod 2001) − 1000 — half of each
 * side matches, 10 groups of N/20 joined rows, |v| ≤ 1000.
 *
 * - ja: runJoinAggregate (x25519, every role in this process, every message
 *   serialised), count, sum(v), avg(v), var(v), k = 1;
 * - psi: runPsi on the same key columns (x25519, intersection mode): the
 *   matching alone, what the aggregation adds to;
 * - duckdb: the plaintext SQL join + GROUP BY in DuckDB (in memory, every
 *   core), the tables built by SQL from the same formulas; only the query is
 *   timed.
 */
import { makeVector, Table, Utf8, vectorFromArray } from "apache-arrow";
import { closePool } from "../engine/index.js";
import { runJoinAggregate, runPsi } from "../protocols/index.js";
import { peakRssMiB } from "./table.js";

const GROUPS = 10;
const MAX_ABS = 1000;

/** One result row: group label, COUNT(*), SUM(v), AVG(v), VAR_SAMP(v). */
export type ResultRow = [string, number, number, number, number];

const [kind, nArg] = process.argv.slice(2);
const n = Number(nArg);
const now = (): number => Number(process.hrtime.bigint()) / 1e9;

const value = (i: number): number => ((i * 2654435761) % 2001) - 1000;

function buyerTable(): Table {
  const k: string[] = new Array<string>(n);
  const g: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    k[i] = `customer-${i}`;
    g[i] = `g${i % GROUPS}`;
  }
  return new Table({ k: vectorFromArray(k, new Utf8()), g: vectorFromArray(g, new Utf8()) });
}

function providerTable(): Table {
  const k: string[] = new Array<string>(n);
  const v = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = n / 2 + j;
    k[j] = `customer-${i}`;
    v[j] = value(i);
  }
  return new Table({ k: vectorFromArray(k, new Utf8()), v: makeVector(v) });
}

async function main(): Promise<Record<string, unknown>> {
  if (!Number.isSafeInteger(n) || n < 2 || n % 2 !== 0) throw new Error("N must be an even integer");
  if (kind === "ja") {
    const buyer = buyerTable();
    const provider = providerTable();
    const t0 = now();
    const r = await runJoinAggregate({
      buyer: { table: buyer, keys: ["k"], groupBy: "g" },
      provider: { table: provider, keys: ["k"] },
      aggregates: [{ fn: "count" }, { fn: "sum", column: "v" }, { fn: "avg", column: "v" }, { fn: "var", column: "v" }],
      minGroupSize: 1,
      maxAbsValue: MAX_ABS,
      group: "x25519",
    });
    const seconds = now() - t0;
    const rows: ResultRow[] = [];
    for (let i = 0; i < r.table.numRows; i++) {
      const get = (c: string): unknown => r.table.getChild(c)?.get(i);
      rows.push([String(get("g")), Number(get("count")), Number(get("sum_v")), Number(get("avg_v")), Number(get("var_v"))]);
    }
    return { seconds, rows, bytesSent: r.stats.bytesSent, timings: r.timings, peakMiB: peakRssMiB() };
  }
  if (kind === "psi") {
    const buyer = buyerTable();
    const provider = providerTable();
    const t0 = now();
    const r = await runPsi({ buyer: { table: buyer, keys: ["k"] }, provider: { table: provider, keys: ["k"] }, group: "x25519" });
    const seconds = now() - t0;
    const found = r.matchedRows.length;
    if (found !== n / 2) throw new Error(`wrong intersection: ${found}`);
    return { seconds, bytesSent: { buyer: r.stats.bytesBuyerToProvider, provider: r.stats.bytesProviderToBuyer }, peakMiB: peakRssMiB() };
  }
  if (kind === "duckdb") {
    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(":memory:");
    const c = await db.connect();
    try {
      await c.run(`CREATE TABLE buyer AS SELECT 'customer-' || i AS k, 'g' || (i % ${GROUPS}) AS g FROM range(0, ${n}) t(i)`);
      await c.run(`CREATE TABLE provider AS SELECT 'customer-' || i AS k, CAST(((i * 2654435761) % 2001) - 1000 AS INTEGER) AS v FROM range(${n / 2}, ${(3 * n) / 2}) t(i)`);
      const sql = `SELECT g, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS a, VAR_SAMP(v) AS var FROM buyer JOIN provider USING (k) GROUP BY g HAVING COUNT(*) >= 1 ORDER BY g`;
      const t0 = now();
      const result = await c.runAndReadAll(sql);
      const seconds = now() - t0;
      const rows: ResultRow[] = result.getRowsJS().map((r) => [String(r[0]), Number(r[1]), Number(r[2]), Number(r[3]), Number(r[4])]);
      return { seconds, rows, peakMiB: peakRssMiB() };
    } finally {
      c.closeSync();
      db.closeSync();
    }
  }
  throw new Error(`unknown case ${String(kind)}`);
}

try {
  console.log(JSON.stringify(await main()));
} finally {
  await closePool();
}
