/**
 * Metering (docs/venue.md, "Receipts and statements"): what a job that ran
 * under contracts used, in the units a price schedule prices, and what that
 * costs — exactly, in integer minor units — and how a multi-provider job's
 * amount is shared among its providers.
 *
 * Units and who measures them:
 *
 * - `jobs`: 1, always (the exchange);
 * - `keys`: the buyer's distinct keys, as the provider's role measured them
 *   (its `charged` event), when the line's contract prices them;
 * - `matchedRows`: the rows of the buyer's result, and `cells`: the aggregate
 *   cells released (after k-suppression) — reported by the buyer's agent in
 *   its `succeeded` event ONLY when one of the job's contracts prices them
 *   (data minimisation: a price per matched row tells the provider each job's
 *   matched count).
 *
 * Shares: the largest-remainder method over exact integer arithmetic
 * (BigInt), ties to the provider whose name sorts first, so the shares add up
 * to the amount exactly and each is within one minor unit of its exact
 * pro-rata value.
 */
import { UmbraError } from "../../engine/errors.js";
import { ShareRule } from "../schemas/venue.js";

/** A price schedule with every price present (a product's, copied into its contracts). */
export interface Prices {
  readonly currency: string;
  readonly perJob: number;
  readonly perKey: number;
  readonly perMatchedRow: number;
  readonly perCell: number;
}

/** The units of a price schedule: perJob prices jobs, perKey keys, perMatchedRow matchedRows, perCell cells. */
export const UNITS = ["jobs", "keys", "matchedRows", "cells"] as const;
export type Unit = (typeof UNITS)[number];

/** What one line of a receipt counts: jobs always, each other unit only when the line's prices price it. */
export type Units = { readonly jobs: number } & { readonly [u in Exclude<Unit, "jobs">]?: number };

/** Reported rows and cells above this are refused (no single job releases a billion rows). */
export const MAX_METERED_ROWS = 1_000_000_000;
export const MAX_METERED_CELLS = 1_000_000_000;

const PRICE_OF: Readonly<Record<Unit, keyof Omit<Prices, "currency">>> = { jobs: "perJob", keys: "perKey", matchedRows: "perMatchedRow", cells: "perCell" };

/** Whether a price schedule prices a unit (its price is above 0; jobs always count). */
export function prices(p: Prices, unit: Unit): boolean {
  return unit === "jobs" || p[PRICE_OF[unit]] > 0;
}

/** The stable names of metering's refusals. */
export const MeteringRule = {
  /** A provider reported more distinct keys than the job declared. */
  KeysOverDeclared: "metering-keys-over-declared",
  /** A reported unit is not an integer within its bounds. */
  OutOfBounds: "metering-out-of-bounds",
  /** A unit reported that no contract of the job prices (or one priced and missing). */
  UnitNotPriced: "metering-unit-not-priced",
  UnitMissing: "metering-unit-missing",
  /** A product priced per matched row whose protocols include psi-cardinality: the price would reveal the result. */
  MatchedRowsRevealCardinality: "product-matched-rows-reveal-cardinality",
} as const;
export type MeteringRule = (typeof MeteringRule)[keyof typeof MeteringRule];

/** A report of units refused (code UMBRA_METERING_REFUSED): nothing is recorded. The message names the rule, never a value. */
export class MeteringRefusedError extends UmbraError {
  constructor(
    readonly rule: MeteringRule,
    reason: string,
  ) {
    super("UMBRA_METERING_REFUSED", `metering refused (${rule}): ${reason}`);
  }
}

/** An amount that is not a safe integer (code UMBRA_AMOUNT_OVERFLOW): no receipt can state it exactly. */
export class AmountOverflowError extends UmbraError {
  constructor() {
    super("UMBRA_AMOUNT_OVERFLOW", "the amount is above the largest exact integer: no receipt can state it");
  }
}

const safe = (v: bigint): number => {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < 0n) throw new AmountOverflowError();
  return Number(v);
};

/** The amount of a line: Σ price × units over the units it counts, exactly. @throws AmountOverflowError */
export function lineAmount(p: Prices, units: Units): number {
  let total = 0n;
  for (const u of UNITS) total += BigInt(p[PRICE_OF[u]]) * BigInt(units[u] ?? 0);
  return safe(total);
}

/** A sum of amounts, exactly. @throws AmountOverflowError */
export function sumAmounts(amounts: readonly number[]): number {
  return safe(amounts.reduce((a, b) => a + BigInt(b), 0n));
}

