/**
 * `umbra join-aggregate`: the secure join-aggregate of a buyer file and a
 * provider file, every role — the buyer (key column(s), optional group
 * column), the provider (key column(s), numeric columns) and the exchange
 * (matcher and aggregator) — played in this process by `runJoinAggregate`
 * (the real protocol, every message serialised). The result equals
 *
 *   SELECT g, COUNT(*), SUM(v), AVG(v), VAR_SAMP(v), STDDEV_SAMP(v)
 *   FROM buyer JOIN provider USING (key) GROUP BY g HAVING COUNT(*) >= k
 *
 * with keys normalised (trim + NFC, optionally digits-only / case-folded) and
 * a null or empty key never matching. Nothing here prints a key or a cell
 * value: the summary holds counts, byte sizes, times, file names and column
 * names only; the aggregates go to --out alone.
 *
 * With --rho R (or --epsilon E [--delta D], converted to the largest ρ whose
 * ε at δ is at most E, node/epsilon.ts) the provider and
 * the exchange each add a share of discrete Gaussian noise to every released
 * total (protocols/join-aggregate/dp.ts); the summary states ρ, ε, the
 * contribution bounds and each statistic's noise σ and 95% half-width.
 */
import type { Table } from "apache-arrow";
import { FileFormat, formatFromPath, writeTable, type CsvColumnType } from "../../engine/columns/index.js";
import { GroupId } from "../../engine/group/index.js";
import { HE_MAX_SCALE } from "../../engine/he/index.js";
import { closePool } from "../../engine/pool/index.js";
import { CLUSTER_OPTIONS, clusterPoolOption } from "./worker.js";
import { JA_DP_MAX_ROWS_PER_KEY, runJoinAggregate, type AggregateSpec, type JaDpParams, type JaDpSummary, type JaRunResult } from "../../protocols/index.js";
import { createProgress } from "../progress.js";
import { AGGREGATE_DEFAULT_MAX_ABS, DEFAULT_MIN_GROUP_SIZE, dpRhoOption, parseAggList } from "./aggregate.js";
import { checkOutput, count, maxAbsValueOption, minGroupSizeOption, parseOptions, processIO, requireColumns, seconds, UsageError, type CommandIO, type OptionSpec } from "./args.js";
import { withExactSums } from "../jobs/exact-sums.js";
import { noteScan, readInput, scanValueColumn, warnKeyShapes, warnUnmatchable, type InputFile } from "./data-checks.js";
import { JSON_USAGE_NOTE, Report } from "./report.js";

export const JOIN_AGGREGATE_USAGE = `  join-aggregate --buyer FILE --provider FILE --key COL[,COL...]
      --agg "count,sum(COL),avg(COL),var(COL),stddev(COL)" --out FILE
      [--buyer-key COL[,COL...]] [--provider-key COL[,COL...]] [--group-by COL]
      [--min-group-size K] [--max-abs-value X] [--scale S]
      [--group x25519|ristretto255] [--digits-only] [--case-fold]
      [--rho R | --epsilon E [--delta D]] [--max-rows-per-key N]
      [--delimiter C] [--json] [--quiet] [--cluster REDIS_URL --cluster-key FILE]
                 secure join + aggregate: COUNT/SUM/AVG/VAR/STDDEV of the
                 provider's columns over the rows of buyer JOIN provider on the
                 key, per value of the buyer's --group-by column; writes one
                 row per group (.csv/.arrow/.parquet: the group column, count, sum_COL,
                 avg_COL, var_COL, stddev_COL), groups with fewer than K
                 matched keys or K joined rows left out (K default ${DEFAULT_MIN_GROUP_SIZE});
                 --buyer-key / --provider-key name the key columns of one side
                 when they differ (--key then may be omitted); var/stddev are
                 sample statistics; --max-abs-value bounds |value| of every
                 aggregated column (default 2^40), --scale keeps S decimal
                 digits (default 0: integer columns).
                 --rho R adds differential privacy, ρ-zCDP in all (e.g. 1/10):
                 the provider and the exchange each add a share of discrete
                 Gaussian noise to every released total under encryption;
                 --epsilon E instead takes ε at δ = D (--delta, default 1e-6)
                 and uses the largest ρ (4 significant digits, rounded down)
                 whose ε at δ is at most E (CKS20's zCDP → (ε, δ) conversion,
                 as umbra aggregate; the summary states both). With either, the
                 buyer's rows per key beyond --max-rows-per-key N (default 1)
                 are dropped, values are clipped to --max-abs-value, every
                 group is computed and groups whose noisy count is below K are
                 left out (docs/differential-privacy.md).
                 Nulls: a provider row with no value in an aggregated column is
                 skipped by that column's SUM/AVG/VAR/STDDEV, as SQL skips
                 nulls (count still counts the joined row); a note says how
                 many. Values with more decimals than --scale are rounded (a
                 warning counts them); a file with no rows or a key column
                 blank in every row gets a warning. --delimiter sets the CSV
                 inputs' field delimiter (default ","; "tab" for a tab);
                 ${JSON_USAGE_NOTE}
                 (join-aggregate: "groups", "suppressed", "k", "rows", "bytes", with
                 --rho or --epsilon "dp")
`;

