/**
 * runJoinAggregate: plays the buyer, the provider and the exchange of
 * join-aggregate in this process over the serialising in-memory transport
 * (protocols/role.ts runRoles).
 * Arrow tables in, one Arrow table out: one row per released group.
 *
 * Output columns: the group column (named after `groupBy`, Utf8: labels are
 * String(value), null for the NULL group) when grouped; then per aggregate,
 * in order, `count` (Int64, COUNT(*)), `sum_c` / `avg_c` / `var_c` /
 * `stddev_c` (Float64; exact sums are in `result.groups`). Rows are sorted by
 * label, NULL last. Suppressed groups (fewer than k distinct matched keys, or
 * COUNT(*) < k) are absent, as with SQL's HAVING; `suppressedGroups` counts
 * every buyer group not released (one with no match too). Each buyer key must fall
 * in one group: a buyer table with a key in two groups is refused
 * (OverlappingGroupsError, naming the group column and two data rows).
 *
 * With `dp: { rho, maxRowsPerKey? }` every total is noisy (dp.ts): the
 * table holds the noisy values, `result.groups[i].noise` each one's noise
 * variance and 95% interval, `result.dp` the mechanism, its accounting and
 * the contribution bounds; groups whose noisy count is below k are
 * suppressed by the buyer.
 */
import { randomUUID } from "node:crypto";
import { Float64, Int64, Table, Utf8, vectorFromArray, type Vector } from "apache-arrow";
import { InvalidArgumentError, MissingColumnError } from "../../engine/errors.js";
import { keysFromTable } from "../../engine/columns/index.js";
import type { KeyOptions } from "../../engine/columns/normalise.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { forEachSlice, SLICE_ITEMS } from "../../engine/slices.js";
import type { GroupId } from "../../engine/group/index.js";
import { checkNumericColumns, DEFAULT_MAX_ABS_VALUE, DEFAULT_MIN_GROUP_SIZE, putIntervalColumns, type AggregateSpec } from "../aggregate.js";
import { checkOptions, SIDE_KEY_OPTIONS, SIDE_RENAMED, type OptionShape } from "../options.js";
import { tableRows, withToJson, type JsonResult, type Row } from "../results.js";
import { jaBuyer, type JaBuyerState } from "./buyer.js";
import { jaExchange } from "./exchange.js";
import { jaHeOptions, resolveJaParams, type JaContext, type JoinAggregateParams } from "./params.js";
import { jaProvider } from "./provider.js";
import type { JaResult } from "./result.js";
import { player, runRoles, type Role } from "../role.js";
import type { TransportStats } from "../transport.js";
import type { UniformSource } from "../../engine/dp/index.js";
import type { JaDpParams } from "./dp.js";

/** A side of join-aggregate: its table, key columns and key normalisation (as runPsi's and runLookup's). */
export interface JaSide {
  readonly table: Table;
  /** Key column names (several for a composite key), in the same order on both sides. */
  readonly keys: readonly string[];
  /** Key normalisation for this side (default: trim + NFC). Give both sides the same. */
  readonly normalise?: KeyOptions;
}

export interface RunJoinAggregateOptions {
  readonly buyer: JaSide & {
    /** The buyer's column to group by (one result row per value); none: one group of every matched row. */
    readonly groupBy?: string;
  };
  readonly provider: JaSide;
  readonly aggregates: readonly AggregateSpec[];
  /**
   * k: a group is released only with at least k distinct matched keys and k
   * joined rows; default 10 (DEFAULT_MIN_GROUP_SIZE, as `umbra join-aggregate`).
   */
  readonly minGroupSize?: number;
  /** Bound on |v| of every aggregated provider column; default 2^40 (DEFAULT_MAX_ABS_VALUE, as the CLI). */
  readonly maxAbsValue?: number | bigint;
  /** Fixed-point decimal digits, default 0 (integer columns; a float is rounded half away from zero). */
  readonly scale?: number;
  /** Default 2^32. */
  readonly maxJoinRows?: number;
  /** Default x25519. */
  readonly group?: GroupId;
  /** Default: the shared pool. */
  readonly pool?: CryptoPool;
  readonly job?: string;
  /** "bucket" (default) or "none". */
  readonly providerPadding?: "bucket" | "none";
  /** The most distinct keys the buyer may bring: the provider and the exchange refuse more (KeyLimitExceededError). Default: no limit below 10^8. */
  readonly maxBuyerKeys?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Sees every encoded frame (tests). */
  readonly tap?: (from: string, to: string, frame: Uint8Array) => void;
  /** Differential privacy, ρ-zCDP in all (dp.ts): the provider and the exchange each add a share of discrete Gaussian noise under encryption. */
  readonly dp?: JaDpParams;
  /** FOR TESTS ONLY: the provider's and the exchange's noise sources (default node:crypto's CSPRNG). Seeded noise protects nothing. */
  readonly testNoiseSources?: { readonly provider?: UniformSource; readonly exchange?: UniformSource };
}

