/**
 * A party's statement (docs/venue.md, "Receipts and statements"): every
 * receipt issued in [from, to) where it is the buyer (what it paid: the
 * receipt's amount) or a provider (what it earned: its share), one row per
 * receipt × role, and the totals per currency and role — exact integer
 * minor units. Written as CSV or Arrow IPC by the file's extension.
 */
import { tableFromArrays } from "apache-arrow";
import { writeTable } from "../../engine/columns/index.js";
import { sumAmounts } from "./metering.js";
import type { Receipt } from "./receipt.js";

export const StatementRole = { Buyer: "buyer", Provider: "provider" } as const;
export type StatementRole = (typeof StatementRole)[keyof typeof StatementRole];

export interface StatementRow {
  readonly receipt: string;
  readonly job: string;
  readonly at: string;
  readonly role: StatementRole;
  readonly currency: string;
  /** Paid (buyer) or earned (provider), in minor units. */
  readonly amount: number;
}

export interface Statement {
  readonly party: string;
  readonly from: string;
  readonly to: string;
  readonly rows: readonly StatementRow[];
  readonly totals: readonly { readonly currency: string; readonly role: StatementRole; readonly amount: number; readonly receipts: number }[];
}

/** The statement of `party` over receipts (those outside [from, to) are left out), ordered by time then receipt id. */
export function statementOf(party: string, receipts: readonly Receipt[], from: number, to: number): Statement {
  const rows: StatementRow[] = [];
  const inWindow = receipts.filter((r) => Date.parse(r.at) >= from && Date.parse(r.at) < to).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const r of inWindow) {
    if (r.buyer === party) rows.push({ receipt: r.id, job: r.job, at: r.at, role: StatementRole.Buyer, currency: r.currency, amount: r.amount });
    const share = r.shares.find((s) => s.provider === party);
    if (share !== undefined) rows.push({ receipt: r.id, job: r.job, at: r.at, role: StatementRole.Provider, currency: r.currency, amount: share.amount });
  }
  const keys = [...new Set(rows.map((x) => `${x.currency}\u0000${x.role}`))].sort();
  const totals = keys.map((k) => {
    const [currency, role] = k.split("\u0000") as [string, StatementRole];
    const mine = rows.filter((x) => x.currency === currency && x.role === role);
    return { currency, role, amount: sumAmounts(mine.map((x) => x.amount)), receipts: mine.length };
  });
  return { party, from: new Date(from).toISOString(), to: new Date(to).toISOString(), rows, totals };
}

/**
 * Writes a statement to `path` (.csv, or .arrow / .arrows / .feather / .ipc):
 * columns kind ("receipt" or "total"), receipt, job, at, role, currency,
 * amount (Int64); a total row has no receipt, job or time.
 */
export async function writeStatement(path: string, s: Statement): Promise<void> {
  const all = [...s.rows.map((r) => ({ kind: "receipt", ...r })), ...s.totals.map((t) => ({ kind: "total", receipt: "", job: "", at: "", role: t.role, currency: t.currency, amount: t.amount }))];
  const table = tableFromArrays({
    kind: all.map((r) => r.kind),
    receipt: all.map((r) => r.receipt),
    job: all.map((r) => r.job),
    at: all.map((r) => r.at),
    role: all.map((r) => r.role),
    currency: all.map((r) => r.currency),
    amount: BigInt64Array.from(all.map((r) => BigInt(r.amount))),
  });
  await writeTable(path, table);
}
