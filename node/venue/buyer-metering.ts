/**
 * The buyer's agent's side of metering (docs/venue.md, "Receipts and
 * statements"): the units it reports with its result's digest — only those a
 * contract of the job prices (data minimisation), read from its own copies
 * of the contracts it ordered:
 *
 * - `matchedRows`: the rows of its result (a count's value; for lookup, the
 *   rows a label was found for; 0 when the result was withheld under the
 *   minimum intersection);
 * - `cells`: the aggregate cells released — the groups (or cells) the result
 *   shows after k-suppression, times the aggregates asked for.
 */
import { tableFromIPC } from "apache-arrow";
import type { JobRequest } from "../job-request.js";
import type { Store } from "../store.js";
import { buyerReports } from "./metering.js";
import type { Prices } from "./product.js";

/** The prices of the contracts a job cites, as this party holds them. */
export function heldSchedules(store: Store, request: JobRequest): Prices[] {
  return (request.contracts ?? []).flatMap((id) => {
    const p = (store.venue.getContract(id)?.document as { prices?: Partial<Prices> & { currency: string; perJob: number } } | undefined)?.prices;
    return p ? [{ currency: p.currency, perJob: p.perJob, perKey: p.perKey ?? 0, perMatchedRow: p.perMatchedRow ?? 0, perCell: p.perCell ?? 0 }] : [];
  });
}

/** The units this buyer measured of its result (its summary: counts only). */
export function measuredUnits(request: JobRequest, summary: Readonly<Record<string, number>>): { matchedRows: number; cells: number } {
  if (summary["withheld"] !== undefined) return { matchedRows: 0, cells: 0 };
  const matchedRows = summary["matched"] ?? summary["rows"] ?? summary["count"] ?? 0;
  const released = Math.max(0, (summary["cells"] ?? summary["groups"] ?? 0) - (summary["suppressed"] ?? 0));
  const aggregates = (request.params as { aggregate?: { aggregates?: readonly unknown[] } }).aggregate?.aggregates?.length ?? 0;
  return { matchedRows, cells: released * aggregates };
}

/** What the buyer reports in its succeeded event: each unit only when a contract of the job prices it. */
export function meteredUnits(store: Store, request: JobRequest, summary: Readonly<Record<string, number>>): { matchedRows?: number; cells?: number } {
  if ((request.contracts ?? []).length === 0) return {};
  const want = buyerReports(heldSchedules(store, request));
  const m = measuredUnits(request, summary);
  return { ...(want.matchedRows ? { matchedRows: m.matchedRows } : {}), ...(want.cells ? { cells: m.cells } : {}) };
}

/** A lookup result's matched rows: those with a value (not null, not NaN) in some output column. */
export function lookupMatched(ipc: Uint8Array, outputColumns: readonly string[]): number {
  const t = tableFromIPC(ipc);
  const cols = outputColumns.flatMap((c) => {
    const v = t.getChild(c);
    return v ? [v] : [];
  });
  let n = 0;
  for (let i = 0; i < t.numRows; i++) if (cols.some((c) => { const v: unknown = c.get(i); return v !== null && v !== undefined && !(typeof v === "number" && Number.isNaN(v)); })) n++;
  return n;
}