const USAGE = `Usage:\n${JOIN_AGGREGATE_USAGE}`;

const JOIN_AGGREGATE_OPTIONS: OptionSpec = {
  ...CLUSTER_OPTIONS,
  "--buyer": "string",
  "--provider": "string",
  "--key": "string",
  "--buyer-key": "string",
  "--provider-key": "string",
  "--group-by": "string",
  "--agg": "string",
  "--min-group-size": "string",
  "--max-abs-value": "string",
  "--scale": "string",
  "--group": "string",
  "--rho": "string",
  "--epsilon": "string",
  "--delta": "string",
  "--max-rows-per-key": "string",
  "--out": "string",
  "--digits-only": "flag",
  "--case-fold": "flag",
  "--delimiter": "string",
  "--json": "flag",
  "--quiet": "flag",
};

/** The key columns of each side: --buyer-key / --provider-key, each falling back on --key. */
function keyColumns(o: NonNullable<ReturnType<typeof parseOptions>>): { buyer: string[]; provider: string[] } {
  const both = o.list("--key");
  const buyer = o.list("--buyer-key") ?? both;
  const provider = o.list("--provider-key") ?? both;
  if (buyer === undefined || provider === undefined) {
    throw new UsageError("--key COL[,COL...] is required (or both --buyer-key and --provider-key)", USAGE);
  }
  if (buyer.length !== provider.length) {
    throw new UsageError(`the buyer's key has ${buyer.length} column(s) and the provider's ${provider.length}: a composite key needs the same number on both sides, in the same order`, USAGE);
  }
  return { buyer, provider };
}

/**
 * With scale 0, the sum columns as exact Int64 (the runner's table has
 * Float64, exact only to 2^53) when every sum fits; otherwise the table as it is.
 */
function exactSums(run: JaRunResult, aggregates: readonly AggregateSpec[]): Table {
  if (run.result.scale !== 0) return run.table;
  return withExactSums(run.table, aggregates, (column) => run.result.groups.map((g) => g.columns[column]?.sum ?? null));
}

/** --rho, --epsilon [--delta] (node/commands/aggregate.ts dpRhoOption, node/epsilon.ts) and --max-rows-per-key as the job's dp, or undefined without either. */
function dpOption(o: NonNullable<ReturnType<typeof parseOptions>>): JaDpParams | undefined {
  const cap = o.integer("--max-rows-per-key", JA_DP_MAX_ROWS_PER_KEY);
  const rho = dpRhoOption(o, USAGE);
  if (rho === undefined) {
    if (cap !== undefined) throw new UsageError("--max-rows-per-key applies with --rho or --epsilon only", USAGE);
    return undefined;
  }
  if (cap !== undefined && cap < 1) throw new UsageError(`--max-rows-per-key needs an integer in [1, ${JA_DP_MAX_ROWS_PER_KEY}]`, USAGE);
  return { rho, ...(cap !== undefined ? { maxRowsPerKey: cap } : {}) };
}