/** The options runJoinAggregate takes (checked at run time: an unknown one is an UnknownOptionError). */
export const RUN_JOIN_AGGREGATE_OPTIONS: OptionShape = {
  names: ["buyer", "provider", "aggregates", "minGroupSize", "maxAbsValue", "scale", "maxJoinRows", "group", "pool", "job", "providerPadding", "maxBuyerKeys", "onProgress", "tap", "dp", "testNoiseSources"],
  required: ["buyer", "provider", "aggregates"],
  renamed: { keyOptions: "buyer.normalise and provider.normalise" },
  nested: {
    dp: { names: ["rho", "maxRowsPerKey"], required: ["rho"] },
    testNoiseSources: { names: ["provider", "exchange"], required: [] },
    buyer: { names: [...SIDE_KEY_OPTIONS, "groupBy"], required: ["table", "keys"], renamed: SIDE_RENAMED },
    provider: { names: SIDE_KEY_OPTIONS, required: ["table", "keys"], renamed: SIDE_RENAMED },
  },
};

export interface JaRunResult extends JsonResult {
  /** One row per released group (see the module comment for the columns); `count` is Int64, so Arrow gives it as a bigint: `rows` has it as a number. */
  readonly table: Table;
  /** The table as plain objects: the group label, `count` as a number, `sum_c` / `avg_c` / … as numbers (null where undefined). */
  readonly rows: readonly Row[];
  /** The exact result: per group, COUNT(*) and exact sums as bigint (sums can exceed 2^53). */
  readonly result: JaResult;
  /** Buyer groups not released (under k, or with no match). */
  readonly suppressedGroups: number;
  readonly job: string;
  readonly stats: TransportStats;
  /** Milliseconds per phase: reading the keys, then each role's start and its receives (the roles run at once, so these overlap). */
  readonly timings: Record<string, number>;
}

/** Group labels of the buyer's rows: String(value), null for null. */
export function groupLabels(table: Table, column: string): (string | null)[] {
  const v = table.getChild(column) as Vector | null;
  if (!v) throw new MissingColumnError(column, "buyer table");
  const out = new Array<string | null>(v.length);
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v.get(i);
    out[i] = x === null || x === undefined ? null : typeof x === "string" ? x : String(x);
  }
  return out;
}

/** {@link groupLabels} in slices with the event loop let run between them (the same labels; 10^6 rows take ~0.2 s). */
export async function groupLabelsAsync(table: Table, column: string): Promise<(string | null)[]> {
  const v = table.getChild(column) as Vector | null;
  if (!v) throw new MissingColumnError(column, "buyer table");
  const out = new Array<string | null>(v.length);
  await forEachSlice(v.length, SLICE_ITEMS, (from, to) => {
    for (let i = from; i < to; i++) {
      const x: unknown = v.get(i);
      out[i] = x === null || x === undefined ? null : typeof x === "string" ? x : String(x);
    }
  });
  return out;
}

/**
 * The secure join-aggregate of a buyer table and a provider table, every
 * role played here: SELECT g, COUNT(*), SUM(v), AVG(v), … FROM buyer JOIN
 * provider USING (keys) GROUP BY g HAVING COUNT(DISTINCT key) >= k AND
 * COUNT(*) >= k.
 *
 * @throws UnknownOptionError for an option it does not take (e.g. `key` for `keys`).
 * @throws UnsupportedTypeError for an aggregated column that is not numeric (a CSV read as text), naming it and the fix.
 * @throws MissingColumnError for a key, group or value column a table lacks.
 */
