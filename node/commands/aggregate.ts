/**
 * `umbra aggregate`: federated aggregation (COUNT / SUM / AVG / VAR / STDDEV,
 * histograms, per declared category) across N ≥ 2 provider files, every role
 * — the buyer (key holder), the exchange and each provider — played in this
 * process by `runFederatedAggregate` (the real protocol, every message
 * serialised). Nothing here prints a cell value of an input: the summary
 * holds counts, byte sizes, times, file names and column names only; the
 * aggregates go to --out alone.
 */
import { basename } from "node:path";
import type { Table } from "apache-arrow";
import { writeTable } from "../../engine/columns/index.js";
import { closePool } from "../../engine/pool/index.js";
import { HE_MAX_SCALE } from "../../engine/he/index.js";
import { faResultTable, parseRho, runFederatedAggregate, type AggregateSpec, type FaDpSummary, type FaRunResult } from "../../protocols/index.js";
import { AGGREGATE_DEFAULT_MAX_ABS } from "../jobs/aggregate-job.js";
import { faOutputTable, readAggregateInput } from "../jobs/federated-aggregate.js";
import { DEFAULT_DELTA, rhoForEpsilon } from "../epsilon.js";
import { createProgress } from "../progress.js";
import { explainReadError, noteScan, rowsOutsideCategories, scanValueColumn, type InputFile } from "./data-checks.js";
import { JSON_USAGE_NOTE, Report } from "./report.js";
import {
  checkOutput,
  count,
  maxAbsValueOption,
  minGroupSizeOption,
  parseOptions,
  processIO,
  requireColumns,
  seconds,
  takeRepeated,
  UsageError,
  type CommandIO,
  type MaxAbsValue,
  type OptionSpec,
  type Options,
} from "./args.js";

// ------------------------------------------------------------------ aggregate

/** k when --min-group-size is not given (umbra aggregate and umbra join-aggregate): the node's default policy's minimum group size. */
export const DEFAULT_MIN_GROUP_SIZE = 10;
export { AGGREGATE_DEFAULT_MAX_ABS };

export const AGGREGATE_USAGE = `  aggregate --provider FILE --provider FILE [--provider FILE ...]
      --agg "count,sum(COL),avg(COL),var(COL),stddev(COL)" --out FILE
      [--group-by COL --categories A,B,C] [--histogram COL:E0,E1,...,En]
      [--min-group-size K] [--min-providers N] [--max-abs-value X] [--scale S]
      [--approximate] [--rho R | --epsilon E [--delta D]] [--delimiter C] [--json] [--quiet]
                 federated aggregation across N >= 2 providers under a buyer's
                 BFV key, with masks between providers that cancel in the sum;
                 writes one row per cell (category) to --out (.csv/.arrow/.parquet);
                 cells whose total count is below K are written with
                 suppressed=true and null values (K default ${DEFAULT_MIN_GROUP_SIZE}); var/stddev are
                 sample statistics; histogram bins are [Ei, Ei+1), the last
                 closed; --max-abs-value bounds |value| of every aggregated column
                 (default 2^40), --scale keeps S decimal digits (default 0:
                 integer columns); --min-providers default 2; --approximate
                 uses CKKS instead (values as doubles, --scale unused): each
                 result gets a bound_<name> column, counts are exact only
                 when their bound is below 0.5, and a provider's vector is
                 hidden only statistically (~20 bits per slot) — see
                 docs/protocols/federated-aggregate.md. --rho R adds
                 differential privacy (ρ-zCDP in all, e.g. 1/10): each provider
                 adds its share of discrete Gaussian noise before masking;
                 --epsilon E says it as (E, D)-DP instead (D = --delta, default
                 1e-6): ρ is the largest of 4 significant digits, rounded down,
                 whose CKS20 conversion gives ε <= E (not with --rho);
                 the summary prints each value's noise σ and 95% half-width
                 (docs/differential-privacy.md; use --min-group-size 1 with
                 it: k multiplies the noise).
                 Nulls: a row with no value in an aggregated (or the histogram)
                 column is skipped, as SQL skips nulls — out of its cell's
                 count too (AVG divides by it); a note says how many. Rows whose
                 --group-by value is not in --categories are in no cell (a note
                 counts them); values with more decimals than --scale are
                 rounded (a warning counts them). --delimiter sets the CSV
                 inputs' field delimiter (default ","; "tab" for a tab);
                 ${JSON_USAGE_NOTE}
                 (aggregate: "cells", "suppressed", "k", "rowsPerProvider", "bytes")
`;