/** The units a line counts under its prices: jobs = 1, and each priced unit from `measured` (0 when not measured). */
export function lineUnits(p: Prices, measured: { readonly keys?: number; readonly matchedRows?: number; readonly cells?: number }): Units {
  const out: Record<string, number> = { jobs: 1 };
  for (const u of ["keys", "matchedRows", "cells"] as const) if (prices(p, u)) out[u] = measured[u] ?? 0;
  return out as Units;
}

export interface ShareInput {
  readonly provider: string;
  /** The rows its dataset in the job holds (its registered row count). */
  readonly rows: number;
}

export interface Share {
  readonly provider: string;
  readonly amount: number;
}

/**
 * Splits `amount` among `providers` by `rule`: "equal", or "rows" (pro rata
 * to each one's rows; when they hold no rows at all, equally). Largest
 * remainder: each gets the floor of its exact share, and the units left go
 * one each to the largest remainders, ties to the name that sorts first.
 * Returned in name order; they add up to `amount` exactly.
 */
export function splitAmount(amount: number, providers: readonly ShareInput[], rule: ShareRule): Share[] {
  const sorted = [...providers].sort((a, b) => (a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0));
  if (sorted.length === 0) return [];
  const totalRows = sorted.reduce((s, p) => s + BigInt(p.rows), 0n);
  const weights = sorted.map((p) => (rule === ShareRule.Rows && totalRows > 0n ? BigInt(p.rows) : 1n));
  const w = weights.reduce((a, b) => a + b, 0n);
  const a = BigInt(amount);
  const floors = weights.map((x) => (a * x) / w);
  const rems = weights.map((x) => (a * x) % w);
  let left = a - floors.reduce((s, f) => s + f, 0n);
  const order = sorted.map((_, i) => i).sort((i, j) => (rems[j] as bigint) > (rems[i] as bigint) ? 1 : (rems[j] as bigint) < (rems[i] as bigint) ? -1 : i - j);
  const extra = new Array<bigint>(sorted.length).fill(0n);
  for (const i of order) {
    if (left === 0n) break;
    extra[i] = 1n;
    left -= 1n;
  }
  return sorted.map((p, i) => ({ provider: p.provider, amount: safe((floors[i] as bigint) + (extra[i] as bigint)) }));
}

/** Adds up shares by provider (name order). @throws AmountOverflowError */
export function mergeShares(lists: readonly (readonly Share[])[]): Share[] {
  const by = new Map<string, bigint>();
  for (const l of lists) for (const s of l) by.set(s.provider, (by.get(s.provider) ?? 0n) + BigInt(s.amount));
  return [...by.keys()].sort().map((provider) => ({ provider, amount: safe(by.get(provider) as bigint) }));
}

/**
 * Checks a reported count: a safe integer in [0, max].
 * @throws MeteringRefusedError (metering-out-of-bounds)
 */
export function checkReported(v: unknown, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) throw new MeteringRefusedError(MeteringRule.OutOfBounds, "a reported unit is not an integer within its bounds");
  return v;
}

/**
 * Checks the buyer's reported matchedRows and cells against what the job's
 * contracts price: each present exactly when some contract prices it, and
 * within its bounds.
 * @throws MeteringRefusedError naming the rule
 */
export function checkBuyerUnits(schedules: readonly Prices[], reported: { readonly matchedRows?: number | undefined; readonly cells?: number | undefined }): { matchedRows?: number; cells?: number } {
  const out: { matchedRows?: number; cells?: number } = {};
  for (const [u, max] of [["matchedRows", MAX_METERED_ROWS], ["cells", MAX_METERED_CELLS]] as const) {
    const priced = schedules.some((p) => prices(p, u));
    const v = reported[u];
    if (v !== undefined && !priced) throw new MeteringRefusedError(MeteringRule.UnitNotPriced, `the job's contracts do not price ${u}: the buyer's agent must not report it`);
    if (v === undefined && priced) throw new MeteringRefusedError(MeteringRule.UnitMissing, `a contract of the job prices ${u}: the buyer's agent must report it`);
    if (v !== undefined) out[u] = checkReported(v, max);
  }
  return out;
}

/** Which units the buyer's agent reports for a job under these schedules (matchedRows, cells: only those priced). */
export function buyerReports(schedules: readonly Prices[]): { matchedRows: boolean; cells: boolean } {
  return { matchedRows: schedules.some((p) => prices(p, "matchedRows")), cells: schedules.some((p) => prices(p, "cells")) };
}
