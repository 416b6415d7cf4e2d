/**
 * runFederatedAggregate: plays the buyer, the exchange and every provider of
 * federated-aggregate in this process over the serialising in-memory
 * transport. Arrow tables in, one Arrow table out: one row per cell.
 *
 * Output columns: `category` (Utf8, with group-by only), `suppressed`
 * (Bool), `count` (Int64, when count was asked), per aggregate on column c
 * `sum_c` / `avg_c` / `var_c` / `stddev_c` (Float64; sums are exact up to
 * 2^53 in the table — the exact bigint totals are in `result.cells`), and
 * per histogram bin i `hist_c_i` (Int64). Suppressed cells (total count < k)
 * are **present**, with `suppressed = true` and every value null; a
 * histogram bin below k is null too. k also holds per provider: a
 * provider's cell with 1 … k−1 rows is left out of the totals, and with a
 * histogram so are its rows in a bin, or below the first or above the last
 * edge, where it has 1 … k−1 rows (from the cell's count and sums too).
 *
 * With `approximate: true` (CKKS; see index.ts, Approximate
 * mode) every result column is followed by `bound_<name>` (Float64), the
 * bound on its error: `count` / `bound_count`, `sum_c` / `bound_sum_c`, …,
 * `hist_c_i` / `bound_hist_c_i`. Counts and bins are Int64 — exact — when
 * their bound is below 0.5 (they are then rounded, and their bound is 0),
 * else Float64 approximations; sums are Float64 approximations.
 *
 * With `dp: { rho }` every total is noisy (dp.ts): the table holds the noisy
 * values, and `result.cells[i].noise` each one's noise law and 95% interval,
 * `result.dp` the mechanism and its accounting.
 */
import { randomUUID } from "node:crypto";
import { Bool, Float64, Int64, Table, Utf8, vectorFromArray, type Vector } from "apache-arrow";
import { InvalidArgumentError } from "../../engine/errors.js";
import { createHeScheme } from "../../engine/he/index.js";
import { checkNumericColumns, DEFAULT_MAX_ABS_VALUE, DEFAULT_MIN_GROUP_SIZE, putIntervalColumns, type AggregateSpec } from "../aggregate.js";
import { checkOptions, type OptionShape } from "../options.js";
import { tableRows, withToJson, type JsonResult, type Row } from "../results.js";
import { faBuyer, type FaBuyerState } from "./buyer.js";
import { faExchange, faExchangeMissing, type FaExchangeState } from "./exchange.js";
import type { UniformSource } from "../../engine/dp/index.js";
import type { FaDpParams } from "./dp.js";
import { faBoxKeyPair } from "./masks.js";
import { faSchemeOptions, MissingProviderError, resolveFaParams, type FaContext, type FederatedAggregateParams } from "./params.js";
import { faProvider } from "./provider.js";
import type { FaApprox, FaApproxCount, FaResult } from "./result.js";
import { player, providerRole, runRoles, RoleName, type Player, type Role } from "../role.js";
import type { TransportStats } from "../transport.js";

export interface FaProviderSide {
  readonly table: Table;
  /** Its registered X25519 box key pair (default: a fresh one for this run). */
  readonly boxKeyPair?: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
}

export interface RunFederatedAggregateOptions {
  readonly providers: readonly FaProviderSide[];
  readonly aggregates: readonly AggregateSpec[];
  readonly groupBy?: { readonly column: string; readonly categories: readonly string[] };
  readonly histogram?: { readonly column: string; readonly edges: readonly number[] };
  /** Default 2. */
  readonly minProviders?: number;
  /**
   * k (default 10, DEFAULT_MIN_GROUP_SIZE, as `umbra aggregate`): each provider's role zeroes a cell in
   * which it has 1 … k−1 rows, and leaves out its rows of a histogram bin or
   * outside range in which it has 1 … k−1 rows, before it masks its vector;
   * totals below k are suppressed (see index.ts, k per
   * provider per cell).
   */
  readonly minGroupSize?: number;
  /** Bound on |v| of every aggregated column; default 2^40 (DEFAULT_MAX_ABS_VALUE, as the CLI). */
  readonly maxAbsValue?: number | bigint;
  /** Fixed-point decimal digits, default 0. */
  readonly scale?: number;
  /** Default: the largest provider table's row count. */
  readonly maxRowsPerProvider?: number;
  readonly job?: string;
  /** Sees every encoded frame (tests). */
  readonly tap?: (from: string, to: string, frame: Uint8Array) => void;
  /** Simulates providers (by index) that fail after step 1: their step 2 is never delivered (tests). */
  readonly dropOut?: readonly number[];
  /** Approximate arithmetic (CKKS, real-valued masks; weaker hiding — see index.ts). Default false: exact. */
  readonly approximate?: boolean;
  /** Differential privacy, ρ-zCDP in all (dp.ts): each provider adds its share of discrete Gaussian noise before masking. */
  readonly dp?: FaDpParams;
  /** FOR TESTS ONLY: each provider's noise source, by index (default node:crypto's CSPRNG). Seeded noise protects nothing. */
  readonly testNoiseSources?: readonly UniformSource[];
}

