/**
 * runLookup: plays the buyer and the provider of lookup in this process over
 * the serialising in-memory transport. The buyer's table in; out, the
 * buyer's rows with the provider's label columns (a left join: nulls where
 * no provider row matches, one output row per matching provider row).
 */
import { randomUUID } from "node:crypto";
import { Table, vectorFromArray, type DataType } from "apache-arrow";
import { concatTablesHorizontally, keysFromTable, takeRows, type KeyOptions } from "../../engine/columns/index.js";
import { getPool, type CryptoPool } from "../../engine/pool/index.js";
import { assertPreparedKey, preparedTableInfo } from "./prepare.js";
import { lookupBuyer, lookupProvider, type LookupBuyerResult, type LookupBuyerState, type LookupContext, type LookupProviderState } from "./roles.js";
import { player, runRoles } from "../role.js";
import { InvalidArgumentError } from "../../engine/errors.js";
import { checkOptions, SIDE_KEY_OPTIONS, SIDE_RENAMED, type OptionShape } from "../options.js";
import { withToJson, type JsonResult } from "../results.js";

export interface RunLookupOptions {
  readonly buyer: { readonly table: Table; readonly keys: readonly string[]; readonly normalise?: KeyOptions };
  readonly provider: {
    /** The prepared table (prepareLookupTable), e.g. read back from Arrow IPC. */
    readonly prepared: Table;
    readonly secretKey: Uint8Array;
    /** Evaluations this buyer may still ask for (default: unlimited). */
    readonly budgetRemaining?: number;
  };
  /**
   * Labels are released only when at least this many distinct buyer keys
   * matched; default 1 (nothing withheld). Below it runLookup throws
   * BelowMinimumError (see lookup.ts).
   */
  readonly minIntersection?: number;
  readonly job?: string;
  readonly pool?: CryptoPool;
  readonly chunkElements?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  readonly tap?: (from: "buyer" | "provider", to: "buyer" | "provider", frame: Uint8Array) => void;
}

export interface LookupRunResult extends JsonResult {
  /** The buyer's rows with the label columns (a left join: nulls where no provider row matches). */
  readonly table: Table;
  /** Buyer rows with at least one provider row. */
  readonly matchedRows: number;
  readonly stats: {
    readonly job: string;
    readonly queries: number;
    readonly preparedRows: number;
    readonly bytesBuyerToProvider: number;
    readonly bytesProviderToBuyer: number;
    readonly messagesBuyerToProvider: number;
    readonly messagesProviderToBuyer: number;
    /** The provider's budget after this job. */
    readonly budgetRemaining: number;
  };
}

/** The options runLookup takes (checked at run time: an unknown one is an UnknownOptionError). */
export const RUN_LOOKUP_OPTIONS: OptionShape = {
  names: ["buyer", "provider", "minIntersection", "job", "pool", "chunkElements", "onProgress", "tap"],
  required: ["buyer", "provider"],
  nested: {
    buyer: { names: SIDE_KEY_OPTIONS, required: ["table", "keys"], renamed: SIDE_RENAMED },
    provider: { names: ["prepared", "secretKey", "budgetRemaining"], required: ["prepared", "secretKey"] },
  },
};

/**
 * Labeled PSI: the buyer's rows enriched with the provider's label columns
 * for the keys the prepared table holds, both roles played here.
 *
 * @throws UnknownOptionError for an option runLookup does not take.
 * @throws BudgetExceededError when the buyer's distinct keys exceed `budgetRemaining`.
 * @throws BelowMinimumError when fewer than `minIntersection` keys matched.
 */
export async function runLookup(o: RunLookupOptions): Promise<LookupRunResult> {
  checkOptions("runLookup", o, RUN_LOOKUP_OPTIONS);
  const info = preparedTableInfo(o.provider.prepared);
  assertPreparedKey(o.provider.prepared, o.provider.secretKey);
  for (const f of info.labelSchema.fields) {
    if (o.buyer.table.schema.fields.some((b) => b.name === f.name)) {
      throw new InvalidArgumentError(`the buyer table already has a column "${f.name}", which the lookup would add`);
    }
  }
  const job = o.job ?? `local-${randomUUID()}`;
  const params = {
    job,
    product: info.product,
    version: info.version,
    ...(o.chunkElements ? { chunkElements: o.chunkElements } : {}),
    ...(o.minIntersection !== undefined ? { minIntersection: o.minIntersection } : {}),
  };
  const ctx: LookupContext = { pool: o.pool ?? getPool(), ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
  const keys = keysFromTable(o.buyer.table, o.buyer.keys, { ...o.buyer.normalise, source: "buyer table" });

  const run = await runRoles(
    {
      buyer: player(lookupBuyer, { params, keys }, ctx),
      provider: player(lookupProvider, { params, secretKey: o.provider.secretKey, budgetRemaining: o.provider.budgetRemaining ?? Number.MAX_SAFE_INTEGER }, { ...ctx, prepared: o.provider.prepared }),
    },
    o.tap ? { tap: o.tap as (from: string, to: string, frame: Uint8Array) => void } : {},
  );
  const b = run.states["buyer"] as LookupBuyerState;
  const p = run.states["provider"] as LookupProviderState;
  const result = lookupBuyer.result(b);
  const { table, matchedRows } = joinLabels(o.buyer.table, result);
  const s = run.stats;
  return withToJson({
    table,
    matchedRows,
    stats: {
      job,
      queries: b.queryCount,
      preparedRows: info.rows,
      bytesBuyerToProvider: s.bytesSent["buyer"] ?? 0,
      bytesProviderToBuyer: s.bytesSent["provider"] ?? 0,
      messagesBuyerToProvider: s.messagesSent["buyer"] ?? 0,
      messagesProviderToBuyer: s.messagesSent["provider"] ?? 0,
      budgetRemaining: p.budgetRemaining,
    },
  });
}

/**
 * The buyer's output of a lookup: its rows with the label columns, a left join
 * (one output row per matching provider row, one row of nulls where none).
 */
export function joinLabels(buyer: Table, result: LookupBuyerResult): { table: Table; matchedRows: number } {
  const rowIdx: number[] = [];
  const types = result.labelSchema.fields.map((f) => f.type as DataType);
  const columns: unknown[][] = types.map(() => []);
  const cache = new Map<number, unknown[][]>();
  let matchedRows = 0;
  for (let r = 0; r < buyer.numRows; r++) {
    const k = result.rowToDistinct[r] ?? -1;
    let labels: unknown[][] = [];
    if (k >= 0) {
      labels = cache.get(k) ?? result.labelsOf(k);
      cache.set(k, labels);
    }
    if (labels.length === 0) {
      rowIdx.push(r);
      columns.forEach((c) => c.push(null));
      continue;
    }
    matchedRows++;
    for (const row of labels) {
      rowIdx.push(r);
      row.forEach((v, j) => columns[j]?.push(v));
    }
  }
  const labelTable = new Table(Object.fromEntries(result.labelSchema.fields.map((f, j) => [f.name, vectorFromArray(columns[j] ?? [], f.type as DataType)])));
  return { table: concatTablesHorizontally(takeRows(buyer, Int32Array.from(rowIdx)), labelTable), matchedRows };
}