/** The noise of a DP run, per statistic: its σ and 95% half-width in the value's units — scales, never a value. */
function dpNoise(dp: JaDpSummary, scale: number) {
  const f = 10 ** scale;
  return dp.statistics.map((st) => {
    const [n, d] = st.variance.split("/").map(Number) as [number, number];
    const unit = st.name.startsWith("sum(") ? f : st.name.startsWith("sumsq(") ? f * f : 1;
    return { name: st.name, sigma: st.sigma / unit, halfWidth95: Math.ceil(Math.sqrt(2 * (n / d) * Math.log(40))) / unit };
  });
}

/** `umbra join-aggregate ...`; returns the exit code. */
export async function joinAggregateCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const o = parseOptions(args, JOIN_AGGREGATE_OPTIONS, USAGE);
  if (o === undefined) {
    io.out(USAGE.trimEnd());
    return 0;
  }
  const buyerPath = o.require("--buyer");
  const providerPath = o.require("--provider");
  const keys = keyColumns(o);
  const aggregates = parseAggList(o.require("--agg"), USAGE);
  const out = o.require("--out");
  const groupBy = o.get("--group-by")?.trim();
  if (groupBy === "") throw new UsageError("--group-by needs a column name", USAGE);
  const minGroupSize = minGroupSizeOption(o, USAGE) ?? DEFAULT_MIN_GROUP_SIZE;
  const scale = o.integer("--scale", HE_MAX_SCALE) ?? 0;
  const maxAbs = maxAbsValueOption(o, USAGE);
  const maxAbsValue = maxAbs?.value ?? AGGREGATE_DEFAULT_MAX_ABS;
  const groupName = o.get("--group") ?? GroupId.X25519;
  if (groupName !== GroupId.X25519 && groupName !== GroupId.Ristretto255) throw new UsageError("--group must be x25519 or ristretto255", USAGE);
  const group: GroupId = groupName;
  const dp = dpOption(o);
  checkOutput(out, [buyerPath, providerPath], USAGE);
  const keyOptions = o.keyOptions();
  const delimiter = o.delimiter();
  const buyerFile: InputFile = { role: "buyer", path: buyerPath, delimiter };
  const providerFile: InputFile = { role: "provider", path: providerPath, delimiter };

  // What each file must hold; a CSV parses the aggregated columns as numbers.
  const valueColumns = [...new Set(aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])))];
  const buyerColumns = [...new Set([...keys.buyer, ...(groupBy !== undefined ? [groupBy] : [])])];
  const providerColumns = [...new Set([...keys.provider, ...valueColumns])];
  const numericType: CsvColumnType = scale === 0 ? "int64" : "float64";
  const columnTypes: Record<string, CsvColumnType> = {};
  for (const c of valueColumns) columnTypes[c] = numericType;
  const providerCsv = formatFromPath(providerPath) === FileFormat.Csv;

  const quiet = o.has("--quiet");
  const report = new Report(io, o.has("--json"), quiet);
  if (maxAbs === undefined && valueColumns.length > 0) report.note("--max-abs-value not given: every aggregated value must satisfy |value| <= 2^40");
  const pool = await clusterPoolOption(o, USAGE);
  const progress = createProgress({ quiet });
  const t0 = performance.now();
  let run: JaRunResult;
  let protocolMs: number;
  let rows: { buyer: number; provider: number };
  try {
    progress.onProgress("read files", 0, 2);
    const [buyer, provider] = await Promise.all([
      readInput(buyerFile, { columns: buyerColumns }),
      readInput(providerFile, { columns: providerColumns, ...(providerCsv && valueColumns.length > 0 ? { columnTypes } : {}) }),
    ]);
    requireColumns(buyer, buyerColumns, "buyer", buyerPath, delimiter);
    requireColumns(provider, providerColumns, "provider", providerPath, delimiter);
    warnUnmatchable(report, buyer, keys.buyer, buyerFile);
    warnUnmatchable(report, provider, keys.provider, providerFile);
    warnKeyShapes(report, buyer, provider, keys, keyOptions);
    const rule = { boundText: maxAbs?.text, bound: maxAbsValue, scale, approximate: false };
    for (const column of valueColumns) {
      const scan = await scanValueColumn(provider, column, providerFile, rule);
      noteScan(report, column, providerFile, scan, `SUM/AVG/VAR/STDDEV of "${column}" skip those rows, as SQL skips nulls (count still counts them)`);
    }
    rows = { buyer: buyer.numRows, provider: provider.numRows };
    progress.onProgress("read files", 2, 2);
    const t1 = performance.now();
    run = await runJoinAggregate({
      buyer: { table: buyer, keys: keys.buyer, normalise: keyOptions, ...(groupBy !== undefined ? { groupBy } : {}) },
      provider: { table: provider, keys: keys.provider, normalise: keyOptions },
      aggregates,
      minGroupSize,
      maxAbsValue,
      scale,
      group,
      ...(dp ? { dp } : {}),
      ...(pool ? { pool } : {}),
      onProgress: progress.onProgress,
    });
    protocolMs = performance.now() - t1;
  } finally {
    progress.finish();
    await pool?.close();
    await closePool();
  }

  await writeTable(out, exactSums(run, aggregates));
  const sent = run.stats.bytesSent;
  const total = Object.values(sent).reduce((s, b) => s + b, 0);
  report.finish(
    [
      `groups written: ${count(run.table.numRows)} (suppressed: ${count(run.suppressedGroups)}, k = ${count(minGroupSize)}) to ${out}; ` +
        `rows: buyer ${count(rows.buyer)}, provider ${count(rows.provider)}; ` +
        `bytes: ${count(total)} (buyer ${count(sent["buyer"] ?? 0)}, provider ${count(sent["provider"] ?? 0)}, exchange ${count(sent["exchange"] ?? 0)}); ` +
        `${seconds(performance.now() - t0)} (protocol ${seconds(protocolMs)})`,
      ...(run.result.dp
        ? [
            `differential privacy: ρ = ${run.result.dp.rho} zCDP (ε = ${run.result.dp.epsilonAtDelta1e6.toPrecision(3)} at δ = 1e-6), noise added by the provider and the exchange (distributed discrete Gaussian); ` +
              `buyer rows per key capped at ${run.result.dp.maxRowsPerKey}, values clipped to ±${maxAbs?.text ?? "2^40"}; ` +
              `noise per released value: ${dpNoise(run.result.dp, scale).map((x) => `${x.name} σ = ${x.sigma.toPrecision(3)}, 95% ± ${x.halfWidth95.toPrecision(3)}`).join("; ")}`,
          ]
        : []),
    ],
    {
      command: "join-aggregate",
      groups: run.table.numRows,
      suppressed: run.suppressedGroups,
      k: minGroupSize,
      rows,
      bytes: { total, buyer: sent["buyer"] ?? 0, provider: sent["provider"] ?? 0, exchange: sent["exchange"] ?? 0 },
      out,
      seconds: (performance.now() - t0) / 1000,
      ...(run.result.dp ? { dp: { rho: run.result.dp.rho, epsilonAtDelta1e6: run.result.dp.epsilonAtDelta1e6, maxRowsPerKey: run.result.dp.maxRowsPerKey, noise: dpNoise(run.result.dp, scale) } } : {}),
    },
  );
  return 0;
}