/** The options that describe a federated computation: `umbra aggregate` and `umbra job submit --protocol federated-aggregate` share them. */
export const COMPUTATION_OPTIONS: OptionSpec = {
  "--agg": "string",
  "--group-by": "string",
  "--categories": "string",
  "--histogram": "string",
  "--min-group-size": "string",
  "--min-providers": "string",
  "--max-abs-value": "string",
  "--scale": "string",
  "--approximate": "flag",
  "--rho": "string",
  "--epsilon": "string",
  "--delta": "string",
};

const AGGREGATE_OPTIONS: OptionSpec = {
  "--provider": "string",
  ...COMPUTATION_OPTIONS,
  "--out": "string",
  "--delimiter": "string",
  "--json": "flag",
  "--quiet": "flag",
};

const AGG_FNS = ["count", "sum", "avg", "var", "stddev"] as const;
type AggFn = (typeof AGG_FNS)[number];

/**
 * Parses an --agg list: `count` (or `count(*)`), `sum(COL)`, `avg(COL)`,
 * `var(COL)`, `stddev(COL)`, comma-separated, none twice. Function names are
 * case-insensitive; column names are taken as written (trimmed).
 * @throws UsageError for anything else.
 */
export function parseAggList(text: string, usage: string): AggregateSpec[] {
  const specs: AggregateSpec[] = [];
  const seen = new Set<string>();
  // Split on the commas outside parentheses.
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      items.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new UsageError(`--agg: unbalanced parentheses`, usage);
  }
  if (depth !== 0) throw new UsageError(`--agg: unbalanced parentheses`, usage);
  items.push(text.slice(start));
  for (const raw of items) {
    const item = raw.trim();
    if (item === "") throw new UsageError(`--agg: empty entry (expected e.g. "count,sum(amount),avg(amount)")`, usage);
    const m = /^([A-Za-z]+)\s*(?:\(\s*([^()]*?)\s*\))?$/.exec(item);
    const fn = m?.[1]?.toLowerCase();
    if (m === null || fn === undefined || !(AGG_FNS as readonly string[]).includes(fn)) {
      throw new UsageError(`--agg: "${item}" is not one of count, sum(COL), avg(COL), var(COL), stddev(COL)`, usage);
    }
    const column = m[2];
    let spec: AggregateSpec;
    if (fn === "count") {
      if (column !== undefined && column !== "*" && column !== "") throw new UsageError(`--agg: count takes no column (count counts rows)`, usage);
      spec = { fn: "count" };
    } else {
      if (column === undefined || column === "" || column === "*") throw new UsageError(`--agg: ${fn} needs a column, as ${fn}(COL)`, usage);
      spec = { fn: fn as Exclude<AggFn, "count">, column };
    }
    const id = spec.fn === "count" ? "count" : `${spec.fn}(${spec.column})`;
    if (seen.has(id)) throw new UsageError(`--agg: ${id} is asked twice`, usage);
    seen.add(id);
    specs.push(spec);
  }
  return specs;
}

/** Parses `COL:E0,E1,...` (the column is everything before the last colon). */
export function parseHistogram(text: string, usage: string): { column: string; edges: number[] } {
  const at = text.lastIndexOf(":");
  const column = at < 0 ? "" : text.slice(0, at).trim();
  if (at < 0 || column === "") throw new UsageError(`--histogram needs COL:E0,E1,... (a column and at least two bin edges)`, usage);
  const parts = text.slice(at + 1).split(",").map((s) => s.trim());
  const edges = parts.map((s) => (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : NaN));
  if (edges.length < 2 || edges.some((e) => !Number.isFinite(e))) throw new UsageError(`--histogram needs at least two finite numeric bin edges after the colon`, usage);
  for (let i = 1; i < edges.length; i++) {
    if (!((edges[i] as number) > (edges[i - 1] as number))) throw new UsageError(`--histogram bin edges must be strictly increasing`, usage);
  }
  return { column, edges };
}

/** The declared categories: comma-separated, no empty entry, none twice. */
function parseCategories(text: string, usage: string): string[] {
  const items = text.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) throw new UsageError("--categories needs a comma-separated list with no empty entries", usage);
  if (new Set(items).size !== items.length) throw new UsageError("--categories names a category twice", usage);
  return items;
}

