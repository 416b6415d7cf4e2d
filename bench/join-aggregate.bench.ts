/**
 * `npm run bench:join-aggregate`: the secure join-aggregate at 10^5 and 10^6
 * rows per side (half of the keys shared, 10 groups, count, sum(v), avg(v),
 * var(v)) — end-to-end time, bytes sent by each party, peak RSS — beside, in
 * the same run and on the same data, DuckDB's plaintext join + GROUP BY (the
 * price of privacy) and the PSI alone (runPsi, same group: what the
 * aggregation adds to the matching; the target is join-aggregate ≤ 1.3x PSI
 * at 10^6).
 *
 * Each case runs in a child process (bench/join-aggregate-case.ts) so that
 * its peak RSS is its own; times are medians of the repeats, peak RSS the
 * largest. The secure result is checked against DuckDB's.
 *
 * Options: --sizes 100000,1000000 (even numbers), --repeats R (default 3
 * below 10^6 rows per side, 1 from 10^6), --quick (10^4, 1 repeat)
 */
import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import type { ResultRow } from "./join-aggregate-case.js";
import { formatTable, median } from "./table.js";

const args = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`${name} needs a value`);
  return v;
}
const quick = args.includes("--quick");
const sizesArg = option("--sizes");
const sizes = sizesArg !== undefined ? sizesArg.split(",").map(Number) : quick ? [10_000] : [100_000, 1_000_000];
if (sizes.some((s) => !Number.isSafeInteger(s) || s < 2 || s % 2 !== 0)) throw new Error("--sizes needs comma-separated even integers");
const repeatsArg = option("--repeats");
const repeatsFor = (n: number): number => (repeatsArg !== undefined ? Number(repeatsArg) : quick || n >= 1_000_000 ? 1 : 3);
if (repeatsArg !== undefined && (!Number.isSafeInteger(Number(repeatsArg)) || Number(repeatsArg) < 1)) throw new Error("--repeats needs a positive integer");

const caseFile = fileURLToPath(new URL("./join-aggregate-case.js", import.meta.url));

interface CaseResult {
  readonly seconds: number;
  readonly peakMiB: number;
  readonly bytesSent?: Record<string, number>;
  readonly timings?: Record<string, number>;
  readonly rows?: ResultRow[];
}

function runCase(kind: string, n: number): CaseResult {
  process.stderr.write(`  running ${kind} ${n} …\n`);
  const r = spawnSync(process.execPath, [caseFile, kind, String(n)], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`case ${kind} ${n} failed:\n${r.stderr}`);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as CaseResult;
}

/** Repeats a case; the median time, the largest peak RSS, the last run's other fields. */
function measure(kind: string, n: number, repeats: number): CaseResult & { runs: number[] } {
  const results: CaseResult[] = [];
  for (let i = 0; i < repeats; i++) results.push(runCase(kind, n));
  const last = results.at(-1) as CaseResult;
  return { ...last, seconds: median(results.map((r) => r.seconds)), peakMiB: Math.max(...results.map((r) => r.peakMiB)), runs: results.map((r) => r.seconds) };
}

/** The secure rows equal DuckDB's: same groups, counts and sums exactly, avg and var within 1e-9. */
function sameResult(a: readonly ResultRow[] | undefined, b: readonly ResultRow[] | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  const near = (x: number, y: number): boolean => Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(y));
  return a.every((r, i) => {
    const s = b[i] as ResultRow;
    return r[0] === s[0] && r[1] === s[1] && r[2] === s[2] && near(r[3], s[3]) && near(r[4], s[4]);
  });
}

const mb = (b: number | undefined): string => `${((b ?? 0) / 1e6).toFixed(2)} MB`;
const secs = (s: number): string => `${s.toFixed(2)} s`;
const count = (n: number): string => n.toLocaleString("en-US");

function main(): void {
  console.log(`# Umbra join-aggregate benchmark — Node ${process.version}, ${availableParallelism()} cores${quick ? " (quick)" : ""}\n`);
  console.log("Inputs: N rows per side, unique keys, half of them shared; the buyer's group column has 10 values; count, sum(v), avg(v), var(v) of the provider's v, |v| ≤ 1000, k = 1.");
  console.log("join-aggregate: x25519 group on every core, BFV under the buyer's key, all three roles in one process, every message protobuf-encoded and decoded.");
  console.log("PSI only: runPsi (intersection) on the same keys and group. DuckDB: the plaintext SQL join + GROUP BY in memory on every core, query time only.");
  console.log("Each case in its own process; times are medians of the repeats, peak RSS the largest.\n");

  const rows: string[][] = [];
  const phases: string[] = [];
  for (const n of sizes) {
    const repeats = repeatsFor(n);
    const ja = measure("ja", n, repeats);
    const psi = measure("psi", n, repeats);
    const duck = measure("duckdb", n, repeats);
    const b = ja.bytesSent ?? {};
    rows.push([
      count(n),
      String(repeats),
      secs(ja.seconds),
      `${mb(b["buyer"])} / ${mb(b["provider"])} / ${mb(b["exchange"])}`,
      `${ja.peakMiB.toFixed(0)} MiB`,
      secs(psi.seconds),
      `${(ja.seconds / psi.seconds).toFixed(2)}x`,
      `${(duck.seconds * 1000).toFixed(1)} ms`,
      `${(ja.seconds / duck.seconds).toFixed(0)}x`,
      sameResult(ja.rows, duck.rows) ? "= DuckDB" : "MISMATCH",
    ]);
    const t = ja.timings ?? {};
    const runs = (r: { runs: number[] }): string => r.runs.map((x) => x.toFixed(2)).join(", ");
    phases.push(`- ${count(n)}: runs (s): join-aggregate ${runs(ja)}; PSI only ${runs(psi)}; DuckDB ${duck.runs.map((x) => (x * 1000).toFixed(1)).join(", ")} ms`);
    phases.push(`  last join-aggregate run by phase: ${Object.entries(t).map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(2)} s`).join(", ")}`);
  }
  console.log(
    formatTable(
      ["N per side", "runs", "join-aggregate", "bytes sent buyer / provider / exchange", "peak RSS", "PSI only", "JA / PSI", "DuckDB (plaintext)", "JA / DuckDB", "result"],
      rows,
    ),
  );
  console.log("\nEvery run, and the phases of the last join-aggregate run as the runner reports them:\n");
  console.log(phases.join("\n"));
}

main();