export async function runJoinAggregate(options: RunJoinAggregateOptions): Promise<JaRunResult> {
  checkOptions("runJoinAggregate", options, RUN_JOIN_AGGREGATE_OPTIONS);
  const job = options.job ?? `local-${randomUUID()}`;
  const params: JoinAggregateParams = {
    job,
    aggregates: options.aggregates,
    grouped: options.buyer.groupBy !== undefined,
    minGroupSize: options.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE,
    maxAbsValue: options.maxAbsValue ?? DEFAULT_MAX_ABS_VALUE,
    ...(options.scale !== undefined ? { scale: options.scale } : {}),
    ...(options.maxJoinRows !== undefined ? { maxJoinRows: options.maxJoinRows } : {}),
    ...(options.group !== undefined ? { group: options.group } : {}),
    ...(options.providerPadding !== undefined ? { providerPadding: options.providerPadding } : {}),
    ...(options.maxBuyerKeys !== undefined ? { maxBuyerKeys: options.maxBuyerKeys } : {}),
    ...(options.dp !== undefined ? { dp: { rho: options.dp.rho, ...(options.dp.maxRowsPerKey !== undefined ? { maxRowsPerKey: options.dp.maxRowsPerKey } : {}) } } : {}),
  };
  const resolved = resolveJaParams(params);
  if (options.buyer.keys.length === 0 || options.buyer.keys.length !== options.provider.keys.length) {
    throw new InvalidArgumentError("the buyer and the provider must name the same number of key columns (at least one)");
  }
  checkNumericColumns(options.provider.table, resolved.columns, "provider table");
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const buyerKeys = keysFromTable(options.buyer.table, options.buyer.keys, { ...options.buyer.normalise, source: "buyer table" });
  const providerKeys = keysFromTable(options.provider.table, options.provider.keys, { ...options.provider.normalise, source: "provider table" });
  const groups = options.buyer.groupBy !== undefined ? groupLabels(options.buyer.table, options.buyer.groupBy) : undefined;
  timings["read keys"] = performance.now() - t0;

  const pool = options.pool ?? getPool();
  // The pool's host-side context serves every role here (each party would build its own in a node).
  const he = await pool.heContext(jaHeOptions(resolved));
  const ctx: JaContext = { pool, he, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
  const buyerInit = { params, keys: buyerKeys, ...(groups ? { groups, groupColumn: options.buyer.groupBy as string } : {}) };
  const run = await runRoles(
    {
      buyer: player(timed(jaBuyer, "buyer: hash and blind", "buyer: raise and decrypt", timings), buyerInit, ctx),
      provider: player(timed(jaProvider, "provider: aggregate, hash and blind", "provider: encrypt and raise", timings), { params, keys: providerKeys, table: options.provider.table }, withNoise(ctx, options.testNoiseSources?.provider)),
      exchange: player(timed(jaExchange, "exchange: start", "exchange: match and aggregate", timings), { params }, withNoise(ctx, options.testNoiseSources?.exchange)),
    },
    options.tap ? { tap: options.tap } : {},
  );
  const result = jaBuyer.result(run.states["buyer"] as JaBuyerState);
  const table = jaResultTable(result, options);
  return withToJson({ table, rows: tableRows(table), result, suppressedGroups: result.suppressed, job, stats: run.stats, timings });
}

/** The context with a test's noise source, when given. */
function withNoise(ctx: JaContext, noise: UniformSource | undefined): JaContext {
  return noise ? { ...ctx, noise } : ctx;
}

/**
 * The role with the milliseconds of its start and of its every receive added
 * to timings[startPhase] and timings[receivePhase] (wall time from call to
 * answer; the roles run concurrently, so the phases overlap).
 */
function timed<S, I, C, R>(role: Role<S, I, C, R>, startPhase: string, receivePhase: string, timings: Record<string, number>): Role<S, I, C, R> {
  const add = (phase: string, t0: number): void => {
    timings[phase] = (timings[phase] ?? 0) + (performance.now() - t0);
  };
  return {
    ...role,
    async start(init, ctx) {
      const t0 = performance.now();
      try {
        return await role.start(init, ctx);
      } finally {
        add(startPhase, t0);
      }
    },
    async receive(state, from, message, ctx) {
      const t0 = performance.now();
      try {
        return await role.receive(state, from, message, ctx);
      } finally {
        add(receivePhase, t0);
      }
    },
  };
}

/** The buyer's result as an Arrow table (see the module comment for the columns). */
export function jaResultTable(result: JaResult, options: { readonly aggregates: readonly AggregateSpec[]; readonly buyer: { readonly groupBy?: string } }): Table {
  const cols: Record<string, Vector> = {};
  const groups = result.groups;
  const f = 10 ** result.scale;
  if (options.buyer.groupBy !== undefined) cols[options.buyer.groupBy] = vectorFromArray(groups.map((g) => g.label), new Utf8());
  const dp = result.dp !== undefined;
  for (const a of options.aggregates) {
    if (a.fn === "count") {
      cols["count"] = vectorFromArray(groups.map((g) => g.count), new Int64());
      if (dp) putIntervalColumns(cols, "count", groups.map((g) => g.noise?.count ?? null), "count", result.scale);
      continue;
    }
    const name = `${a.fn}_${a.column}`;
    cols[name] = vectorFromArray(
      groups.map((g) => {
        const r = g.columns[a.column];
        if (!r) return null;
        return a.fn === "sum" ? (r.sum === null ? null : Number(r.sum) / f) : a.fn === "avg" ? r.avg : a.fn === "var" ? r.var : r.stddev;
      }),
      new Float64(),
    );
    if (dp && a.fn === "sum") putIntervalColumns(cols, name, groups.map((g) => g.noise?.columns[a.column]?.sum ?? null), "total", result.scale);
    if (dp && a.fn === "avg") putIntervalColumns(cols, name, groups.map((g) => g.noise?.columns[a.column]?.avg ?? null), "avg", result.scale);
  }
  return new Table(cols);
}