/** A federated computation as the command line describes it (COMPUTATION_OPTIONS); what is not given is undefined. */
export interface ComputationOptions {
  readonly aggregates: AggregateSpec[];
  readonly groupBy?: { column: string; categories: string[] };
  readonly histogram?: { column: string; edges: number[] };
  /** k (--min-group-size). */
  readonly minGroupSize?: number;
  readonly minProviders?: number;
  readonly scale?: number;
  /** --max-abs-value as given (the decimal text), and its value. */
  readonly maxAbsValue?: MaxAbsValue;
  /** --approximate: CKKS with an error bound beside every result (exact BFV otherwise). */
  readonly approximate?: boolean;
  /** --rho (or --epsilon, converted): differential privacy, ρ-zCDP in all, as "num/den" (protocols/federated-aggregate/dp.ts). */
  readonly rho?: string;
}

/**
 * Parses the computation options (--agg required; --group-by with
 * --categories; --histogram; --min-group-size ≥ 1; --min-providers from 2
 * to `providers`; --max-abs-value; --scale).
 * @throws UsageError for anything malformed.
 */
export function parseComputation(o: Options, providers: number, usage: string): ComputationOptions {
  const aggregates = parseAggList(o.require("--agg"), usage);
  const groupColumn = o.get("--group-by");
  const categoriesText = o.get("--categories");
  if (categoriesText !== undefined && groupColumn === undefined) throw new UsageError("--categories needs --group-by", usage);
  if (groupColumn !== undefined && categoriesText === undefined) throw new UsageError("--group-by needs --categories (the cells are declared, never read from the data)", usage);
  const groupBy = groupColumn !== undefined ? { column: groupColumn.trim(), categories: parseCategories(categoriesText as string, usage) } : undefined;
  if (groupBy && groupBy.column === "") throw new UsageError("--group-by needs a column name", usage);
  const histogramText = o.get("--histogram");
  const histogram = histogramText !== undefined ? parseHistogram(histogramText, usage) : undefined;
  const minGroupSize = minGroupSizeOption(o, usage);
  const minProviders = o.integer("--min-providers");
  if (minProviders !== undefined && minProviders < 2) throw new UsageError("--min-providers needs an integer of at least 2", usage);
  if (minProviders !== undefined && minProviders > providers) throw new UsageError(`--min-providers is ${minProviders} but only ${providers} providers are given`, usage);
  const scale = o.integer("--scale", HE_MAX_SCALE);
  const maxAbsValue = maxAbsValueOption(o, usage);
  const rho = dpRhoOption(o, usage);
  if (rho !== undefined && o.has("--approximate")) throw new UsageError(`${o.has("--epsilon") ? "--epsilon" : "--rho"} needs exact arithmetic: drop --approximate`, usage);
  return {
    aggregates,
    ...(groupBy ? { groupBy } : {}),
    ...(histogram ? { histogram } : {}),
    ...(minGroupSize !== undefined ? { minGroupSize } : {}),
    ...(minProviders !== undefined ? { minProviders } : {}),
    ...(scale !== undefined ? { scale } : {}),
    ...(maxAbsValue ? { maxAbsValue } : {}),
    ...(o.has("--approximate") ? { approximate: true } : {}),
    ...(rho !== undefined ? { rho } : {}),
  };
}

/**
 * The job's zCDP ρ as "num/den" from --rho R, or from --epsilon E [--delta D]
 * (node/epsilon.ts: the largest ρ of four significant digits, rounded down,
 * that is (E, D)-DP; D default 1e-6); undefined when neither is given.
 * @throws UsageError for a malformed value, both flags, or --delta without --epsilon
 */