/** The options runFederatedAggregate takes (checked at run time: an unknown one is an UnknownOptionError). */
export const RUN_FEDERATED_AGGREGATE_OPTIONS: OptionShape = {
  names: ["providers", "aggregates", "groupBy", "histogram", "minProviders", "minGroupSize", "maxAbsValue", "scale", "maxRowsPerProvider", "job", "tap", "dropOut", "approximate", "dp", "testNoiseSources"],
  required: ["providers", "aggregates"],
  nested: { groupBy: { names: ["column", "categories"], required: ["column", "categories"] }, histogram: { names: ["column", "edges"], required: ["column", "edges"] }, dp: { names: ["rho"], required: ["rho"] } },
  each: { providers: { names: ["table", "boxKeyPair"], required: ["table"] } },
};

export interface FaRunResult extends JsonResult {
  /** One row per cell (see the module comment for the columns); `count` and `hist_c_i` are Int64, so Arrow gives them as bigints: `rows` has them as numbers. */
  readonly table: Table;
  /** The table as plain objects, counts as numbers. */
  readonly rows: readonly Row[];
  /** The exact result: per cell, counts and exact sums as bigint (sums can exceed 2^53). */
  readonly result: FaResult;
  readonly job: string;
  readonly stats: TransportStats;
}

/**
 * Federated aggregation across N ≥ 2 provider tables, every role played here.
 *
 * @throws UnknownOptionError for an option it does not take.
 * @throws UnsupportedTypeError for an aggregated column that is not numeric (a CSV read as text), naming it and the fix.
 */
export async function runFederatedAggregate(options: RunFederatedAggregateOptions): Promise<FaRunResult> {
  checkOptions("runFederatedAggregate", options, RUN_FEDERATED_AGGREGATE_OPTIONS);
  const n = options.providers.length;
  const job = options.job ?? `local-${randomUUID()}`;
  const params: FederatedAggregateParams = {
    job,
    providers: n,
    minProviders: options.minProviders ?? 2,
    minGroupSize: options.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE,
    aggregates: options.aggregates,
    ...(options.groupBy ? { groupBy: options.groupBy } : {}),
    ...(options.histogram ? { histogram: options.histogram } : {}),
    maxAbsValue: options.maxAbsValue ?? DEFAULT_MAX_ABS_VALUE,
    ...(options.scale !== undefined ? { scale: options.scale } : {}),
    maxRowsPerProvider: options.maxRowsPerProvider ?? Math.max(1, ...options.providers.map((p) => p.table.numRows)),
    ...(options.approximate ? { approximate: true } : {}),
    ...(options.dp !== undefined ? { dp: { rho: options.dp.rho } } : {}),
  };
  if (n < 2) throw new InvalidArgumentError("federated-aggregate needs at least two providers");
  const resolved = resolveFaParams(params);
  const valueColumns = [...new Set([...options.aggregates.flatMap((a) => (a.fn === "count" ? [] : [a.column])), ...(options.histogram ? [options.histogram.column] : [])])];
  options.providers.forEach((p, i) => checkNumericColumns(p.table, valueColumns, `provider ${i} table`));
  const keys = options.providers.map((p) => p.boxKeyPair ?? faBoxKeyPair());
  const peers = keys.map((k) => k.publicKey);
  const drop = new Set(options.dropOut ?? []);

  // One HE scheme for every role of this process (each role would build its own in a node).
  const he = await createHeScheme(faSchemeOptions(resolved));
  const ctx: FaContext = { he };
  let failed = false;
  let exchangeState: FaExchangeState | undefined;
  const watch = <S, I, R>(role: Role<S, I, FaContext, R>, seen: (s: S) => void = () => {}): Role<S, I, FaContext, R> => {
    const step = async <T extends { state: S }>(run: () => Promise<T>): Promise<T> => {
      try {
        const out = await run();
        seen(out.state);
        return out;
      } catch (err) {
        failed = true;
        throw err;
      }
    };
    return { ...role, start: (init, c) => step(() => role.start(init, c)), receive: (st, from, m, c) => step(() => role.receive(st, from, m, c)) };
  };
  // A provider that drops out after step 1: its step 2 is computed but never delivered.
  const dropping = { ...faProvider, receive: async (...a: Parameters<typeof faProvider.receive>) => ({ ...(await faProvider.receive(...a)), messages: [] }) };
  try {
    const players: Record<string, Player> = {
      [RoleName.Buyer]: player(watch(faBuyer), params, ctx),
      [RoleName.Exchange]: player(watch(faExchange, (st) => (exchangeState = st)), params, ctx),
    };
    options.providers.forEach((side, i) => {
      const input = { index: i, table: side.table, boxKeyPair: keys[i] as NonNullable<FaProviderSide["boxKeyPair"]>, peers };
      const noise = options.testNoiseSources?.[i];
      players[providerRole(i)] = player(watch(drop.has(i) ? dropping : faProvider), { params, input }, noise ? { ...ctx, noise } : ctx);
    });
    let run: Awaited<ReturnType<typeof runRoles>>;
    try {
      run = await runRoles(players, options.tap ? { tap: options.tap } : {});
    } catch (err) {
      // The messages ran out (no role failed) before the exchange had every provider's vector.
      if (!failed && exchangeState && !exchangeState.done) throw new MissingProviderError(faExchangeMissing(exchangeState));
      throw err;
    }
    const result = faBuyer.result(run.states[RoleName.Buyer] as FaBuyerState);
    const table = faResultTable(result, params);
    return withToJson({ table, rows: tableRows(table), result, job, stats: run.stats });
  } finally {
    he.dispose();
  }
}