export function dpRhoOption(o: Options, usage: string): string | undefined {
  const rhoText = o.get("--rho");
  const epsilonText = o.get("--epsilon");
  const deltaText = o.get("--delta");
  if (rhoText !== undefined && epsilonText !== undefined) throw new UsageError("--rho and --epsilon are two ways to say the same budget: give one of them", usage);
  if (deltaText !== undefined && epsilonText === undefined) throw new UsageError("--delta applies to --epsilon only (the δ at which ε is meant)", usage);
  if (rhoText !== undefined) {
    try {
      const r = parseRho(rhoText);
      return `${r.num}/${r.den}`;
    } catch {
      throw new UsageError('--rho needs a positive zCDP ρ: "num/den" (e.g. 1/10) or a decimal (0.1, 1e-3)', usage);
    }
  }
  if (epsilonText === undefined) return undefined;
  const number = (text: string) => (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim()) ? Number(text) : NaN);
  const epsilon = number(epsilonText);
  if (!(Number.isFinite(epsilon) && epsilon > 0)) throw new UsageError("--epsilon needs a positive number (e.g. 1 or 0.5)", usage);
  const delta = deltaText === undefined ? DEFAULT_DELTA : number(deltaText);
  if (!(delta > 0 && delta < 1)) throw new UsageError("--delta needs a number between 0 and 1 (e.g. 1e-6)", usage);
  try {
    const r = rhoForEpsilon(epsilon, delta);
    return `${r.num}/${r.den}`;
  } catch {
    throw new UsageError(`--epsilon ${epsilonText} is too small to spend any ρ at δ = ${delta}`, usage);
  }
}

/** `umbra aggregate ...`; returns the exit code. */
export async function aggregateCommand(args: readonly string[], io: CommandIO = processIO): Promise<number> {
  const usage = `Usage:\n${AGGREGATE_USAGE}`;
  const { values: providerPaths, rest } = takeRepeated(args, "--provider", usage);
  const o = parseOptions(rest, AGGREGATE_OPTIONS, usage);
  if (o === undefined) {
    io.out(usage.trimEnd());
    return 0;
  }
  if (providerPaths.length < 2) throw new UsageError(`at least two --provider files are needed (got ${providerPaths.length})`, usage);
  const out = o.require("--out");
  const c = parseComputation(o, providerPaths.length, usage);
  const { aggregates, groupBy, histogram } = c;
  const minGroupSize = c.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  const minProviders = c.minProviders ?? 2;
  const scale = c.scale ?? 0;
  const maxAbsValue = c.maxAbsValue?.value ?? AGGREGATE_DEFAULT_MAX_ABS;
  checkOutput(out, providerPaths, usage);
  const delimiter = o.delimiter();

  const quiet = o.has("--quiet");
  const report = new Report(io, o.has("--json"), quiet);
  const approximate = c.approximate === true;
  const progress = createProgress({ quiet });
  const valueColumns = [...new Set(aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])))];
  if (c.maxAbsValue === undefined && valueColumns.length > 0) report.note("--max-abs-value not given: every aggregated value must satisfy |value| <= 2^40");
  if (c.rho !== undefined && o.has("--epsilon")) report.note(`--epsilon ${o.get("--epsilon")} at δ = ${o.get("--delta") ?? "1e-6"}: ρ = ${c.rho} zCDP (the largest of 4 significant digits whose ε is at most that)`);
  const rule = { boundText: c.maxAbsValue?.text, bound: maxAbsValue, scale, approximate };
  const t0 = performance.now();
  let run: FaRunResult;
  let protocolMs: number;
  const rows: number[] = [];
  try {
    const tables: Table[] = [];
    for (let i = 0; i < providerPaths.length; i++) {
      const path = providerPaths[i] as string;
      progress.onProgress("read providers", i, providerPaths.length);
      const file: InputFile = { role: `provider ${i + 1}`, path, delimiter };
      let read: { table: Table; columns: string[] };
      try {
        read = await readAggregateInput(path, { aggregates, ...(groupBy ? { groupBy } : {}), ...(histogram ? { histogram } : {}), scale, approximate }, { delimiter });
      } catch (err) {
        throw explainReadError(err, file);
      }
      const { table, columns } = read;
      requireColumns(table, columns, file.role, path, delimiter);
      for (const column of valueColumns) {
        const scan = await scanValueColumn(table, column, file, rule);
        noteScan(report, column, file, scan, "those rows are skipped (out of every aggregate of their cell, count included)");
      }
      if (histogram && !valueColumns.includes(histogram.column)) {
        const scan = await scanValueColumn(table, histogram.column, file, { ...rule, bound: Number.MAX_VALUE, boundText: "", approximate: true });
        noteScan(report, histogram.column, file, { ...scan, rounded: 0 }, "those rows are skipped (out of every aggregate of their cell, count included)");
      }
      if (groupBy) {
        const outside = rowsOutsideCategories(table, groupBy.column, groupBy.categories);
        if (outside > 0) report.note(`${count(outside)} row(s) of provider ${i + 1} file "${basename(path)}" have a --group-by "${groupBy.column}" value not in --categories (or none): they are in no cell`);
      }
      tables.push(table);
      rows.push(table.numRows);
    }
    progress.onProgress("read providers", providerPaths.length, providerPaths.length);
    progress.onProgress("federated-aggregate", 0, 1);
    const t1 = performance.now();
    run = await runFederatedAggregate({
      providers: tables.map((table) => ({ table })),
      aggregates,
      ...(groupBy ? { groupBy } : {}),
      ...(histogram ? { histogram } : {}),
      minProviders,
      minGroupSize: minGroupSize,
      maxAbsValue,
      scale,
      ...(approximate ? { approximate: true } : {}),
      ...(c.rho !== undefined ? { dp: { rho: c.rho } } : {}),
    });
    protocolMs = performance.now() - t1;
    progress.onProgress("federated-aggregate", 1, 1);
  } finally {
    progress.finish();
    await closePool();
  }

  const shape = { aggregates, ...(groupBy ? { groupBy } : {}), ...(histogram ? { histogram } : {}) };
  await writeTable(out, run.result.approximate ? faResultTable(run.result, shape) : faOutputTable(run.result, shape));
  const cells = run.result.cells.length;
  const suppressed = run.result.cells.filter((c) => c.suppressed).length;
  const sent = run.stats.bytesSent;
  const total = Object.values(sent).reduce((s, b) => s + b, 0);
  const providerBytes = Object.entries(sent).reduce((s, [role, b]) => (role.startsWith("provider-") ? s + b : s), 0);
  report.finish(
    [
      `cells written: ${count(cells)} (suppressed: ${count(suppressed)}, k = ${count(minGroupSize)}) to ${out}; ` +
        `providers: ${providerPaths.length}, rows per provider: ${rows.map(count).join(" / ")}; ` +
        `bytes: ${count(total)} (buyer ${count(sent["buyer"] ?? 0)}, exchange ${count(sent["exchange"] ?? 0)}, providers ${count(providerBytes)}); ` +
        `${seconds(performance.now() - t0)} (protocol ${seconds(protocolMs)})`,
      ...(run.result.dp ? dpLines(run.result.dp, scale) : []),
    ],
    {
      command: "aggregate",
      cells,
      suppressed,
      k: minGroupSize,
      rowsPerProvider: rows,
      bytes: { total, buyer: sent["buyer"] ?? 0, exchange: sent["exchange"] ?? 0, providers: providerBytes },
      out,
      seconds: (performance.now() - t0) / 1000,
      ...(run.result.dp ? { dp: dpJson(run.result.dp) } : {}),
    },
  );
  return 0;
}

/** The noise of a DP run, per statistic: its σ (total, in the value's units) and 95% half-width — scales, never a value. */
function dpNoise(dp: FaDpSummary) {
  return dp.statistics.map((st) => {
    const [n, d] = st.variance.split("/").map(Number) as [number, number];
    const sigma = Math.sqrt(n / d);
    return { name: st.name, sigma, halfWidth95: Math.ceil(Math.sqrt(2 * (n / d) * Math.log(40))) };
  });
}

function dpLines(dp: FaDpSummary, scale: number): string[] {
  const f = 10 ** scale;
  const unit = (name: string, x: number) => (name.startsWith("sum(") ? x / f : name.startsWith("sumsq(") ? x / (f * f) : x);
  return [
    `differential privacy: ρ = ${dp.rho} zCDP (ε = ${dp.epsilonAtDelta1e6.toPrecision(3)} at δ = 1e-6), noise added by each of ${dp.providers} providers (distributed discrete Gaussian); ` +
      `noise per released value: ${dpNoise(dp).map((x) => `${x.name} σ = ${unit(x.name, x.sigma).toPrecision(3)}, 95% ± ${unit(x.name, x.halfWidth95).toPrecision(3)}`).join("; ")}`,
  ];
}

function dpJson(dp: FaDpSummary) {
  return { rho: dp.rho, epsilonAtDelta1e6: dp.epsilonAtDelta1e6, providers: dp.providers, noise: dpNoise(dp) };
}