/** The buyer's result as an Arrow table (see the module comment for the columns). */
export function faResultTable(result: FaResult, params: Pick<FederatedAggregateParams, "aggregates" | "groupBy" | "histogram">): Table {
  if (result.approximate) return approximateTable(result, params);
  const cols: Record<string, Vector> = {};
  const cells = result.cells;
  const toNum = (x: bigint | null, f: bigint): number | null => (x === null ? null : Number(x) / Number(f));
  const f = 10n ** BigInt(result.scale);
  if (params.groupBy) cols["category"] = vectorFromArray(cells.map((c) => c.category), new Utf8());
  cols["suppressed"] = vectorFromArray(cells.map((c) => c.suppressed), new Bool());
  const dp = result.dp !== undefined;
  for (const a of params.aggregates) {
    if (a.fn === "count") {
      cols["count"] = vectorFromArray(cells.map((c) => c.count), new Int64());
      if (dp) putIntervalColumns(cols, "count", cells.map((c) => c.noise?.count ?? null), "count", result.scale);
      continue;
    }
    const name = `${a.fn}_${a.column}`;
    cols[name] = vectorFromArray(
      cells.map((c) => {
        const r = c.columns[a.column];
        if (!r) return null;
        return a.fn === "sum" ? toNum(r.sum, f) : a.fn === "avg" ? r.avg : a.fn === "var" ? r.var : r.stddev;
      }),
      new Float64(),
    );
    if (dp && a.fn === "sum") putIntervalColumns(cols, name, cells.map((c) => c.noise?.columns[a.column]?.sum ?? null), "total", result.scale);
    if (dp && a.fn === "avg") putIntervalColumns(cols, name, cells.map((c) => c.noise?.columns[a.column]?.avg ?? null), "avg", result.scale);
  }
  if (params.histogram) {
    const bins = params.histogram.edges.length - 1;
    for (let b = 0; b < bins; b++) cols[`hist_${params.histogram.column}_${b}`] = vectorFromArray(cells.map((c) => c.histogram[b] ?? null), new Int64());
  }
  return new Table(cols);
}

/** faResultTable in approximate mode: every value column followed by its bound. */
function approximateTable(result: FaResult, params: Pick<FederatedAggregateParams, "aggregates" | "groupBy" | "histogram">): Table {
  const cols: Record<string, Vector> = {};
  const cells = result.cells;
  const approx = cells.map((c) => {
    if (!c.approx) throw new InvalidArgumentError("an approximate result's cells carry their bounds");
    return c.approx;
  });
  const put = (name: string, xs: readonly (FaApprox | null)[]): void => {
    cols[name] = vectorFromArray(xs.map((x) => x?.value ?? null), new Float64());
    cols[`bound_${name}`] = vectorFromArray(xs.map((x) => x?.bound ?? null), new Float64());
  };
  // Counts: Int64 (exact) when every released one is rounded — their bound depends on the job only, so all are or none.
  const putCount = (name: string, xs: readonly (FaApproxCount | null)[]): void => {
    if (xs.every((x) => x === null || x.rounded)) {
      cols[name] = vectorFromArray(xs.map((x) => (x === null ? null : BigInt(x.value))), new Int64());
      cols[`bound_${name}`] = vectorFromArray(xs.map((x) => x?.bound ?? null), new Float64());
    } else {
      put(name, xs);
    }
  };
  if (params.groupBy) cols["category"] = vectorFromArray(cells.map((c) => c.category), new Utf8());
  cols["suppressed"] = vectorFromArray(cells.map((c) => c.suppressed), new Bool());
  for (const a of params.aggregates) {
    if (a.fn === "count") {
      putCount("count", approx.map((c) => c.count));
      continue;
    }
    put(`${a.fn}_${a.column}`, approx.map((c) => c.columns[a.column]?.[a.fn] ?? null));
  }
  if (params.histogram) {
    const bins = params.histogram.edges.length - 1;
    for (let b = 0; b < bins; b++) putCount(`hist_${params.histogram.column}_${b}`, approx.map((c) => c.histogram[b] ?? null));
  }
  return new Table(cols);
}
